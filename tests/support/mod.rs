//! Shared by the libobs end-to-end tests: an X display, the built plugin
//! staged the way OBS installs it, and a tiny runner that prints results.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use obs_psn_party::obs::host::ensure_display;

/// The built module, copied into a fresh plugin folder as OBS expects it:
/// `<dir>/obs-psn-party/bin/64bit/obs-psn-party.so` and `<dir>/obs-psn-party/data`.
pub struct StagedPlugin {
    pub root: PathBuf,
    pub binary: PathBuf,
    pub data: PathBuf,
}

pub fn stage_plugin(work: &Path) -> StagedPlugin {
    // The test binary lives in target/<profile>/deps, next to the module
    // cargo built for it with the same features (cargo test does not copy
    // that one up to target/<profile>).
    let exe = std::env::current_exe().expect("test binary path");
    let built = exe.parent().expect("deps dir").join("libobs_psn_party.so");
    assert!(
        built.exists(),
        "{} is missing: build with cargo test --features test-producer",
        built.display()
    );
    let root = work.join("plugins/obs-psn-party");
    let bin_dir = root.join("bin/64bit");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let binary = bin_dir.join("obs-psn-party.so");
    std::fs::copy(&built, &binary).unwrap();
    let data = root.join("data");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data"), &data);
    StagedPlugin { root, binary, data }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Set by tools/test.sh: where the whole suite keeps what its runs wrote (OBS logs, settings,
/// protocol traces) for the secret scan (tools/secret-scan.py).
pub const ARTEFACTS_VAR: &str = "PSN_PARTY_SUITE_ARTEFACTS";

/// A fresh, empty folder for one run (in the suite's artefact folder when there is one).
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::var_os(ARTEFACTS_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("obs-psn-party-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The end of a run: without an artefact folder the run's folder goes; with one, the OBS log
/// of the run is written beside the settings and traces it left, and only the staged plugin
/// binary goes.
pub fn finish_scratch(dir: &Path) {
    if std::env::var_os(ARTEFACTS_VAR).is_none() {
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    let _ = obs_psn_party::obs::host::write_captured_log(&dir.join("obs.log"));
    // Staged plugins (a second OBS start stages its own one level down).
    let _ = std::fs::remove_dir_all(dir.join("plugins"));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let _ = std::fs::remove_dir_all(entry.path().join("plugins"));
    }
}

/// Threads of this process right now.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of this process in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits until `cond` holds or `limit` passes; returns how long it took.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond().then(|| start.elapsed())
}

/// Runs named checks in order and prints a cargo-like summary.
#[derive(Default)]
pub struct Runner {
    passed: usize,
    failed: Vec<String>,
    filter: Option<String>,
}

impl Runner {
    pub fn new() -> Self {
        let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        Runner {
            filter,
            ..Default::default()
        }
    }

    /// Runs a check unless a name filter was given on the command line and
    /// does not match.
    pub fn run(&mut self, name: &str, check: impl FnOnce() -> Result<(), String>) {
        if self.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            return;
        }
        self.run_always(name, check);
    }

    /// Runs a check that the others depend on, whatever the filter.
    pub fn run_always(&mut self, name: &str, check: impl FnOnce() -> Result<(), String>) {
        let start = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check))
            .unwrap_or_else(|_| Err("panicked".into()));
        match result {
            Ok(()) => {
                self.passed += 1;
                println!(
                    "test {name} ... ok ({:.1} s)",
                    start.elapsed().as_secs_f64()
                );
            }
            Err(why) => {
                println!("test {name} ... FAILED: {why}");
                self.failed.push(name.to_owned());
            }
        }
    }

    /// Prints the summary and exits non-zero on any failure.
    pub fn finish(self) -> ! {
        println!();
        println!("{} passed, {} failed", self.passed, self.failed.len());
        for name in &self.failed {
            println!("    failed: {name}");
        }
        std::process::exit(if self.failed.is_empty() { 0 } else { 1 });
    }
}

/// Fails with `message` unless `cond`.
pub fn ensure(cond: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(message())
    }
}
