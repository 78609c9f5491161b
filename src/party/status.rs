//! What the hub knows and shows: who is signed in, which party, each member's
//! state. The properties view reads it; the follower writes it.

use std::collections::BTreeMap;

use super::cause::{Cause, Failure};
use crate::psn::model::{RosterMember, MOBILE_APP};
use crate::voice::peer::PeerState;

/// The words the status views are built from: the locale's templates (`text(key)`; `%1`,
/// `%2`, `%3` are filled in) and the sentence for each cause. `src/obs/` provides them
/// (`cause_text::LocaleWords`); `party/` never turns a cause into text itself.
pub trait Words {
    fn text(&self, key: &str) -> String;
    fn cause(&self, cause: &Cause) -> String;
    fn failure(&self, failure: &Failure) -> String;
}

/// One member's voice, as the properties list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberState {
    /// In the party; no voice connection yet.
    Waiting,
    Connecting,
    Connected,
    Disconnected,
    Failed(Failure),
}

impl From<PeerState> for MemberState {
    fn from(state: PeerState) -> Self {
        match state {
            PeerState::Connecting => MemberState::Connecting,
            PeerState::Connected => MemberState::Connected,
            PeerState::Disconnected | PeerState::Closed => MemberState::Disconnected,
            PeerState::Failed => MemberState::Failed(Failure::Connection),
        }
    }
}

/// Which way a connected member's voice comes (docs/network.md "Choosing the path").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Peer-to-peer with the member.
    Direct,
    /// PSN's rtcBridge carries it (peer-to-peer failed, or `voice_path` = `bridge`).
    PsnRelay,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub account_id: String,
    pub online_id: String,
    pub platform: String,
    pub state: MemberState,
    /// Set once connected: how their voice comes.
    pub route: Option<Route>,
}

impl MemberStatus {
    /// `state` ("connected", "speaking") with the path: "connected, direct" or
    /// "connected through the PSN relay: why".
    fn with_route(&self, state: String, text: &impl Fn(&str) -> String) -> String {
        match self.route {
            None => state,
            Some(Route::Direct) => text("Member.ViaDirect").replace("%1", &state),
            Some(Route::PsnRelay) => {
                use crate::voice::net::{last_gathering, Gathering};
                let why = match last_gathering() {
                    Gathering::NoStun => "Member.RelayWhy.NoStun",
                    Gathering::StunFailed => "Member.RelayWhy.StunFailed",
                    Gathering::PublicAddress | Gathering::Unknown => "Member.RelayWhy.NoPath",
                };
                text("Member.ViaRelay")
                    .replace("%1", &state)
                    .replace("%2", &text(why))
            }
        }
    }
}

impl MemberStatus {
    /// The name to show: a member on the PlayStation App (a phone) is marked "(PS App)".
    pub fn display_name(&self, text: impl Fn(&str) -> String) -> String {
        if self.platform == MOBILE_APP {
            text("Member.PhoneApp").replace("%1", &self.online_id)
        } else {
            self.online_id.clone()
        }
    }
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
    /// The last problem (shown in words a user can act on).
    pub error: Option<Cause>,
    /// Set when no party with the user's console was found.
    pub no_party: bool,
    /// Set when the party we were in ended (until the next one is joined).
    pub party_ended: bool,
    /// The rtcBridge's stream that names no member ("party (bridge)"), while it plays: it gets
    /// a row (and, with "only allowed" on, a checkbox) like a member.
    pub bridge_stream: Option<MemberState>,
    /// Set when PSN refused the sign-in while the session ran (a refresh found it revoked or
    /// expired): the account shows as signed out, with the error, until the user signs in.
    pub sign_in_lost: bool,
}

impl HubStatus {
    /// The session's last problem, unless it is only "not signed in yet"
    /// (a state the Account group already shows, not a fault).
    pub fn problem(&self) -> Option<&Cause> {
        self.error.as_ref().filter(|e| !e.is_not_signed_in())
    }

