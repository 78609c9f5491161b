//! Online ids of party members, masked in OBS's log as account ids are: an online id names a
//! person, and OBS logs get pasted into public bug reports.
//!
//! Every online id the plugin reads from PSN (rosters, push frames) is noted here as it is
//! parsed (`deserialize_with = "crate::psn::log_mask::online_id"`); the log bridge
//! (src/obs/log.rs) masks each noted id in every line before OBS sees it. Masking at the one
//! exit catches every line, whoever wrote it, without each `log::info!` having to remember.

use std::borrow::Cow;
use std::sync::RwLock;

use serde::{Deserialize, Deserializer};

/// Enough for every member of every party one OBS session sees; beyond it, new ids are not
/// noted (the log keeps working).
const MAX_NOTED: usize = 4096;

static NOTED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// For serde: reads an online id and notes it.
pub fn online_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id = String::deserialize(d)?;
    note_online_id(&id);
    Ok(id)
}

/// Masks `id` in every log line from now on.
pub fn note_online_id(id: &str) {
    if id.is_empty() {
        return;
    }
    if NOTED.read().is_ok_and(|n| n.iter().any(|x| x == id)) {
        return;
    }
    let mut noted = NOTED.write().unwrap_or_else(|e| e.into_inner());
    if noted.len() < MAX_NOTED && !noted.iter().any(|x| x == id) {
        noted.push(id.to_owned());
        // Longest first, so an id that contains another is masked whole.
        noted.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }
}

/// `ann_ps` -> `a…s`: enough to tell members apart in one log, not enough to find them.
pub fn mask_online_id(id: &str) -> String {
    let mut chars = id.chars();
    match (chars.next(), chars.next_back()) {
        (Some(first), Some(last)) => format!("{first}…{last}"),
        (Some(first), None) => format!("{first}…"),
        _ => String::new(),
    }
}

/// `text` with every noted online id masked where it stands as a word of its own (online ids
/// are made of letters, digits, `-` and `_`; "ann" inside "channel" is left alone).
pub fn mask_online_ids(text: &str) -> Cow<'_, str> {
    let Ok(noted) = NOTED.read() else {
        return Cow::Borrowed(text);
    };
    let mut out = Cow::Borrowed(text);
    for id in noted.iter() {
        if out.contains(id.as_str()) {
            out = Cow::Owned(mask_words(&out, id));
        }
    }
    out
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn mask_words(text: &str, id: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(id) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + id.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(is_id_char) || after.is_some_and(is_id_char) {
            out.push_str(id);
        } else {
            out.push_str(&mask_online_id(id));
        }
        rest = &rest[at + id.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noted_ids_are_masked_as_words() {
        note_online_id("mask_test_ann");
        note_online_id("mask_test_ann_2");
        let line = "member joined: mask_test_ann; mask_test_ann_2 offered; xmask_test_ann stays";
        assert_eq!(
            mask_online_ids(line),
            "member joined: m…n; m…2 offered; xmask_test_ann stays"
        );
        assert_eq!(mask_online_ids("nothing here"), "nothing here");
    }

    #[test]
    fn parsing_a_roster_notes_its_online_ids() {
        let m: crate::psn::model::RosterMember = serde_json::from_str(
            r#"{"accountId":"1","onlineId":"mask_test_parsed","platform":"PS5"}"#,
        )
        .unwrap();
        assert_eq!(m.online_id, "mask_test_parsed");
        assert_eq!(mask_online_ids("left: mask_test_parsed"), "left: m…d");
    }
}
