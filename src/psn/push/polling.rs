//! The polling fallback while push is down: `bulkGet` of the party at the advertised interval,
//! diffed against the last roster into the same events push would have sent.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::frames::{PushEvent, PushFrom, PushMember};
use super::PushOptions;
use crate::psn::model::RosterMember;
use crate::psn::party_api::PartyApi;

/// The interval partyInfo advertises (`msPollingInterval`, PROTOCOL.md section 3).
pub const ADVERTISED_POLL_INTERVAL: Duration = Duration::from_millis(5000);

/// The polling fallback: bulkGet, diffed against the last roster.
pub(super) struct Poller {
    pub(super) session_id: Option<String>,
    pub(super) active: bool,
    pub(super) next_at: Instant,
    last: Option<BTreeMap<(String, String), RosterMember>>,
}

impl Poller {
    pub(super) fn new(session_id: Option<String>) -> Self {
        Poller {
            session_id,
            active: false,
            next_at: Instant::now(),
            last: None,
        }
    }

    /// Polling starts (`active`) or stops standing in for push; tells the receiver.
    pub(super) async fn switch(
        &mut self,
        active: bool,
        opts: &PushOptions,
        tx: &mpsc::Sender<PushEvent>,
    ) {
        self.active = active;
        let interval = opts.poll_interval;
        let _ = tx
            .send(PushEvent::PollingFallback { active, interval })
            .await;
    }

    /// One poll; false when the party is gone (the run ends).
    pub(super) async fn poll(&mut self, party: &PartyApi, tx: &mpsc::Sender<PushEvent>) -> bool {
        let Some(sid) = self.session_id.clone() else {
            return true;
        };
        let roster = match party.roster(&sid).await {
            Ok(r) => r,
            Err(e) => {
                log::info!("PSN poll: {e}");
                return true;
            }
        };
        let Some(roster) = roster else {
            let _ = tx
                .send(PushEvent::PartyDeleted {
                    session_id: sid,
                    cause: None,
                })
                .await;
            return false;
        };
        let now: BTreeMap<_, _> = roster
            .into_iter()
            .map(|m| ((m.account_id.clone(), m.platform.clone()), m))
            .collect();
        if let Some(last) = &self.last {
            let joined: Vec<PushMember> = now
                .iter()
                .filter(|(k, _)| !last.contains_key(*k))
                .map(|(_, m)| PushMember {
                    who: PushFrom {
                        account_id: m.account_id.clone(),
                        online_id: m.online_id.clone(),
                        platform: m.platform.clone(),
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .collect();
            let left: Vec<RosterMember> = last
                .iter()
                .filter(|(k, _)| !now.contains_key(*k))
                .map(|(_, m)| m.clone())
                .collect();
            let session_id = sid.clone();
            let joined = (!joined.is_empty()).then_some(PushEvent::MembersJoined {
                session_id: session_id.clone(),
                members: joined,
            });
            let left = (!left.is_empty()).then_some(PushEvent::MembersLeft {
                session_id,
                members: left,
            });
            for event in [joined, left].into_iter().flatten() {
                let _ = tx.send(event).await;
            }
        }
        self.last = Some(now);
        true
    }
}
