//! The speaking overlay, end to end: the plugin in real libobs against psn-sim, members talking
//! in turns. The speaking state (as the overlay's event stream shows it) follows each member's
//! voice in their own source; avatars come from the profile API once per party and hostile ones
//! are refused; the server answers only on 127.0.0.1 and only with the token; the page in
//! headless Chromium (tools/overlay_page_check.py) shows every member, escapes names, follows
//! the voices, takes its URL options and reconnects after a plugin restart.
//!
//! `cargo test --features test-producer --test libobs_overlay` (re-runs itself under xvfb-run
//! when there is no X display). Screenshots: target/overlay/.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use obs_psn_party::obs::host::{Captured, HostSource, ObsHost};
use psn_sim::profiles::AvatarMode;
use psn_sim::voice::{MemberSpec, VoiceSpec};
use serde_json::Value;
use support::libobs::{account_of, captured_member, wait_all_connected};
use support::{ensure, Runner};

/// Each member talks this long, then is quiet for `SILENCE_MS` (psn-sim's DTX sends nothing).
const TALK_MS: u64 = 700;
const SILENCE_MS: u64 = 2300;
/// The same floor as the plugin's detector (src/audio/speaking.rs): what counts as voice.
const FLOOR_RMS: f32 = 0.005;
/// The issue's bound: the speaking state within 150 ms of the voice reaching the source.
const ONSET_BOUND_MS: f64 = 150.0;
/// Speech stops counting after the hangover (350 ms); the state must follow within this.
const END_BOUND_MS: f64 = 700.0;

/// One member as the test set them up.
struct Who {
    online_id: &'static str,
    hz: f64,
    avatar: AvatarMode,
    /// Captured in a member source for the timing figures.
    timed: bool,
}

const HTML_NAME: &str = "<img src=x onerror=alert(1)>&amp;";

fn members() -> Vec<Who> {
    let who = |online_id, hz, avatar, timed| Who {
        online_id,
        hz,
        avatar,
        timed,
    };
    vec![
        who("ann_ps", 300.0, AvatarMode::Generated, true),
        who("ben_ps", 470.0, AvatarMode::Generated, true),
        who("cat_ps", 730.0, AvatarMode::Generated, true),
        // Refused: 4 MiB.
        who("dan_ps", 1030.0, AvatarMode::Huge, true),
        // Refused: another service on this machine.
        who(
            HTML_NAME,
            560.0,
            AvatarMode::Url("http://127.0.0.1:9/steal.png".into()),
            false,
        ),
        // Muted by consent; refused: HTML served as a PNG.
        who("fay_ps", 850.0, AvatarMode::NotAnImage, false),
    ]
}

