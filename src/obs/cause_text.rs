//! The words a user sees in the properties for a typed cause ([`Cause`], [`Failure`]), taken
//! from the locale file so they can be translated: the one place causes become text. The OBS
//! log keeps the error's own English `Display`, detail included. Outside OBS (unit tests, no
//! locale loaded) the English `Display` is the fallback, so both always say the same thing.

use crate::party::cause::{Cause, Failure};
use crate::party::status::Words;
use crate::psn::error::{PsnError, NPSSO_HELP};

/// The locale's words, for the status views.
pub struct LocaleWords;

impl Words for LocaleWords {
    fn text(&self, key: &str) -> String {
        crate::obs::module::text(key)
    }
    fn cause(&self, cause: &Cause) -> String {
        cause_text(cause)
    }
    fn failure(&self, failure: &Failure) -> String {
        failure_text(failure)
    }
}

/// What the properties show for a problem.
pub fn cause_text(cause: &Cause) -> String {
    match cause {
        Cause::Psn(error) => user_text(error),
        Cause::BridgeFailed { retry_secs } => bridge_failed(*retry_secs),
        Cause::LinkNotUnderstood => link_not_understood(),
        Cause::NpssoMissing => crate::obs::module::text("Account.NpssoMissing"),
    }
}

/// What a member's line shows for why their voice failed.
pub fn failure_text(failure: &Failure) -> String {
    match failure {
        Failure::Connection => connection_failed(),
        Failure::NotPassed(error) => answer_failure(error),
        Failure::Peer(error) => error.to_string(),
    }
}

/// The locale's text for `key` with `%1`, `%2`, … replaced by `args`, or `english` when the
/// locale has no such key.
fn localized(key: &str, args: &[&str], english: impl FnOnce() -> String) -> String {
    let found = crate::obs::module::text(key);
    if found == key {
        return english();
    }
    args.iter()
        .enumerate()
        .fold(found, |s, (i, a)| s.replace(&format!("%{}", i + 1), a))
}

/// What the properties show for `error`.
fn user_text(error: &PsnError) -> String {
    let english = || error.to_string();
    match error {
        PsnError::NpssoInvalid => localized("Error.NpssoInvalid", &[NPSSO_HELP], english),
        PsnError::CredentialsMissing => localized("Error.CredentialsMissing", &[], english),
        PsnError::CredentialsRejected => localized("Error.CredentialsRejected", &[], english),
        PsnError::SignInExpired => localized("Error.SignInExpired", &[NPSSO_HELP], english),
        PsnError::NotSignedIn => localized("Error.NotSignedIn", &[NPSSO_HELP], english),
        PsnError::RateLimited { retry_after } => {
            let secs = retry_after.as_secs().max(1).to_string();
            localized("Error.RateLimited", &[&secs], english)
        }
        PsnError::Unreachable { detail } => localized("Error.Unreachable", &[detail], english),
        PsnError::Timeout { detail } => localized("Error.Timeout", &[detail], english),
        PsnError::Unauthorized => localized("Error.Unauthorized", &[], english),
        PsnError::Api {
            endpoint,
            status,
            code,
            message,
            reference_id,
        } => localized(
            "Error.Api",
            &[
                &status.to_string(),
                endpoint,
                message,
                &code.to_string(),
                reference_id,
            ],
            english,
        ),
        PsnError::Protocol { endpoint, detail } => {
            localized("Error.Protocol", &[endpoint, detail], english)
        }
        PsnError::Config(detail) => localized("Error.Config", &[detail], english),
        PsnError::Storage { what, detail } => localized("Error.Storage", &[what, detail], english),
        PsnError::NotInParty => localized("Error.NotInParty", &[], english),
    }
}

/// Why a member's voice connection failed, in a few words for their line in the Members group.
fn answer_failure(error: &PsnError) -> String {
    match error {
        PsnError::Api { status, .. } => {
            localized("Failure.AnswerRefused", &[&status.to_string()], || {
                format!("PSN refused to pass on our answer to their call, HTTP {status}")
            })
        }
        PsnError::RateLimited { .. } => localized("Failure.RateLimited", &[], || {
            "PSN is rate limiting us".into()
        }),
        PsnError::Unreachable { .. } | PsnError::Timeout { .. } => {
            localized("Failure.Unreachable", &[], || {
                "PSN cannot be reached".into()
            })
        }
        other => user_text(other),
    }
}

