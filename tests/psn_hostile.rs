//! Hostile servers: the PSN client signed in against psn-sim, then its API host replaced by a raw
//! TCP server on 127.0.0.1 that misbehaves on purpose (issue 6, "Bad input"). Each answer must
//! end in a clear error, within a bounded time and memory, without a panic, and a redirect must
//! never be followed (so credentials never reach another host).
//!
//! Each test prints a `FIGURE hostile <case>: ...` line for docs/reliability.md.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use obs_psn_party::psn::client::ClientOptions;
use obs_psn_party::psn::config::PsnConfig;
use obs_psn_party::psn::http::{HttpOptions, MAX_BODY_BYTES};
use obs_psn_party::psn::party_api::PartyApi;
use obs_psn_party::psn::{PsnClient, PsnError, Secret};
use support::psn::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the hostile server answers every request.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Declares a 1 GiB body and streams zeros until the client hangs up.
    HugeDeclared,
    /// A chunked body that never ends (JSON-looking chunks, forever).
    EndlessChunked,
    /// A 200 whose body comes one byte a second (slowloris from the server's side).
    Trickle,
    /// 302 to another loopback listener.
    Redirect(u16),
    /// A body that is not UTF-8.
    NotUtf8,
    /// 100 000 nested arrays.
    DeeplyNested,
}

/// Starts the hostile server; returns its base URL and how many bytes it wrote in all.
async fn hostile(b: Behaviour) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let w = w.clone();
            tokio::spawn(async move {
                let _ = serve(sock, b, w).await;
            });
        }
    });
    (url, written)
}

async fn read_head(sock: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if sock.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    // The request body (the client's JSON), if any: read what is there.
    let mut rest = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(50), sock.read(&mut rest)).await;
    Ok(())
}

