//! The NPSSO and client secret typed into a source's settings, moved into
//! memory the moment OBS hands them to us.
//!
//! Why at once, in `create` and `update`: OBS's settings are not private.
//! For an audio-only source libobs calls `update` synchronously inside
//! `obs_source_update` and only then emits the source's "update" signal, on
//! which obs-websocket (5.4+) sends the settings to every client subscribed to
//! input events (`InputSettingsChanged`); `GetInputSettings` answers from
//! them; the properties dialog's OK stores them in OBS's undo stack
//! (`OBSBasicProperties`, undo/redo data = the settings as JSON); and
//! obs-websocket's `InputCreated` carries them right after `create`. Taking
//! them out inside the callbacks runs before every one of those readers.

use super::settings::Settings;
use super::source::keys;
use crate::psn::secret::Secret;
use zeroize::Zeroize;

/// What was typed, held here until "Sign in" uses it (or the source goes).
#[derive(Debug, Default)]
pub struct TypedSecrets {
    npsso: Option<Secret>,
    client_secret: Option<Secret>,
}

impl TypedSecrets {
    /// Moves `npsso` and `client_secret` out of `settings`. A key the user
    /// set replaces what we hold (an emptied field forgets it); a key that
    /// is absent (any other edit, after we erased it) keeps it.
    pub fn take_from(&mut self, settings: &Settings) {
        for (key, slot) in [
            (keys::NPSSO, &mut self.npsso),
            (keys::CLIENT_SECRET, &mut self.client_secret),
        ] {
            if let Some(mut value) = settings.take_string(key) {
                let trimmed = value.trim();
                *slot = (!trimmed.is_empty()).then(|| Secret::new(trimmed));
                value.zeroize();
            }
        }
    }

    /// Whether an NPSSO waits for "Sign in" (the dialog says so, since the
    /// field itself shows empty).
    pub fn has_npsso(&self) -> bool {
        self.npsso.is_some()
    }

    /// For "Sign in": hands over both and keeps nothing.
    pub fn take(&mut self) -> (Option<Secret>, Option<Secret>) {
        (self.npsso.take(), self.client_secret.take())
    }
}
