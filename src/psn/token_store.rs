//! The token store: the refresh token (and the access token) in one file in the plugin's config
//! directory, mode 0600, replaced atomically (write a temporary file beside it, fsync, rename).
//! The NPSSO is never stored.
//!
//! Several OBS instances or profiles can share the file (same config directory). Every
//! read-modify-write holds an advisory lock on a lock file beside it (`File::lock`: flock on
//! Unix, LockFileEx on Windows), re-reads the file, and a refresh writes or deletes only while the
//! file still holds the refresh token that refresh used: an instance holding an older sign-in
//! never overwrites or signs out a newer one.

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
    /// The device id (`duid`) these tokens were signed in with: the client keeps using it for
    /// as long as it uses them (docs/protocol.md "Identity values").
    pub device_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

pub const TOKEN_FILE_NAME: &str = "psn-tokens.json";

/// What became of a write or delete that depends on the file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    Done,
    /// The file holds another sign-in (or none): left as it is.
    LeftAlone,
}

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

    /// Where a store that could not be parsed is moved aside.
    pub fn corrupt_path(&self) -> PathBuf {
        self.with_suffix(".corrupt")
    }

    fn with_suffix(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.path.with_file_name(name)
    }

    /// `Ok(None)` when nothing is stored. A file that is not a token store (malformed, cut
    /// short) is moved aside to [`TokenStore::corrupt_path`] and counts as signed out, so the
    /// user gets "Sign in" rather than an error that never goes away; an unreadable one (no
    /// permission) is an error.
    pub fn load(&self) -> Result<Option<StoredTokens>> {
        self.locked(|| self.load_unlocked())
    }

    fn load_unlocked(&self) -> Result<Option<StoredTokens>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => String::new(),
            Err(e) => return Err(self.storage_error(e.to_string())),
        };
        match parse(&text) {
            Some(t) => Ok(Some(t)),
            None => {
                let aside = self.corrupt_path();
                std::fs::rename(&self.path, &aside)
                    .map_err(|e| self.storage_error(e.to_string()))?;
                log::warn!(
                    "the PSN token store {} was not readable and is moved to {}; sign in again",
                    self.path.display(),
                    aside.display()
                );
                Ok(None)
            }
        }
    }

    /// After a sign-in: replaces whatever is stored (the user asked for this sign-in).
    pub fn save(&self, t: &StoredTokens) -> Result<()> {
        self.locked(|| self.save_unlocked(t))
    }

    /// After a refresh made with `used`: writes only while the file still holds `used`. Another
    /// instance may have signed in anew (a newer refresh token) or signed out (no file) since.
    pub fn save_refreshed(&self, used: &Secret, t: &StoredTokens) -> Result<Guarded> {
        self.locked(|| {
            if !self.holds(used)? {
                return Ok(Guarded::LeftAlone);
            }
            self.save_unlocked(t).map(|()| Guarded::Done)
        })
    }

    /// After PSN refused `dead` (`invalid_grant`) or it expired: deletes the file only while it
    /// still holds `dead`, so a newer sign-in made elsewhere survives.
    pub fn delete_if_holds(&self, dead: &Secret) -> Result<Guarded> {
        self.locked(|| {
            if !self.holds(dead)? {
                return Ok(Guarded::LeftAlone);
            }
            self.delete_unlocked().map(|()| Guarded::Done)
        })
    }

    fn holds(&self, refresh: &Secret) -> Result<bool> {
        Ok(self
            .load_unlocked()?
            .is_some_and(|stored| stored.refresh_token == *refresh))
    }

    /// Runs `body` holding the advisory lock (a lock file beside the store, never replaced, so
    /// every instance locks the same inode). Held for file operations only, never across a
    /// request to PSN.
    fn locked<R>(&self, body: impl FnOnce() -> Result<R>) -> Result<R> {
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| self.storage_error(e.to_string()))?;
            }
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        let lock = crate::platform::set_create_mode(&mut options, 0o600)
            .open(self.with_suffix(".lock"))
            .map_err(|e| self.storage_error(e.to_string()))?;
        lock.lock().map_err(|e| self.storage_error(e.to_string()))?;
        // Unlocked when `lock` is closed, also on an early return or a panic.
        body()
    }

    fn save_unlocked(&self, t: &StoredTokens) -> Result<()> {
        let v = json!({
            "version": 1,
            "account_id": t.account_id,
            "refresh_token": t.refresh_token.expose(),
            "refresh_expires_at": t.refresh_expires_at_unix,
            "access_token": t.access_token.as_ref().map(Secret::expose),
            "access_expires_at": t.access_expires_at_unix,
            "duid": t.device_id,
        });
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| self.storage_error(e.to_string()))?;
            }
        }
        write_atomic(&self.path, v.to_string().as_bytes(), 0o600)
    }

    /// Sign-out: deletes whatever is stored (the user asked for it).
    pub fn delete(&self) -> Result<()> {
        self.locked(|| self.delete_unlocked())
    }

    fn delete_unlocked(&self) -> Result<()> {
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

/// The stored tokens, or `None` when `text` is not a token store.
fn parse(text: &str) -> Option<StoredTokens> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    Some(StoredTokens {
        account_id: s("account_id")?,
        refresh_token: Secret::new(s("refresh_token")?),
        refresh_expires_at_unix: n("refresh_expires_at"),
        access_token: s("access_token").map(Secret::new),
        access_expires_at_unix: n("access_expires_at"),
        device_id: s("duid"),
    })
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
            device_id: Some("0f1e2d3c-4b5a-4968-8776-655443322110".into()),
        };
        store.save(&t).unwrap();
        // Windows has no mode bits: the profile's ACL keeps the folder the user's own.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(store.load().unwrap(), Some(t.clone()));
        assert!(!format!("{t:?}").contains("secret"));
        store
            .save(&StoredTokens {
                access_token: None,
                ..t
            })
            .unwrap();
        assert_eq!(store.load().unwrap().unwrap().access_token, None);
        let tmp = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(tmp, 0, "no temporary files left");
        store.delete().unwrap();
        assert_eq!(store.load().unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tokens(refresh: &str) -> StoredTokens {
        StoredTokens {
            account_id: "1234".into(),
            refresh_token: Secret::new(refresh),
            refresh_expires_at_unix: 99,
            access_token: Some(Secret::new(format!("at-of-{refresh}"))),
            access_expires_at_unix: 42,
            device_id: None,
        }
    }

    #[test]
    fn a_corrupt_store_is_moved_aside_and_reads_as_signed_out() {
        let dir = std::env::temp_dir().join(format!("psn-store-{}", uuid::Uuid::new_v4()));
        let store = TokenStore::in_dir(&dir);
        for garbage in [
            "garbage",
            "{\"account_id\": \"1\"}",
            "{\"refresh_tok",
            "\u{0}\u{ff}",
        ] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(store.path(), garbage).unwrap();
            assert_eq!(store.load().unwrap(), None, "{garbage:?}");
            assert!(!store.path().exists());
            assert_eq!(
                std::fs::read_to_string(store.corrupt_path()).unwrap(),
                garbage
            );
        }
        // A new sign-in writes a good store again.
        store.save(&tokens("rt-1")).unwrap();
        assert_eq!(store.load().unwrap(), Some(tokens("rt-1")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_refresh_writes_and_deletes_only_its_own_sign_in() {
        let dir = std::env::temp_dir().join(format!("psn-store-{}", uuid::Uuid::new_v4()));
        let store = TokenStore::in_dir(&dir);
        store.save(&tokens("rt-new")).unwrap();
        // An instance still on rt-old: neither its refresh nor its refusal touches rt-new.
        let old = Secret::new("rt-old");
        assert_eq!(
            store.save_refreshed(&old, &tokens("rt-old")).unwrap(),
            Guarded::LeftAlone
        );
        assert_eq!(store.delete_if_holds(&old).unwrap(), Guarded::LeftAlone);
        assert_eq!(store.load().unwrap(), Some(tokens("rt-new")));
        // The instance on rt-new updates and deletes it.
        let new = Secret::new("rt-new");
        let mut refreshed = tokens("rt-new");
        refreshed.access_token = Some(Secret::new("at-2"));
        assert_eq!(
            store.save_refreshed(&new, &refreshed).unwrap(),
            Guarded::Done
        );
        assert_eq!(store.load().unwrap(), Some(refreshed));
        assert_eq!(store.delete_if_holds(&new).unwrap(), Guarded::Done);
        assert_eq!(store.load().unwrap(), None);
        // Signed out elsewhere: a refresh does not bring the file back.
        assert_eq!(
            store.save_refreshed(&new, &tokens("rt-new")).unwrap(),
            Guarded::LeftAlone
        );
        assert_eq!(store.load().unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_lock_is_exclusive_while_held() {
        let dir = std::env::temp_dir().join(format!("psn-store-{}", uuid::Uuid::new_v4()));
        let store = TokenStore::in_dir(&dir);
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let store = store.clone();
            std::thread::spawn(move || {
                store
                    .locked(|| {
                        held_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                        Ok(())
                    })
                    .unwrap();
            })
        };
        held_rx.recv().unwrap();
        // Another open of the lock file (as another process makes) cannot take it now.
        let other = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("psn-tokens.json.lock"))
            .unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        other.try_lock().expect("free once released");
        drop(other);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
