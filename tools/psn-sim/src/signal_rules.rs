//! Rules for the voice signalling the user's MOBILE_APP device sends (PROTOCOL.md section 5).
//! PSN passes customMessages on as they are; a member's console is what would trip over a
//! broken one, so psn-sim checks them where they enter and does not deliver one that breaks a
//! rule (it is recorded in [`crate::SimHandle::signal_violations`]):
//! - the payload decodes, its sender (header and JSON `from`) is the user on MOBILE_APP;
//! - `to` names the member the REST `to` names, on that member's own platform (a phone member
//!   is MOBILE_APP, never relabelled PS5);
//! - `global_seq_num` never repeats towards one peer [I: the name says so];
//! - every new offer to a peer carries a greater `sdp_sequence_number` than the one before [I].

use std::collections::{HashMap, HashSet};

use crate::cmsg;
use crate::state::{State, MOBILE_APP};

#[derive(Debug, Default)]
pub struct Seen {
    /// (session, peer account) -> what came before.
    peers: HashMap<(String, String), PeerSeen>,
}

#[derive(Debug, Default)]
struct PeerSeen {
    global: HashSet<u64>,
    last_offer: Option<u64>,
}

/// The user's app joined `sid` anew: its count starts over (so do the members', who see a new
/// member).
pub fn user_joined(st: &mut State, sid: &str) {
    st.signal_seen.peers.retain(|(s, _), _| s != sid);
}

/// Checks one message the user sent to `targets` (the REST `to` accounts) in `sid`; `Err` says
/// which rule it broke.
pub fn check(st: &mut State, sid: &str, payload: &str, targets: &[String]) -> Result<(), String> {
    let user = st.cfg.account_id.clone();
    let s = cmsg::decode(payload).map_err(|e| format!("undecodable: {e}"))?;
    if s.from_account != user || s.from_platform != cmsg::platform_code(MOBILE_APP) {
        return Err(format!(
            "sender {}/{} is not the user's MOBILE_APP member",
            s.from_account, s.from_platform
        ));
    }
    if !targets.is_empty() && !targets.contains(&s.to_account) {
        return Err("JSON `to` is not the REST recipient".into());
    }
    let platform = st.parties.get(sid).and_then(|p| {
        p.members
            .iter()
            .find(|m| m.account_id == s.to_account && m.account_id != user)
            .map(|m| m.platform.clone())
    });
    if let Some(p) = platform {
        if cmsg::platform_code(&p) != s.to_platform {
            return Err(format!(
                "`to.platform` {} for a {p} member (code {})",
                s.to_platform,
                cmsg::platform_code(&p)
            ));
        }
    }
    let sdp_seq: u64 = s
        .sdp_sequence_number
        .parse()
        .map_err(|_| format!("sdp_sequence_number {:?}", s.sdp_sequence_number))?;
    let seen = st
        .signal_seen
        .peers
        .entry((sid.to_owned(), s.to_account.clone()))
        .or_default();
    if !seen.global.insert(s.global_seq_num) {
        return Err(format!("global_seq_num {} repeated", s.global_seq_num));
    }
    if s.kind == "offer" {
        if seen.last_offer.is_some_and(|last| sdp_seq <= last) {
            return Err(format!(
                "offer with sdp_sequence_number {sdp_seq} after {}",
                seen.last_offer.unwrap_or_default()
            ));
        }
        seen.last_offer = Some(sdp_seq);
    }
    Ok(())
}
