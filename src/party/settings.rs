//! The settings vocabulary, in one place: every key a source's settings hold and every value
//! they take (the party choice, the voice path, the jitter preset, the consent flags, the
//! member selector `slot:N` / online id / `bridge`), parsed and printed here. The sources
//! (src/obs/source.rs), the dialog (src/obs/properties.rs, through the sources) and
//! docs/settings.md use it; nothing here knows OBS. Adding a setting touches this module, the
//! dialog and the doc.

use std::collections::HashMap;

use crate::audio::playout::MemberSelector;
use crate::voice::jitter::JitterConfig;

/// Settings keys, fixed for scripting (see docs/settings.md).
pub mod keys {
    /// `"follow"` (the party my account is in) or a party session id.
    pub const PARTY: &str = "party";
    /// On both sources: `"auto"` (default), `"p2p"` or `"bridge"` (docs/settings.md).
    pub const VOICE_PATH: &str = "voice_path";
    /// On `psn_party_member`: an online id, or `"slot:N"`.
    pub const MEMBER: &str = "member";
    /// The NPSSO typed into the Account group: moved into memory by the
    /// first `update` that sees it (src/obs/typed_secrets.rs), never kept.
    pub const NPSSO: &str = "npsso";
    /// Advanced: used only when the environment and .env have none.
    pub const CLIENT_ID: &str = "client_id";
    /// Advanced: moved into memory like the NPSSO; "Sign in" puts it in
    /// psn-client.json (0600).
    pub const CLIENT_SECRET: &str = "client_secret";
    pub const PARTY_LINK: &str = "party_link";
    /// "Capture only members I allow".
    pub const ONLY_ALLOWED: &str = "only_allowed_members";
    /// `allow_<account id>`: one checkbox per member.
    pub const ALLOW_PREFIX: &str = "allow_";
    pub const INCLUDE_OWN_CONSOLE: &str = "include_own_console";
    /// Milliseconds; positive delays the party audio.
    pub const SYNC_OFFSET_MS: &str = "sync_offset_ms";
    /// `"low"`, `"balanced"` or `"stable"`.
    pub const JITTER: &str = "jitter";
    /// Advanced: STUN servers (`stun:host:port, …`); empty = `PSN_STUN_SERVERS` or the defaults
    /// (`crate::voice::net`).
    pub const STUN_SERVERS: &str = "stun_servers";
    /// The overlay page's port on 127.0.0.1; 0 (default): the one used last time, else a free one.
    pub const OVERLAY_PORT: &str = "overlay_port";
    /// The overlay's address, shown in a text field to select and copy. Only ever a default
    /// value (never saved, not in obs-websocket's GetInputSettings); anything typed is erased.
    pub const OVERLAY_URL: &str = "overlay_url";
    #[cfg(feature = "test-producer")]
    pub const TEST_TONE_HZ: &str = "test_tone_hz";
    #[cfg(feature = "test-producer")]
    pub const TEST_BURST_MS: &str = "test_burst_ms";
    #[cfg(feature = "test-producer")]
    pub const TEST_AMPLITUDE: &str = "test_amplitude";
    /// Makes this source's `obs_source_output_audio` call take this many ms
    /// longer once a second (a slow filter), to test that the others go on.
    #[cfg(feature = "test-producer")]
    pub const TEST_OUTPUT_STALL_MS: &str = "test_output_stall_ms";
    /// `"update"` makes the next update panic, to test that OBS survives it;
    /// `"create"` makes `create` fail (the source is inert).
    #[cfg(feature = "test-producer")]
    pub const TEST_PANIC: &str = "test_panic";
}

/// The `party` value that follows the party the user's console is in.
pub const FOLLOW: &str = "follow";

/// Which party to be in (the `party` setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartyChoice {
    /// The party the user's console is in (`"follow"`, the default).
    Follow,
    /// This party session id.
    Session(String),
}

impl PartyChoice {
    pub fn from_setting(value: &str) -> PartyChoice {
        match value.trim() {
            "" | FOLLOW => PartyChoice::Follow,
            id => PartyChoice::Session(id.to_owned()),
        }
    }

