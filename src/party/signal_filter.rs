//! The one place that decides whether a voice message from the party is ours to act on
//! (issue 15; docs/protocol.md "Addressing" and "Sender checks").
//!
//! Our `MOBILE_APP` member shares its account id with the streamer's own console; PSN may hand
//! us messages meant for the console (or for other members). Answering one would compete with
//! the console's own answer and break its voice link, so only a message addressed to our member
//! (account, platform `MOBILE_APP`, our device when the frame names one) is acted on; the rest
//! get no reply and are counted.
//!
//! Who sent a message is what PSN reports (push `customProperties.from`), never what the
//! message says about itself: a member could otherwise pose as another, silencing them or being
//! captured under their consent. That sender must be a current party member, and the binary
//! header, the JSON `from` and the media's owner must all name it; otherwise the message is
//! dropped (logged once per member, ids masked).

use std::collections::HashSet;

use crate::psn::custom_message::{platform_code, Message, PLATFORM_MOBILE_APP};
use crate::psn::model::{RosterMember as Member, MOBILE_APP};
use crate::psn::push::PushFrom;

/// A customMessage as push delivered it: PSN's sender, the device it was delivered to, the
/// payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    pub from: PushFrom,
    pub to: PushFrom,
    pub payload: String,
}

/// Who we are in the party.
#[derive(Debug, Clone, Copy)]
pub struct Me<'a> {
    pub account_id: &'a str,
    pub device_id: &'a str,
}

/// What to do with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Ours, from this roster member: act on it.
    Accept(Member),
    /// Addressed to another device or member (the user's console, say): no reply.
    NotForUs(&'static str),
    /// The sender is not a party member, or the message names someone other than its sender.
    Untrusted(String),
}

/// Judges `msg`, delivered with PSN's sender `from` to the device `to` (push envelope).
pub fn judge<'r>(
    me: Me<'_>,
    roster: impl IntoIterator<Item = &'r Member>,
    from: &PushFrom,
    to: &PushFrom,
    msg: &Message,
) -> Verdict {
    let signal = &msg.signal;
    // Addressing first: a message for someone else is not ours to judge further.
    if signal.to.account_id != me.account_id {
        return Verdict::NotForUs("addressed to another member");
    }
    if signal.to.platform != PLATFORM_MOBILE_APP {
        return Verdict::NotForUs("addressed to another device of our account");
    }
    if !to.platform.is_empty() && to.platform != MOBILE_APP {
        return Verdict::NotForUs("delivered to another device of our account");
    }
    if !to.device_unique_id.is_empty() && to.device_unique_id != me.device_id {
        return Verdict::NotForUs("delivered to another device id");
    }
    // The sender PSN vouches for.
    if from.account_id.is_empty() {
        return Verdict::Untrusted("PSN named no sender".into());
    }
    if from.account_id == me.account_id && from.platform == MOBILE_APP {
        return Verdict::Untrusted("a message from our own app member".into());
    }
    let Some(member) = roster
        .into_iter()
        .find(|m| m.account_id == from.account_id && m.platform == from.platform)
    else {
        return Verdict::Untrusted(format!(
            "the sender ({}) is not a party member",
            from.platform
        ));
    };
    let Some(code) = platform_code(&from.platform) else {
        return Verdict::Untrusted(format!(
            "the sender's platform {:?} has no code",
            from.platform
        ));
    };
    let account: Option<u64> = from.account_id.parse().ok();
    if account != Some(msg.sender_account_id) || code != msg.sender_platform {
        return Verdict::Untrusted("the binary header names someone other than the sender".into());
    }
    if signal.from.account_id != from.account_id || signal.from.platform != code {
        return Verdict::Untrusted("the JSON `from` names someone other than the sender".into());
    }
    let foreign_media = signal
        .medias
        .iter()
        .any(|m| m.user.account_id != from.account_id || m.user.platform != code);
    if foreign_media {
        return Verdict::Untrusted("the media is named as someone else's".into());
    }
    Verdict::Accept(member.clone())
}

/// Counts what was not ours and logs each untrusted sender once.
#[derive(Debug, Default)]
pub struct FilterLog {
    not_for_us: u64,
    warned: HashSet<(String, String)>,
}

impl FilterLog {
    /// Logs the verdict (nothing for an accepted message).
    pub fn note(&mut self, verdict: &Verdict, from: &PushFrom) {
        match verdict {
            Verdict::Accept(_) => {}
            Verdict::NotForUs(why) => {
                self.not_for_us += 1;
                log::debug!(
                    "voice message from {} not for us ({why}); {} ignored so far",
                    super::signalling::mask(&from.account_id),
                    self.not_for_us
                );
            }
            Verdict::Untrusted(why) => {
                let key = (from.account_id.clone(), from.platform.clone());
                if self.warned.insert(key) {
                    log::warn!(
                        "dropping voice messages from {} on {}: {why}",
                        super::signalling::mask(&from.account_id),
                        from.platform
                    );
                }
            }
        }
    }

    /// Messages ignored as addressed to someone else.
    pub fn not_for_us(&self) -> u64 {
        self.not_for_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::psn::custom_message::{Signal, UserRef, PLATFORM_PS5};

    const ME: &str = "6543210987654321001";
    const ANN: &str = "7000000000000007919";
    const BEN: &str = "7000000000000015838";

    fn me() -> Me<'static> {
        Me {
            account_id: ME,
            device_id: "dev-1",
        }
    }

    fn member(account: &str, platform: &str) -> Member {
        Member {
            account_id: account.into(),
            online_id: format!("m{}", &account[account.len() - 2..]),
            platform: platform.into(),
        }
    }

