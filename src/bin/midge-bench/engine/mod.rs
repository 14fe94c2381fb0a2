//! The generator's event loop: every client socket in one slab on one mio
//! poll, non-blocking, output batched per loop iteration.
//!
//! Flow control, so the generator itself never grows without bound:
//! - each publisher writes at most [`CHUNK`] bytes ahead of its socket;
//! - at QoS 1/2 each publisher keeps at most `inflight` messages unacknowledged;
//! - end to end, a publisher waits while any subscriber its topic reaches is
//!   `backlog` or more messages behind (published to it, not yet received).
//!   This keeps every subscriber's queue in the broker below the broker's
//!   queue limit, so the run measures the broker's sustainable lossless rate
//!   rather than its queue-overflow policy (`--backlog 0` turns it off).
//!
//! Publishers wait in a run queue and are woken by what unblocks them (an
//! ack, a writable socket, a subscriber catching up, the rate timer): the
//! loop never scans idle clients per iteration.

mod phases; // warm-up, measurement, drain; progress; the final report
mod traffic; // packets from the broker; publishers refilled

use crate::scenario::Plan;
use crate::stats::{Histogram, IdBuild, Seen, Track};
use crate::sys;
use bytes::{Buf, BytesMut};
use midge::protocol::{
    self, Ack, AckKind, Connect, Limits, Packet, PacketRef, Properties, ProtocolLevel,
    PublishFlags, QoS, ReasonCode, Subscribe, SubscriptionOptions,
};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Bytes a publisher may have waiting for its socket.
const CHUNK: usize = 64 * 1024;
/// Bytes read from one socket before other sockets get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// Payload header: stream id (u32), sequence (u64), send time (u64 ns).
pub const HEADER: usize = 20;
/// Filters per SUBSCRIBE packet.
const FILTERS_PER_SUBSCRIBE: usize = 50;
/// The protocol level every client speaks.
const LEVEL: ProtocolLevel = ProtocolLevel::V311;
/// Longest wait for in-flight messages after publishing stops.
const DRAIN_MAX: Duration = Duration::from_secs(10);

pub struct Settings {
    pub addr: SocketAddr,
    pub qos: u8,
    pub size: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Messages to publish in the measured phase; 0 = no cap.
    pub count: u64,
    /// Total messages per second over all publishers; 0 = as fast as possible.
    pub rate: f64,
    pub inflight: usize,
    /// End-to-end window per subscriber, in messages; 0 = none.
    pub backlog: i64,
    pub connect_window: usize,
    pub setup_timeout: Duration,
    pub broker_pid: Option<u32>,
    pub keep_alive: u16,
    /// Subscribers connect with CleanSession 0 (their QoS 1/2 messages are
    /// then stored by a broker with persistence on).
    pub persistent: bool,
    pub progress: bool,
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
}

struct Pending {
    stream: u32,
    seq: u64,
    /// 1: waiting for PUBACK/PUBREC; 2: PUBREC seen, waiting for PUBCOMP.
    stage: u8,
}

struct Publisher {
    client: Option<usize>,
    streams: Vec<u32>,
    next_stream: usize,
    pending: HashMap<u16, Pending>,
    next_pkid: u16,
    rate_sent: u64,
    queued: bool,
    rate_wait: bool,
    blocked_on: Option<u32>,
}

struct Subscriber {
    client: Option<usize>,
    filters: Vec<String>,
    tracks: HashMap<u32, Track, IdBuild>,
    /// Messages published to this subscriber and not received (by highest
    /// sequence per stream: gaps count as received here).
    behind: i64,
    /// Part of `behind` written off after a stall (QoS 0 losses).
    credit: i64,
    waiters: Vec<u32>,
    publishes: u64,
    dup: u64,
    ooo: u64,
    unexpected: u64,
}

struct Stream {
    topic: String,
    subs: Vec<u32>,
    sent: u64,
}

#[derive(Default, Clone, Copy)]
struct Counters {
    sent: u64,
    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) received.
    acked: u64,
    /// PUBLISH packets received by subscribers.
    delivered: u64,
}