/// A member's peer connection failed (ICE or DTLS gave up).
fn connection_failed() -> String {
    localized("Failure.Connection", &[], || "the connection failed".into())
}

/// PSN's voice relay (rtcBridge) could not be opened; the detail goes to the log only.
fn bridge_failed(retry_secs: u64) -> String {
    let secs = retry_secs.to_string();
    localized("Error.BridgeFailed", &[&secs], || {
        format!("PSN's voice relay could not be opened: trying again in {secs} s")
    })
}

/// The party link field holds something that is not a party link.
fn link_not_understood() -> String {
    localized("Error.LinkNotUnderstood", &[], || {
        "That is not a party link: copy the link from the party on your PlayStation (party.playstation.com/…)".into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Without a locale (no OBS), the user sees the error's English sentence.
    #[test]
    fn falls_back_to_the_english_sentence() {
        let e = PsnError::RateLimited {
            retry_after: Duration::from_secs(7),
        };
        assert_eq!(user_text(&e), e.to_string());
        assert_eq!(answer_failure(&e), "PSN is rate limiting us");
        assert_eq!(connection_failed(), "the connection failed");
    }

    /// Every key used here is in the shipped locale, with the placeholders it is given,
    /// and says the same as the English `Display` once they are filled in.
    #[test]
    fn locale_has_every_key_and_matches_the_english() {
        let ini = include_str!("../../data/locale/en-US.ini");
        let lookup = |key: &str| {
            ini.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix("=\""))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_else(|| panic!("{key} missing from en-US.ini"))
        };
        let fill = |key: &str, args: &[&str]| {
            args.iter().enumerate().fold(lookup(key), |s, (i, a)| {
                s.replace(&format!("%{}", i + 1), a)
            })
        };
        let cases: Vec<(PsnError, &str, Vec<String>)> = vec![
            (
                PsnError::NpssoInvalid,
                "Error.NpssoInvalid",
                vec![NPSSO_HELP.into()],
            ),
            (
                PsnError::CredentialsMissing,
                "Error.CredentialsMissing",
                vec![],
            ),
            (
                PsnError::CredentialsRejected,
                "Error.CredentialsRejected",
                vec![],
            ),
            (
                PsnError::SignInExpired,
                "Error.SignInExpired",
                vec![NPSSO_HELP.into()],
            ),
            (
                PsnError::NotSignedIn,
                "Error.NotSignedIn",
                vec![NPSSO_HELP.into()],
            ),
            (
                PsnError::RateLimited {
                    retry_after: Duration::from_secs(30),
                },
                "Error.RateLimited",
                vec!["30".into()],
            ),
            (
                PsnError::Unreachable { detail: "d".into() },
                "Error.Unreachable",
                vec!["d".into()],
            ),
            (
                PsnError::Timeout { detail: "d".into() },
                "Error.Timeout",
                vec!["d".into()],
            ),
            (PsnError::Unauthorized, "Error.Unauthorized", vec![]),
            (
                PsnError::Api {
                    endpoint: "e".into(),
                    status: 400,
                    code: 5,
                    message: "m".into(),
                    reference_id: "r".into(),
                },
                "Error.Api",
                vec!["400".into(), "e".into(), "m".into(), "5".into(), "r".into()],
            ),
            (
                PsnError::Protocol {
                    endpoint: "e".into(),
                    detail: "d".into(),
                },
                "Error.Protocol",
                vec!["e".into(), "d".into()],
            ),
            (
                PsnError::Config("d".into()),
                "Error.Config",
                vec!["d".into()],
            ),
            (
                PsnError::Storage {
                    what: "w".into(),
                    detail: "d".into(),
                },
                "Error.Storage",
                vec!["w".into(), "d".into()],
            ),
            (PsnError::NotInParty, "Error.NotInParty", vec![]),
        ];
        for (error, key, args) in cases {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_eq!(fill(key, &args), error.to_string(), "{key}");
        }
        for key in [
            "Failure.AnswerRefused",
            "Failure.RateLimited",
            "Failure.Unreachable",
            "Failure.Connection",
            "Error.LinkNotUnderstood",
        ] {
            lookup(key);
        }
        assert_eq!(fill("Error.BridgeFailed", &["10"]), bridge_failed(10));
    }
}
