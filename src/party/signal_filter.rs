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

    fn judge_it(from: &PushFrom, m: &Message) -> Verdict {
        judge(me(), &roster(), from, &push_from(ME, "MOBILE_APP"), m)
    }

    #[test]
    fn a_members_offer_to_us_is_ours_phone_members_too() {
        let m = msg((ANN, PLATFORM_PS5), (ME, PLATFORM_MOBILE_APP));
        assert_eq!(
            judge_it(&push_from(ANN, "PS5"), &m),
            Verdict::Accept(member(ANN, "PS5"))
        );
        let m = msg((BEN, PLATFORM_MOBILE_APP), (ME, PLATFORM_MOBILE_APP));
        assert_eq!(
            judge_it(&push_from(BEN, "MOBILE_APP"), &m),
            Verdict::Accept(member(BEN, "MOBILE_APP"))
        );
    }

    #[test]
    fn messages_for_the_console_or_others_are_not_ours() {
        let to_console = msg((ANN, PLATFORM_PS5), (ME, PLATFORM_PS5));
        assert!(matches!(
            judge_it(&push_from(ANN, "PS5"), &to_console),
            Verdict::NotForUs(_)
        ));
        let to_ben = msg((ANN, PLATFORM_PS5), (BEN, PLATFORM_MOBILE_APP));
        assert!(matches!(
            judge_it(&push_from(ANN, "PS5"), &to_ben),
            Verdict::NotForUs(_)
        ));
        // The frame was delivered to another device of ours.
        let ours = msg((ANN, PLATFORM_PS5), (ME, PLATFORM_MOBILE_APP));
        let other_device = PushFrom {
            device_unique_id: "dev-2".into(),
            ..push_from(ME, "MOBILE_APP")
        };
        assert!(matches!(
            judge(
                me(),
                &roster(),
                &push_from(ANN, "PS5"),
                &other_device,
                &ours
            ),
            Verdict::NotForUs(_)
        ));
        let console_device = push_from(ME, "PS5");
        assert!(matches!(
            judge(
                me(),
                &roster(),
                &push_from(ANN, "PS5"),
                &console_device,
                &ours
            ),
            Verdict::NotForUs(_)
        ));
    }

    #[test]
    fn only_the_sender_psn_names_and_only_a_member() {
        // Ben (a member) claims to be Ann in the header and JSON.
        let posing = msg((ANN, PLATFORM_PS5), (ME, PLATFORM_MOBILE_APP));
        assert!(matches!(
            judge_it(&push_from(BEN, "MOBILE_APP"), &posing),
            Verdict::Untrusted(_)
        ));
        // Ben names Ann's audio as the media.
        let mut media = msg((BEN, PLATFORM_MOBILE_APP), (ME, PLATFORM_MOBILE_APP));
        media.signal.medias[0].user.account_id = ANN.into();
        assert!(matches!(
            judge_it(&push_from(BEN, "MOBILE_APP"), &media),
            Verdict::Untrusted(_)
        ));
        // The JSON is honest but the header is not.
        let mut header = msg((BEN, PLATFORM_MOBILE_APP), (ME, PLATFORM_MOBILE_APP));
        header.sender_account_id = ANN.parse().unwrap();
        assert!(matches!(
            judge_it(&push_from(BEN, "MOBILE_APP"), &header),
            Verdict::Untrusted(_)
        ));
        // Not in the party at all, or on another platform than the member.
        let outsider = "7000000000000099999";
        let m = msg((outsider, PLATFORM_PS5), (ME, PLATFORM_MOBILE_APP));
        assert!(matches!(
            judge_it(&push_from(outsider, "PS5"), &m),
            Verdict::Untrusted(_)
        ));
        let m = msg((ANN, PLATFORM_MOBILE_APP), (ME, PLATFORM_MOBILE_APP));
        assert!(matches!(
            judge_it(&push_from(ANN, "MOBILE_APP"), &m),
            Verdict::Untrusted(_)
        ));
        // No sender named, or our own app member (an echo).
        assert!(matches!(
            judge_it(&PushFrom::default(), &m),
            Verdict::Untrusted(_)
        ));
        let m = msg((ME, PLATFORM_MOBILE_APP), (ME, PLATFORM_MOBILE_APP));
        assert!(matches!(
            judge_it(&push_from(ME, "MOBILE_APP"), &m),
            Verdict::Untrusted(_)
        ));
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
