//! A run's folder: fresh at the start, gone at the end unless the suite keeps artefacts.

use std::path::{Path, PathBuf};

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
    #[cfg(feature = "test-host")]
    let _ = obs_psn_party::obs::host::write_captured_log(&dir.join("obs.log"));
    // Staged plugins (a second OBS start stages its own one level down).
    let _ = std::fs::remove_dir_all(dir.join("plugins"));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let _ = std::fs::remove_dir_all(entry.path().join("plugins"));
    }
}
