//! One libobs end-to-end run, the same in every `libobs_*` test and benches/party_obs.rs: an X
//! display, a fresh folder with the plugin staged in it, psn-sim with the plugin pointed at it
//! the way a user's `.env` would, the test host with the plugin loaded, and at the end the check
//! every run ends with: OBS shuts down promptly and leaks no libobs allocation. Also what the
//! checks of those runs share: captured member sources, the wait for every voice, a member's
//! account id, the plugin's log lines, tone members and their separation.
//!
//! ```ignore
//! let (run, sim, host, mut runner) = LibobsRun::start_with_sim("party");
//! runner.run("a_check", || { /* host, sim */ Ok(()) });
//! run.finish(host, runner);
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use obs_psn_party::obs::host::{Captured, HostSource, ModuleInfo, ObsHost};
use psn_sim::voice::{MemberSpec, VoiceSpec};
use psn_sim::{PartySetup, SimConfig, SimHandle};
use tokio::runtime::Runtime;

use super::plugin::{stage_plugin, StagedPlugin};
use super::runner::{ensure, wait_for, Runner};
use super::scratch::{finish_scratch, scratch_dir};

/// The sample rate the test host runs libobs at (src/obs/host.rs): what every source outputs.
pub const RATE: u32 = 48_000;

/// Shutting libobs down takes well under 100 ms; a second means it waited on something.
const PROMPT_SHUTDOWN: Duration = Duration::from_secs(1);

pub struct LibobsRun {
    name: String,
    pub work: PathBuf,
    pub plugin: StagedPlugin,
}

impl LibobsRun {
    /// An X display (re-runs the test under xvfb-run when there is none), the run's folder
    /// and the plugin staged in it.
    pub fn prepare(name: &str) -> LibobsRun {
        obs_psn_party::obs::host::ensure_display();
        let work = scratch_dir(name);
        let plugin = stage_plugin(&work);
        LibobsRun {
            name: name.to_owned(),
            work,
            plugin,
        }
    }

    /// The usual run: prepared, psn-sim with the default configuration, libobs with the
    /// plugin loaded (the `module_loads` check on the returned runner).
    pub fn start_with_sim(name: &str) -> (LibobsRun, SimHandle, ObsHost, Runner) {
        let run = LibobsRun::prepare(name);
        let sim = run.start_sim(SimConfig::default());
        let mut runner = Runner::new();
        let host = run.start_host_with_plugin(&mut runner);
        (run, sim, host, runner)
    }

    /// psn-sim on a runtime of its own, with the plugin pointed at it.
    pub fn start_sim(&self, config: SimConfig) -> SimHandle {
        self.start_sim_on(Runtime::new().expect("tokio runtime for psn-sim"), config)
    }

    /// psn-sim on `runtime`, which stays entered on this thread until the process ends: the
    /// simulator's members run on it and the checks' calls from this thread spawn them.
    /// Every `PSN_*` variable the plugin reads is set to point at the simulator.
    pub fn start_sim_on(&self, runtime: Runtime, config: SimConfig) -> SimHandle {
        let runtime: &'static Runtime = Box::leak(Box::new(runtime));
        let sim = runtime
            .block_on(psn_sim::start(config))
            .expect("psn-sim starts");
        std::mem::forget(runtime.enter());
        for (key, value) in sim.plugin_env() {
            std::env::set_var(key, value);
        }
        sim
    }

    /// libobs started on the run's config folder, the plugin not loaded yet.
    pub fn start_host(&self) -> ObsHost {
        ObsHost::start(&self.work.join("config")).expect("libobs starts")
    }

    /// Loads the staged plugin the way OBS does.
    pub fn load_plugin(&self, host: &ObsHost) -> Result<ModuleInfo, String> {
        host.load_module(&self.plugin.binary, &self.plugin.data)
    }

    /// libobs with the plugin loaded, as the run's first check (`module_loads`; it runs
    /// whatever name filter was given, the other checks depend on it).
    pub fn start_host_with_plugin(&self, runner: &mut Runner) -> ObsHost {
        let host = self.start_host();
        runner.run_always("module_loads", || self.load_plugin(&host).map(|_| ()));
        host
    }