fn main() {
    support::ensure_display();
    let work = support::scratch_dir("overlay");
    let plugin = support::stage_plugin(&work);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime for psn-sim");
    let sim = runtime
        .block_on(psn_sim::start(psn_sim::SimConfig::default()))
        .expect("psn-sim starts");
    let _runtime_context = runtime.enter();
    for (key, value) in sim.plugin_env() {
        std::env::set_var(key, value);
    }
    let host = ObsHost::start(&work.join("config")).expect("libobs starts");
    let mut runner = Runner::new();
    runner.run_always("module_loads", || {
        host.load_module(&plugin.binary, &plugin.data).map(|_| ())
    });

    let who = members();
    // In turns: each member's talkspurt starts 500 ms after the previous one's.
    let specs: Vec<MemberSpec> = who
        .iter()
        .enumerate()
        .map(|(i, w)| {
            MemberSpec::with_voice(
                w.online_id,
                "PS5",
                VoiceSpec {
                    tone_hz: Some(w.hz),
                    talk_ms: Some(TALK_MS),
                    silence_ms: Some(SILENCE_MS),
                    talk_offset_ms: (TALK_MS + SILENCE_MS)
                        - (i as u64 * 500) % (TALK_MS + SILENCE_MS),
                    ..VoiceSpec::default()
                },
            )
        })
        .collect();
    let party = sim.start_party_with("Overlay night", &specs);
    let account = |online: &str| account_of(&party, online);
    for w in &who {
        sim.set_avatar(&account(w.online_id), w.avatar.clone());
    }
    let fay = account("fay_ps");
    // Consent: everyone allowed but fay (with "Capture only members I allow", a member with no
    // choice of the user's is muted).
    let allowed: Vec<String> = who
        .iter()
        .map(|w| {
            let a = account(w.online_id);
            format!(r#""allow_{a}": {}"#, a != fay)
        })
        .collect();
    let party_settings = format!(
        r#"{{"only_allowed_members": true, {}}}"#,
        allowed.join(", ")
    );
    let mut sources = Sources::start(&host, &party_settings, &who);
    let overlay = sources.overlay();
    println!("    overlay on 127.0.0.1:{}", overlay.port);

    runner.run("members_connect_and_the_overlay_knows_them", || {
        wait_all_connected(&sim, who.len(), Duration::from_secs(30))?;
        let ready = support::wait_for(Duration::from_secs(10), || {
            overlay.state().is_some_and(|s| {
                s["members"].as_array().is_some_and(|m| {
                    // ann, ben, cat and the user's own console.
                    m.iter().filter(|m| !m["avatar"].is_null()).count() == 4
                        && m.iter().filter(|m| m["voice"] == "connected").count() == who.len()
                })
            })
        });
        let state = overlay.state().unwrap_or_default();
        println!("    overlay state after {ready:?}: {state}");
        ensure(ready.is_some(), || format!("overlay state: {state}"))?;
        ensure(!state.to_string().contains(&fay), || {
            "an account id in the overlay state".into()
        })
    });

    runner.run("speaking_state_follows_each_voice", || {
        let events = overlay.follow_events();
        for (_, audio) in &sources.members {
            audio.lock().unwrap().clear();
        }
        let window_start = Instant::now();
        std::thread::sleep(Duration::from_secs(12));
        let window_end = Instant::now();
        let events = events.lock().unwrap().clone();
        ensure(events.len() > 10, || format!("{} events in 12 s", events.len()))?;
        let mut onsets = Vec::new();
        let mut ends = Vec::new();
        for (name, audio) in &sources.members {
            let audio = audio.lock().unwrap();
            let spurts = talkspurts(&audio);
            let changes = speaking_changes(&events, name);
            // Only talkspurts well inside the window (their state changes are in it too).
            let inside = |t: Instant| {
                t > window_start + Duration::from_millis(500) && t + Duration::from_millis(1500) < window_end
            };
            let mut member_onsets = Vec::new();
            let mut member_ends = Vec::new();
            let mut matched = Vec::new();
            for &(start, end) in spurts.iter().filter(|(s, e)| inside(*s) && inside(*e)) {
                let on = changes.iter().find(|(t, on)| *on && signed_ms(*t, start) > -500.0 && signed_ms(*t, start) < 1000.0);
                let off = changes.iter().find(|(t, on)| !*on && signed_ms(*t, end) > -300.0 && signed_ms(*t, end) < 2000.0);
                let (Some(on), Some(off)) = (on, off) else {
                    return Err(format!("{name}: a talkspurt with no speaking state: {spurts:?} vs {changes:?}"));
                };
                member_onsets.push(signed_ms(on.0, start));
                member_ends.push(signed_ms(off.0, end));
                matched.push(on.0);
                // No flicker: exactly one start and one stop for the talkspurt.
                let flips = changes.iter().filter(|(t, _)| *t >= on.0 && *t <= off.0).count();
                ensure(flips == 2, || format!("{name}: {flips} changes inside one talkspurt"))?;
            }
            // Every speaking start well inside the window belongs to a talkspurt of the audio
            // (any one the capture holds, measured or not): anything else is flicker. (The
            // last 1.5 s are left out: a talkspurt still going there is not complete yet.)
            let core = |t: Instant| {
                t > window_start + Duration::from_millis(1000) && t + Duration::from_millis(1500) < window_end
            };
            let stray: Vec<_> = changes
                .iter()
                .filter(|(t, on)| {
                    *on && core(*t)
                        && !matched.contains(t)
                        && !spurts.iter().any(|(s, _)| (-500.0..1000.0).contains(&signed_ms(*t, *s)))
                })
                .map(|(t, _)| signed_ms(*t, window_start))
                .collect();
            println!(
                "    {name}: {} talkspurts measured; onset {} ms, end {} ms; stray starts {stray:.0?}",
                matched.len(),
                figures(&member_onsets),
                figures(&member_ends)
            );
            ensure(stray.is_empty(), || format!("{name}: speaking starts outside any talkspurt at {stray:.0?} ms (flicker)"))?;
            onsets.extend(member_onsets);
            ends.extend(member_ends);
        }
        println!("    FIGURE speaking_onset_ms (state seen - first voiced sample captured from the source) {}", figures(&onsets));
        println!("    FIGURE speaking_end_ms (state seen - last voiced sample captured) {}", figures(&ends));
        ensure(onsets.len() >= 8, || format!("only {} talkspurts measured", onsets.len()))?;
        ensure(median(&onsets) < ONSET_BOUND_MS, || format!("onset median {:.0} ms", median(&onsets)))?;
        ensure(median(&ends) < END_BOUND_MS, || format!("end median {:.0} ms", median(&ends)))?;
        // Consent-muted members never show as speaking.
        let fay_spoke = events.iter().any(|(_, s)| member(s, "fay_ps").is_some_and(|m| m["speaking"] == true));
        ensure(!fay_spoke, || "a member muted by consent showed as speaking".into())
    });

    runner.run("avatars_fetched_once_and_hostile_ones_refused", || {
        let state = overlay.state().ok_or("no state")?;
        for w in &who {
            let m =
                member(&state, w.online_id).ok_or_else(|| format!("{} missing", w.online_id))?;
            let expect_avatar = w.avatar == AvatarMode::Generated;
            ensure(m["avatar"].is_null() != expect_avatar, || {
                format!("{}: avatar {}", w.online_id, m["avatar"])
            })?;
            if let Some(id) = m["avatar"].as_u64() {
                let (status, body) = overlay.get(&format!("/avatar/{id}"), None);
                ensure(status == 200 && body.starts_with(b"\x89PNG"), || {
                    format!("avatar {id}: {status}")
                })?;
            }
        }
        let served = sim.avatars_served();
        println!("    avatar images psn-sim served: {served:?}");
        for w in &who {
            let n = served.get(&account(w.online_id)).copied().unwrap_or(0);
            let expected = if matches!(w.avatar, AvatarMode::Url(_)) {
                0
            } else {
                1
            };
            ensure(n == expected, || {
                format!("{}: avatar fetched {n} times", w.online_id)
            })?;
        }
        let refused = host
            .log_lines()
            .iter()
            .filter(|l| l.text.contains("avatar was refused"))
            .count();
        ensure(refused == 3, || {
            format!("{refused} avatars refused in the log")
        })
    });

    runner.run(
        "server_answers_only_on_loopback_and_only_with_the_token",
        || {
            let (ok, _) = overlay.get("/state", None);
            let (none, body) = overlay.raw_get("/state", "127.0.0.1", None);
            let (wrong, _) = overlay.raw_get(
                "/state",
                "127.0.0.1",
                Some("0123456789abcdef0123456789abcdef"),
            );
            let (rebound, _) = overlay.raw_get("/state", "evil.example", Some(&overlay.token));
            println!(
                "    with token {ok}, without {none}, wrong token {wrong}, foreign Host {rebound}"
            );
            ensure(
                ok == 200 && none == 403 && wrong == 403 && rebound == 403 && body.is_empty(),
                || "answered without the token".into(),
            )?;
            let listening = listening_addresses(overlay.port);
            println!("    listening on {listening:?}");
            ensure(listening == ["127.0.0.1"], || {
                format!("listening on {listening:?}")
            })?;
            // The token is in no setting (scene collection, obs-websocket), even after the user
            // typed into the address field.
            let party = sources.party.as_ref().ok_or("no party source")?;
            party.update(r#"{"overlay_url": "typed"}"#)?;
            let saved = party.saved_json() + &party.settings_json();
            println!("    saved settings: {saved}");
            ensure(
                !saved.contains(&overlay.token) && !saved.contains("typed"),
                || format!("the overlay address is in the source's settings: {saved}"),
            )
        },
    );

    runner.run("overlay_page_in_chromium", || {
        let out = screenshot_dir();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/overlay_page_check.py");
        // Debian's python3, which has python3-websockets (tools/setup.sh), whatever else is in PATH.
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .args(["--url", &overlay.url, "--out"])
            .arg(&out)
            .args([
                "--members",
                "5",
                "--no-avatar",
                "2",
                "--html-name",
                HTML_NAME,
                "--muted",
                "fay_ps",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("python3: {e}"))?;
        let mut stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut failed = Vec::new();
        for line in stdout.lines().map_while(Result::ok) {
            println!("    {line}");
            if line.starts_with("CHECK") && !line.contains(" ok") {
                failed.push(line.clone());
            }
            if line == "RESTART" {
                // OBS restarting: every source goes (the server stops), then comes back.
                sources.stop();
                std::thread::sleep(Duration::from_secs(2));
                sources = Sources::start(&host, &party_settings, &who);
                let again = sources.overlay();
                ensure(again.url == overlay.url, || {
                    format!("the URL changed: {} -> {}", overlay.url, again.url)
                })?;
                writeln!(stdin, "RESTARTED").map_err(|e| e.to_string())?;
            }
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        println!("    screenshots in {}", out.display());
        ensure(status.success() && failed.is_empty(), || {
            format!("page checks failed: {failed:?}")
        })
    });

    runner.run(
        "the_port_setting_moves_the_server_and_keeps_the_token",
        || {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            let party = sources.party.as_ref().ok_or("no party source")?;
            party.update(&format!(r#"{{"overlay_port": {port}}}"#))?;
            let moved = sources.overlay();
            println!("    overlay_port {port}: now {}", moved.port);
            ensure(moved.port == port && moved.token == overlay.token, || {
                format!(
                    "moved to {} (token kept: {})",
                    moved.port,
                    moved.token == overlay.token
                )
            })?;
            let (status, _) = moved.get("/state", None);
            let (old, _) = overlay.get("/state", None);
            ensure(status == 200 && old == 0, || {
                format!("new port answered {status}, old port {old}")
            })
        },
    );

    sources.stop();
    sim.end_party(&party.session_id);
    let report = host.shutdown();
    println!("    obs_shutdown took {:?}", report.took);
    support::finish_scratch(&work);
    runner.finish();
}

/// The PSN Party source and one member source per timed member.
struct Sources {
    party: Option<HostSource>,
    members: Vec<(String, Arc<Mutex<Captured>>)>,
    member_sources: Vec<HostSource>,
}

impl Sources {
    fn start(host: &ObsHost, party_settings: &str, who: &[Who]) -> Sources {
        let party = host
            .create_source("psn_party", "party", party_settings)
            .expect("party source");
        let mut members = Vec::new();
        let mut member_sources = Vec::new();
        for w in who.iter().filter(|w| w.timed) {
            let settings = format!(r#"{{"member": "{}"}}"#, w.online_id);
            let (source, audio) =
                captured_member(host, w.online_id, &settings).expect("member source");
            members.push((w.online_id.to_owned(), audio));
            member_sources.push(source);
        }
        Sources {
            party: Some(party),
            members,
            member_sources,
        }
    }

    /// The overlay's address, from the properties (as the user copies it).
    fn overlay(&self) -> Overlay {
        let party = self.party.as_ref().expect("running");
        // Building the properties puts the address in the field, as opening the dialog does.
        let names = party.all_property_names();
        assert!(
            names.iter().any(|n| n == "overlay/overlay_url"),
            "no overlay_url field: {names:?}"
        );
        let url = party.setting_string("overlay_url");
        let parsed = url::Url::parse(&url).expect("the overlay URL parses");
        Overlay {
            port: parsed.port().expect("a port"),
            token: parsed
                .query_pairs()
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
                .expect("a token"),
            url,
        }
    }

    fn stop(&mut self) {
        self.member_sources.clear();
        self.members.clear();
        self.party = None;
    }
}

struct Overlay {
    url: String,
    port: u16,
    token: String,
}

impl Overlay {
    fn get(&self, path: &str, host: Option<&str>) -> (u16, Vec<u8>) {
        self.raw_get(path, host.unwrap_or("127.0.0.1"), Some(&self.token))
    }

    /// One GET with `Host: {host}:{port}` and the token (if any).
    fn raw_get(&self, path: &str, host: &str, token: Option<&str>) -> (u16, Vec<u8>) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, vec![]);
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
        let _ = write!(
            s,
            "GET {path}{query} HTTP/1.1\r\nHost: {host}:{}\r\n\r\n",
            self.port
        );
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(raw.len());
        let head = String::from_utf8_lossy(&raw[..split]);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, raw.get(split + 4..).unwrap_or_default().to_vec())
    }

    fn state(&self) -> Option<Value> {
        let (status, body) = self.get("/state", None);
        (status == 200)
            .then(|| serde_json::from_slice(&body).ok())
            .flatten()
    }

    /// Reads the event stream in a thread; every snapshot with the time it arrived.
    fn follow_events(&self) -> Arc<Mutex<Vec<(Instant, Value)>>> {
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("overlay server");
        let _ = write!(
            s,
            "GET /events?token={} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.token, self.port
        );
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(s).lines().map_while(Result::ok) {
                if let Some(json) = line.strip_prefix("data: ") {
                    if let Ok(v) = serde_json::from_str::<Value>(json) {
                        sink.lock().unwrap().push((Instant::now(), v));
                    }
                }
            }
        });
        events
    }
}

fn member<'a>(state: &'a Value, online_id: &str) -> Option<&'a Value> {
    state["members"]
        .as_array()?
        .iter()
        .find(|m| m["onlineId"] == online_id)
}

