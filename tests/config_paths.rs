//! The plugin's files in a config folder named the way libobs names it on every platform
//! (`<config base>/obs-studio/plugin_config/obs-psn-party/`, joined with '/'; on Windows the base
//! is `%APPDATA%` with its backslashes), under a user name with a space and a non-ASCII letter:
//! the token store, the device id and `.env` all work there. Runs on Linux and, built for
//! x86_64-pc-windows-gnu, under wine (tools/windows/wine-tests.sh).

use std::path::{Path, PathBuf};

use obs_psn_party::psn::config::{device_id, read_dotenv, PsnConfig};
use obs_psn_party::psn::secret::Secret;
use obs_psn_party::psn::token_store::{StoredTokens, TokenStore, TOKEN_FILE_NAME};

/// What `obs_module_get_config_path(module, "")` answers for a base folder.
fn libobs_config_path(base: &Path) -> PathBuf {
    PathBuf::from(format!(
        "{}/obs-studio/plugin_config/obs-psn-party/",
        base.display()
    ))
}

fn base() -> PathBuf {
    std::env::temp_dir()
        .join(format!("config-paths-{}", uuid::Uuid::new_v4()))
        .join("Jöhn Doe")
        .join("AppData")
        .join("Roaming")
}

#[test]
fn the_plugins_files_live_in_the_libobs_config_path() {
    let base = base();
    let dir = libobs_config_path(&base);
    std::fs::create_dir_all(&dir).unwrap();
    // The mixed separators name the same folder (on Windows both '/' and '\' separate).
    assert!(dir.ends_with("obs-studio/plugin_config/obs-psn-party"));
    assert_eq!(
        dir.components().count(),
        base.components().count() + 3,
        "{}",
        dir.display()
    );

    let store = TokenStore::in_dir(&dir);
    assert_eq!(
        store.path().parent().unwrap().file_name().unwrap(),
        "obs-psn-party"
    );
    assert_eq!(store.path().file_name().unwrap(), TOKEN_FILE_NAME);
    let tokens = StoredTokens {
        account_id: "4200".into(),
        refresh_token: Secret::new("refresh"),
        refresh_expires_at_unix: 7,
        access_token: None,
        access_expires_at_unix: 0,
        device_id: Some("duid-of-this-install".into()),
    };
    store.save(&tokens).unwrap();
    // Saved again over the first file: the rename replaces it (MoveFileEx on Windows).
    store.save(&tokens).unwrap();
    assert_eq!(store.load().unwrap(), Some(tokens));

    let id = device_id(Some(&dir)).unwrap();
    assert_eq!(device_id(Some(&dir)).unwrap(), id, "the device id is kept");

    std::fs::write(dir.join(".env"), "PSN_CLIENT_ID=from-dotenv\r\n").unwrap();
    assert_eq!(
        read_dotenv(&dir.join(".env"))
            .unwrap()
            .get("PSN_CLIENT_ID")
            .map(String::as_str),
        Some("from-dotenv"),
        "a .env written with Windows line ends"
    );
    let config = PsnConfig::from_sources(&Default::default(), &|_| None, Some(&dir)).unwrap();
    assert_eq!(config.config_dir.as_deref(), Some(dir.as_path()));

    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".env".to_owned(),
            "device_id".to_owned(),
            TOKEN_FILE_NAME.to_owned(),
            // The advisory lock beside the store (kept: removing it would race another OBS).
            format!("{TOKEN_FILE_NAME}.lock"),
        ],
        "no temporary files left"
    );
    std::fs::remove_dir_all(base.ancestors().nth(3).unwrap()).unwrap();
}

/// On Windows the base is `%APPDATA%` as OBS reads it: backslashes, then libobs's '/'.
#[cfg(windows)]
#[test]
fn appdata_joined_as_libobs_joins_it() {
    let appdata = std::env::var("APPDATA").expect("APPDATA is set on Windows (and under wine)");
    let dir = libobs_config_path(Path::new(&appdata));
    assert!(dir.to_string_lossy().contains('\\') && dir.to_string_lossy().contains('/'));
    let names: Vec<String> = dir
        .components()
        .rev()
        .take(3)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["obs-psn-party", "plugin_config", "obs-studio"]);
}