    /// One line for the source properties, built from locale templates
    /// (`text(key)`; `%1`, `%2`, `%3` are filled in).
    pub fn summary(&self, words: &impl Words) -> String {
        let text = |key: &str| words.text(key);
        if let Some(error) = self.problem() {
            return text("Status.Error").replace("%1", &words.cause(error));
        }
        if self.account_id.is_none() {
            return text("Status.NotConnected");
        }
        let Some(name) = &self.party_name else {
            return text(if self.party_ended {
                "Status.PartyEnded"
            } else if self.no_party {
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
                    MemberState::Failed(why) => {
                        text("Member.Failed").replace("%1", &words.failure(why))
                    }
                };
                format!("{} ({state})", m.display_name(text))
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
        roster: impl Iterator<Item = &'a RosterMember>,
    ) {
        self.party_id = Some(party_id.to_owned());
        self.party_name = Some(party_name.to_owned());
        self.no_party = false;
        self.party_ended = false;
        self.sign_in_lost = false;
        self.bridge_stream = None;
        self.set_roster(roster);
    }

    /// Replaces the roster, keeping the voice state of members still there.
    pub fn set_roster<'a>(&mut self, roster: impl Iterator<Item = &'a RosterMember>) {
        let old = std::mem::take(&mut self.members);
        for m in roster {
            let key = format!("{}/{}", m.account_id, m.platform);
            let state = old
                .get(&key)
                .map(|s| s.state.clone())
                .unwrap_or(MemberState::Waiting);
            let route = old.get(&key).and_then(|s| s.route);
            self.members.insert(
                key,
                MemberStatus {
                    account_id: m.account_id.clone(),
                    online_id: m.online_id.clone(),
                    platform: m.platform.clone(),
                    state,
                    route,
                },
            );
        }
    }

    /// The voice state of the (console) member with this account id.
    /// A failure stays shown until the member's voice connects again (a
    /// new attempt's "connecting" would hide why the last one failed).
    pub fn set_member_state(&mut self, account_id: &str, state: MemberState) {
        let own = self.account_id.as_deref() == Some(account_id);
        for m in self.members.values_mut() {
            // Our own account's app member is us; a phone member of another account talks.
            if m.account_id == account_id && !(own && m.platform == MOBILE_APP) {
                let keep_failure = matches!(m.state, MemberState::Failed(_))
                    && matches!(state, MemberState::Connecting | MemberState::Disconnected);
                if !keep_failure {
                    if state != MemberState::Connected {
                        m.route = None;
                    }
                    m.state = state.clone();
                }
            }
        }
    }

    /// How a member's voice comes now (set when it connects; cleared when it stops).
    pub fn set_member_route(&mut self, account_id: &str, route: Option<Route>) {
        for m in self.members.values_mut() {
            if m.account_id == account_id && m.platform != "MOBILE_APP" {
                m.route = route;
            }
        }
    }

    pub fn note_no_party(&mut self) {
        self.no_party = true;
        self.forget_party();
    }

    pub fn note_party_ended(&mut self) {
        self.left_party();
        self.party_ended = true;
    }

    /// Out of the party: its problems (a failed bridge, say) are over with it.
    pub fn left_party(&mut self) {
        self.error = None;
        self.forget_party();
    }

    fn forget_party(&mut self) {
        self.party_id = None;
        self.party_name = None;
        self.members.clear();
    }
}

/// The signed-in account, as the Account group shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountView {
    pub account_id: Option<String>,
    pub online_id: Option<String>,
    /// When the stored sign-in (refresh token) runs out, Unix seconds.
    pub refresh_expires_at_unix: Option<u64>,
    /// A sign-in is under way.
    pub busy: bool,
    /// The last sign-in problem.
    pub error: Option<Cause>,
    /// The last party-link problem.
    pub link_error: Option<Cause>,
}