    /// The setting's value for this choice.
    pub fn as_setting(&self) -> &str {
        match self {
            PartyChoice::Follow => FOLLOW,
            PartyChoice::Session(id) => id,
        }
    }
}

/// Which way voices come (the `voice_path` setting, docs/settings.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VoicePath {
    /// Peer-to-peer, the bridge for members it fails with (`"auto"`, the default).
    #[default]
    Auto,
    /// Peer-to-peer only (`"p2p"`).
    P2p,
    /// The bridge only (`"bridge"`).
    Bridge,
}

impl VoicePath {
    pub fn from_setting(value: &str) -> VoicePath {
        match value.trim() {
            "p2p" => VoicePath::P2p,
            "bridge" => VoicePath::Bridge,
            _ => VoicePath::Auto,
        }
    }

    /// The setting's value for this path.
    pub fn as_setting(self) -> &'static str {
        match self {
            VoicePath::Auto => "auto",
            VoicePath::P2p => "p2p",
            VoicePath::Bridge => "bridge",
        }
    }
}

/// How much delay the jitter buffer may add to ride out a bad network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JitterPreset {
    LowLatency,
    #[default]
    Balanced,
    Stable,
}

impl JitterPreset {
    /// The `jitter` setting: `"low"`, `"balanced"` or `"stable"`.
    pub fn from_setting(value: &str) -> JitterPreset {
        match value {
            "low" => JitterPreset::LowLatency,
            "stable" => JitterPreset::Stable,
            _ => JitterPreset::Balanced,
        }
    }

    /// The setting's value for this preset.
    pub fn as_setting(self) -> &'static str {
        match self {
            JitterPreset::LowLatency => "low",
            JitterPreset::Balanced => "balanced",
            JitterPreset::Stable => "stable",
        }
    }

    /// The jitter buffer's tuning for a member (Balanced is the buffer's own default).
    pub fn config(self, clock_rate: u32) -> JitterConfig {
        let mut c = JitterConfig::new(clock_rate);
        match self {
            JitterPreset::LowLatency => {
                c.initial_target_ms = 40;
                c.min_target_ms = 20;
                c.max_target_ms = 100;
            }
            JitterPreset::Balanced => {}
            JitterPreset::Stable => {
                c.initial_target_ms = 120;
                c.min_target_ms = 80;
                c.max_target_ms = 400;
                c.capacity = c.capacity.max(160);
            }
        }
        c
    }
}

/// Who may be heard ("Capture only members I allow").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consent {
    /// Off (the default): everyone is heard. On: only members the user ticked; a member with
    /// no choice yet (a newcomer) is silent, and their box shows unticked.
    pub only_allowed: bool,
    /// The user's choices, by account id.
    pub allowed: HashMap<String, bool>,
}

impl Consent {
    /// The per-member checkbox's key: `allow_<account id>`.
    pub fn allow_key(account_id: &str) -> String {
        format!("{}{account_id}", keys::ALLOW_PREFIX)
    }

    pub fn allows(&self, account_id: &str) -> bool {
        if !self.only_allowed {
            return true;
        }
        self.allowed.get(account_id).copied().unwrap_or(false)
    }
}

/// The `member` value that picks what the rtcBridge sends without naming a member (the
/// "party (bridge)" pseudo-member, src/party/bridge_link.rs).
pub const BRIDGE_SELECTOR: &str = "bridge";
/// The online id the playout knows that pseudo-member by.
pub const BRIDGE_MEMBER_NAME: &str = "party (bridge)";
/// The slot a new member source starts on.
pub const FIRST_SLOT: usize = 1;

/// Reads a `member` setting: `"slot:N"` (N from 1), `"bridge"`, or an online id.
pub fn member_selector(text: &str) -> Option<MemberSelector> {
    let text = text.trim();
    if let Some(n) = text.strip_prefix("slot:") {
        return n.parse().ok().filter(|&n| n >= 1).map(MemberSelector::Slot);
    }
    if text == BRIDGE_SELECTOR {
        return Some(MemberSelector::OnlineId(BRIDGE_MEMBER_NAME.to_owned()));
    }
    (!text.is_empty()).then(|| MemberSelector::OnlineId(text.to_owned()))
}

