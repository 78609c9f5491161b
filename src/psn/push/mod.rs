//! Push notifications (PROTOCOL.md section 4): `serveraddr` -> WebSocket (`np-pushpacket`,
//! protocol 3.0 auth frame, ping every 5 s, reconnect with backoff and jitter) -> typed events;
//! a polling fallback (bulkGet at the advertised interval) while push is down.
//!
//! - `frames`: the typed events and the frame parser
//! - `socket`: the WebSocket: connect, authenticate, read frames, ping
//! - `polling`: the fallback while push is down
//! - here: the client that runs them, reconnecting with backoff

mod frames;
mod polling;
mod socket;

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use frames::{
    auth_frame, parse_frame, FrameError, PushEvent, PushFrom, PushMember, DATA_TYPE_PREFIX,
};
pub use polling::ADVERTISED_POLL_INTERVAL;
pub use socket::{server_address, websocket_url, MAX_PUSH_MESSAGE_BYTES, PUSH_PATH, SUBPROTOCOL};

use super::error::PsnError;
use super::party_api::PartyApi;
use polling::Poller;
use socket::{connect, serve};

#[derive(Debug, Clone)]
pub struct PushOptions {
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A connection that lived this long resets the backoff.
    pub stable_after: Duration,
    /// Failed attempts in a row before polling stands in.
    pub fallback_after: u32,
    /// The polling interval; the advertised `msPollingInterval` by default.
    pub poll_interval: Duration,
    pub connect_timeout: Duration,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            ping_interval: Duration::from_secs(5),
            pong_timeout: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: Duration::from_secs(30),
            fallback_after: 2,
            poll_interval: ADVERTISED_POLL_INTERVAL,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The delay before reconnect attempt `failures` (1, 2, ...): "equal jitter", uniform in
/// [d/2, d] where d = base * 2^(failures-1) capped at max. Never zero, so no storm.
pub fn backoff_delay(opts: &PushOptions, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let d = opts
        .backoff_base
        .saturating_mul(1u32 << exp)
        .min(opts.backoff_max);
    let half = d / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// The running push connection. Dropping it (or calling `stop`) ends it.
#[derive(Debug)]
pub struct PushClient {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl PushClient {
    /// Starts push for the signed-in account. `session_id` is the party to poll when push is down.
    pub fn start(
        party: PartyApi,
        session_id: Option<String>,
        opts: PushOptions,
    ) -> (PushClient, mpsc::Receiver<PushEvent>) {
        let (tx, rx) = mpsc::channel(256);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(party, session_id, opts, tx, stop_rx));
        (
            PushClient {
                stop,
                task: Some(task),
            },
            rx,
        )
    }

    /// Stops and waits for the task to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for PushClient {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

async fn run(
    party: PartyApi,
    session_id: Option<String>,
    opts: PushOptions,
    tx: mpsc::Sender<PushEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let client = party.client().clone();
    let mut failures: u32 = 0;
    let mut poller = Poller::new(session_id);
    loop {
        if *stop.borrow() || tx.is_closed() {
            return;
        }
        let attempt = tokio::select! {
            r = connect(&client, &opts) => r,
            _ = stop.changed() => return,
        };
        let mut wait_at_least = Duration::ZERO;
        match attempt {
            Ok(ws) => {
                let _ = tx.send(PushEvent::Connected).await;
                if poller.active {
                    poller.switch(false, &opts, &tx).await;
                }
                let started = Instant::now();
                let reason = tokio::select! {
                    r = serve(ws, &client, &opts, &tx) => r,
                    _ = stop.changed() => return,
                };
                log::info!("PSN push: disconnected ({reason})");
                let _ = tx.send(PushEvent::Disconnected { reason }).await;
                if started.elapsed() >= opts.stable_after {
                    failures = 0;
                }
                failures += 1;
            }
            Err(
                e @ (PsnError::NotSignedIn
                | PsnError::SignInExpired
                | PsnError::CredentialsRejected
                | PsnError::CredentialsMissing
                | PsnError::Config(_)),
            ) => {
                log::warn!("PSN push: stopping: {e}");
                let _ = tx.send(PushEvent::Failed { error: e }).await;
                return;
            }
            Err(e) => {
                log::info!("PSN push: connecting failed: {e}");
                failures += 1;
                if let Some(after) = e.retry_after() {
                    wait_at_least = after;
                }
            }
        }
        if failures >= opts.fallback_after && poller.session_id.is_some() && !poller.active {
            poller.switch(true, &opts, &tx).await;
        }
        let delay = backoff_delay(&opts, failures).max(wait_at_least);
        let until = Instant::now() + delay;
        // Wait for the next attempt; poll the party meanwhile when push has failed repeatedly.
        loop {
            let next_poll = if poller.active {
                poller.next_at.max(Instant::now())
            } else {
                until
            };
            if next_poll >= until {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    _ = stop.changed() => return,
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next_poll) => {}
                _ = stop.changed() => return,
            }
            poller.next_at = Instant::now() + opts.poll_interval;
            if !poller.poll(&party, &tx).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_cap() {
        let o = PushOptions::default();
        for f in 1..20 {
            let d = backoff_delay(&o, f);
            let cap = o
                .backoff_base
                .saturating_mul(1 << (f - 1).min(16))
                .min(o.backoff_max);
            assert!(d >= cap / 2 && d <= cap, "{f}: {d:?}");
        }
    }
}
