//! Shared harness of the psn_* integration tests: psn-sim in-process on 127.0.0.1, a client
//! pointed at it, a captured trace and log, and the checks every test ends with (no field outside
//! the recorded shapes was sent; no secret reached a log line, the trace or a `Debug` string).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use obs_psn_party::psn::client::ClientOptions;
use obs_psn_party::psn::config::PsnConfig;
use obs_psn_party::psn::http::HttpOptions;
use obs_psn_party::psn::party_api::PartyApi;
use obs_psn_party::psn::trace::Trace;
use obs_psn_party::psn::{PsnClient, Secret};
use psn_sim::{PartySetup, SimConfig, SimHandle};

/// Every log line of the whole test binary.
static LOG: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
/// Every secret any simulator of this binary handed out.
static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

struct CaptureLogger;

impl log::Log for CaptureLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LOG.get_or_init(Default::default).lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

pub fn install_logger() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = log::set_boxed_logger(Box::new(CaptureLogger));
        log::set_max_level(log::LevelFilter::Trace);
    });
}

pub fn log_lines() -> Vec<String> {
    LOG.get_or_init(Default::default).lock().unwrap().clone()
}

pub struct Env {
    pub sim: SimHandle,
    pub dir: PathBuf,
    pub trace: Arc<Mutex<Vec<String>>>,
    pub client: Arc<PsnClient>,
    /// Debug strings of values the test produced (errors, events), checked for secrets at the end.
    pub debug_seen: Mutex<Vec<String>>,
}

pub fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("psn-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Env {
    pub async fn new() -> Env {
        Self::with(SimConfig::default(), HttpOptions::default()).await
    }

    pub async fn with(cfg: SimConfig, http: HttpOptions) -> Env {
        install_logger();
        let sim = psn_sim::start(cfg).await.expect("sim starts on loopback");
        let dir = temp_dir();
        let trace = Arc::new(Mutex::new(Vec::new()));
        let client = make_client(&sim, &dir, &trace, http);
        Env {
            sim,
            dir,
            trace,
            client,
            debug_seen: Mutex::new(vec![]),
        }
    }

    /// The configuration a user would have: settings pointing every base URL at the sim.
    pub fn config(&self) -> PsnConfig {
        config_for(&self.sim, &self.dir)
    }

    /// Another client on the same config dir (a restart of OBS).
    pub fn second_client(&self, http: HttpOptions) -> Arc<PsnClient> {
        make_client(&self.sim, &self.dir, &self.trace, http)
    }

    pub async fn sign_in(&self) -> String {
        let npsso = Secret::new(self.sim.config().npsso);
        self.client
            .sign_in_with_npsso(npsso)
            .await
            .expect("sign-in works")
    }

    /// A new environment whose client has signed in.
    pub async fn signed_in() -> Env {
        let env = Self::new().await;
        env.sign_in().await;
        env
    }

    /// The party API of the test's client.
    pub fn party_api(&self) -> PartyApi {
        PartyApi::new(self.client.clone())
    }

    /// Signs in, then the party API of the signed-in client (how most tests begin).
    pub async fn signed_in_party(&self) -> PartyApi {
        self.sign_in().await;
        self.party_api()
    }

    /// Signs in, starts a party of the console's user with `members` and joins it: the party
    /// and the API that joined it.
    pub async fn joined_party(&self, members: &[(&str, &str)]) -> (PartySetup, PartyApi) {
        let party = self.signed_in_party().await;
        let p = self.sim.start_party("", members);
        party.join(&p.session_id).await.unwrap();
        (p, party)
    }

    /// Keeps a value's Debug string for the leak check.
    pub fn seen<T: std::fmt::Debug>(&self, v: &T) -> String {
        let s = format!("{v:?}");
        self.debug_seen.lock().unwrap().push(s.clone());
        s
    }

    pub fn trace_lines(&self) -> Vec<String> {
        self.trace.lock().unwrap().clone()
    }

    /// The checks every test ends with.
    pub fn finish(self) {
        let unexpected = self.sim.unexpected();
        assert!(
            unexpected.is_empty(),
            "the client sent fields outside the recorded shapes: {unexpected:?}"
        );
        SECRETS
            .get_or_init(Default::default)
            .lock()
            .unwrap()
            .extend(self.sim.secrets());
        let secrets = SECRETS
            .get_or_init(Default::default)
            .lock()
            .unwrap()
            .clone();
        let mut texts = log_lines();
        texts.extend(self.trace_lines());
        texts.extend(self.debug_seen.lock().unwrap().iter().cloned());
        texts.push(format!("{:?}", self.client));
        texts.push(format!("{:?}", self.config()));
        for t in &texts {
            for s in &secrets {
                assert!(!t.contains(s.as_str()), "a secret leaked into: {t}");
            }
        }
        let account = self.sim.config().account_id;
        for t in self.trace_lines() {
            assert!(!t.contains(&account), "the trace shows an account id: {t}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn config_for(sim: &SimHandle, dir: &std::path::Path) -> PsnConfig {
    let c = sim.config();
    let base = sim.base_url();
    let mut settings = HashMap::new();
    for k in [
        "PSN_AUTH_BASE_URL",
        "PSN_API_BASE_URL",
        "PSN_PUSH_BASE_URL",
        "PSN_WEB_BASE_URL",
    ] {
        settings.insert(k.to_string(), base.clone());
    }
    settings.insert("PSN_CLIENT_ID".into(), c.client_id);
    settings.insert("PSN_CLIENT_SECRET".into(), c.client_secret);
    PsnConfig::from_sources(&settings, &|_| None, Some(dir)).expect("config")
}

pub fn make_client(
    sim: &SimHandle,
    dir: &std::path::Path,
    trace: &Arc<Mutex<Vec<String>>>,
    http: HttpOptions,
) -> Arc<PsnClient> {
    let t = trace.clone();
    let opts = ClientOptions {
        http,
        trace: Some(Trace::new(move |l| t.lock().unwrap().push(l.to_string()))),
        token_store: None,
    };
    PsnClient::new(config_for(sim, dir), opts).expect("client")
}

/// A customMessage carrying an offer with `sdp`, from the console 1234567890 to the app 42
/// (a valid input the fuzzing mutates).
pub fn offer_message(sdp: &str) -> Vec<u8> {
    use obs_psn_party::psn::custom_message::{encode, Message, Signal, UserRef};
    encode(&Message::from_signal(Signal::new(
        "offer",
        UserRef {
            account_id: "1234567890".into(),
            platform: 100001,
        },
        UserRef {
            account_id: "42".into(),
            platform: 5,
        },
        sdp.into(),
        1,
    )))
}

/// The `customData4` the tests update to: the app's default with its fourth field "1" instead
/// of "0" (the fields' meanings are not known, PROTOCOL.md section 3).
pub const UPDATED_CUSTOM_DATA4: [&str; 10] = ["", "", "1", "1", "6.2.0", "0", "0", "0", "", ""];

pub fn fast_http() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_secs(5),
        ..HttpOptions::default()
    }
}