/// One of my current parties, for the party list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyEntry {
    pub session_id: String,
    pub name: String,
    /// Members on a console.
    pub members: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartyList {
    pub parties: Vec<PartyEntry>,
    pub refreshing: bool,
    pub error: Option<Cause>,
}

/// One roster line of the Members group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub account_id: String,
    pub online_id: String,
    /// The user's own console (same account as the plugin).
    pub own_console: bool,
    /// "alice_ps (PS5): speaking".
    pub line: String,
}

/// Everything the properties dialog shows, copied out of the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub status: HubStatus,
    pub account: AccountView,
    pub parties: PartyList,
    pub party: crate::party::settings::PartyChoice,
    /// Account ids whose voice was heard in the last moments.
    pub speaking: Vec<String>,
    /// Account ids muted by the consent setting.
    pub muted: Vec<String>,
}

const DAY_SECS: u64 = 86_400;

impl View {
    pub fn signed_in(&self) -> bool {
        self.account.account_id.is_some()
    }

    /// The Account group's status line.
    pub fn account_line(&self, words: &impl Words, now_unix: u64) -> String {
        let text = |key: &str| words.text(key);
        if self.account.busy {
            return text("Account.SigningIn");
        }
        if let Some(error) = &self.account.error {
            return text("Status.Error").replace("%1", &words.cause(error));
        }
        let Some(account_id) = &self.account.account_id else {
            // The session's own problem (e.g. an expired sign-in) says more.
            return match self.status.problem() {
                Some(error) => text("Status.Error").replace("%1", &words.cause(error)),
                None => text("Account.SignedOut"),
            };
        };
        let who = self
            .account
            .online_id
            .clone()
            .or_else(|| {
                self.status
                    .members
                    .values()
                    .find(|m| &m.account_id == account_id)
                    .map(|m| m.online_id.clone())
            })
            .unwrap_or_else(|| text("Account.ThisAccount"));
        match self.account.refresh_expires_at_unix {
            Some(at) if at > now_unix => text("Account.SignedInDays")
                .replace("%1", &who)
                .replace("%2", &((at - now_unix) / DAY_SECS).to_string()),
            _ => text("Account.SignedIn").replace("%1", &who),
        }
    }

    /// The party list: "follow" first, then my parties, then a saved party
    /// session id that is not among them (so a script's choice stays visible).
    pub fn party_items(&self, words: &impl Words) -> Vec<(String, String)> {
        let text = |key: &str| words.text(key);
        let mut items = vec![(text("Party.Follow"), super::settings::FOLLOW.to_owned())];
        for p in &self.parties.parties {
            let name = if p.name.is_empty() {
                text("Party.Unnamed")
            } else {
                p.name.clone()
            };
            let label = text("Party.Item")
                .replace("%1", &name)
                .replace("%2", &p.members.to_string());
            items.push((label, p.session_id.clone()));
        }
        if let crate::party::settings::PartyChoice::Session(id) = &self.party {
            if !items.iter().any(|(_, v)| v == id) {
                items.push((text("Party.Saved").replace("%1", id), id.clone()));
            }
        }
        items
    }

