//! Sign-in, refresh and the token store against psn-sim, with every auth fault.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::Duration;

use obs_psn_party::psn::config::PsnConfig;
use obs_psn_party::psn::http::HttpOptions;
use obs_psn_party::psn::party_api::PartyApi;
use obs_psn_party::psn::token_store::TokenStore;
use obs_psn_party::psn::{PsnClient, PsnError, Secret};
use psn_sim::{Fault, SimConfig};
use support::psn::*;

/// A client made from `cfg` signs in with the simulator's NPSSO: the error it must end in
/// (kept for the leak check).
async fn sign_in_error(env: &Env, cfg: PsnConfig) -> PsnError {
    let c = PsnClient::new(cfg, Default::default()).unwrap();
    let err = c
        .sign_in_with_npsso(Secret::new(env.sim.config().npsso))
        .await
        .unwrap_err();
    env.seen(&err);
    err
}

/// A second instance on the same config dir signs in anew: its client, and the refresh token
/// of that newer sign-in as the store holds it.
async fn a_second_instance_signs_in(env: &Env) -> (Arc<PsnClient>, Secret) {
    let second = env.second_client(HttpOptions::default());
    second
        .sign_in_with_npsso(Secret::new(env.sim.config().npsso))
        .await
        .expect("the second instance signs in anew");
    let newer = TokenStore::in_dir(&env.dir).load().unwrap();
    (
        second,
        newer.expect("the new sign-in is stored").refresh_token,
    )
}

/// The store still holds the newer sign-in's refresh token.
fn assert_newer_sign_in_kept(env: &Env, newer: Secret) {
    assert_eq!(
        TokenStore::in_dir(&env.dir)
            .load()
            .unwrap()
            .map(|t| t.refresh_token),
        Some(newer),
        "the newer sign-in is still stored"
    );
}

#[tokio::test]
async fn sign_in_reads_account_id_and_stores_tokens_0600() {
    let env = Env::new().await;
    let me = env.sign_in().await;
    assert_eq!(me, env.sim.config().account_id);
    assert_eq!(env.client.account_id().await.as_deref(), Some(me.as_str()));
    assert_eq!(env.sim.count("authorize"), 1);
    assert_eq!(env.sim.count("token"), 1);
    assert_eq!(env.sim.total_requests(), 2);
    let store = TokenStore::in_dir(&env.dir);
    let mode = std::fs::metadata(store.path()).unwrap().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(store.path()).unwrap();
    assert!(
        !text.contains(&env.sim.config().npsso),
        "the NPSSO is never stored"
    );
    assert!(store.load().unwrap().is_some());
    env.finish();
}

#[tokio::test]
async fn wrong_npsso_is_the_4165_redirect() {
    let env = Env::new().await;
    let err = env
        .client
        .sign_in_with_npsso(Secret::new("x".repeat(64)))
        .await
        .unwrap_err();
    env.seen(&err);
    assert_eq!(err, PsnError::NpssoInvalid);
    assert!(err.to_string().contains("ssocookie"), "{err}");
    assert_eq!(env.sim.count("authorize"), 1);
    assert_eq!(env.sim.count("token"), 0);
    assert!(!env.client.is_signed_in().await);
    env.finish();
}

#[tokio::test]
async fn missing_credentials_send_nothing() {
    let env = Env::new().await;
    let mut cfg = env.config();
    cfg.client_secret = None;
    let err = sign_in_error(&env, cfg).await;
    assert_eq!(err, PsnError::CredentialsMissing);
    assert!(err.to_string().contains("PSN_CLIENT_ID"));
    assert_eq!(env.sim.total_requests(), 0);
    env.finish();
}

#[tokio::test]
async fn rejected_credentials() {
    let env = Env::new().await;
    let mut cfg = env.config();
    cfg.client_secret = Some(Secret::new("not-the-secret"));
    let err = sign_in_error(&env, cfg.clone()).await;
    assert_eq!(err, PsnError::CredentialsRejected);
    assert_eq!((env.sim.count("authorize"), env.sim.count("token")), (1, 1));
    cfg.client_id = Some("00000000-0000-0000-0000-00000000dead".into());
    let err = sign_in_error(&env, cfg).await;
    assert_eq!(err, PsnError::CredentialsRejected);
    assert_eq!((env.sim.count("authorize"), env.sim.count("token")), (2, 1));
    env.finish();
}

#[tokio::test]
async fn refreshes_ahead_of_expiry_using_the_answered_lifetime() {
    let env = Env::new().await;
    env.sim.set_lifetimes(2, 100);
    let party = env.signed_in_party().await;
    party.list_parties().await.unwrap();
    assert_eq!(
        env.sim.count("token"),
        1,
        "no refresh while the token is fresh"
    );
    // 2 s lifetime -> margin 0.2 s -> refreshed from 1.8 s on, before PSN would say 401.
    tokio::time::sleep(Duration::from_millis(1850)).await;
    party.list_parties().await.unwrap();
    assert_eq!(env.sim.count("token"), 2, "one refresh");
    assert_eq!(env.sim.count("bulkGet"), 2, "no 401 and no retry");
    assert!(env.sim.rejections().is_empty());
    // Many calls at once after expiry: still one refresh.
    tokio::time::sleep(Duration::from_millis(1850)).await;
    let calls: Vec<_> = (0..5).map(|_| party.list_parties()).collect();
    for r in futures_util::future::join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(
        env.sim.count("token"),
        3,
        "concurrent callers share one refresh"
    );
    env.finish();
}

