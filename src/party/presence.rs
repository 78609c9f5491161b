//! Presence: who is in the party and who is speaking, as viewers may see it (the overlay page)
//! and stream tools may hear of it (obs-websocket vendor events). Account ids and secrets are
//! never in it: members are named by their online id, which PSN shows to anyone in the party.
//!
//! A task on the runtime reads the hub's view every [`POLL`] (the speaking states are atomics
//! the playout thread writes), builds a [`Snapshot`], and publishes it when it changed. The same
//! task fetches each member's profile and avatar once per party ([`AvatarStore`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::status::{MemberState, View};
use crate::psn::client::PsnClient;
use crate::psn::profile::{fetch_avatar, fetch_profile, Avatar};

/// How often the view is read: speaking changes reach readers within this.
pub const POLL: Duration = Duration::from_millis(20);

/// What the hub lends the presence task.
pub trait HubAccess: Send + Sync {
    fn view(&self) -> View;
    fn client(&self) -> Option<Arc<PsnClient>>;
}

/// One member, as the overlay and stream tools see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceMember {
    #[serde(rename = "onlineId")]
    pub online_id: String,
    pub platform: String,
    /// Display slot, from 1 in join order; 0 for the user's own console.
    pub slot: usize,
    #[serde(rename = "ownConsole")]
    pub own_console: bool,
    /// `waiting`, `connecting`, `connected`, `disconnected` or `failed`.
    pub voice: &'static str,
    /// Talking now (never for a member muted by consent).
    pub speaking: bool,
    /// Muted by "Capture only members I allow".
    #[serde(rename = "mutedByConsent")]
    pub muted: bool,
    /// The overlay's avatar path (`avatar/{n}`), once fetched.
    pub avatar: Option<u32>,
}

/// The party as viewers see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// `signedOut`, `noParty`, `inParty` or `error`.
    pub connection: &'static str,
    pub party: Option<String>,
    pub members: Vec<PresenceMember>,
}

impl Snapshot {
    /// The members who hold a slot (everyone but the user's own console).
    pub fn slots(&self) -> usize {
        self.members.iter().filter(|m| !m.own_console).count()
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["slots"] = self.slots().into();
        v
    }
}

/// Avatar images fetched this party, by the id the overlay asks for.
#[derive(Debug, Default)]
pub struct AvatarStore {
    images: Mutex<HashMap<u32, Arc<Avatar>>>,
}

