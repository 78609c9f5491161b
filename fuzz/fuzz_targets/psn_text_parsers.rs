#![no_main]
//! Every text the PSN client reads from a server outside the typed JSON answers: PSN's error
//! body (read for every non-2xx answer), the sign-in redirect's Location, the access token's
//! claims, the trace's redaction of any body, `.env`. None may panic; redaction must not grow
//! a body without bound.

use libfuzzer_sys::fuzz_target;
use obs_psn_party::psn::auth::{account_id_from_jwt, parse_authorize_location};
use obs_psn_party::psn::config::{parse_dotenv, DEFAULT_REDIRECT_URI};
use obs_psn_party::psn::http::Response;
use obs_psn_party::psn::trace::redact_body;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let response = Response {
        endpoint: "fuzz",
        status: 400 + u16::from(data.first().copied().unwrap_or(0) % 200),
        headers: Default::default(),
        body: data.to_vec(),
    };
    let _ = response.api_error();
    let _ = response.json::<serde_json::Value>();
    let _ = parse_authorize_location(&text, DEFAULT_REDIRECT_URI);
    let _ = account_id_from_jwt(&text);
    let _ = parse_dotenv(&text);
    let redacted = redact_body(&text);
    assert!(redacted.len() <= 8 * text.len() + 64, "redaction grew the body");
});
