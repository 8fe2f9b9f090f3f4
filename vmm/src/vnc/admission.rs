//! Who gets in, per listener: a cap on connections still in the handshake, and the pace at
//! which password answers are judged.
//!
//! Each listener has its own [`Gate`], so connections flooding the loopback TCP port (which
//! any local user can reach) never take the slots of the owner-only unix socket the console
//! uses. Authenticated clients are counted apart, across listeners, by the server.
//!
//! RFB allows one VNC-password answer per connection (the server closes after a failure),
//! so the per-connection attempt limit is one. What stops guessing is the [`AuthThrottle`]:
//! after a wrong answer the result is held back for a delay that doubles with every
//! consecutive failure on that listener (up to a ceiling), and answers take turns, so opening
//! more connections does not buy more guesses. A right answer resets the back-off. This is
//! TigerVNC's blacklist idea, kept per listener because every TCP peer is 127.0.0.1 here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The delay after the first failure is multiplied by at most this (1 s becomes 16 s).
pub const MAX_BACKOFF_FACTOR: u32 = 16;

/// Refused connections are logged at most this often (a flood must not flood the log).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// When the results of password answers may go out, for one listener.
pub struct AuthThrottle {
    first_delay: Duration,
    state: Mutex<ThrottleState>,
}

struct ThrottleState {
    /// Consecutive wrong answers since the last right one.
    failures: u32,
    /// No answer is judged before this: the result of the last failure goes out then.
    free_at: Instant,
}

impl AuthThrottle {
    pub fn new(first_delay: Duration) -> AuthThrottle {
        AuthThrottle {
            first_delay,
            state: Mutex::new(ThrottleState {
                failures: 0,
                free_at: Instant::now(),
            }),
        }
    }

    /// Records an answer given at `now` that was right (`ok`) or wrong, and returns when its
    /// SecurityResult may be sent. An answer waits for the turn of any failure before it;
    /// a wrong one then waits its own delay, and the next answer waits for that.
    pub fn attempt(&self, ok: bool, now: Instant) -> Instant {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let turn = s.free_at.max(now);
        if ok {
            s.failures = 0;
            return turn;
        }
        s.failures = s.failures.saturating_add(1);
        let factor = 1u32
            .checked_shl(s.failures - 1)
            .unwrap_or(u32::MAX)
            .min(MAX_BACKOFF_FACTOR);
        let reply = turn + self.first_delay * factor;
        s.free_at = reply;
        reply
    }
}

/// One listener's admission state.
pub struct Gate {
    /// "unix" or "tcp", for log lines.
    pub kind: &'static str,
    pub throttle: AuthThrottle,
    max_pending: usize,
    pending: AtomicUsize,
    refusals: Mutex<RefusalLog>,
}

struct RefusalLog {
    unlogged: u64,
    last: Option<Instant>,
}

impl Gate {
    pub fn new(kind: &'static str, max_pending: usize, first_delay: Duration) -> Gate {
        Gate {
            kind,
            throttle: AuthThrottle::new(first_delay),
            max_pending,
            pending: AtomicUsize::new(0),
            refusals: Mutex::new(RefusalLog {
                unlogged: 0,
                last: None,
            }),
        }
    }

    /// A slot for a new connection's handshake, or None when the listener has
    /// `max_pending` handshakes under way. The slot is given back when dropped.
    pub fn admit(self: &Arc<Self>) -> Option<PendingSlot> {
        let mut n = self.pending.load(Ordering::Acquire);
        loop {
            if n >= self.max_pending {
                self.note_refusal();
                return None;
            }
            match self
                .pending
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(PendingSlot(self.clone())),
                Err(now) => n = now,
            }
        }
    }

    fn note_refusal(&self) {
        let mut log = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        log.unlogged += 1;
        let now = Instant::now();
        if log
            .last
            .is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        log::warn!(
            "VNC: refused {} {} connection(s): {} handshakes already under way",
            log.unlogged,
            self.kind,
            self.max_pending
        );
        log.unlogged = 0;
        log.last = Some(now);
    }
}

/// A handshake slot on a listener; dropping it frees the slot.
pub struct PendingSlot(Arc<Gate>);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(1);

    #[test]
    fn failures_back_off_and_a_success_resets() {
        let t = AuthThrottle::new(D);
        let t0 = Instant::now();
        let r1 = t.attempt(false, t0);
        assert_eq!(r1 - t0, D);
        // The next answer, given once the first result arrived, waits twice as long.
        let r2 = t.attempt(false, r1);
        assert_eq!(r2 - r1, 2 * D);
        let ok = t.attempt(true, r2);
        assert_eq!(ok, r2, "a right answer after the turn is answered at once");
        let r3 = t.attempt(false, ok);
        assert_eq!(r3 - ok, D, "the success reset the back-off");
    }

    #[test]
    fn the_delay_has_a_ceiling() {
        let t = AuthThrottle::new(D);
        let mut now = Instant::now();
        for _ in 0..40 {
            let r = t.attempt(false, now);
            assert!(r - now <= D * MAX_BACKOFF_FACTOR);
            now = r;
        }
    }

    #[test]
    fn parallel_answers_take_turns() {
        let t = AuthThrottle::new(D);
        let t0 = Instant::now();
        let a = t.attempt(false, t0);
        let b = t.attempt(false, t0);
        assert_eq!(a - t0, D);
        assert_eq!(b - t0, D + 2 * D, "the second guess waits for the first");
        // A right answer queued behind them goes out when their turn is over, not before.
        assert_eq!(t.attempt(true, t0), b);
    }

    #[test]
    fn pending_slots_are_capped_and_given_back() {
        let g = Arc::new(Gate::new("tcp", 2, D));
        let a = g.admit().expect("first");
        let _b = g.admit().expect("second");
        assert!(g.admit().is_none());
        drop(a);
        let _c = g.admit().expect("a freed slot");
        assert!(g.admit().is_none());
    }
}