impl AvatarStore {
    pub fn get(&self, id: u32) -> Option<Arc<Avatar>> {
        lock(&self.images).get(&id).cloned()
    }
    fn put(&self, id: u32, avatar: Avatar) {
        lock(&self.images).insert(id, Arc::new(avatar));
    }
    fn clear(&self) {
        lock(&self.images).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Called with (event name, JSON data) for each vendor event (set by src/obs at post-load).
pub type EventSink = Box<dyn Fn(&str, &serde_json::Value) + Send + Sync>;
static EVENT_SINK: OnceLock<EventSink> = OnceLock::new();
/// The latest snapshot of the running hub, for `GetPartyStatus`.
static LATEST: Mutex<Option<Arc<Snapshot>>> = Mutex::new(None);

/// Where events go (obs-websocket's vendor, when it is installed). Set once.
pub fn set_event_sink(sink: EventSink) {
    let _ = EVENT_SINK.set(sink);
}

/// The party now, for `GetPartyStatus` (signed out when no source runs).
pub fn current_status() -> serde_json::Value {
    let latest = lock(&LATEST).clone();
    let snapshot = latest.unwrap_or_else(|| {
        Arc::new(Snapshot {
            connection: "signedOut",
            ..Snapshot::default()
        })
    });
    snapshot.to_json()
}

/// The running presence task and what it publishes. Dropping it stops the task.
pub struct Presence {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    avatars: Arc<AvatarStore>,
    task: tokio::task::JoinHandle<()>,
}

impl Presence {
    pub fn start(hub: Weak<dyn HubAccess>, runtime: &tokio::runtime::Handle) -> Presence {
        let (tx, snapshots) = watch::channel(Arc::new(Snapshot::default()));
        let avatars = Arc::new(AvatarStore::default());
        let task = runtime.spawn(run(hub, tx, avatars.clone()));
        Presence {
            snapshots,
            avatars,
            task,
        }
    }

    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.clone()
    }

    pub fn avatars(&self) -> Arc<AvatarStore> {
        self.avatars.clone()
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.task.abort();
        *lock(&LATEST) = None;
    }
}

/// Per-party profile state: which accounts were asked for, their avatar ids.
#[derive(Default)]
struct Profiles {
    party: Option<String>,
    requested: HashSet<String>,
    /// account id -> avatar id, once the image is in.
    avatar_ids: Arc<Mutex<HashMap<String, u32>>>,
    next_id: u32,
}

async fn run(
    hub: Weak<dyn HubAccess>,
    tx: watch::Sender<Arc<Snapshot>>,
    avatars: Arc<AvatarStore>,
) {
    let mut slots = SlotMap::default();
    let mut profiles = Profiles::default();
    let mut last = Arc::new(Snapshot::default());
    loop {
        tokio::time::sleep(POLL).await;
        let Some(shared) = hub.upgrade() else { return };
        let view = shared.view();
        let client = shared.client();
        drop(shared);
        if profiles.party != view.status.party_id {
            // A new party: profiles and avatars are fetched again (once per party).
            profiles = Profiles {
                party: view.status.party_id.clone(),
                next_id: profiles.next_id,
                ..Profiles::default()
            };
            avatars.clear();
        }
        if let Some(client) = client {
            request_profiles(&view, &client, &mut profiles, &avatars);
        }
        let avatar_ids = lock(&profiles.avatar_ids).clone();
        let snapshot = build(&view, &mut slots, &avatar_ids);
        if snapshot != *last {
            if let Some(sink) = EVENT_SINK.get() {
                for (name, data) in events(&last, &snapshot) {
                    sink(name, &data);
                }
            }
            last = Arc::new(snapshot);
            *lock(&LATEST) = Some(last.clone());
            let _ = tx.send(last.clone());
        }
    }
}

/// Starts a profile + avatar fetch for every member not asked for yet this party.
fn request_profiles(
    view: &View,
    client: &Arc<PsnClient>,
    profiles: &mut Profiles,
    avatars: &Arc<AvatarStore>,
) {
    for m in view.status.members.values() {
        if m.platform == "MOBILE_APP" || !profiles.requested.insert(m.account_id.clone()) {
            continue;
        }
        profiles.next_id = profiles.next_id.wrapping_add(1);
        let id = profiles.next_id;
        let account = m.account_id.clone();
        let client = client.clone();
        let ids = profiles.avatar_ids.clone();
        let avatars = avatars.clone();
        tokio::spawn(async move {
            let profile = match fetch_profile(&client, &account).await {
                Ok(p) => p,
                Err(e) => {
                    log::info!("no profile for a member: {e}");
                    return;
                }
            };
            let Some(url) = profile.avatar_url() else {
                return;
            };
            match fetch_avatar(url, &client.config().endpoints.api).await {
                Ok(avatar) => {
                    avatars.put(id, avatar);
                    lock(&ids).insert(account, id);
                }
                Err(e) => log::warn!("a member's avatar was refused: {e}"),
            }
        });
    }
}

/// Display slots, kept while a member stays (a newcomer takes the lowest free one), as the
/// playout assigns `slot:N`.
#[derive(Default)]
struct SlotMap {
    slots: HashMap<String, usize>,
}

impl SlotMap {
    fn update<'a>(&mut self, present: impl Iterator<Item = &'a str>) -> &HashMap<String, usize> {
        let present: Vec<&str> = present.collect();
        self.slots.retain(|a, _| present.contains(&a.as_str()));
        for a in present {
            if !self.slots.contains_key(a) {
                let free = (1..)
                    .find(|n| !self.slots.values().any(|s| s == n))
                    .unwrap_or(1);
                self.slots.insert(a.to_owned(), free);
            }
        }
        &self.slots
    }
}

