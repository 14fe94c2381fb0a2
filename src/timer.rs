//! Deadlines without scanning every client: one min-heap of (when, what is
//! due) for everything the engine does on time: a connection's keep-alive
//! or connect timeout, `$SYS`, the expiry check of offline sessions, a
//! session's delayed Will or expiry, retained messages' expiry. (The
//! store's interval fsync keeps its own deadline: it moves with every
//! write; the loop's accept back-off is its own single deadline.)
//!
//! Each connection has at most one entry. Activity never touches the heap:
//! when an entry comes due, the broker recomputes that connection's real
//! deadline and, if it moved later, files a new entry. So a busy connection
//! costs one heap operation per keep-alive period, and the poll timeout is
//! simply the earliest entry: an idle broker sleeps until a deadline is due.

//!
//! Times kept per connection are milliseconds on the broker's clock (since
//! it started): 8 bytes instead of an `Instant`'s 16, and a heap entry of
//! 16 bytes instead of 32. Every idle client pays for these.

use crate::keys::{ConnKey, SessionKey};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Milliseconds from `epoch` to `t` (0 if `t` is earlier).
pub fn millis(epoch: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

/// `ms` milliseconds after `epoch`.
pub fn instant(epoch: Instant, ms: u64) -> Instant {
    epoch + Duration::from_millis(ms)
}

/// What a timer entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// A connection's keep-alive or connect timeout: (slab key, serial).
    Conn(ConnKey, u32),
    /// The next `$SYS` publication.
    Sys,
    /// The next check of offline sessions for expiry.
    SessionExpiry,
    /// An offline session's delayed Will or Session Expiry Interval
    /// (MQTT 5) may be due, or a subscriber publishers wait for may have
    /// stalled.
    Session(SessionKey),
    /// A retained message's Message Expiry Interval ends.
    RetainedExpiry,
}

/// Entries are packed as (key, serial) pairs of `u32`, so each is 16
/// bytes: connection keys are bounded by the number of open sockets, and
/// the broker-wide entries use the keys above `BROKER_KEYS`.
const BROKER_KEYS: u32 = u32::MAX - 4;

impl Due {
    fn pack(self) -> Option<(u32, u32)> {
        match self {
            Due::Conn(key, serial) => u32::try_from(key.index())
                .ok()
                .filter(|&k| k < BROKER_KEYS)
                .map(|k| (k, serial)),
            Due::Sys => Some((BROKER_KEYS, 0)),
            Due::SessionExpiry => Some((BROKER_KEYS + 1, 0)),
            Due::RetainedExpiry => Some((BROKER_KEYS + 3, 0)),
            // The session key goes where a connection's serial would.
            Due::Session(sid) => u32::try_from(sid.index())
                .ok()
                .map(|s| (BROKER_KEYS + 2, s)),
        }
    }

    fn unpack((key, serial): (u32, u32)) -> Due {
        match key.checked_sub(BROKER_KEYS) {
            None => Due::Conn(ConnKey::saturating(key as usize), serial),
            Some(0) => Due::Sys,
            Some(1) => Due::SessionExpiry,
            Some(2) => Due::Session(SessionKey::saturating(serial as usize)),
            Some(_) => Due::RetainedExpiry,
        }
    }
}

#[derive(Debug, Default)]
pub struct Timers {
    /// (when in ms, packed [`Due`]).
    heap: BinaryHeap<Reverse<(u64, (u32, u32))>>,
    /// Entries known to be stale (their connection closed or re-filed).
    /// They would only go when due, up to 1.5 x Keep Alive later, so
    /// connection churn is purged in bulk instead (see `needs_purge`).
    stale: usize,
}

impl Timers {
    /// Files a deadline (in ms on the broker's clock).
    pub fn schedule(&mut self, at: u64, due: Due) {
        if let Some(packed) = due.pack() {
            self.heap.push(Reverse((at, packed)));
        }
    }

