//! What the properties dialog shows, kept current: the watcher that tells the
//! sources to redraw when the view changes, and the party list fetched from PSN.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use super::cause::Cause;
use super::hub::{lock, HubShared};
use super::status::{HubStatus, PartyEntry};
use crate::psn::party_api::PartyApi;

/// How often the hub looks for changes worth redrawing the properties for.
const VIEW_POLL: Duration = Duration::from_millis(250);

impl HubShared {
    /// Fetches my current parties into the party list (and learns my online
    /// id from it on the way).
    pub(super) async fn refresh_parties(&self) {
        lock(&self.parties).refreshing = true;
        self.generation.fetch_add(1, Ordering::Relaxed);
        let client = lock(&self.client).clone();
        let result = match client {
            Some(client) if client.is_signed_in().await => {
                let me = client.account_id().await.unwrap_or_default();
                PartyApi::new(client).list_parties().await.map(|parties| {
                    let online_id = parties
                        .iter()
                        .flat_map(|p| p.members.iter())
                        .find(|m| m.account_id == me)
                        .map(|m| m.online_id.clone());
                    if online_id.is_some() {
                        self.set_account(|a| a.online_id = online_id);
                    }
                    parties
                        .into_iter()
                        .map(|p| PartyEntry {
                            session_id: p.session_id,
                            name: p.session_name,
                            members: p.members.iter().filter(|m| m.is_console()).count(),
                        })
                        .collect()
                })
            }
            _ => Ok(Vec::new()),
        };
        let mut list = lock(&self.parties);
        list.refreshing = false;
        match result {
            Ok(parties) => {
                list.parties = parties;
                list.error = None;
            }
            Err(e) => {
                log::warn!("listing parties: {e}");
                list.error = Some(Cause::Psn(e));
            }
        }
        drop(list);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }
}

/// Tells the sources to redraw their properties whenever what they show
/// changes (speaking is left out: it would redraw the dialog all the time).
pub(super) async fn watch_view(hub: Weak<HubShared>) {
    let mut last: Option<(u64, HubStatus)> = None;
    loop {
        tokio::time::sleep(VIEW_POLL).await;
        let Some(shared) = hub.upgrade() else { return };
        let now = (
            shared.generation.load(Ordering::Relaxed),
            lock(&shared.status).clone(),
        );
        if last.as_ref() != Some(&now) {
            if last.is_some() {
                shared.notify();
            }
            last = Some(now);
        }
    }
}
