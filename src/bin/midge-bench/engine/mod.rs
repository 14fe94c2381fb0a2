//! The generator: worker threads, each with its own mio loop over its share
//! of the clients (one slab of non-blocking sockets, output batched per
//! loop iteration), started together and merged at the end (`merge`).
//!
//! Flow control, so the generator itself never grows without bound:
//! - each publisher writes at most [`CHUNK`] bytes ahead of its socket;
//! - at QoS 1/2 each publisher keeps at most `inflight` messages
//!   unacknowledged (fewer if an MQTT 5 broker's Receive Maximum says so);
//! - end to end, a publisher waits while any subscriber its topic reaches is
//!   `backlog` or more messages behind (published to it, not yet received;
//!   counted across threads, see `shared`). This keeps every subscriber's
//!   queue in the broker below the broker's queue limit, so the run
//!   measures the broker's sustainable lossless rate rather than its
//!   queue-overflow policy (`--backlog 0` turns it off).
//!
//! Publishers wait in a run queue and are woken by what unblocks them (an
//! ack, a writable socket, a subscriber catching up, their schedule's
//! timer): the loop never scans idle clients per iteration. When the
//! broker holds a rate-limited publisher back (acks, a full socket, slow
//! deliveries) while a message is due, the messages it then sends carry
//! the times they were *due*, so the broker is charged the wait (no
//! coordinated omission); otherwise messages are stamped when sent.

mod connect; // CONNECT, CONNACK, SUBSCRIBE; what went wrong, in words
mod io; // sockets: connect, read, write, lost clients
pub mod merge; // the threads' parts into one outcome
mod phases; // warm-up, measurement, drain; progress; each thread's part
pub mod shared; // across threads: clock, abort, flow-control counters
mod traffic; // packets from the broker; publishers refilled

use crate::plan::Plan;
use crate::stats::{Histogram, IdBuild, Track};
use bytes::BytesMut;
pub use merge::{Outcome, Tick};
use midge::protocol::ProtocolLevel;
use mio::net::TcpStream;
use mio::{Events, Poll};
use shared::{Flow, Shared};
use slab::Slab;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes a publisher may have waiting for its socket.
const CHUNK: usize = 64 * 1024;
/// Bytes read from one socket before other sockets get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// Payload header: run tag (u32), stream id (u32), sequence (u64), send
/// time (u64 ns).
pub const HEADER: usize = 24;
/// Filters per SUBSCRIBE packet.
const FILTERS_PER_SUBSCRIBE: usize = 50;
/// Longest wait for in-flight messages after publishing stops.
const DRAIN_MAX: Duration = Duration::from_secs(10);

pub struct Settings {
    pub addr: SocketAddr,
    pub level: ProtocolLevel,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    /// Client ids not set by the workload are this and a number.
    pub client_prefix: String,
    /// MQTT 5: Session Expiry Interval of clients with a persistent session.
    pub session_expiry: u32,
    pub keep_alive: u16,
    pub duration: Duration,
    pub warmup: Duration,
    /// Messages to publish in the measured phase; 0 = no cap.
    pub count: u64,
    pub inflight: usize,
    /// End-to-end window per subscriber, in messages; 0 = none.
    pub backlog: i64,
    pub connect_window: usize,
    /// New connections per second over all threads; 0 = no limit.
    pub connect_rate: f64,
    /// Longest wait for one client's TCP connection and CONNACK.
    pub connect_timeout: Duration,
    pub setup_timeout: Duration,
    pub broker_pid: Option<u32>,
    pub progress: bool,
    /// Keep latency percentiles per second (for `--plot`): one more
    /// histogram update per delivery, so only when asked for.
    pub latency_timeline: bool,
    pub threads: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Setup,
    Warmup,
    Measure,
    Drain,
    Done,
}