#[tokio::test]
async fn server_side_expiry_gives_one_401_one_refresh_one_retry() {
    let env = Env::signed_in().await;
    env.sim.fault(Fault::ExpireAccessTokens);
    let party = env.party_api();
    party.list_parties().await.unwrap();
    assert_eq!(env.sim.count("bulkGet"), 2);
    assert_eq!(env.sim.count("token"), 2);
    env.finish();
}

#[tokio::test]
async fn repeated_401_surfaces_after_one_retry() {
    let env = Env::signed_in().await;
    env.sim.fault(Fault::Unauthorized {
        count: 5,
        endpoint: None,
    });
    let party = env.party_api();
    let err = party.list_parties().await.unwrap_err();
    env.seen(&err);
    assert_eq!(err, PsnError::Unauthorized);
    assert_eq!(env.sim.count("bulkGet"), 2, "one try, one retry, no more");
    assert_eq!(env.sim.count("token"), 2, "one refresh");
    env.finish();
}

#[tokio::test]
async fn revoked_refresh_token_means_sign_in_again() {
    let env = Env::signed_in().await;
    env.sim.fault(Fault::RevokeRefreshTokens);
    env.sim.fault(Fault::ExpireAccessTokens);
    let party = env.party_api();
    let err = party.list_parties().await.unwrap_err();
    env.seen(&err);
    assert_eq!(err, PsnError::SignInExpired);
    assert!(err.to_string().contains("sign in again"), "{err}");
    assert_eq!((env.sim.count("bulkGet"), env.sim.count("token")), (1, 2));
    assert!(
        TokenStore::in_dir(&env.dir).load().unwrap().is_none(),
        "the dead tokens are removed"
    );
    let before = env.sim.total_requests();
    assert_eq!(
        party.list_parties().await.unwrap_err(),
        PsnError::NotSignedIn
    );
    assert_eq!(
        env.sim.total_requests(),
        before,
        "nothing is sent when signed out"
    );
    env.finish();
}

#[tokio::test]
async fn expired_refresh_token_is_known_without_asking() {
    let env = Env::new().await;
    env.sim.set_lifetimes(1, 1);
    env.sign_in().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = env.client.access_token().await.unwrap_err();
    assert_eq!(err, PsnError::SignInExpired);
    assert_eq!(
        env.sim.count("token"),
        1,
        "no refresh attempt with an expired refresh token"
    );
    env.finish();
}

#[tokio::test]
async fn tokens_survive_a_restart() {
    let env = Env::signed_in().await;
    let before = env.sim.total_requests();
    let c2 = env.second_client(HttpOptions::default());
    assert_eq!(c2.account_id().await, Some(env.sim.config().account_id));
    PartyApi::new(c2).list_parties().await.unwrap();
    assert_eq!(
        env.sim.total_requests(),
        before + 1,
        "no new sign-in, no refresh"
    );
    env.client.sign_out().await.unwrap();
    assert!(TokenStore::in_dir(&env.dir).load().unwrap().is_none());
    env.finish();
}

