//! The one error type of the PSN client. Its `Display` is a plain-English sentence a user can act on.

use std::time::Duration;

/// Where to get a new NPSSO; shown in the error a user sees when theirs is wrong or expired.
pub const NPSSO_HELP: &str = "get a new one at https://ca.account.sony.com/api/v1/ssocookie after signing in at playstation.com";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PsnError {
    #[error("Your NPSSO has expired or is wrong: {NPSSO_HELP}")]
    NpssoInvalid,

    #[error("PSN client credentials are missing: set PSN_CLIENT_ID and PSN_CLIENT_SECRET in the environment, in .env in the plugin's config folder, or in the source settings")]
    CredentialsMissing,

    #[error("PSN rejected the client credentials (PSN_CLIENT_ID / PSN_CLIENT_SECRET): check that both were copied correctly")]
    CredentialsRejected,

    #[error("Your PSN sign-in has expired: sign in again with a new NPSSO ({NPSSO_HELP})")]
    SignInExpired,

    #[error("You are not signed in to PSN: sign in with an NPSSO ({NPSSO_HELP})")]
    NotSignedIn,

    #[error("PSN is rate limiting this client: try again in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },

    #[error("PSN cannot be reached ({detail}): check the internet connection; the plugin retries by itself")]
    Unreachable { detail: String },

    #[error("PSN did not answer in time ({detail}): the plugin retries by itself")]
    Timeout { detail: String },

    #[error("PSN refused the request even after a fresh sign-in (HTTP 401): sign in again")]
    Unauthorized,

    #[error(
        "PSN answered {status} to {endpoint}: {message} (code {code}, reference {reference_id})"
    )]
    Api {
        endpoint: String,
        status: u16,
        code: i64,
        message: String,
        reference_id: String,
    },

    #[error("PSN answered in an unexpected way to {endpoint}: {detail}; please attach a protocol trace to a bug report")]
    Protocol { endpoint: String, detail: String },

    #[error("PSN configuration problem: {0}")]
    Config(String),

    #[error("Could not read or write {what}: {detail}")]
    Storage { what: String, detail: String },

    #[error("You are not in a party on a PlayStation console right now: start or join a party on the console first")]
    NotInParty,
}

impl PsnError {
    /// How long to wait before trying again, when PSN said so (or the client's rate limiter did).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PsnError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether the same call may succeed later without the user doing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            PsnError::RateLimited { .. }
            | PsnError::Unreachable { .. }
            | PsnError::Timeout { .. } => true,
            PsnError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }

    pub(crate) fn protocol(endpoint: &str, detail: impl Into<String>) -> Self {
        PsnError::Protocol {
            endpoint: endpoint.to_string(),
            detail: detail.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, PsnError>;
