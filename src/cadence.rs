//! The 10 ms cadence the playout and the network side share.
//!
//! The network side handles what arrived once per pass (`runtime`), the playout plays once per
//! tick (`audio::playout`). A pass that comes just before the tick puts every packet that
//! arrived since the last one into its member's ring in time for that tick; a pass at any
//! other phase would hold a packet back for up to one more tick. So the playout says when
//! its next tick is, and the network side times its passes by that.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::sync::LazyLock;

/// The playout's period.
pub const PERIOD: Duration = Duration::from_millis(10);
/// The network's passes per playout tick (docs/decisions/0013-network-in-passes.md measured
/// one and two).
const PASSES_PER_TICK: u32 = 1;
/// The time between two network passes.
const PASS_PERIOD: Duration =
    Duration::from_nanos(PERIOD.as_nanos() as u64 / PASSES_PER_TICK as u64);
/// How long before a tick the network pass comes: a pass takes well under a millisecond.
const PASS_LEAD: Duration = Duration::from_millis(2);

static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);
/// The phase of the playout's ticks: a tick's time in ns since `ORIGIN`, modulo the period,
/// plus one (0: no playout has ticked yet).
static TICK_PHASE: AtomicU64 = AtomicU64::new(0);

/// `at`'s place in the period, in ns (times before `ORIGIN` too).
fn phase_of(at: Instant) -> u64 {
    let period = PERIOD.as_nanos() as u64;
    match at.checked_duration_since(*ORIGIN) {
        Some(after) => after.as_nanos() as u64 % period,
        None => (period - (*ORIGIN - at).as_nanos() as u64 % period) % period,
    }
}

/// The playout's next tick is at `at`.
pub fn playout_ticks_at(at: Instant) {
    let phase = phase_of(at);
    TICK_PHASE.store(phase + 1, Ordering::Relaxed);
}

/// When the network's next pass should be: the first time after `now` on the grid of
/// [`PASSES_PER_TICK`] passes per tick that has a pass [`PASS_LEAD`] before each of the
/// playout's ticks (or just one pass period from now while nothing plays).
pub fn next_network_pass(now: Instant) -> Instant {
    let phase = TICK_PHASE.load(Ordering::Relaxed);
    if phase == 0 {
        return now + PASS_PERIOD;
    }
    let period = PERIOD.as_nanos() as u64;
    let pass_period = PASS_PERIOD.as_nanos() as u64;
    let pass_phase = (phase - 1 + period - PASS_LEAD.as_nanos() as u64) % pass_period;
    let into_pass = (phase_of(now) + period - pass_phase) % pass_period;
    now + Duration::from_nanos(pass_period - into_pass)
}

thread_local! {
    /// On the network thread during a pass: when the pass before it began.
    static PREVIOUS_PASS: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The network thread begins a pass; `previous` is when the one before it began.
pub fn network_pass_begins(previous: Instant) {
    PREVIOUS_PASS.with(|p| p.set(Some(previous)));
}

/// When a packet that the network side takes now arrived, as well as we can know.
///
/// A packet taken in a pass arrived at some time since the pass before it; the playout
/// schedules a packet from its arrival, so stamping it with the pass's own time would play
/// every voice half a pass later on average. The middle of that window is the unbiased guess
/// (at most a pass period back, for a pass that came late on a busy machine). Anywhere else
/// (tests driving a peer on a runtime of their own) it is `now`.
pub fn packet_arrival(now: Instant) -> Instant {
    match PREVIOUS_PASS.with(Cell::get) {
        Some(previous) => {
            let window = now.saturating_duration_since(previous).min(2 * PASS_PERIOD);
            now - window / 2
        }
        None => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_come_just_before_the_ticks() {
        let now = Instant::now();
        let tick = now + Duration::from_millis(7);
        playout_ticks_at(tick);
        assert_eq!(packet_arrival(now), now, "off the network thread");
        network_pass_begins(now - Duration::from_millis(10));
        assert_eq!(packet_arrival(now), now - Duration::from_millis(5));
        network_pass_begins(now - Duration::from_secs(1));
        assert_eq!(packet_arrival(now), now - PASS_PERIOD);
        // A pass 2 ms before the tick, then every pass period after that.
        let pass_period = PASS_PERIOD;
        assert_eq!(next_network_pass(now), tick - PASS_LEAD);
        let at_pass = tick - PASS_LEAD;
        assert_eq!(next_network_pass(at_pass), at_pass + pass_period);
        assert_eq!(
            next_network_pass(at_pass + Duration::from_millis(1)),
            at_pass + pass_period
        );
        assert_eq!(
            next_network_pass(at_pass + pass_period),
            at_pass + 2 * pass_period
        );
        // Always in the future, at most one pass period away.
        for ms in 0..25 {
            let t = now + Duration::from_micros(ms * 730);
            let next = next_network_pass(t);
            assert!(next > t && next - t <= pass_period, "{ms}");
        }
    }
}