    /// One entry has become stale: its connection closed, or it was
    /// superseded by an earlier deadline.
    pub fn forget(&mut self) {
        self.stale += 1;
    }

    /// A stale entry left the heap by coming due.
    pub fn stale_popped(&mut self) {
        self.stale = self.stale.saturating_sub(1);
    }

    /// Whether most of the heap is stale (and enough of it to be worth an
    /// O(n) pass): then `purge` keeps memory at what live connections need.
    pub fn needs_purge(&self) -> bool {
        self.stale >= 1024 && self.stale * 2 > self.heap.len()
    }

    /// Keeps only the entries `live(at, due)` accepts and gives the freed
    /// capacity back.
    pub fn purge(&mut self, mut live: impl FnMut(u64, Due) -> bool) {
        self.heap
            .retain(|Reverse((at, packed))| live(*at, Due::unpack(*packed)));
        self.heap.shrink_to_fit();
        self.stale = 0;
    }

    /// The earliest deadline (ms).
    pub fn next_due(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns one entry that is due at `now` (ms), as (when
    /// it was filed for, what is due).
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, Due)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => {
                let Reverse((at, packed)) = self.heap.pop()?;
                Some((at, Due::unpack(packed)))
            }
            _ => None,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(index: usize) -> ConnKey {
        ConnKey::saturating(index)
    }

    #[test]
    fn earliest_first_and_only_when_due() {
        let mut t = Timers::default();
        t.schedule(5000, Due::Conn(c(1), 10));
        t.schedule(1000, Due::Conn(c(2), 20));
        t.schedule(3000, Due::Sys);
        assert_eq!(t.next_due(), Some(1000));
        assert_eq!(t.pop_due(999), None);
        assert_eq!(t.pop_due(4000), Some((1000, Due::Conn(c(2), 20))));
        assert_eq!(t.pop_due(4000), Some((3000, Due::Sys)));
        assert_eq!(t.pop_due(4000), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn every_kind_of_due_round_trips_and_keys_never_collide() {
        for due in [
            Due::Conn(c(0), 0),
            Due::Conn(c(BROKER_KEYS as usize - 1), u32::MAX),
            Due::Sys,
            Due::SessionExpiry,
            Due::Session(SessionKey::saturating(0)),
            Due::Session(SessionKey::saturating(u32::MAX as usize)),
            Due::RetainedExpiry,
        ] {
            assert_eq!(due.pack().map(Due::unpack), Some(due));
        }
        assert_eq!(Due::Conn(c(BROKER_KEYS as usize), 0).pack(), None);
        assert_eq!(Due::Conn(c(usize::MAX), 0).pack(), None);
        let mut t = Timers::default();
        t.schedule(1, Due::Conn(c(usize::MAX), 0));
        assert_eq!(t.len(), 0, "an unpackable key is not filed");
    }

    #[test]
    fn stale_entries_are_purged_in_bulk() {
        let mut t = Timers::default();
        for key in 0..3000 {
            t.schedule(1000 + key as u64, Due::Conn(c(key), 1));
        }
        for _ in 0..1024 {
            t.forget();
        }
        assert!(!t.needs_purge(), "a third stale: not yet");
        for _ in 0..1000 {
            t.forget();
        }
        assert!(t.needs_purge());
        t.purge(|_, due| matches!(due, Due::Conn(key, _) if key.index() % 3 == 0));
        assert_eq!((t.len(), t.needs_purge()), (1000, false));
        assert_eq!(t.pop_due(u64::MAX), Some((1000, Due::Conn(c(0), 1))));
    }

    #[test]
    fn clock_round_trips_in_whole_milliseconds() {
        let epoch = Instant::now();
        let t = epoch + Duration::from_micros(1_500_700);
        assert_eq!(millis(epoch, t), 1500);
        assert!(instant(epoch, millis(epoch, t)) <= t);
        assert_eq!(millis(t, epoch), 0, "earlier than the epoch");
    }
}
