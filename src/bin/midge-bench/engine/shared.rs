//! What the worker threads share: the run's clock and tag, when setup
//! ended, an abort flag, and the end-to-end flow-control counters.
//!
//! A subscriber's "behind" count (messages published to it and not yet
//! received) is raised by the threads of its publishers and lowered by the
//! thread of its own client. Each thread keeps its changes in a plain
//! local delta and adds them to the shared atomic once per loop iteration
//! ([`Flow::flush`]), so the per-message cost stays a plain add; a thread
//! reads `shared + its own delta`, at most one iteration of the others'
//! work stale, which is plenty for a window of hundreds of messages.

use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};
use std::time::{Duration, Instant};

/// `start_ns` before every thread has connected its clients.
const NOT_STARTED: u64 = u64::MAX;

pub struct Shared {
    pub epoch: Instant,
    /// Marks this run's payloads: a message from another run or client on
    /// the same broker is counted as unexpected, not mistaken for ours.
    pub tag: u32,
    pub threads: usize,
    /// Clients over all threads.
    pub clients: usize,
    behind: Vec<AtomicI64>,
    /// Part of `behind` written off after a stall (QoS 0 losses).
    credit: Vec<AtomicI64>,
    setup_done: AtomicUsize,
    /// Subscribers ready (connected and subscribed), over all threads.
    subs_ready: AtomicUsize,
    subscribers: usize,
    /// Threads that stopped publishing (and published their counts).
    stopped: AtomicUsize,
    /// Threads done with their drain.
    finished: AtomicUsize,
    /// When every thread was connected and subscribed, ns after `epoch`.
    start_ns: AtomicU64,
    pub abort: AtomicBool,
    /// Each thread's counters for the progress line: sent, acked,
    /// delivered, clients ready, in flight (stored once a second).
    progress: Vec<[AtomicU64; 5]>,
    /// Each thread's acks and deliveries so far (stored every iteration):
    /// a thread whose publishers feed another thread's subscribers sees
    /// the run progress through them.
    activity: Vec<AtomicU64>,
}

