//! What went wrong, as data: `party/` and `psn/` keep these typed causes; only `src/obs/`
//! turns them into the user's words (the locale's sentences, src/obs/cause_text.rs). The
//! OBS log keeps each error's own English `Display`.

use crate::psn::error::PsnError;
use crate::voice::peer::PeerError;

/// A problem the dialog shows for the account, the party or the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A PSN error, as the session, the sign-in or the party list met it.
    Psn(PsnError),
    /// PSN's voice relay (rtcBridge) could not be opened; tried again after `retry_secs`.
    BridgeFailed { retry_secs: u64 },
    /// The party link field holds something that is not a party link.
    LinkNotUnderstood,
    /// Sign in was pressed with no NPSSO typed.
    NpssoMissing,
}

impl From<PsnError> for Cause {
    fn from(error: PsnError) -> Self {
        Cause::Psn(error)
    }
}

impl Cause {
    /// Only "not signed in yet": a state the Account group shows, not a fault.
    pub fn is_not_signed_in(&self) -> bool {
        matches!(self, Cause::Psn(PsnError::NotSignedIn))
    }
}

/// Why one member's voice failed, for their line in the Members group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Their connection failed (ICE or DTLS gave up).
    Connection,
    /// PSN did not pass our offer or answer on to them.
    NotPassed(PsnError),
    /// Our side could not take their offer.
    Peer(PeerError),
}