    /// The end of every run: shuts libobs down, checks it was prompt and leaked nothing,
    /// leaves the run's folder to the suite (or removes it), prints the summary and exits.
    pub fn finish(self, host: ObsHost, mut runner: Runner) -> ! {
        let report = host.shutdown();
        println!(
            "FIGURE OBS exit at the end of the {} run: shutdown took {:?}, {} libobs allocations leaked",
            self.name, report.took, report.leaks
        );
        runner.run("obs_shutdown_is_prompt_and_leak_free", || {
            ensure(report.leaks == 0, || {
                format!("{} libobs allocations leaked", report.leaks)
            })?;
            ensure(report.took < PROMPT_SHUTDOWN, || {
                format!("shutdown took {:?}", report.took)
            })
        });
        finish_scratch(&self.work);
        runner.finish()
    }
}

/// Ends a party when the check is over, passed or failed, so that the next check's hub does
/// not find it.
pub struct EndParty<'a>(pub &'a SimHandle, pub String);

impl Drop for EndParty<'_> {
    fn drop(&mut self) {
        self.0.end_party(&self.1);
    }
}

/// The account id psn-sim gave the party's member `online_id` (the plugin's settings and
/// property names use account ids).
pub fn account_of(party: &PartySetup, online_id: &str) -> String {
    party
        .members
        .iter()
        .find(|m| m.1 == online_id)
        .map(|m| m.0.clone())
        .unwrap_or_else(|| panic!("{online_id} is not in the party"))
}

/// A source and what it outputs.
pub type CapturedSource = (HostSource, Arc<Mutex<Captured>>);

/// A member source named `name` with `settings` (JSON), capturing what it outputs.
pub fn captured_member(
    host: &ObsHost,
    name: &str,
    settings: &str,
) -> Result<CapturedSource, String> {
    let mut source = host.create_source("psn_party_member", name, settings)?;
    let audio = source.start_capture();
    Ok((source, audio))
}

/// A member source per online id, named after it (`{"member": name` + `more_settings` + `}`),
/// each captured.
pub fn member_sources(
    host: &ObsHost,
    names: &[&str],
    more_settings: &str,
) -> Result<Vec<CapturedSource>, String> {
    names
        .iter()
        .map(|name| {
            captured_member(
                host,
                name,
                &format!(r#"{{"member": "{name}"{more_settings}}}"#),
            )
        })
        .collect()
}

/// Waits up to `limit` until `n` members' voices are connected (psn-sim's side), and says
/// after how long.
pub fn wait_all_connected(sim: &SimHandle, n: usize, limit: Duration) -> Result<(), String> {
    let connected = wait_for(limit, || {
        sim.voice_status()
            .iter()
            .filter(|v| v.state == "connected")
            .count()
            == n
    });
    println!("    all {n} members connected after {connected:?}");
    ensure(connected.is_some(), || {
        format!("voice status: {:?}", sim.voice_status())
    })
}

/// The lines the plugin logged (`[obs-psn-party] ...`), oldest first.
/// The heap the process really holds (glibc's `mallinfo2`), less what this test host keeps of
/// OBS's log (every line, in memory), in KiB. RSS is no leak measure: it also counts freed
/// memory glibc keeps in its per-thread arenas, and moves by several MiB either way between
/// runs (16 MiB after 200 source cycles on a busy machine, 7 on a quiet one).
pub fn heap_kib_less_log(host: &ObsHost) -> i64 {
    let heap = obs_psn_party::obs::host::heap_in_use_bytes().unwrap_or(0);
    let lines = host.log_lines();
    let log = lines.iter().map(|l| l.text.capacity()).sum::<usize>()
        + lines.capacity() * std::mem::size_of::<obs_psn_party::obs::host::LogLine>();
    (heap as i64 - log as i64) / 1024
}

pub fn plugin_log(host: &ObsHost) -> Vec<String> {
    host.log_lines()
        .into_iter()
        .map(|l| l.text)
        .filter(|t| t.contains("[obs-psn-party]"))
        .collect()
}

/// A PS5 member that speaks a steady tone of `hz`.
pub fn tone_member(online_id: &str, hz: f64) -> MemberSpec {
    MemberSpec::with_voice(
        online_id,
        "PS5",
        VoiceSpec {
            tone_hz: Some(hz),
            ..VoiceSpec::default()
        },
    )
}

/// The level of `tones[own]` in `samples` and that of the loudest other tone, in dB
/// (48 kHz audio as OBS outputs it): a member's source must carry their voice only.
pub fn tone_separation(samples: &[f32], tones: &[f64], own: usize) -> (f64, f64) {
    let level = |hz: f64| obs_psn_party::audio::analysis::tone_dbfs(samples, RATE, hz);
    let others = tones
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != own)
        .map(|(_, &hz)| level(hz))
        .fold(f64::NEG_INFINITY, f64::max);
    (level(tones[own]), others)
}
