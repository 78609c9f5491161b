//! `PartyHub`: the state every source shares (one connection per account,
//! however many sources exist). Created by the first source, gone with the
//! last, like the runtime.

use std::sync::{Arc, Mutex, Weak};

use crate::audio::playout::{MemberAudio, MemberInfo, Playout, SubscriptionId, Target};
use crate::audio::ring::RingWriter;
use crate::runtime::RuntimeRef;

static SHARED: Mutex<Weak<PartyHub>> = Mutex::new(Weak::new());

pub struct PartyHub {
    playout: Mutex<Playout>,
    runtime: RuntimeRef,
}

impl PartyHub {
    /// The module's hub, started if no source holds it.
    pub fn shared() -> std::io::Result<Arc<PartyHub>> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hub) = shared.upgrade() {
            return Ok(hub);
        }
        let hub = Arc::new(PartyHub {
            playout: Mutex::new(Playout::start()?),
            runtime: RuntimeRef::acquire()?,
        });
        *shared = Arc::downgrade(&hub);
        log::debug!("party hub started");
        Ok(hub)
    }

    pub fn runtime(&self) -> &RuntimeRef {
        &self.runtime
    }

    fn with_playout<R>(&self, f: impl FnOnce(&Playout) -> R) -> R {
        let playout = self.playout.lock().unwrap_or_else(|e| e.into_inner());
        f(&playout)
    }

    /// Feeds `writer` from `target` until the returned guard is dropped.
    pub fn subscribe(self: &Arc<Self>, target: Target, writer: RingWriter) -> Subscription {
        let id = self.with_playout(|p| p.subscribe(target, writer));
        Subscription {
            hub: self.clone(),
            id,
        }
    }

    pub fn add_member(&self, info: MemberInfo, audio: Box<dyn MemberAudio>) {
        self.with_playout(|p| p.add_member(info, audio));
    }

    pub fn remove_member(&self, account_id: &str) {
        self.with_playout(|p| p.remove_member(account_id));
    }
}

impl Drop for PartyHub {
    fn drop(&mut self) {
        let playout = self.playout.get_mut().unwrap_or_else(|e| e.into_inner());
        playout.stop();
        log::debug!("party hub stopped");
    }
}

/// A source's place in the playout; dropping it stops the feed.
pub struct Subscription {
    hub: Arc<PartyHub>,
    id: SubscriptionId,
}

impl Subscription {
    /// Points the feed at another member (or the mix) without a new ring.
    pub fn retarget(&self, target: Target) {
        self.hub.with_playout(|p| p.retarget(self.id, target));
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.with_playout(|p| p.unsubscribe(self.id));
    }
}
