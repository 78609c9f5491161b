//! The overlay's port and token, kept in the plugin's config folder (`overlay.json`, 0600) so
//! the URL pasted into a Browser Source keeps working after OBS restarts.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::psn::token_store::write_atomic;

pub const FILE_NAME: &str = "overlay.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayConfig {
    /// The port last served on (0: none yet).
    pub port: u16,
    /// The secret in the URL: 32 hex digits.
    pub token: String,
}

impl OverlayConfig {
    /// The stored config, or a fresh token and no port.
    pub fn load(dir: Option<&Path>) -> OverlayConfig {
        let stored = dir
            .and_then(|d| std::fs::read_to_string(d.join(FILE_NAME)).ok())
            .and_then(|t| serde_json::from_str::<OverlayConfig>(&t).ok())
            .filter(|c| valid_token(&c.token));
        stored.unwrap_or_else(|| OverlayConfig {
            port: 0,
            token: new_token(),
        })
    }

    pub fn save(&self, dir: Option<&Path>) {
        let Some(dir) = dir else { return };
        let text = serde_json::to_string(self).unwrap_or_default();
        if let Err(e) = write_atomic(&dir.join(FILE_NAME), text.as_bytes(), 0o600) {
            log::warn!("overlay settings not saved: {e}");
        }
    }

    /// The page's address (without options).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/?token={}", self.port, self.token)
    }
}

fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn valid_token(t: &str) -> bool {
    t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_survives_a_restart_and_the_file_is_private() {
        let dir = std::env::temp_dir().join(format!("overlay-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut first = OverlayConfig::load(Some(&dir));
        assert!(valid_token(&first.token));
        first.port = 4455;
        first.save(Some(&dir));
        assert_eq!(OverlayConfig::load(Some(&dir)), first);
        // Unix modes; on Windows the profile's ACL keeps the file private.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_ne!(OverlayConfig::load(None).token, first.token);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