impl Shared {
    pub fn new(subscribers: usize, clients: usize, threads: usize, tag: u32) -> Shared {
        Shared {
            epoch: Instant::now(),
            tag,
            threads,
            clients,
            behind: (0..subscribers).map(|_| AtomicI64::new(0)).collect(),
            credit: (0..subscribers).map(|_| AtomicI64::new(0)).collect(),
            setup_done: AtomicUsize::new(0),
            subs_ready: AtomicUsize::new(0),
            subscribers,
            stopped: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            start_ns: AtomicU64::new(NOT_STARTED),
            abort: AtomicBool::new(false),
            progress: (0..threads).map(|_| Default::default()).collect(),
            activity: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// This thread has all its clients ready; the last one to say so
    /// starts the clock for everyone.
    pub fn setup_finished(&self, now_ns: u64) {
        if self.setup_done.fetch_add(1, Relaxed) + 1 == self.threads {
            self.start_ns.store(now_ns, Relaxed);
        }
    }

    pub fn subscriber_ready(&self) {
        self.subs_ready.fetch_add(1, SeqCst);
    }

    /// Every subscriber is subscribed: messages published now are counted.
    pub fn subscribers_ready(&self) -> bool {
        self.subs_ready.load(SeqCst) >= self.subscribers
    }

    pub fn start_ns(&self) -> Option<u64> {
        Some(self.start_ns.load(Relaxed)).filter(|&v| v != NOT_STARTED)
    }

    /// Stores a thread's counters for the progress line.
    pub fn report(&self, worker: usize, values: [u64; 5]) {
        if let Some(slot) = self.progress.get(worker) {
            for (a, v) in slot.iter().zip(values) {
                a.store(v, Relaxed);
            }
        }
    }

    /// Every thread's counters added up (each as of its last report).
    pub fn reported(&self) -> [u64; 5] {
        let mut sum = [0; 5];
        for slot in &self.progress {
            for (s, a) in sum.iter_mut().zip(slot) {
                *s += a.load(Relaxed);
            }
        }
        sum
    }

    /// Stores this thread's activity; returns every thread's, added up.
    pub fn activity(&self, worker: usize, mine: u64) -> u64 {
        if let Some(a) = self.activity.get(worker) {
            a.store(mine, Relaxed);
        }
        self.activity.iter().map(|a| a.load(Relaxed)).sum()
    }

    /// This thread publishes no more; its last counts are flushed.
    pub fn publishing_stopped(&self) {
        self.stopped.fetch_add(1, SeqCst);
    }

    /// Whether every thread stopped publishing: only then can a thread tell
    /// that its subscribers have received everything.
    pub fn all_stopped(&self) -> bool {
        self.stopped.load(SeqCst) == self.threads
    }

    /// Waits (bounded) until every thread is done draining, so that what
    /// one thread does on leaving (clearing retained messages) does not
    /// reach another's subscribers while they still count.
    pub fn finish_together(&self, limit: Duration) {
        self.finished.fetch_add(1, SeqCst);
        let deadline = Instant::now() + limit;
        while self.finished.load(SeqCst) < self.threads
            && !self.abort.load(Relaxed)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn set_credit(&self, sub: u32, v: i64) {
        self.credit[sub as usize].store(v, Relaxed);
    }
}

/// One thread's view of the behind counters. With one thread the local
/// deltas are the whole count and never flushed (the shared counters stay
/// 0): no atomic operation per loop iteration.
pub struct Flow {
    delta: Vec<i64>,
    touched: Vec<u32>,
    shared: bool,
}

impl Flow {
    pub fn new(subscribers: usize, threads: usize) -> Flow {
        Flow {
            delta: vec![0; subscribers],
            touched: Vec::new(),
            shared: threads > 1,
        }
    }

    #[inline]
    pub fn add(&mut self, sub: u32, n: i64) {
        let d = &mut self.delta[sub as usize];
        if *d == 0 && self.shared {
            self.touched.push(sub);
        }
        *d += n;
    }

    /// Messages published to `sub` and not received by it, minus what was
    /// written off.
    #[inline]
    pub fn owed(&self, shared: &Shared, sub: u32) -> i64 {
        let i = sub as usize;
        shared.behind[i].load(Relaxed) + self.delta[i] - shared.credit[i].load(Relaxed)
    }

    pub fn behind(&self, shared: &Shared, sub: u32) -> i64 {
        shared.behind[sub as usize].load(Relaxed) + self.delta[sub as usize]
    }

    /// Publishes this thread's changes to the other threads.
    pub fn flush(&mut self, shared: &Shared) {
        for s in self.touched.drain(..) {
            let d = std::mem::take(&mut self.delta[s as usize]);
            if d != 0 {
                shared.behind[s as usize].fetch_add(d, Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_reach_other_threads_when_flushed() {
        let shared = Shared::new(2, 2, 2, 7);
        let (mut publisher, mut subscriber) = (Flow::new(2, 2), Flow::new(2, 2));
        publisher.add(1, 5);
        assert_eq!(
            (publisher.owed(&shared, 1), subscriber.owed(&shared, 1)),
            (5, 0)
        );
        publisher.flush(&shared);
        subscriber.add(1, -2);
        assert_eq!(subscriber.owed(&shared, 1), 3);
        subscriber.flush(&shared);
        assert_eq!(publisher.behind(&shared, 1), 3);
        // A write-off leaves the count but forgives it.
        shared.set_credit(1, 3);
        assert_eq!(
            (publisher.owed(&shared, 1), publisher.behind(&shared, 1)),
            (0, 3)
        );
    }

    #[test]
    fn one_thread_keeps_its_count_local() {
        let shared = Shared::new(1, 1, 1, 7);
        let mut flow = Flow::new(1, 1);
        flow.add(0, 4);
        flow.flush(&shared);
        assert_eq!(shared.behind[0].load(Relaxed), 0);
        assert_eq!(flow.owed(&shared, 0), 4);
    }
}
