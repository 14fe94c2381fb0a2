//! Deadlines without scanning every client: a min-heap of (when, who).
//!
//! Each connection has at most one entry. Activity never touches the heap:
//! when an entry comes due, the broker recomputes that connection's real
//! deadline and, if it moved later, files a new entry. So a busy connection
//! costs one heap operation per keep-alive period, and the poll timeout is
//! simply the earliest entry: an idle broker sleeps until a deadline is due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
}

impl Timers {
    /// Files a deadline for connection `key` (whose serial is `serial`).
    pub fn schedule(&mut self, at: Instant, key: usize, serial: u64) {
        self.heap.push(Reverse((at, key, serial)));
    }

    /// Time until the earliest deadline, zero if one is already due.
    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, _, _))| at.saturating_duration_since(now))
    }

    /// Removes and returns one entry that is due at `now`, as
    /// (when it was filed for, key, serial).
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, usize, u64)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
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

    #[test]
    fn earliest_first_and_only_when_due() {
        let now = Instant::now();
        let mut t = Timers::default();
        t.schedule(now + Duration::from_secs(5), 1, 10);
        t.schedule(now + Duration::from_secs(1), 2, 20);
        assert_eq!(t.next_timeout(now), Some(Duration::from_secs(1)));
        assert_eq!(t.pop_due(now), None);
        assert_eq!(
            t.pop_due(now + Duration::from_secs(2)),
            Some((now + Duration::from_secs(1), 2, 20))
        );
        assert_eq!(t.pop_due(now + Duration::from_secs(2)), None);
        assert_eq!(t.len(), 1);
    }
}
