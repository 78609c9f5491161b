#![no_main]
//! Every typed JSON answer the PSN client decodes (psn::answers, the party and party-link
//! shapes, push's serveraddr read as a Value), through the same `Response::json` the client
//! calls. Any body must give a value or an error, never a panic.

use libfuzzer_sys::fuzz_target;
use obs_psn_party::psn::answers::{
    BridgeCreatedAnswer, PartiesAnswer, PartySessionsAnswer, PeerAddedAnswer, ReofferAnswer,
    TokenAnswer,
};
use obs_psn_party::psn::http::Response;
use obs_psn_party::psn::session::PartyInfo;

fuzz_target!(|data: &[u8]| {
    let response = Response {
        endpoint: "fuzz",
        status: 200,
        headers: Default::default(),
        body: data.to_vec(),
    };
    let _ = response.json::<TokenAnswer>();
    let _ = response.json::<PartiesAnswer>();
    let _ = response.json::<PartySessionsAnswer>();
    let _ = response.json::<BridgeCreatedAnswer>();
    let _ = response.json::<PeerAddedAnswer>();
    let _ = response.json::<ReofferAnswer>();
    let _ = response.json::<PartyInfo>();
    let _ = response.json::<serde_json::Value>();
});
