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

    fn handle(&mut self, key: usize, packet: PacketRef<'_>, at: u64) -> Result<(), String> {
        let packet = match packet {
            PacketRef::Publish(p) => return self.on_publish(key, p.qos, p.pkid, p.payload, at),
            PacketRef::Other(packet) => packet,
        };
        let (role, state) = {
            let c = &self.clients[key];
            (c.role, c.state)
        };
        let is_comp = matches!(packet, Packet::PubComp(_));
        match packet {
            Packet::ConnAck(ack) => {
                if state != CState::WaitConnack {
                    return Err("unexpected CONNACK".into());
                }
                if ack.code != ReasonCode::Success {
                    return Err(format!(
                        "CONNACK refused the connection with code {}",
                        ack.code.v3_connack_code()
                    ));
                }
                match role {
                    Role::Pub(_) => {
                        self.clients[key].state = CState::Ready;
                        self.on_ready();
                    }
                    Role::Sub(s) => {
                        let qos = qos_of(self.s.qos);
                        let filters = &self.subs[s as usize].filters;
                        let c = &mut self.clients[key];
                        let mut packets = 0;
                        for (i, chunk) in filters.chunks(FILTERS_PER_SUBSCRIBE).enumerate() {
                            let options = SubscriptionOptions::qos(qos);
                            let subscribe = Packet::Subscribe(Subscribe {
                                pkid: i as u16 + 1,
                                filters: chunk.iter().map(|f| (f.clone(), options)).collect(),
                                properties: Properties::NONE,
                            });
                            protocol::encode(&subscribe, LEVEL, &mut c.wbuf)
                                .map_err(|e| format!("cannot encode SUBSCRIBE: {e}"))?;
                            packets += 1;
                        }
                        c.state = CState::WaitSuback(packets);
                        Self::mark_dirty(&mut self.clients, &mut self.dirty, key);
                    }
                }
            }
            Packet::SubAck(ack) => {
                let CState::WaitSuback(left) = state else {
                    return Err("unexpected SUBACK".into());
                };
                if let Some(bad) = ack.codes.iter().find(|c| c.is_error()) {
                    return Err(format!("SUBACK refused a subscription ({bad:?})"));
                }
                if ack.codes.iter().any(|&c| (c as u8) < self.s.qos) {
                    return Err(format!(
                        "SUBACK granted {:?}, below the requested QoS {}",
                        ack.codes, self.s.qos
                    ));
                }
                if left <= 1 {
                    self.clients[key].state = CState::Ready;
                    self.on_ready();
                } else {
                    self.clients[key].state = CState::WaitSuback(left - 1);
                }
            }
            Packet::PubRel(Ack { pkid, .. }) => {
                let (wbuf, comp) = (&mut self.clients[key].wbuf, AckKind::PubComp);
                protocol::encode_ack(wbuf, LEVEL, comp, pkid, ReasonCode::Success);
                Self::mark_dirty(&mut self.clients, &mut self.dirty, key);
            }
            Packet::PubAck(Ack { pkid, .. }) | Packet::PubComp(Ack { pkid, .. }) => {
                let Role::Pub(p) = role else {
                    return Err("a subscriber received an ack".into());
                };
                let want = if self.s.qos == 2 { 2 } else { 1 };
                let publ = &mut self.pubs[p as usize];
                match publ.pending.get(&pkid) {
                    Some(pd) if pd.stage == want && is_comp == (self.s.qos == 2) => {
                        publ.pending.remove(&pkid);
                        self.total_pending -= 1;
                        self.c.acked += 1;
                        self.last_progress = self.now;
                        self.enqueue(p);
                    }
                    _ => return Err(format!("ack for unknown packet id {pkid}")),
                }
            }
            Packet::PubRec(Ack { pkid, .. }) => {
                let Role::Pub(p) = role else {
                    return Err("a subscriber received PUBREC".into());
                };
                match self.pubs[p as usize].pending.get_mut(&pkid) {
                    Some(pd) if pd.stage == 1 && self.s.qos == 2 => {
                        pd.stage = 2;
                        self.last_progress = self.now;
                    }
                    _ => return Err(format!("PUBREC for unknown packet id {pkid}")),
                }
                let (wbuf, rel) = (&mut self.clients[key].wbuf, AckKind::PubRel);
                protocol::encode_ack(wbuf, LEVEL, rel, pkid, ReasonCode::Success);
                Self::mark_dirty(&mut self.clients, &mut self.dirty, key);
            }
            Packet::UnsubAck(_) | Packet::PingResp => {}
            other => return Err(format!("unexpected {} from the broker", other.name())),
        }
        Ok(())
    }

    /// A message for a subscriber: acknowledged as its QoS asks, then
    /// checked and timed.
    fn on_publish(
        &mut self,
        key: usize,
        qos: QoS,
        pkid: u16,
        payload: &[u8],
        at: u64,
    ) -> Result<(), String> {
        let c = &mut self.clients[key];
        let Role::Sub(s) = c.role else {
            return Err("a publisher received a PUBLISH".into());
        };
        let ok = ReasonCode::Success;
        match qos {
            QoS::AtLeastOnce => protocol::encode_ack(&mut c.wbuf, LEVEL, AckKind::PubAck, pkid, ok),
            QoS::ExactlyOnce => protocol::encode_ack(&mut c.wbuf, LEVEL, AckKind::PubRec, pkid, ok),
            QoS::AtMostOnce => {}
        }
        if qos != QoS::AtMostOnce {
            Self::mark_dirty(&mut self.clients, &mut self.dirty, key);
        }
        self.on_delivery(s as usize, payload, at);
        Ok(())
    }

    fn on_delivery(&mut self, s: usize, payload: &[u8], at: u64) {
        self.c.delivered += 1;
        self.last_progress = self.now;
        let sub = &mut self.subs[s];
        sub.publishes += 1;
        if payload.len() < HEADER {
            sub.unexpected += 1;
            return;
        }
        let stream = u32::from_le_bytes(payload[0..4].try_into().unwrap());
        let seq = u64::from_le_bytes(payload[4..12].try_into().unwrap());
        let sent_at = u64::from_le_bytes(payload[12..20].try_into().unwrap());
        let Some(track) = sub.tracks.get_mut(&stream) else {
            sub.unexpected += 1;
            return;
        };
        match track.see(seq) {
            Seen::InOrder { skipped } => {
                let advance = skipped as i64 + 1;
                sub.behind -= advance;
                self.total_behind -= advance;
                if !sub.waiters.is_empty() && sub.behind - sub.credit <= self.s.backlog / 2 {
                    self.wake_waiters(s);
                }
            }
            Seen::OutOfOrder => sub.ooo += 1,
            Seen::Duplicate => sub.dup += 1,
        }
        if self.phase == Phase::Measure {
            self.hist.record(at.saturating_sub(sent_at));
        }
    }

    fn wake_waiters(&mut self, s: usize) {
        let waiters = std::mem::take(&mut self.subs[s].waiters);
        for &p in &waiters {
            if self.pubs[p as usize].blocked_on == Some(s as u32) {
                self.pubs[p as usize].blocked_on = None;
                self.enqueue(p);
            }
        }
        let mut waiters = waiters;
        waiters.clear();
        if self.subs[s].waiters.is_empty() {
            self.subs[s].waiters = waiters;
        }
    }

    // ----------------------------------------------------------- publishing

    fn enqueue(&mut self, p: u32) {
        let publ = &mut self.pubs[p as usize];
        if !publ.queued && publ.blocked_on.is_none() && !publ.rate_wait {
            publ.queued = true;
            self.runnable.push_back(p);
        }
    }

    fn pump(&mut self) {
        if !self.rate_waiters.is_empty() {
            for p in std::mem::take(&mut self.rate_waiters) {
                self.pubs[p as usize].rate_wait = false;
                self.enqueue(p);
            }
        }
        for _ in 0..self.runnable.len() {
            let Some(p) = self.runnable.pop_front() else {
                break;
            };
            self.pubs[p as usize].queued = false;
            if self.publishing() {
                self.fill(p as usize);
            }
        }
    }

    /// Writes as many messages as flow control allows into the publisher's
    /// output buffer.
    fn fill(&mut self, p: usize) {
        let now = Instant::now();
        let ts = elapsed_ns(self.epoch, now);
        let rate_allowed = if self.rate_per_pub > 0.0 {
            let secs = now
                .saturating_duration_since(self.phase_start_rate())
                .as_secs_f64();
            (secs * self.rate_per_pub) as u64 + 1
        } else {
            u64::MAX
        };
        let cap = if self.s.count > 0 && self.phase == Phase::Measure {
            self.measure_base.sent + self.s.count
        } else {
            u64::MAX
        };
        let Bench {
            pubs,
            subs,
            streams,
            clients,
            s,
            c,
            payload,
            cap_reached,
            rate_waiters,
            total_pending,
            total_behind,
            dirty,
            ..
        } = self;
        let publ = &mut pubs[p];
        let Some(key) = publ.client else {
            return;
        };
        let client = &mut clients[key];
        if client.state != CState::Ready || publ.blocked_on.is_some() {
            return;
        }
        let qos = qos_of(s.qos);
        let mut wrote = false;
        loop {
            if c.sent >= cap {
                *cap_reached = true;
                break;
            }
            if qos != QoS::AtMostOnce && publ.pending.len() >= s.inflight {
                break;
            }
            if publ.rate_sent >= rate_allowed {
                publ.rate_wait = true;
                rate_waiters.push(p as u32);
                break;
            }
            if client.wbuf.len() >= CHUNK {
                break;
            }
            let sid = publ.streams[publ.next_stream];
            let st = &mut streams[sid as usize];
            if s.backlog > 0 {
                if let Some(&full) = st.subs.iter().find(|&&x| {
                    let sub = &subs[x as usize];
                    sub.behind - sub.credit >= s.backlog
                }) {
                    publ.blocked_on = Some(full);
                    subs[full as usize].waiters.push(p as u32);
                    break;
                }
            }
            let seq = st.sent;
            st.sent += 1;
            payload[0..4].copy_from_slice(&sid.to_le_bytes());
            payload[4..12].copy_from_slice(&seq.to_le_bytes());
            payload[12..20].copy_from_slice(&ts.to_le_bytes());
            let mut pkid = 0;
            if qos != QoS::AtMostOnce {
                loop {
                    publ.next_pkid = publ.next_pkid % u16::MAX + 1;
                    if !publ.pending.contains_key(&publ.next_pkid) {
                        break;
                    }
                }
                pkid = publ.next_pkid;
                publ.pending.insert(
                    pkid,
                    Pending {
                        stream: sid,
                        seq,
                        stage: 1,
                    },
                );
                *total_pending += 1;
            }
            let flags = PublishFlags {
                qos,
                pkid,
                dup: false,
                retain: false,
            };
            let none = &Properties::NONE;
            protocol::encode_publish(&mut client.wbuf, LEVEL, &st.topic, payload, none, flags);
            for &x in &st.subs {
                subs[x as usize].behind += 1;
            }
            *total_behind += st.subs.len() as i64;
            c.sent += 1;
            publ.rate_sent += 1;
            publ.next_stream = (publ.next_stream + 1) % publ.streams.len();
            wrote = true;
        }
        if wrote {
            Self::mark_dirty(clients, dirty, key);
        }
    }

    fn phase_start_rate(&self) -> Instant {
        // The rate schedule starts with the warm-up.
        self.setup_end.unwrap_or(self.phase_start)
    }

    // --------------------------------------------------------- housekeeping

    fn housekeeping(&mut self) {
        let now = Instant::now();
        self.now = now;
        if let Some(e) = &self.fatal {
            if self.phase != Phase::Done {
                eprintln!("midge-bench: {e}");
                self.secs[phase_index(self.phase)] =
                    now.duration_since(self.phase_start).as_secs_f64();
                self.phase = Phase::Done;
            }
            return;
        }
        let in_phase = now.saturating_duration_since(self.phase_start);
        let quiet = now.saturating_duration_since(self.last_progress);
        let quiet_limit = if self.s.qos == 0 {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(2)
        };
        let all_delivered = self.total_behind == 0 && self.total_pending == 0;
        match self.phase {
            Phase::Setup => {
                if self.ready == self.total_clients {
                    self.setup_end = Some(now);
                    self.rss_connected = self.broker_mem();
                    if self.s.warmup.is_zero() {
                        self.start_measure(now);
                    } else {
                        self.next_phase(Phase::Warmup, now);
                    }
                    for p in 0..self.pubs.len() as u32 {
                        self.enqueue(p);
                    }
                } else if in_phase > self.s.setup_timeout {
                    self.fatal = Some(format!(
                        "setup timed out: {} of {} clients connected and subscribed after {:?}",
                        self.ready, self.total_clients, self.s.setup_timeout
                    ));
                }
            }
            Phase::Warmup => {
                if in_phase >= self.s.warmup {
                    self.start_measure(now);
                    for p in 0..self.pubs.len() as u32 {
                        self.enqueue(p);
                    }
                }
            }
            Phase::Measure => {
                let capped_done = self.cap_reached && (all_delivered || quiet >= quiet_limit);
                if in_phase >= self.s.duration || capped_done {
                    self.measure_end = self.c;
                    let gen = sys::cpu_seconds("self").unwrap_or(0.0) - self.cpu_at_measure.0;
                    let broker = match (self.broker_cpu(), self.cpu_at_measure.1) {
                        (Some(b), Some(a)) => Some(b - a),
                        _ => None,
                    };
                    self.cpu_measure = (gen, broker);
                    self.next_phase(Phase::Drain, now);
                }
            }
            Phase::Drain => {
                if all_delivered || quiet >= quiet_limit {
                    self.next_phase(Phase::Done, now);
                } else if in_phase >= DRAIN_MAX {
                    // Still arriving: what has not arrived is late, not lost.
                    self.drain_timed_out = true;
                    self.next_phase(Phase::Done, now);
                }
            }
            Phase::Done => {}
        }
        if self.publishing() && self.s.backlog > 0 {
            let stall = if self.s.qos == 0 {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(2)
            };
            if quiet >= stall {
                self.write_off();
            }
        }
        if now >= self.next_ping_check {
            self.next_ping_check = now + Duration::from_secs(1);
            self.keep_alive(now);
        }
        if now >= self.next_tick {
            self.next_tick += Duration::from_secs(1);
            if self.s.progress {
                self.progress(now);
            }
        }
    }

    fn next_phase(&mut self, to: Phase, now: Instant) {
        self.secs[phase_index(self.phase)] = now.duration_since(self.phase_start).as_secs_f64();
        self.phase = to;
        self.phase_start = now;
        // Silence is measured within a phase.
        self.last_progress = now;
    }

    fn start_measure(&mut self, now: Instant) {
        self.measure_base = self.c;
        self.cpu_at_measure = (sys::cpu_seconds("self").unwrap_or(0.0), self.broker_cpu());
        self.next_phase(Phase::Measure, now);
    }

    /// Nothing arrived for a while although publishers wait for subscribers
    /// to catch up: the broker dropped messages (QoS 0 under overload, or a
    /// bug). Forget what they were owed so the run goes on; the losses stay
    /// counted by sequence numbers.
    fn write_off(&mut self) {
        let mut any = false;
        for s in 0..self.subs.len() {
            if !self.subs[s].waiters.is_empty() {
                self.subs[s].credit = self.subs[s].behind;
                self.wake_waiters(s);
                any = true;
            }
        }
        if any {
            self.stalls += 1;
            self.last_progress = self.now;
            if self.stalls <= 3 && self.s.qos > 0 {
                eprintln!(
                    "midge-bench: no delivery for a while with subscribers behind: stall #{}",
                    self.stalls
                );
            }
        }
    }

    fn keep_alive(&mut self, now: Instant) {
        if self.s.keep_alive == 0 {
            return;
        }
        let half = Duration::from_secs(self.s.keep_alive as u64 / 2);
        for (key, c) in self.clients.iter_mut() {
            if c.connected && now.saturating_duration_since(c.last_tx) >= half {
                c.wbuf.extend_from_slice(&[0xC0, 0x00]);
                if !c.dirty {
                    c.dirty = true;
                    self.dirty.push(key);
                }
            }
        }
    }

    fn progress(&mut self, now: Instant) {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let secs = now.duration_since(self.epoch).as_secs_f64();
        let phase = format!("{:?}", self.phase).to_lowercase();
        let c = self.c;
        let t = self.tick_base;
        self.tick_base = c;
        let behind: i64 = self.total_behind;
        eprintln!(
            "[{secs:6.1}s] {phase:<7} clients {}/{}  sent {}/s  acked {}/s  delivered {}/s  in flight {}  behind {}",
            self.ready,
            self.total_clients,
            d(c.sent, t.sent),
            d(c.acked, t.acked),
            d(c.delivered, t.delivered),
            self.total_pending,
            behind
        );
    }

    // --------------------------------------------------------------- report

    fn finish(mut self) -> Outcome {
        let rss_end = self.broker_mem();
        // Say goodbye: DISCONNECT, then close at once, so that this side
        // closes first and keeps the TIME_WAIT (the kernel reuses those for
        // loopback connects). Left to the broker, a later run could meet its
        // TIME_WAIT for a reused port and lose a second to a SYN retry.
        for mut c in self.clients.drain() {
            if c.connected {
                c.wbuf.extend_from_slice(&[0xE0, 0x00]);
                let _ = c.sock.write(&c.wbuf);
            }
            let _ = self.poll.registry().deregister(&mut c.sock);
        }
        let qos = self.s.qos;
        let mut per_sub = Vec::with_capacity(self.subs.len());
        // Skipped-over messages are lost. Those after the last one received
        // are lost too, unless the drain stopped while messages were still
        // arriving: then they are only late.
        let tail_lost = !self.drain_timed_out;
        let (mut lost, mut late, mut dup, mut ooo, mut unexpected) = (0, 0, 0, 0, 0);
        for sub in &self.subs {
            let (mut sub_lost, mut sub_late) = (0, 0);
            for (id, t) in &sub.tracks {
                let tail = t.tail(self.streams[*id as usize].sent);
                sub_lost += t.in_gaps() + if tail_lost { tail } else { 0 };
                sub_late += if tail_lost { 0 } else { tail };
            }
            lost += sub_lost;
            late += sub_late;
            dup += sub.dup;
            ooo += sub.ooo;
            unexpected += sub.unexpected;
            let mut filters = sub
                .filters
                .iter()
                .take(2)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            if sub.filters.len() > 2 {
                filters.push_str(" ...");
            }
            per_sub.push(SubReport {
                filters,
                received: sub.publishes,
                lost: sub_lost,
                dup: sub.dup,
                ooo: sub.ooo,
            });
        }
        // Lost messages the broker never acknowledged are not its fault.
        let mut unacked_lost = 0;
        let mut unacked_end = 0;
        for publ in &self.pubs {
            for pd in publ.pending.values() {
                if pd.stage == 1 {
                    unacked_end += 1;
                    for &s in &self.streams[pd.stream as usize].subs {
                        if let Some(t) = self.subs[s as usize].tracks.get(&pd.stream) {
                            if t.in_gap(pd.seq) || (tail_lost && pd.seq >= t.next) {
                                unacked_lost += 1;
                            }
                        }
                    }
                }
            }
        }
        let lost_acked = if qos > 0 { lost - unacked_lost } else { 0 };
        let m = (
            self.measure_end.sent - self.measure_base.sent,
            self.measure_end.acked - self.measure_base.acked,
            self.measure_end.delivered - self.measure_base.delivered,
        );
        let wall_total = self.epoch.elapsed().as_secs_f64();
        Outcome {
            fatal: self.fatal.take(),
            clients: self.total_clients,
            setup_secs: self.secs[0],
            warmup_secs: self.secs[1],
            measure_secs: self.secs[2],
            drain_secs: self.secs[3],
            measured: m,
            totals: (self.c.sent, self.c.acked, self.c.delivered),
            latency: std::mem::replace(&mut self.hist, Histogram::new()),
            per_sub,
            lost,
            lost_acked,
            late,
            dup,
            ooo,
            unexpected,
            unacked_end,
            stalls: self.stalls,
            disconnects: self.disconnects,
            rss_before: self.rss_before,
            rss_connected: self.rss_connected,
            rss_end,
            gen_cpu_measure: self.cpu_measure.0,
            gen_cpu_total: sys::cpu_seconds("self").unwrap_or(0.0),
            wall_total,
            broker_cpu_measure: self.cpu_measure.1,
        }
    }
}

fn phase_index(p: Phase) -> usize {
    match p {
        Phase::Setup => 0,
        Phase::Warmup => 1,
        Phase::Measure => 2,
        Phase::Drain | Phase::Done => 3,
    }
}