#[tokio::test]
async fn psn_unreachable_is_reported() {
    let env = Env::new().await;
    let mut cfg = env.config();
    // A loopback port with nothing listening.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    cfg.endpoints =
        obs_psn_party::psn::Endpoints::all_at(&format!("http://127.0.0.1:{port}")).unwrap();
    let err = sign_in_error(&env, cfg).await;
    assert!(matches!(err, PsnError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
    env.finish();
}

#[tokio::test]
async fn short_lifetimes_from_the_sim_config() {
    let env = Env::with(
        SimConfig {
            access_ttl: 60,
            refresh_ttl: 863999,
            ..SimConfig::default()
        },
        fast_http(),
    )
    .await;
    env.sign_in().await;
    let stored = TokenStore::in_dir(&env.dir).load().unwrap().unwrap();
    let now = obs_psn_party::psn::auth::unix_now();
    assert!((stored.access_expires_at_unix as i64 - now as i64 - 60).abs() <= 2);
    assert!(
        (stored.refresh_expires_at_unix as i64 - now as i64 - 863999).abs() <= 2,
        "the answered lifetime, not 5183999"
    );
    env.finish();
}

#[tokio::test]
async fn headless_sign_in_uses_the_configured_npsso_once() {
    let env = Env::new().await;
    let mut cfg = env.config();
    cfg.npsso = Some(Secret::new(env.sim.config().npsso));
    let dir = temp_dir();
    cfg.config_dir = Some(dir.clone());
    let c = PsnClient::new(cfg, Default::default()).unwrap();
    assert!(!env.seen(&c).contains(&env.sim.config().npsso));
    assert_eq!(
        c.ensure_signed_in().await.unwrap(),
        env.sim.config().account_id
    );
    assert_eq!(env.sim.count("token"), 1);
    // Already signed in: nothing is sent.
    c.ensure_signed_in().await.unwrap();
    c.sign_out().await.unwrap();
    // The NPSSO was used once and is gone.
    assert_eq!(
        c.ensure_signed_in().await.unwrap_err(),
        PsnError::NotSignedIn
    );
    assert_eq!(env.sim.total_requests(), 2);
    for f in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
        assert!(!text.contains(&env.sim.config().npsso));
    }
    let _ = std::fs::remove_dir_all(dir);
    env.finish();
}

/// Two OBS instances (or profiles) on one config dir: the first holds a sign-in PSN has
/// since revoked, the second signed in anew. The first one's `invalid_grant` must not delete
/// the second one's tokens (issue 17 item 5).
#[tokio::test]
async fn an_old_sign_in_refused_by_psn_does_not_sign_out_a_newer_one() {
    let env = Env::signed_in().await;
    env.sim.fault(Fault::RevokeRefreshTokens);
    let (second, newer) = a_second_instance_signs_in(&env).await;
    env.sim.fault(Fault::ExpireAccessTokens);
    let err = env.party_api().list_parties().await.unwrap_err();
    env.seen(&err);
    assert_eq!(
        err,
        PsnError::SignInExpired,
        "the first instance is signed out"
    );
    assert_newer_sign_in_kept(&env, newer);
    PartyApi::new(second)
        .list_parties()
        .await
        .expect("the second instance still works");
    let restarted = env.second_client(HttpOptions::default());
    PartyApi::new(restarted)
        .list_parties()
        .await
        .expect("a restart signs in from the store");
    env.finish();
}

/// The same two instances, both sign-ins alive: the older one's refresh does not write its
/// tokens over the newer sign-in (it re-reads the store under the lock first).
#[tokio::test]
async fn a_refresh_on_an_old_sign_in_does_not_overwrite_a_newer_one() {
    let env = Env::signed_in().await;
    let (_second, newer) = a_second_instance_signs_in(&env).await;
    env.sim.fault(Fault::ExpireAccessTokens);
    env.party_api()
        .list_parties()
        .await
        .expect("the first instance refreshes and goes on");
    assert_eq!(env.sim.count("token"), 3, "two sign-ins, one refresh");
    assert_newer_sign_in_kept(&env, newer);
    env.finish();
}

/// A token store that is not one (cut short, edited by hand) is moved aside, and the plugin
/// starts signed out, ready for "Sign in", instead of failing on every start.
#[tokio::test]
async fn a_corrupt_token_store_is_moved_aside_and_reads_as_signed_out() {
    let env = Env::new().await;
    let store = TokenStore::in_dir(&env.dir);
    std::fs::write(store.path(), "{\"account_id\": \"1\", \"refresh_tok").unwrap();
    let client = env.second_client(HttpOptions::default());
    assert_eq!(client.account_id().await, None);
    assert_eq!(
        client.ensure_signed_in().await.unwrap_err(),
        PsnError::NotSignedIn
    );
    assert!(store.corrupt_path().exists() && !store.path().exists());
    client
        .sign_in_with_npsso(Secret::new(env.sim.config().npsso))
        .await
        .expect("Sign in works again");
    assert!(store.load().unwrap().is_some());
    env.finish();
}

/// A `.env` other users can read, and base URLs away from Sony, each give one warning line in
/// the log however often the configuration is read (issue 17 item 11).
#[tokio::test]
async fn a_readable_env_file_and_foreign_base_urls_give_one_warning_line_each() {
    install_logger();
    let dir = temp_dir();
    let env_file = dir.join(".env");
    std::fs::write(&env_file, "PSN_API_BASE_URL=https://psn.example.net\n").unwrap();
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    for _ in 0..3 {
        PsnConfig::from_env(Some(&dir)).unwrap();
    }
    let lines = log_lines();
    let about = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(
        about(&format!(
            "{} is readable by other users (mode 640)",
            env_file.display()
        )),
        1,
        "{lines:?}"
    );
    assert_eq!(
        about("PSN base URLs point at psn.example.net,"),
        1,
        "{lines:?}"
    );
    // Private again: no new line about it.
    let private = temp_dir();
    std::fs::write(private.join(".env"), "").unwrap();
    std::fs::set_permissions(private.join(".env"), std::fs::Permissions::from_mode(0o600)).unwrap();
    PsnConfig::from_env(Some(&private)).unwrap();
    assert!(!log_lines()
        .iter()
        .any(|l| l.contains(&private.display().to_string())));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&private);
}