/// Everything the report needs.
pub struct Outcome {
    pub fatal: Option<String>,
    pub clients: usize,
    pub setup_secs: f64,
    pub warmup_secs: f64,
    pub measure_secs: f64,
    pub drain_secs: f64,
    pub measured: (u64, u64, u64),
    pub totals: (u64, u64, u64),
    pub latency: Histogram,
    pub per_sub: Vec<SubReport>,
    pub lost: u64,
    pub lost_acked: u64,
    /// Not arrived when the drain gave up while messages were still arriving.
    pub late: u64,
    pub dup: u64,
    pub ooo: u64,
    pub unexpected: u64,
    pub unacked_end: u64,
    pub stalls: u64,
    pub disconnects: u64,
    pub rss_before: Option<(u64, u64)>,
    pub rss_connected: Option<(u64, u64)>,
    pub rss_end: Option<(u64, u64)>,
    pub gen_cpu_measure: f64,
    pub gen_cpu_total: f64,
    pub wall_total: f64,
    pub broker_cpu_measure: Option<f64>,
}

pub struct SubReport {
    pub filters: String,
    pub received: u64,
    pub lost: u64,
    pub dup: u64,
    pub ooo: u64,
}

pub struct Bench {
    s: Settings,
    poll: Poll,
    clients: Slab<Client>,
    pubs: Vec<Publisher>,
    subs: Vec<Subscriber>,
    streams: Vec<Stream>,
    phase: Phase,
    to_start: VecDeque<Role>,
    handshaking: usize,
    ready: usize,
    total_clients: usize,
    runnable: VecDeque<u32>,
    rate_waiters: Vec<u32>,
    dirty: Vec<usize>,
    pending_reads: Vec<usize>,
    payload: Vec<u8>,
    client_prefix: String,
    epoch: Instant,
    now: Instant,
    phase_start: Instant,
    setup_end: Option<Instant>,
    last_progress: Instant,
    next_tick: Instant,
    next_ping_check: Instant,
    tick_base: Counters,
    rate_per_pub: f64,
    cap_reached: bool,
    total_behind: i64,
    total_pending: usize,
    c: Counters,
    measure_base: Counters,
    measure_end: Counters,
    hist: Histogram,
    stalls: u64,
    disconnects: u64,
    drain_timed_out: bool,
    fatal: Option<String>,
    rss_before: Option<(u64, u64)>,
    rss_connected: Option<(u64, u64)>,
    cpu_at_measure: (f64, Option<f64>),
    cpu_measure: (f64, Option<f64>),
    secs: [f64; 4],
}

fn elapsed_ns(epoch: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(epoch).as_nanos() as u64
}

fn qos_of(q: u8) -> QoS {
    QoS::from_u8(q).unwrap_or(QoS::AtMostOnce)
}

impl Bench {
    pub fn new(s: Settings, plan: Plan) -> io::Result<Bench> {
        let now = Instant::now();
        let mut pubs: Vec<Publisher> = (0..plan.publishers)
            .map(|_| Publisher {
                client: None,
                streams: Vec::new(),
                next_stream: 0,
                pending: HashMap::new(),
                next_pkid: 0,
                rate_sent: 0,
                queued: false,
                rate_wait: false,
                blocked_on: None,
            })
            .collect();
        let mut subs: Vec<Subscriber> = plan
            .subscribers
            .into_iter()
            .map(|spec| Subscriber {
                client: None,
                filters: spec.filters,
                tracks: HashMap::default(),
                behind: 0,
                credit: 0,
                waiters: Vec::new(),
                publishes: 0,
                dup: 0,
                ooo: 0,
                unexpected: 0,
            })
            .collect();
        let mut streams = Vec::with_capacity(plan.streams.len());
        for (id, st) in plan.streams.into_iter().enumerate() {
            pubs[st.publisher as usize].streams.push(id as u32);
            for &sub in &st.subs {
                subs[sub as usize]
                    .tracks
                    .insert(id as u32, Track::default());
            }
            streams.push(Stream {
                topic: st.topic,
                subs: st.subs,
                sent: 0,
            });
        }
        let mut to_start: VecDeque<Role> = (0..subs.len() as u32).map(Role::Sub).collect();
        to_start.extend((0..pubs.len() as u32).map(Role::Pub));
        let rate_per_pub = if s.rate > 0.0 {
            s.rate / pubs.len() as f64
        } else {
            0.0
        };
        let size = s.size.max(HEADER);
        Ok(Bench {
            poll: Poll::new()?,
            clients: Slab::with_capacity(to_start.len()),
            total_clients: to_start.len(),
            to_start,
            pubs,
            subs,
            streams,
            phase: Phase::Setup,
            handshaking: 0,
            ready: 0,
            runnable: VecDeque::new(),
            rate_waiters: Vec::new(),
            dirty: Vec::new(),
            pending_reads: Vec::new(),
            payload: vec![0; size],
            client_prefix: format!("midge-bench-{}-", std::process::id()),
            epoch: now,
            now,
            phase_start: now,
            setup_end: None,
            last_progress: now,
            next_tick: now + Duration::from_secs(1),
            next_ping_check: now + Duration::from_secs(1),
            tick_base: Counters::default(),
            rate_per_pub,
            cap_reached: false,
            total_behind: 0,
            total_pending: 0,
            c: Counters::default(),
            measure_base: Counters::default(),
            measure_end: Counters::default(),
            hist: Histogram::new(),
            stalls: 0,
            disconnects: 0,
            drain_timed_out: false,
            fatal: None,
            rss_before: None,
            rss_connected: None,
            cpu_at_measure: (0.0, None),
            cpu_measure: (0.0, None),
            secs: [0.0; 4],
            s,
        })
    }

