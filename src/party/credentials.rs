//! `psn-client.json`: the client id and secret typed into the properties, kept in a 0600 file
//! beside the token store (never in the scene collection).

use std::path::Path;

use crate::psn::error::PsnError;
use crate::psn::secret::Secret;
use crate::psn::token_store::write_atomic;

/// Where the client id and secret typed into the properties are kept (never
/// in the scene collection): a 0600 file beside the token store.
pub const CLIENT_FILE_NAME: &str = "psn-client.json";

/// Writes the client id and secret into `dir` (created if missing).
pub fn save_client_file(dir: &Path, id: &str, secret: &Secret) -> Result<(), PsnError> {
    std::fs::create_dir_all(dir).map_err(|e| PsnError::Storage {
        what: dir.display().to_string(),
        detail: e.to_string(),
    })?;
    let text = serde_json::json!({"client_id": id, "client_secret": secret.expose()});
    write_atomic(
        &dir.join(CLIENT_FILE_NAME),
        text.to_string().as_bytes(),
        0o600,
    )
}

/// `psn-client.json`: the client id and secret typed into the properties.
pub fn load_client_file(dir: &Path) -> Option<(String, Secret)> {
    let text = std::fs::read_to_string(dir.join(CLIENT_FILE_NAME)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let id = v.get("client_id")?.as_str()?.trim().to_owned();
    let secret = v.get("client_secret")?.as_str()?.trim().to_owned();
    (!id.is_empty() && !secret.is_empty()).then(|| (id, Secret::new(secret)))
}