/// The `member` value for slot `n`.
pub fn slot_setting(n: usize) -> String {
    format!("slot:{n}")
}

/// The link id of a party link: its last path segment. The format is
/// inferred (PROTOCOL.md section 3 knows only `partyInfo/{linkId}`), see
/// docs/settings.md.
pub fn link_id_from_link(link: &str) -> Option<String> {
    let link = link.trim();
    let with_scheme = if link.contains("://") {
        link.to_owned()
    } else {
        format!("https://{link}")
    };
    let url = url::Url::parse(&with_scheme).ok()?;
    let host = url.host_str()?;
    if !(host == "party.playstation.com" || host.ends_with(".party.playstation.com")) {
        return None;
    }
    let id = url.path_segments()?.rfind(|s| !s.is_empty())?;
    id.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        .then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_is_off_by_default_and_remembers_choices() {
        let mut c = Consent::default();
        assert!(c.allows("1"));
        c.only_allowed = true;
        assert!(!c.allows("1"), "a member nobody ticked is silent");
        c.allowed.insert("1".into(), true);
        assert!(c.allows("1"));
        c.allowed.insert("2".into(), false);
        assert!(!c.allows("2"));
        c.only_allowed = false;
        assert!(c.allows("2"), "off: everyone is heard");
    }

    #[test]
    fn party_links() {
        assert_eq!(
            link_id_from_link("https://party.playstation.com/AbC-12_x").as_deref(),
            Some("AbC-12_x")
        );
        assert_eq!(
            link_id_from_link(" party.playstation.com/join/xyz ").as_deref(),
            Some("xyz")
        );
        assert_eq!(link_id_from_link("https://evil.example/xyz"), None);
        assert_eq!(link_id_from_link("https://party.playstation.com/"), None);
    }

    #[test]
    fn jitter_presets_order_their_delay() {
        let low = JitterPreset::LowLatency.config(48_000);
        let mid = JitterPreset::Balanced.config(48_000);
        let high = JitterPreset::Stable.config(48_000);
        assert!(low.max_target_ms < mid.max_target_ms && mid.max_target_ms < high.max_target_ms);
        assert_eq!(JitterPreset::from_setting("stable"), JitterPreset::Stable);
        assert_eq!(JitterPreset::from_setting("?"), JitterPreset::Balanced);
    }
    #[test]
    fn party_setting() {
        assert_eq!(PartyChoice::from_setting("follow"), PartyChoice::Follow);
        assert_eq!(PartyChoice::from_setting(""), PartyChoice::Follow);
        assert_eq!(
            PartyChoice::from_setting(" 1234-abcd "),
            PartyChoice::Session("1234-abcd".into())
        );
    }

    #[test]
    fn member_selectors() {
        assert_eq!(member_selector("slot:2"), Some(MemberSelector::Slot(2)));
        assert_eq!(
            member_selector(&slot_setting(3)),
            Some(MemberSelector::Slot(3))
        );
        assert_eq!(member_selector("slot:0"), None);
        assert_eq!(member_selector("slot:x"), None);
        assert_eq!(
            member_selector(" Kratos_77 "),
            Some(MemberSelector::OnlineId("Kratos_77".into()))
        );
        assert_eq!(
            member_selector(BRIDGE_SELECTOR),
            Some(MemberSelector::OnlineId(BRIDGE_MEMBER_NAME.into()))
        );
        assert_eq!(member_selector(""), None);
    }

    #[test]
    fn values_print_as_they_parse() {
        for v in ["auto", "p2p", "bridge"] {
            assert_eq!(VoicePath::from_setting(v).as_setting(), v);
        }
        for v in ["low", "balanced", "stable"] {
            assert_eq!(JitterPreset::from_setting(v).as_setting(), v);
        }
        for v in [FOLLOW, "1234-abcd"] {
            assert_eq!(PartyChoice::from_setting(v).as_setting(), v);
        }
        assert_eq!(Consent::allow_key("42"), "allow_42");
    }
}