    /// The roster, in join order of the status map (account id order), with
    /// each member's state in words.
    pub fn member_rows(&self, words: &impl Words) -> Vec<MemberRow> {
        let text = |key: &str| words.text(key);
        let me = self.status.account_id.as_deref();
        self.status
            .members
            .values()
            // Our own app member is us, not someone to hear.
            .filter(|m| !(Some(m.account_id.as_str()) == me && m.platform == MOBILE_APP))
            .map(|m| {
                let own_console = Some(m.account_id.as_str()) == me;
                let state = match &m.state {
                    MemberState::Failed(why) => {
                        text("Member.Failed").replace("%1", &words.failure(why))
                    }
                    _ if self.muted.contains(&m.account_id) => text("Member.MutedByConsent"),
                    MemberState::Connected if self.speaking.contains(&m.account_id) => {
                        m.with_route(text("Member.Speaking"), &text)
                    }
                    MemberState::Waiting => text("Member.Waiting"),
                    MemberState::Connecting => text("Member.Connecting"),
                    MemberState::Connected => m.with_route(text("Member.Connected"), &text),
                    MemberState::Disconnected => text("Member.Disconnected"),
                };
                let line = if own_console {
                    text("Member.OwnConsole")
                        .replace("%1", &m.online_id)
                        .replace("%2", &m.platform)
                } else if m.platform == MOBILE_APP {
                    format!("{}: {state}", m.display_name(text))
                } else {
                    format!("{} ({}): {state}", m.online_id, m.platform)
                };
                MemberRow {
                    account_id: m.account_id.clone(),
                    online_id: m.online_id.clone(),
                    own_console,
                    line,
                }
            })
            .chain(self.status.bridge_stream.as_ref().map(|state| {
                let bridge = super::bridge_link::BRIDGE_MEMBER;
                let state = if self.muted.iter().any(|id| id == bridge) {
                    text("Member.MutedByConsent")
                } else if self.speaking.iter().any(|id| id == bridge) {
                    text("Member.Speaking")
                } else {
                    match state {
                        MemberState::Connected => text("Member.Connected"),
                        _ => text("Member.Connecting"),
                    }
                };
                MemberRow {
                    account_id: bridge.to_owned(),
                    online_id: super::settings::BRIDGE_MEMBER_NAME.to_owned(),
                    own_console: false,
                    line: format!("{}: {state}", super::settings::BRIDGE_MEMBER_NAME),
                }
            }))
            .collect()
    }
}

/// A short line for the dialog: the party and how many are in it (the
/// Members group lists them).
impl HubStatus {
    pub fn headline(&self, words: &impl Words) -> String {
        let Some(name) = &self.party_name else {
            return self.summary(words);
        };
        let text = |key: &str| words.text(key);
        let others = self
            .members
            .values()
            .filter(|m| Some(&m.account_id) != self.account_id.as_ref())
            .count();
        text("Status.InPartyShort")
            .replace("%1", name)
            .replace("%2", &others.to_string())
    }
}