fn build(view: &View, slots: &mut SlotMap, avatar_ids: &HashMap<String, u32>) -> Snapshot {
    let status = &view.status;
    let me = status.account_id.as_deref();
    let members: Vec<_> = status
        .members
        .values()
        .filter(|m| m.platform != "MOBILE_APP")
        .collect();
    let slots = slots.update(
        members
            .iter()
            .filter(|m| Some(m.account_id.as_str()) != me)
            .map(|m| m.account_id.as_str()),
    );
    let mut out: Vec<PresenceMember> = members
        .iter()
        .map(|m| {
            let muted = view.muted.contains(&m.account_id);
            let connected = m.state == MemberState::Connected;
            PresenceMember {
                online_id: m.online_id.clone(),
                platform: m.platform.clone(),
                slot: slots.get(&m.account_id).copied().unwrap_or(0),
                own_console: Some(m.account_id.as_str()) == me,
                voice: match m.state {
                    MemberState::Waiting => "waiting",
                    MemberState::Connecting => "connecting",
                    MemberState::Connected => "connected",
                    MemberState::Disconnected => "disconnected",
                    MemberState::Failed(_) => "failed",
                },
                speaking: connected && !muted && view.speaking.contains(&m.account_id),
                muted,
                avatar: avatar_ids.get(&m.account_id).copied(),
            }
        })
        .collect();
    out.sort_by_key(|m| (m.slot, m.online_id.clone()));
    let connection = if status.party_name.is_some() {
        "inParty"
    } else if status.problem().is_some() {
        "error"
    } else if status.account_id.is_none() {
        "signedOut"
    } else {
        "noParty"
    };
    Snapshot {
        connection,
        party: status.party_name.clone(),
        members: out,
    }
}

/// The vendor events between two snapshots, in order.
pub fn events(old: &Snapshot, new: &Snapshot) -> Vec<(&'static str, serde_json::Value)> {
    let mut out = Vec::new();
    let find = |s: &'_ Snapshot, id: &str| -> Option<PresenceMember> {
        s.members.iter().find(|m| m.online_id == id).cloned()
    };
    if old.party != new.party || old.connection != new.connection {
        out.push((
            "PartyChanged",
            serde_json::json!({"connection": new.connection, "party": new.party, "slots": new.slots()}),
        ));
    }
    for m in &old.members {
        if find(new, &m.online_id).is_none() {
            if m.speaking {
                out.push(("MemberSpeakingStopped", member_json(m)));
            }
            out.push(("MemberLeft", member_json(m)));
        }
    }
    for m in &new.members {
        let before = find(old, &m.online_id);
        if before.is_none() {
            out.push(("MemberJoined", member_json(m)));
        }
        let was = before.is_some_and(|b| b.speaking);
        if m.speaking && !was {
            out.push(("MemberSpeakingStarted", member_json(m)));
        } else if !m.speaking && was {
            out.push(("MemberSpeakingStopped", member_json(m)));
        }
    }
    out
}

fn member_json(m: &PresenceMember) -> serde_json::Value {
    serde_json::json!({
        "onlineId": m.online_id, "platform": m.platform, "slot": m.slot,
        "ownConsole": m.own_console, "mutedByConsent": m.muted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, slot: usize, speaking: bool) -> PresenceMember {
        PresenceMember {
            online_id: id.into(),
            platform: "PS5".into(),
            slot,
            own_console: false,
            voice: "connected",
            speaking,
            muted: false,
            avatar: None,
        }
    }

    #[test]
    fn events_follow_joins_speech_and_leaves() {
        let empty = Snapshot::default();
        let a = Snapshot {
            connection: "inParty",
            party: Some("p".into()),
            members: vec![member("ann", 1, false)],
        };
        let names = |e: Vec<(&'static str, serde_json::Value)>| {
            e.into_iter().map(|(n, _)| n).collect::<Vec<_>>()
        };
        assert_eq!(names(events(&empty, &a)), ["PartyChanged", "MemberJoined"]);
        let mut b = a.clone();
        b.members[0].speaking = true;
        assert_eq!(names(events(&a, &b)), ["MemberSpeakingStarted"]);
        let c = Snapshot {
            members: vec![],
            ..b.clone()
        };
        assert_eq!(
            names(events(&b, &c)),
            ["MemberSpeakingStopped", "MemberLeft"]
        );
        let json = events(&empty, &a)[1].1.to_string();
        assert!(!json.contains("account"), "{json}");
    }

    #[test]
    fn slots_are_sticky() {
        let mut s = SlotMap::default();
        s.update(["a", "b"].into_iter());
        let m = s.update(["b"].into_iter()).clone();
        assert_eq!(m.get("b"), Some(&2));
        let m = s.update(["b", "c"].into_iter()).clone();
        assert_eq!(m.get("c"), Some(&1));
    }
}