#[derive(Clone, Copy)]
enum Role {
    Pub(u32),
    Sub(u32),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CState {
    Connecting,
    WaitConnack,
    WaitSuback(usize),
    Ready,
}

struct Client {
    sock: TcpStream,
    role: Role,
    state: CState,
    connected: bool,
    rbuf: Vec<u8>,
    rlen: usize,
    wbuf: BytesMut,
    dirty: bool,
    read_pending: bool,
    last_tx: Instant,
    /// When its TCP connect started (for the connect timeout).
    started: Instant,
    /// Seconds; an MQTT 5 broker may set its own (Server Keep Alive).
    keep_alive: u16,
}

struct Pending {
    stream: u32,
    seq: u64,
    /// 1: waiting for PUBACK/PUBREC; 2: PUBREC seen, waiting for PUBCOMP.
    stage: u8,
    qos: u8,
}

struct Publisher {
    owned: bool,
    client: Option<usize>,
    client_id: Option<String>,
    clean: bool,
    streams: Vec<u32>,
    next_stream: usize,
    pending: HashMap<u16, Pending>,
    next_pkid: u16,
    /// Messages per second (0 = unlimited) and schedule offset (0..1).
    rate: f64,
    offset: f64,
    rate_sent: u64,
    /// When its schedule started (ns after the epoch): the shared start,
    /// or during a ramp-up its first message.
    schedule: Option<u64>,
    /// Held back by flow control while a message was due.
    late: bool,
    /// Unacknowledged messages allowed.
    inflight: usize,
    queued: bool,
    rate_wait: bool,
    blocked_on: Option<u32>,
}

struct Subscriber {
    owned: bool,
    client: Option<usize>,
    client_id: Option<String>,
    clean: bool,
    filters: Vec<String>,
    qos: u8,
    group: u16,
    tracks: HashMap<u32, Track, IdBuild>,
    /// Local publishers waiting for this subscriber to catch up.
    waiters: Vec<u32>,
    /// In `Bench::blocked_subs`.
    listed: bool,
    publishes: u64,
    dup: u64,
    ooo: u64,
    unexpected: u64,
    /// Retained messages sent on subscribing (not part of any stream).
    retained: u64,
}

struct Stream {
    topic: String,
    subs: Vec<u32>,
    qos: u8,
    retain: bool,
    size: (usize, usize),
    sent: u64,
}

#[derive(Default, Clone, Copy)]
pub struct Counters {
    pub sent: u64,
    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) received.
    pub acked: u64,
    /// PUBLISH packets received by subscribers.
    pub delivered: u64,
}

impl Counters {
    fn minus(self, b: Counters) -> Counters {
        Counters {
            sent: self.sent - b.sent,
            acked: self.acked - b.acked,
            delivered: self.delivered - b.delivered,
        }
    }
}

pub struct Bench {
    s: Arc<Settings>,
    shared: Arc<Shared>,
    /// This worker's number (0 measures the broker's memory and CPU).
    worker: usize,
    flow: Flow,
    poll: Poll,
    clients: Slab<Client>,
    pubs: Vec<Publisher>,
    subs: Vec<Subscriber>,
    streams: Vec<Stream>,
    phase: Phase,
    to_start: VecDeque<Role>,
    started: usize,
    handshaking: usize,
    ready: usize,
    total_clients: usize,
    setup_reported: bool,
    /// Publishers were let go during the ramp-up.
    ramp_go: bool,
    runnable: VecDeque<u32>,
    /// Rate-limited publishers by the time (ns) their next message is due.
    timers: BinaryHeap<Reverse<(u64, u32)>>,
    /// Subscribers (of other threads, or stalled) that local publishers wait on.
    blocked_subs: Vec<u32>,
    dirty: Vec<usize>,
    pending_reads: Vec<usize>,
    payload: Vec<u8>,
    rng: u64,
    epoch: Instant,
    now: Instant,
    phase_start: Instant,
    setup_end: Option<Instant>,
    last_progress: Instant,
    /// All threads' acks and deliveries when last looked at.
    seen_activity: u64,
    next_tick: Instant,
    next_check: Instant,
    tick_base: Counters,
    /// All threads' counters at the last progress line (worker 0).
    progress_base: Counters,
    tick_hist: Histogram,
    timeline: Vec<merge::TickRaw>,
    /// Start and end of the measured phase, seconds after the epoch.
    window: (f64, f64),
    cap: u64,
    cap_reached: bool,
    total_pending: usize,
    c: Counters,
    measure_base: Counters,
    measure_end: Counters,
    hist: Histogram,
    /// Measured latency per subscriber group, when there are several.
    group_hist: Vec<Histogram>,
    stalls: u64,
    disconnects: u64,
    drain_timed_out: bool,
    fatal: Option<String>,
    rss_connected: Option<(u64, u64)>,
    cpu_at_measure: (f64, Option<f64>),
    cpu_measure: (f64, Option<f64>),
    secs: [f64; 4],
}

fn elapsed_ns(epoch: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(epoch).as_nanos() as u64
}