    fn broker_cpu(&self) -> Option<f64> {
        self.s
            .broker_pid
            .and_then(|p| sys::cpu_seconds(&p.to_string()))
    }

    fn broker_mem(&self) -> Option<(u64, u64)> {
        self.s.broker_pid.and_then(sys::memory_kib)
    }

    pub fn run(mut self) -> Outcome {
        self.rss_before = self.broker_mem();
        let mut events = Events::with_capacity(4096);
        let mut ready: Vec<(usize, bool, bool)> = Vec::with_capacity(4096);
        self.start_clients();
        while self.phase != Phase::Done {
            let timeout = self.timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.fatal = Some(format!("poll failed: {e}"));
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
        if !self.rate_waiters.is_empty() {
            t = Duration::from_millis(1);
        }
        t.min(self.next_tick.saturating_duration_since(Instant::now()))
    }

    fn publishing(&self) -> bool {
        matches!(self.phase, Phase::Warmup | Phase::Measure) && !self.cap_reached
    }

    // ---------------------------------------------------------------- setup

    fn start_clients(&mut self) {
        while self.handshaking < self.s.connect_window && self.fatal.is_none() {
            let Some(role) = self.to_start.pop_front() else {
                return;
            };
            let index = self.clients.vacant_key();
            let mut sock = match TcpStream::connect(self.s.addr) {
                Ok(s) => s,
                Err(e) => {
                    let hint = match e.raw_os_error() {
                        Some(24) | Some(23) => " (out of file descriptors: raise `ulimit -n`)",
                        Some(99) => " (out of local ports)",
                        _ => "",
                    };
                    self.fatal = Some(format!(
                        "connect to {} failed after {} clients: {e}{hint}",
                        self.s.addr,
                        self.clients.len()
                    ));
                    return;
                }
            };
            let _ = sock.set_nodelay(true);
            if let Err(e) = self.poll.registry().register(
                &mut sock,
                Token(index),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                self.fatal = Some(format!("cannot register a socket: {e}"));
                return;
            }
            let mut wbuf = BytesMut::with_capacity(256);
            let id = format!("{}{}", self.client_prefix, index);
            let clean = !(self.s.persistent && matches!(role, Role::Sub(_)));
            let connect = Packet::Connect(Box::new(Connect {
                level: Some(LEVEL),
                clean_session: clean,
                keep_alive: self.s.keep_alive,
                client_id: id,
                will: None,
                username: None,
                password: None,
                properties: Properties::NONE,
            }));
            if let Err(e) = protocol::encode(&connect, LEVEL, &mut wbuf) {
                self.fatal = Some(format!("cannot encode CONNECT: {e}"));
                return;
            }
            let key = self.clients.insert(Client {
                sock,
                role,
                state: CState::Connecting,
                connected: false,
                rbuf: vec![0; 4096],
                rlen: 0,
                wbuf,
                dirty: false,
                read_pending: false,
                last_tx: self.now,
            });
            match role {
                Role::Pub(p) => self.pubs[p as usize].client = Some(key),
                Role::Sub(s) => self.subs[s as usize].client = Some(key),
            }
            self.handshaking += 1;
        }
    }

    fn on_ready(&mut self) {
        self.handshaking -= 1;
        self.ready += 1;
    }

    // ------------------------------------------------------------ socket IO

    fn on_writable(&mut self, key: usize) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        if !c.connected {
            match c.sock.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    return self.lost_client(key, &format!("connect failed: {e}"))
                }
            }
            match c.sock.peer_addr() {
                Ok(_) => {
                    c.connected = true;
                    c.state = CState::WaitConnack;
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => return self.lost_client(key, &format!("connect failed: {e}")),
            }
        }
        self.flush(key);
    }

    fn mark_dirty(clients: &mut Slab<Client>, dirty: &mut Vec<usize>, key: usize) {
        let c = &mut clients[key];
        if !c.dirty {
            c.dirty = true;
            dirty.push(key);
        }
    }

    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &key in &dirty {
            if let Some(c) = self.clients.get_mut(key) {
                c.dirty = false;
                self.flush(key);
            }
        }
        dirty.clear();
        self.dirty = dirty;
    }

    fn flush(&mut self, key: usize) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        if !c.connected {
            return;
        }
        while !c.wbuf.is_empty() {
            match c.sock.write(&c.wbuf) {
                Ok(0) => return self.lost_client(key, "socket accepted no bytes"),
                Ok(n) => {
                    c.wbuf.advance(n);
                    c.last_tx = self.now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.lost_client(key, &format!("write failed: {e}")),
            }
        }
        if let Role::Pub(p) = c.role {
            if c.wbuf.len() < CHUNK / 2 && c.state == CState::Ready {
                self.enqueue(p);
            }
        }
    }

    fn read(&mut self, key: usize) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(c) = self.clients.get_mut(key) else {
                return;
            };
            if budget == 0 {
                if !c.read_pending {
                    c.read_pending = true;
                    self.pending_reads.push(key);
                }
                return;
            }
            if c.rlen == c.rbuf.len() {
                let len = c.rbuf.len();
                c.rbuf.resize((len * 2).max(64 * 1024), 0);
            }
            let rlen = c.rlen;
            match c.sock.read(&mut c.rbuf[rlen..]) {
                Ok(0) => return self.lost_client(key, "connection closed by the broker"),
                Ok(n) => {
                    c.rlen += n;
                    budget = budget.saturating_sub(n);
                    let at = elapsed_ns(self.epoch, Instant::now());
                    if !self.process(key, at) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.lost_client(key, &format!("read failed: {e}")),
            }
        }
    }

    /// Handles the complete packets in a client's read buffer; false if the
    /// client is gone. `at`: when the bytes were read, in ns since the epoch.
    /// Packets are decoded in place (`decode_ref`): a PUBLISH's payload is
    /// read where it arrived, with no allocation per message.
    fn process(&mut self, key: usize, at: u64) -> bool {
        let rbuf = std::mem::take(&mut self.clients[key].rbuf);
        let rlen = self.clients[key].rlen;
        let limits = Limits::default();
        let client = protocol::Role::Client;
        let mut used = 0;
        loop {
            match protocol::decode_ref(&rbuf[used..rlen], Some(LEVEL), client, &limits) {
                Ok(None) => break,
                Ok(Some((packet, n))) => {
                    used += n;
                    if let Err(e) = self.handle(key, packet, at) {
                        self.lost_client(key, &e);
                        return false;
                    }
                }
                Err(e) => {
                    self.lost_client(key, &format!("undecodable packet from the broker: {e}"));
                    return false;
                }
            }
        }
        let mut rbuf = rbuf;
        rbuf.copy_within(used..rlen, 0);
        let c = &mut self.clients[key];
        c.rbuf = rbuf;
        c.rlen = rlen - used;
        true
    }

    fn lost_client(&mut self, key: usize, why: &str) {
        let Some(mut c) = self.clients.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.sock);
        self.disconnects += 1;
        let who = match c.role {
            Role::Pub(p) => {
                self.pubs[p as usize].client = None;
                format!("publisher {p}")
            }
            Role::Sub(s) => {
                self.subs[s as usize].client = None;
                format!("subscriber {s}")
            }
        };
        if self.disconnects <= 5 {
            eprintln!("midge-bench: {who} lost: {why}");
        }
        if self.phase == Phase::Setup {
            self.fatal = Some(format!("{who} lost during setup: {why}"));
        }
    }

    // ------------------------------------------------------------- packets

    // ----------------------------------------------------------- publishing

    // --------------------------------------------------------- housekeeping

    // --------------------------------------------------------------- report
}