/// (time, speaking) at each change of `name`'s speaking state in the event stream.
fn speaking_changes(events: &[(Instant, Value)], name: &str) -> Vec<(Instant, bool)> {
    let mut out = Vec::new();
    let mut last = None;
    for (t, s) in events {
        let speaking = member(s, name).is_some_and(|m| m["speaking"] == true);
        if last != Some(speaking) {
            if last.is_some() {
                out.push((*t, speaking));
            }
            last = Some(speaking);
        }
    }
    out
}

/// (first voiced sample, last voiced sample) of each talkspurt a source delivered, as the
/// instants OBS's capture callback received them. A talkspurt ends after 300 ms of quiet.
fn talkspurts(audio: &Captured) -> Vec<(Instant, Instant)> {
    let arrival = |sample: usize| {
        audio
            .arrivals
            .iter()
            .find(|(_, total)| *total > sample)
            .map(|(t, _)| *t)
    };
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut last_voiced = 0usize;
    for (k, block) in audio.samples.chunks(480).enumerate() {
        let rms = (block.iter().map(|s| s * s).sum::<f32>() / block.len() as f32).sqrt();
        let at = k * 480;
        if rms > FLOOR_RMS {
            if start.is_none() {
                start = Some(at);
            }
            last_voiced = at + block.len() - 1;
        } else if let Some(s) = start {
            if at - last_voiced > 300 * 48 {
                if let (Some(a), Some(b)) = (arrival(s), arrival(last_voiced)) {
                    out.push((a, b));
                }
                start = None;
            }
        }
    }
    out
}

fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64() * 1000.0
    } else {
        -((b - a).as_secs_f64() * 1000.0)
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn figures(v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match (s.first(), s.last()) {
        (Some(min), Some(max)) => format!(
            "median {:.0} (min {min:.0}, max {max:.0}, n={})",
            median(&s),
            s.len()
        ),
        _ => "none".into(),
    }
}

/// The local addresses a TCP socket listens on `port` with (from /proc/net/tcp and tcp6).
fn listening_addresses(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local address, state 0A = LISTEN
            let (Some(local), Some(state)) = (cols.get(1), cols.get(3)) else {
                continue;
            };
            let Some((addr, p)) = local.split_once(':') else {
                continue;
            };
            if *state != "0A" || u16::from_str_radix(p, 16).ok() != Some(port) {
                continue;
            }
            out.push(if addr.len() == 8 {
                let n = u32::from_str_radix(addr, 16).unwrap_or(0);
                std::net::Ipv4Addr::from(n.swap_bytes()).to_string()
            } else {
                format!("ipv6:{addr}")
            });
        }
    }
    out
}

/// target/overlay: screenshots to look at (one is in the README).
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/overlay");
    let _ = std::fs::create_dir_all(&dir);
    dir
}