/// "1st", "2nd", "3rd", "4th", ... "11th", "12th", "13th", "21st".
pub fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys and causes as they are, to see which was chosen.
    struct Keys;

    impl Words for Keys {
        fn text(&self, key: &str) -> String {
            format!("<{key}:%1:%2:%3>")
        }
        fn cause(&self, cause: &Cause) -> String {
            format!("{cause:?}")
        }
        fn failure(&self, failure: &Failure) -> String {
            format!("{failure:?}")
        }
    }
    const KEYS: &Keys = &Keys;

    #[test]
    fn the_summary_says_what_is_going_on() {
        let mut status = HubStatus::default();
        assert_eq!(status.summary(KEYS), "<Status.NotConnected:%1:%2:%3>");
        status.error = Some(Cause::LinkNotUnderstood);
        assert!(status
            .summary(KEYS)
            .starts_with("<Status.Error:LinkNotUnderstood:"));
        // Not signed in yet is a state, not a problem.
        status.error = Some(Cause::Psn(crate::psn::error::PsnError::NotSignedIn));
        assert_eq!(status.problem(), None);
        status.error = None;
        status.account_id = Some("1".into());
        status.no_party = true;
        assert!(status.summary(KEYS).starts_with("<Status.NoParty"));
        let alice = RosterMember {
            account_id: "2".into(),
            online_id: "alice".into(),
            platform: "PS5".into(),
        };
        status.joined("sid", "Friday", "1", [&alice].into_iter());
        status.set_member_state("2", MemberState::Connected);
        let line = status.summary(KEYS);
        assert!(
            line.starts_with("<Status.InParty:Friday:1:alice (<Member.Connected"),
            "{line}"
        );
    }

    fn view() -> View {
        View {
            status: HubStatus::default(),
            account: AccountView::default(),
            parties: PartyList::default(),
            party: crate::party::settings::PartyChoice::Follow,
            speaking: vec![],
            muted: vec![],
        }
    }

    #[test]
    fn the_account_line_says_who_and_for_how_long() {
        let mut v = view();
        assert_eq!(v.account_line(KEYS, 0), "<Account.SignedOut:%1:%2:%3>");
        v.account.busy = true;
        assert!(v.account_line(KEYS, 0).starts_with("<Account.SigningIn"));
        v.account.busy = false;
        v.account.account_id = Some("1".into());
        v.account.online_id = Some("me_ps".into());
        v.account.refresh_expires_at_unix = Some(10 * DAY_SECS + 5);
        assert_eq!(
            v.account_line(KEYS, 5),
            "<Account.SignedInDays:me_ps:10:%3>"
        );
        v.account.error = Some(Cause::Psn(crate::psn::error::PsnError::SignInExpired));
        assert!(v.account_line(KEYS, 5).contains("SignInExpired"));
    }

    #[test]
    fn party_items_keep_a_saved_session_id() {
        let mut v = view();
        v.parties.parties.push(PartyEntry {
            session_id: "s1".into(),
            name: "Friday".into(),
            members: 4,
        });
        let items = v.party_items(KEYS);
        assert_eq!(items[0].1, "follow");
        assert_eq!(items[1], ("<Party.Item:Friday:4:%3>".into(), "s1".into()));
        v.party = crate::party::settings::PartyChoice::Session("old".into());
        assert_eq!(v.party_items(KEYS).last().unwrap().1, "old");
    }

    #[test]
    fn member_rows_show_consent_speaking_and_failure() {
        let mut v = view();
        let m = |id: &str, name: &str| RosterMember {
            account_id: id.into(),
            online_id: name.into(),
            platform: "PS5".into(),
        };
        let (a, b, c) = (m("2", "alice"), m("3", "bob"), m("4", "cat"));
        v.status
            .joined("sid", "Friday", "1", [&a, &b, &c].into_iter());
        v.status.set_member_state("2", MemberState::Connected);
        v.status.set_member_state("3", MemberState::Connected);
        v.status
            .set_member_state("4", MemberState::Failed(Failure::Connection));
        v.speaking = vec!["2".into()];
        v.muted = vec!["3".into()];
        let rows = v.member_rows(KEYS);
        assert_eq!(rows[0].line, "alice (PS5): <Member.Speaking:%1:%2:%3>");
        assert_eq!(rows[1].line, "bob (PS5): <Member.MutedByConsent:%1:%2:%3>");
        assert!(rows[2].line.contains("<Member.Failed:Connection"));
        v.status.set_member_state("4", MemberState::Connecting);
        assert!(
            matches!(v.status.members["4/PS5"].state, MemberState::Failed(_)),
            "a new attempt keeps the failure shown until it connects"
        );
        v.status.set_member_state("4", MemberState::Connected);
        assert_eq!(v.status.members["4/PS5"].state, MemberState::Connected);
        // The path: direct, or the PSN relay with why; gone when the connection goes.
        v.status.set_member_route("2", Some(Route::Direct));
        assert_eq!(
            v.member_rows(KEYS)[0].line,
            "alice (PS5): <Member.ViaDirect:<Member.Speaking:%1:%2:%3>:%2:%3>"
        );
        v.status.set_member_route("4", Some(Route::PsnRelay));
        let relay = &v.member_rows(KEYS)[2].line;
        assert!(
            relay.starts_with("cat (PS5): <Member.ViaRelay:")
                && relay.contains("<Member.RelayWhy."),
            "{relay}"
        );
        v.status.set_member_state("4", MemberState::Disconnected);
        assert_eq!(v.status.members["4/PS5"].route, None);
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(23), "23rd");
    }
}