    fn roster() -> Vec<Member> {
        vec![
            member(ME, "PS5"),
            member(ME, "MOBILE_APP"),
            member(ANN, "PS5"),
            member(BEN, "MOBILE_APP"),
        ]
    }

    fn push_from(account: &str, platform: &str) -> PushFrom {
        PushFrom {
            account_id: account.into(),
            platform: platform.into(),
            ..Default::default()
        }
    }

    fn msg(from: (&str, u64), to: (&str, u64)) -> Message {
        Message::from_signal(Signal::new(
            "offer",
            UserRef {
                account_id: from.0.into(),
                platform: from.1,
            },
            UserRef {
                account_id: to.0.into(),
                platform: to.1,
            },
            "v=0\r\n".into(),
            1,
        ))
    }

    /// `judge` with our own app member as the device the frame was delivered to.
    fn judge_it(from: &PushFrom, m: &Message) -> Verdict {
        judge_on(&push_from(ME, "MOBILE_APP"), from, m)
    }

    /// `judge` as delivered to the device `to`.
    fn judge_on(to: &PushFrom, from: &PushFrom, m: &Message) -> Verdict {
        judge(me(), &roster(), from, to, m)
    }

    /// Asserts every case is untrusted; `what` names the case that is not.
    fn all_untrusted(cases: Vec<(&str, PushFrom, Message)>) {
        for (what, from, m) in cases {
            let verdict = judge_it(&from, &m);
            assert!(
                matches!(verdict, Verdict::Untrusted(_)),
                "{what}: {verdict:?}"
            );
        }
    }

    #[test]
    fn a_members_offer_to_us_is_ours_phone_members_too() {
        for (account, platform, code) in [
            (ANN, "PS5", PLATFORM_PS5),
            (BEN, "MOBILE_APP", PLATFORM_MOBILE_APP),
        ] {
            let m = msg((account, code), (ME, PLATFORM_MOBILE_APP));
            assert_eq!(
                judge_it(&push_from(account, platform), &m),
                Verdict::Accept(member(account, platform))
            );
        }
    }

    #[test]
    fn messages_for_the_console_or_others_are_not_ours() {
        let ours = msg((ANN, PLATFORM_PS5), (ME, PLATFORM_MOBILE_APP));
        let other_device = PushFrom {
            device_unique_id: "dev-2".into(),
            ..push_from(ME, "MOBILE_APP")
        };
        let cases = [
            (
                "to our console",
                push_from(ME, "MOBILE_APP"),
                msg((ANN, PLATFORM_PS5), (ME, PLATFORM_PS5)),
            ),
            (
                "to Ben",
                push_from(ME, "MOBILE_APP"),
                msg((ANN, PLATFORM_PS5), (BEN, PLATFORM_MOBILE_APP)),
            ),
            // Ours, but the frame was delivered to another device of the account.
            ("delivered to our other app", other_device, ours.clone()),
            ("delivered to our console", push_from(ME, "PS5"), ours),
        ];
        for (what, to, m) in cases {
            let verdict = judge_on(&to, &push_from(ANN, "PS5"), &m);
            assert!(
                matches!(verdict, Verdict::NotForUs(_)),
                "{what}: {verdict:?}"
            );
        }
    }

    #[test]
    fn only_the_sender_psn_names_and_only_a_member() {
        let ben = || push_from(BEN, "MOBILE_APP");
        let from_ben = || msg((BEN, PLATFORM_MOBILE_APP), (ME, PLATFORM_MOBILE_APP));
        let mut names_anns_media = from_ben();
        names_anns_media.signal.medias[0].user.account_id = ANN.into();
        let mut header_says_ann = from_ben();
        header_says_ann.sender_account_id = ANN.parse().unwrap();
        let outsider = "7000000000000099999";
        let ann_as_app = msg((ANN, PLATFORM_MOBILE_APP), (ME, PLATFORM_MOBILE_APP));
        all_untrusted(vec![
            (
                "Ben poses as Ann in the header and JSON",
                ben(),
                msg((ANN, PLATFORM_PS5), (ME, PLATFORM_MOBILE_APP)),
            ),
            (
                "Ben names Ann's audio as the media",
                ben(),
                names_anns_media,
            ),
            (
                "the JSON is honest, the header is not",
                ben(),
                header_says_ann,
            ),
            (
                "not in the party",
                push_from(outsider, "PS5"),
                msg((outsider, PLATFORM_PS5), (ME, PLATFORM_MOBILE_APP)),
            ),
            (
                "another platform than the member's",
                push_from(ANN, "MOBILE_APP"),
                ann_as_app.clone(),
            ),
            ("no sender named", PushFrom::default(), ann_as_app),
            (
                "our own app member (an echo)",
                push_from(ME, "MOBILE_APP"),
                msg((ME, PLATFORM_MOBILE_APP), (ME, PLATFORM_MOBILE_APP)),
            ),
        ]);
        // Our own console talking to us ("Include my own console") is a member like others.
        let m = msg((ME, PLATFORM_PS5), (ME, PLATFORM_MOBILE_APP));
        assert_eq!(
            judge_it(&push_from(ME, "PS5"), &m),
            Verdict::Accept(member(ME, "PS5"))
        );
    }

    #[test]
    fn untrusted_senders_are_logged_once() {
        let mut log = FilterLog::default();
        let v = Verdict::Untrusted("x".into());
        log.note(&v, &push_from(BEN, "MOBILE_APP"));
        log.note(&v, &push_from(BEN, "MOBILE_APP"));
        assert_eq!(log.warned.len(), 1);
        log.note(&Verdict::NotForUs("y"), &push_from(ANN, "PS5"));
        assert_eq!(log.not_for_us(), 1);
    }
}
