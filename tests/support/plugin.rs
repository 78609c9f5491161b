//! The built plugin, copied into a fresh plugin folder the way OBS installs it.

use std::path::{Path, PathBuf};

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