/// Runs the plan on `settings.threads` worker threads and merges what they
/// measured. `rss_before`: the broker's memory before any client connected.
pub fn run(s: Settings, plan: Plan, rss_before: Option<(u64, u64)>) -> Outcome {
    let threads = s.threads.clamp(1, plan.clients().max(1));
    let tag = std::process::id().rotate_left(16) ^ seed();
    let shared = Arc::new(Shared::new(plan.subs.len(), plan.clients(), threads, tag));
    let s = Arc::new(s);
    let plan = Arc::new(plan);
    let handles: Vec<_> = (0..threads)
        .map(|w| {
            let (s, mine, plan) = (s.clone(), shared.clone(), plan.clone());
            let started = std::thread::Builder::new()
                .name(format!("bench-{w}"))
                .spawn(move || match Bench::new(s, mine.clone(), &plan, w) {
                    Ok(b) => b.run(),
                    Err(e) => {
                        mine.abort.store(true, Relaxed);
                        merge::Part::failed(format!("cannot start a worker: {e}"))
                    }
                });
            if started.is_err() {
                // The others would wait for it: stop them.
                shared.abort.store(true, Relaxed);
            }
            started
        })
        .collect();
    let parts: Vec<merge::Part> = handles
        .into_iter()
        .map(|h| match h {
            Ok(h) => h
                .join()
                .unwrap_or_else(|_| merge::Part::failed("a worker thread panicked".into())),
            Err(e) => merge::Part::failed(format!("cannot start a thread: {e}")),
        })
        .collect();
    merge::merge(&plan, parts, rss_before, shared.epoch)
}

/// A few bits that differ between runs started in the same process.
fn seed() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.subsec_nanos() ^ (t.as_secs() as u32)
}

impl Bench {
    fn new(
        s: Arc<Settings>,
        shared: Arc<Shared>,
        plan: &Plan,
        worker: usize,
    ) -> std::io::Result<Bench> {
        let now = Instant::now();
        let threads = shared.threads;
        let mine = |i: usize| i % threads == worker;
        let mut pubs: Vec<Publisher> = plan
            .pubs
            .iter()
            .enumerate()
            .map(|(i, p)| Publisher {
                owned: mine(i),
                client: None,
                client_id: p.client_id.clone(),
                clean: p.clean,
                streams: Vec::new(),
                next_stream: 0,
                pending: HashMap::new(),
                next_pkid: 0,
                rate: p.rate,
                offset: p.offset,
                rate_sent: 0,
                schedule: None,
                late: false,
                inflight: s.inflight,
                queued: false,
                rate_wait: false,
                blocked_on: None,
            })
            .collect();
        let mut subs: Vec<Subscriber> = plan
            .subs
            .iter()
            .enumerate()
            .map(|(i, spec)| Subscriber {
                owned: mine(i),
                client: None,
                client_id: spec.client_id.clone(),
                clean: spec.clean,
                filters: if mine(i) {
                    spec.filters.clone()
                } else {
                    Vec::new()
                },
                qos: spec.qos,
                group: spec.group,
                tracks: HashMap::default(),
                waiters: Vec::new(),
                listed: false,
                publishes: 0,
                dup: 0,
                ooo: 0,
                unexpected: 0,
                retained: 0,
            })
            .collect();
        let mut streams = Vec::with_capacity(plan.streams.len());
        for (id, st) in plan.streams.iter().enumerate() {
            pubs[st.publisher as usize].streams.push(id as u32);
            for &sub in &st.subs {
                if subs[sub as usize].owned {
                    subs[sub as usize]
                        .tracks
                        .insert(id as u32, Track::default());
                }
            }
            streams.push(Stream {
                topic: st.topic.clone(),
                subs: st.subs.clone(),
                qos: st.qos,
                retain: st.retain,
                size: st.size,
                sent: 0,
            });
        }
        let mut to_start: VecDeque<Role> = (0..subs.len() as u32)
            .filter(|&i| subs[i as usize].owned)
            .map(Role::Sub)
            .collect();
        to_start.extend(
            (0..pubs.len() as u32)
                .filter(|&i| pubs[i as usize].owned)
                .map(Role::Pub),
        );
        // This thread's share of --count.
        let cap = if s.count > 0 {
            s.count / threads as u64 + u64::from((worker as u64) < s.count % threads as u64)
        } else {
            0
        };
        let epoch = shared.epoch;
        Ok(Bench {
            poll: Poll::new()?,
            clients: Slab::with_capacity(to_start.len()),
            total_clients: to_start.len(),
            to_start,
            started: 0,
            flow: Flow::new(subs.len(), threads),
            pubs,
            subs,
            streams,
            phase: Phase::Setup,
            handshaking: 0,
            ready: 0,
            setup_reported: false,
            ramp_go: false,
            runnable: VecDeque::new(),
            timers: BinaryHeap::new(),
            blocked_subs: Vec::new(),
            dirty: Vec::new(),
            pending_reads: Vec::new(),
            payload: vec![0; plan.max_size().max(HEADER)],
            rng: u64::from(shared.tag) << 8 | worker as u64 | 1,
            epoch,
            now,
            phase_start: now,
            setup_end: None,
            last_progress: now,
            seen_activity: 0,
            next_tick: epoch + Duration::from_secs(1),
            next_check: now + Duration::from_secs(1),
            tick_base: Counters::default(),
            progress_base: Counters::default(),
            tick_hist: Histogram::new(),
            timeline: Vec::new(),
            window: (0.0, 0.0),
            cap,
            cap_reached: false,
            total_pending: 0,
            c: Counters::default(),
            measure_base: Counters::default(),
            measure_end: Counters::default(),
            hist: Histogram::new(),
            group_hist: if plan.groups.len() > 1 {
                plan.groups.iter().map(|_| Histogram::new()).collect()
            } else {
                Vec::new()
            },
            stalls: 0,
            disconnects: 0,
            drain_timed_out: false,
            fatal: None,
            rss_connected: None,
            cpu_at_measure: (0.0, None),
            cpu_measure: (0.0, None),
            secs: [0.0; 4],
            s,
            shared,
            worker,
        })
    }

