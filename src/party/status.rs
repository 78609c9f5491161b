//! What the hub knows and shows: who is signed in, which party, each member's
//! state. The properties view reads it; the session writes it.

use std::collections::BTreeMap;

use crate::psn::session::Member;
use crate::voice::peer::PeerState;

/// One member's voice, as the properties list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberState {
    /// In the party; no voice connection yet.
    Waiting,
    Connecting,
    Connected,
    Disconnected,
    Failed(String),
}

impl From<PeerState> for MemberState {
    fn from(state: PeerState) -> Self {
        match state {
            PeerState::Connecting => MemberState::Connecting,
            PeerState::Connected => MemberState::Connected,
            PeerState::Disconnected | PeerState::Closed => MemberState::Disconnected,
            PeerState::Failed => MemberState::Failed("the connection failed".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub account_id: String,
    pub online_id: String,
    pub platform: String,
    pub state: MemberState,
}

/// The hub's state, for display.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubStatus {
    /// Our account id, once signed in.
    pub account_id: Option<String>,
    pub party_id: Option<String>,
    pub party_name: Option<String>,
    /// Members by account id and platform.
    pub members: BTreeMap<String, MemberStatus>,
    /// The last problem, in words a user can act on.
    pub error: Option<String>,
    /// Set when no party with the user's console was found.
    pub no_party: bool,
}

impl HubStatus {
    /// One line for the source properties, built from locale templates
    /// (`text(key)`; `%1`, `%2`, `%3` are filled in).
    pub fn summary(&self, text: impl Fn(&str) -> String) -> String {
        if let Some(error) = &self.error {
            return text("Status.Error").replace("%1", error);
        }
        if self.account_id.is_none() {
            return text("Status.NotConnected");
        }
        let Some(name) = &self.party_name else {
            return text(if self.no_party {
                "Status.NoParty"
            } else {
                "Status.SignedIn"
            });
        };
        let members: Vec<String> = self
            .members
            .values()
            .map(|m| {
                let state = match &m.state {
                    MemberState::Waiting => text("Member.Waiting"),
                    MemberState::Connecting => text("Member.Connecting"),
                    MemberState::Connected => text("Member.Connected"),
                    MemberState::Disconnected => text("Member.Disconnected"),
                    MemberState::Failed(why) => text("Member.Failed").replace("%1", why),
                };
                format!("{} ({state})", m.online_id)
            })
            .collect();
        text("Status.InParty")
            .replace("%1", name)
            .replace("%2", &self.members.len().to_string())
            .replace("%3", &members.join(", "))
    }

    pub fn joined<'a>(
        &mut self,
        party_id: &str,
        party_name: &str,
        _me: &str,
        roster: impl Iterator<Item = &'a Member>,
    ) {
        self.party_id = Some(party_id.to_owned());
        self.party_name = Some(party_name.to_owned());
        self.no_party = false;
        self.set_roster(roster);
    }

    /// Replaces the roster, keeping the voice state of members still there.
    pub fn set_roster<'a>(&mut self, roster: impl Iterator<Item = &'a Member>) {
        let old = std::mem::take(&mut self.members);
        for m in roster {
            let key = format!("{}/{}", m.account_id, m.platform);
            let state = old
                .get(&key)
                .map(|s| s.state.clone())
                .unwrap_or(MemberState::Waiting);
            self.members.insert(
                key,
                MemberStatus {
                    account_id: m.account_id.clone(),
                    online_id: m.online_id.clone(),
                    platform: m.platform.clone(),
                    state,
                },
            );
        }
    }

    /// The voice state of the (console) member with this account id.
    pub fn set_member_state(&mut self, account_id: &str, state: MemberState) {
        for m in self.members.values_mut() {
            if m.account_id == account_id && m.platform != "MOBILE_APP" {
                m.state = state.clone();
            }
        }
    }

    pub fn note_no_party(&mut self) {
        self.no_party = true;
        self.party_id = None;
        self.party_name = None;
        self.members.clear();
    }

    pub fn note_party_ended(&mut self) {
        self.left_party();
    }

    pub fn left_party(&mut self) {
        self.party_id = None;
        self.party_name = None;
        self.members.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(key: &str) -> String {
        format!("<{key}:%1:%2:%3>")
    }

    #[test]
    fn the_summary_says_what_is_going_on() {
        let mut status = HubStatus::default();
        assert_eq!(status.summary(keys), "<Status.NotConnected:%1:%2:%3>");
        status.error = Some("sign in again".into());
        assert!(status
            .summary(keys)
            .starts_with("<Status.Error:sign in again:"));
        status.error = None;
        status.account_id = Some("1".into());
        status.no_party = true;
        assert!(status.summary(keys).starts_with("<Status.NoParty"));
        let alice = Member {
            account_id: "2".into(),
            online_id: "alice".into(),
            platform: "PS5".into(),
        };
        status.joined("sid", "Friday", "1", [&alice].into_iter());
        status.set_member_state("2", MemberState::Connected);
        let line = status.summary(keys);
        assert!(
            line.starts_with("<Status.InParty:Friday:1:alice (<Member.Connected"),
            "{line}"
        );
    }
}