async fn serve(
    mut sock: TcpStream,
    b: Behaviour,
    written: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    read_head(&mut sock).await?;
    let send = |bytes: Vec<u8>| {
        written.fetch_add(bytes.len(), Ordering::Relaxed);
        bytes
    };
    match b {
        Behaviour::HugeDeclared => {
            sock.write_all(&send(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n"
                    .to_vec(),
            ))
            .await?;
            let zeros = vec![b' '; 64 * 1024];
            loop {
                sock.write_all(&send(zeros.clone())).await?;
            }
        }
        Behaviour::EndlessChunked => {
            sock.write_all(&send(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                    .to_vec(),
            ))
            .await?;
            let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "[".repeat(16 * 1024));
            loop {
                sock.write_all(&send(chunk.clone().into_bytes())).await?;
            }
        }
        Behaviour::Trickle => {
            sock.write_all(&send(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n"
                    .to_vec(),
            ))
            .await?;
            loop {
                sock.write_all(&send(b" ".to_vec())).await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Behaviour::Redirect(port) => {
            let r = format!(
                "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{port}/steal\r\ncontent-length: 0\r\n\r\n"
            );
            sock.write_all(&send(r.into_bytes())).await?;
        }
        Behaviour::NotUtf8 => {
            let body: Vec<u8> = (0..4096u32).map(|i| 0x80 | (i % 64) as u8).collect();
            let mut r = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            sock.write_all(&send(r)).await?;
        }
        Behaviour::DeeplyNested => {
            let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
            let r = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(&send(r.into_bytes())).await?;
        }
    }
    sock.shutdown().await
}

/// A client whose sign-in goes to psn-sim and whose party calls go to `api`.
async fn client_with_api(env: &Env, api: &str, timeout: Duration) -> Arc<PsnClient> {
    let c = env.sim.config();
    let base = env.sim.base_url();
    let mut settings = HashMap::new();
    settings.insert("PSN_AUTH_BASE_URL".to_string(), base.clone());
    settings.insert("PSN_PUSH_BASE_URL".to_string(), base.clone());
    settings.insert("PSN_WEB_BASE_URL".to_string(), base);
    settings.insert("PSN_API_BASE_URL".to_string(), api.to_string());
    settings.insert("PSN_CLIENT_ID".into(), c.client_id);
    settings.insert("PSN_CLIENT_SECRET".into(), c.client_secret);
    let config = PsnConfig::from_sources(&settings, &|_| None, Some(&env.dir)).unwrap();
    let client = PsnClient::new(
        config,
        ClientOptions {
            http: HttpOptions {
                timeout,
                ..HttpOptions::default()
            },
            trace: None,
            token_store: None,
        },
    )
    .unwrap();
    client
        .sign_in_with_npsso(Secret::new(env.sim.config().npsso))
        .await
        .expect("sign-in against the sim");
    client
}

/// Runs one party call against `b`; returns the error, the time it took and the bytes the
/// server managed to write.
async fn call_against(b: Behaviour, timeout: Duration) -> (PsnError, Duration, usize) {
    let env = Env::new().await;
    let (url, written) = hostile(b).await;
    let client = client_with_api(&env, &url, timeout).await;
    let t0 = Instant::now();
    let outcome = PartyApi::new(client).list_parties().await;
    let took = t0.elapsed();
    let err = outcome.expect_err("a hostile answer is an error");
    env.seen(&err);
    env.finish();
    (err, took, written.load(Ordering::Relaxed))
}

/// The client reads at most [`MAX_BODY_BYTES`] plus what the socket buffers hold.
const READ_BOUND: usize = MAX_BODY_BYTES + 8 * 1024 * 1024;

#[tokio::test]
async fn a_huge_declared_body_is_refused_unread() {
    let (err, took, written) = call_against(Behaviour::HugeDeclared, Duration::from_secs(10)).await;
    println!(
        "FIGURE hostile huge body (1 GiB declared): refused in {:.0} ms, server wrote {} KiB before the client hung up: {err}",
        took.as_secs_f64() * 1000.0,
        written / 1024
    );
    assert!(matches!(err, PsnError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("larger than"), "{err}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(written < READ_BOUND, "{written} bytes were sent");
}

#[tokio::test]
async fn an_endless_chunked_body_stops_at_the_size_bound() {
    let (err, took, written) =
        call_against(Behaviour::EndlessChunked, Duration::from_secs(10)).await;
    println!(
        "FIGURE hostile endless chunked body: refused in {:.0} ms after the server wrote {} KiB (bound {} KiB): {err}",
        took.as_secs_f64() * 1000.0,
        written / 1024,
        MAX_BODY_BYTES / 1024
    );
    assert!(err.to_string().contains("larger than"), "{err}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(written < READ_BOUND, "{written} bytes were sent");
}

#[tokio::test]
async fn a_trickling_body_ends_at_the_request_timeout() {
    let timeout = Duration::from_secs(3);
    let (err, took, _) = call_against(Behaviour::Trickle, timeout).await;
    println!(
        "FIGURE hostile body at one byte a second: given up after {:.1} s (timeout {} s): {err}",
        took.as_secs_f64(),
        timeout.as_secs()
    );
    assert!(
        matches!(err, PsnError::Timeout { .. } | PsnError::Unreachable { .. }),
        "{err:?}"
    );
    assert!(took < timeout + Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn a_redirect_is_never_followed() {
    // The host the redirect points to counts every connection it gets.
    let thief = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = thief.local_addr().unwrap().port();
    let visits = Arc::new(AtomicUsize::new(0));
    let v = visits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = thief.accept().await {
            v.fetch_add(1, Ordering::SeqCst);
            let _ = s.shutdown().await;
        }
    });
    let (err, took, _) = call_against(Behaviour::Redirect(port), Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let n = visits.load(Ordering::SeqCst);
    println!(
        "FIGURE hostile redirect to another host: not followed ({n} connections there), error in {:.0} ms: {err}",
        took.as_secs_f64() * 1000.0
    );
    assert_eq!(n, 0, "the redirect was followed");
    assert!(
        matches!(
            err,
            PsnError::Api { status: 302, .. } | PsnError::Protocol { .. }
        ),
        "{err:?}"
    );
}

/// A body the client cannot read as JSON is a protocol error, with the time it took as a figure.
async fn check_unparsable_body(b: Behaviour, what: &str) {
    let (err, took, _) = call_against(b, Duration::from_secs(5)).await;
    println!(
        "FIGURE hostile {what}: error in {:.0} ms: {err}",
        took.as_secs_f64() * 1000.0
    );
    assert!(matches!(err, PsnError::Protocol { .. }), "{err:?}");
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_a_clear_error() {
    check_unparsable_body(Behaviour::NotUtf8, "non-UTF-8 body").await;
}

#[tokio::test]
async fn deeply_nested_json_is_a_clear_error_not_a_stack_overflow() {
    check_unparsable_body(Behaviour::DeeplyNested, "100 000 nested arrays").await;
}

/// No setting, environment variable or `.env` line makes the client speak plain HTTP to a host
/// that is not loopback (TLS verification has no switch at all: `http::tls_config`).
#[test]
fn plain_http_is_refused_for_any_host_but_loopback() {
    for key in [
        "PSN_AUTH_BASE_URL",
        "PSN_API_BASE_URL",
        "PSN_PUSH_BASE_URL",
        "PSN_WEB_BASE_URL",
    ] {
        for url in [
            "http://example.invalid",
            "http://10.0.0.1:8080",
            "http://127.0.0.1.example.invalid",
            "ws://example.invalid",
        ] {
            let mut settings = HashMap::new();
            settings.insert(key.to_string(), url.to_string());
            let from_settings = PsnConfig::from_sources(&settings, &|_| None, None);
            assert!(
                from_settings.is_err(),
                "{key}={url} was accepted from settings"
            );
            let from_env = PsnConfig::from_sources(
                &HashMap::new(),
                &|k| (k == key).then(|| url.to_string()),
                None,
            );
            assert!(
                from_env.is_err(),
                "{key}={url} was accepted from the environment"
            );
        }
        for url in ["http://127.0.0.1:9", "http://[::1]:9", "http://localhost:9"] {
            let mut settings = HashMap::new();
            settings.insert(key.to_string(), url.to_string());
            assert!(
                PsnConfig::from_sources(&settings, &|_| None, None).is_ok(),
                "{key}={url} (loopback) was refused"
            );
        }
    }
}