    fn run(mut self) -> merge::Part {
        let mut events = Events::with_capacity(4096);
        let mut ready: Vec<(usize, bool, bool)> = Vec::with_capacity(4096);
        self.start_clients();
        while self.phase != Phase::Done {
            let timeout = self.timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    self.fail(format!("poll failed: {e}"));
                    break;
                }
            }
            self.now = Instant::now();
            ready.extend(events.iter().map(|e| {
                (
                    e.token().0,
                    e.is_readable() || e.is_read_closed() || e.is_error(),
                    e.is_writable(),
                )
            }));
            for &(key, readable, writable) in &ready {
                if writable {
                    self.on_writable(key);
                }
                if readable {
                    self.read(key);
                }
            }
            ready.clear();
            for key in std::mem::take(&mut self.pending_reads) {
                if let Some(c) = self.clients.get_mut(key) {
                    if c.read_pending {
                        c.read_pending = false;
                        self.read(key);
                    }
                }
            }
            self.flow.flush(&self.shared);
            self.recheck_blocked();
            self.pump();
            self.flush_dirty();
            if self.phase == Phase::Setup {
                self.start_clients();
            }
            self.housekeeping();
        }
        self.finish()
    }

    fn timeout(&self) -> Duration {
        if !self.runnable.is_empty() || !self.pending_reads.is_empty() {
            return Duration::ZERO;
        }
        let mut t = Duration::from_millis(50);
        if !self.blocked_subs.is_empty()
            || (self.phase == Phase::Setup && (self.setup_reported || !self.to_start.is_empty()))
        {
            // Waiting on other threads (or the connection ramp): look often.
            t = Duration::from_millis(2);
        }
        let now = Instant::now();
        if let Some(Reverse((due, _))) = self.timers.peek() {
            let due = self.epoch + Duration::from_nanos(*due);
            t = t.min(due.saturating_duration_since(now));
        }
        // Wake for the end of the phase, so that every thread (one whose
        // clients are idle too) moves on at the same moment.
        let phase_end = self.setup_end.map(|start| match self.phase {
            Phase::Warmup => start + self.s.warmup,
            _ => start + self.s.warmup + self.s.duration,
        });
        if let Some(end) = phase_end.filter(|_| self.publishing()) {
            t = t.min(end.saturating_duration_since(now));
        }
        t.min(self.next_tick.saturating_duration_since(now))
    }

    fn publishing(&self) -> bool {
        let ramp = self.phase == Phase::Setup
            && self.s.connect_rate > 0.0
            && self.shared.subscribers_ready();
        (ramp || matches!(self.phase, Phase::Warmup | Phase::Measure)) && !self.cap_reached
    }

    /// Ends this thread's run with `why`, and tells the other threads.
    fn fail(&mut self, why: String) {
        if self.fatal.is_none() {
            self.fatal = Some(why);
        }
        self.shared.abort.store(true, Relaxed);
    }

    /// A pseudo-random payload size in the stream's range (xorshift).
    fn size_for(&mut self, (lo, hi): (usize, usize)) -> usize {
        if lo == hi {
            return lo;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        lo + (self.rng % (hi - lo + 1) as u64) as usize
    }
}
