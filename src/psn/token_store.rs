//! The token store: the refresh token (and the access token) in one file in the plugin's config
//! directory, mode 0600, replaced atomically (write a temporary file beside it, fsync, rename).
//! The NPSSO is never stored.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::error::{PsnError, Result};
use super::secret::Secret;

/// What survives a restart of OBS. Expiry times are Unix seconds (wall clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTokens {
    pub account_id: String,
    pub refresh_token: Secret,
    pub refresh_expires_at_unix: u64,
    pub access_token: Option<Secret>,
    pub access_expires_at_unix: u64,
}

#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

pub const TOKEN_FILE_NAME: &str = "psn-tokens.json";

impl TokenStore {
    /// A store at a plain path (used outside OBS and in tests).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        TokenStore { path: path.into() }
    }

    /// The store in the plugin's config directory.
    pub fn in_dir(dir: &Path) -> Self {
        Self::at(dir.join(TOKEN_FILE_NAME))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Ok(None)` when nothing is stored; an unreadable or malformed file is an error.
    pub fn load(&self) -> Result<Option<StoredTokens>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.storage_error(e.to_string())),
        };
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|_| self.storage_error("the file is not valid JSON".into()))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        match (s("account_id"), s("refresh_token")) {
            (Some(account_id), Some(refresh)) => Ok(Some(StoredTokens {
                account_id,
                refresh_token: Secret::new(refresh),
                refresh_expires_at_unix: n("refresh_expires_at"),
                access_token: s("access_token").map(Secret::new),
                access_expires_at_unix: n("access_expires_at"),
            })),
            _ => Err(self.storage_error("the file lacks account_id or refresh_token".into())),
        }
    }

    pub fn save(&self, t: &StoredTokens) -> Result<()> {
        let v = json!({
            "version": 1,
            "account_id": t.account_id,
            "refresh_token": t.refresh_token.expose(),
            "refresh_expires_at": t.refresh_expires_at_unix,
            "access_token": t.access_token.as_ref().map(Secret::expose),
            "access_expires_at": t.access_expires_at_unix,
        });
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| self.storage_error(e.to_string()))?;
            }
        }
        write_atomic(&self.path, v.to_string().as_bytes(), 0o600)
    }

    pub fn delete(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.storage_error(e.to_string())),
        }
    }

    fn storage_error(&self, detail: String) -> PsnError {
        PsnError::Storage {
            what: format!("the PSN token store {}", self.path.display()),
            detail,
        }
    }
}

/// Writes `bytes` to a new file beside `path` created with `mode`, syncs it, and renames it over
/// `path`, so a reader sees the old or the new content and never a torn file.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let err = |e: std::io::Error| PsnError::Storage {
        what: path.display().to_string(),
        detail: e.to_string(),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{file_name}.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        let mut f = crate::platform::set_create_mode(&mut options, mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn save_load_delete_0600() {
        let dir = std::env::temp_dir().join(format!("psn-store-{}", uuid::Uuid::new_v4()));
        let store = TokenStore::in_dir(&dir);
        assert_eq!(store.load().unwrap(), None);
        let t = StoredTokens {
            account_id: "1234".into(),
            refresh_token: Secret::new("rt-secret"),
            refresh_expires_at_unix: 99,
            access_token: Some(Secret::new("at-secret")),
            access_expires_at_unix: 42,
        };
        store.save(&t).unwrap();
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(store.load().unwrap(), Some(t.clone()));
        assert!(!format!("{t:?}").contains("secret"));
        store
            .save(&StoredTokens {
                access_token: None,
                ..t
            })
            .unwrap();
        assert_eq!(store.load().unwrap().unwrap().access_token, None);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary files left"
        );
        store.delete().unwrap();
        assert_eq!(store.load().unwrap(), None);
        std::fs::write(store.path(), "garbage").unwrap();
        assert!(matches!(store.load(), Err(PsnError::Storage { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
