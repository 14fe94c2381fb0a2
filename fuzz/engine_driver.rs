//! The `engine` target: the broker's engine driven as the event loop
//! drives it (`Broker::poll_once`), by a script of operations over up to
//! four clients and a clock that the script moves.
//!
//! The first byte picks the configuration (small windows, queues and
//! buffers, the queue-full policy, retained messages off, persistence on an
//! in-memory store, ...). Then each operation is a byte and its arguments:
//! open a connection, feed it raw bytes or a well-formed packet
//! (`engine_packets.rs`), close it from the peer's side, stop or resume
//! its reading (the engine's writes take nothing, or a few bytes at a
//! time), move the clock (0 to ~100 s), or restart the engine on its
//! store. Each operation is one loop iteration. Checked besides "no panic":
//! everything written to a client decodes (client side, at the level it
//! connected with) with nothing left over once its output is all taken,
//! CONNACK first and nothing after a server DISCONNECT, no packet above an
//! MQTT 5 client's Maximum Packet Size, outbound Topic Aliases within its
//! maximum and set before use. At the end every client reads and
//! acknowledges everything for 30 s of clock ([`Driver::settle`]): no
//! connection may be left with input the engine stopped reading for good,
//! nor the engine with work it wants done at once (the loop would spin).
//! Then `stop()` must end every connection and give back all memory held
//! for them.

use super::engine_packets::{self, Script};
use super::engine_storage::MemStorage;
use bytes::BytesMut;
use midge::config::QueueFull;
use midge::engine::{Closed, Engine, Input, Output, ReadOutcome};
use midge::keys::ConnKey;
use midge::protocol::{self, Ack, Limits, Packet, ProtocolLevel, QoS, Role};
use midge::store::Storage;
use midge::{AuthStep, Config};
use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

/// With `MIDGE_FUZZ_TRACE` set, a run prints what it does (`cargo fuzz
/// run engine CRASH` then tells the story of a crash).
macro_rules! trace {
    ($($arg:tt)*) => {
        if tracing() {
            eprintln!($($arg)*);
        }
    };
}

fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("MIDGE_FUZZ_TRACE").is_some())
}

const CLIENTS: usize = 4;
/// Operations per script: a run stays well under a second.
const MAX_OPS: usize = 200;
const MAX_RESTARTS: usize = 3;
/// Seconds the clients are given at the end to read and acknowledge
/// everything (past `stall_timeout` and the short keep-alives).
const SETTLE_ROUNDS: usize = 30;
/// The small `memory_limit` a script may pick.
const SMALL_MEMORY_LIMIT: usize = 40_000;
/// Iterations due at once that the engine may ask for after settling.
const QUIESCE_ROUNDS: usize = 50;
/// Acknowledgements a client keeps owing (the oldest are forgotten).
const MAX_OWED: usize = 64;

/// Runs one script.
pub fn run(data: &[u8]) {
    let Some((&pick, ops)) = data.split_first() else {
        return;
    };
    trace!("config {pick:#04x}: {:?}", config(pick));
    let mut driver = Driver::new(pick);
    let mut script = Script(ops);
    let mut restarts = 0;
    for _ in 0..MAX_OPS {
        if script.is_empty() {
            break;
        }
        let op = script.byte();
        let slot = usize::from(op >> 4) % CLIENTS;
        match op % 8 {
            0 => driver.open(slot),
            1 => {
                let n = usize::from(script.byte() % 64);
                let bytes = script.take(n).to_vec();
                driver.send(slot, &bytes);
            }
            2 | 3 => driver.send_packet(slot, &mut script),
            4 => driver.peer_closes(slot),
            5 => {
                let reading = match script.byte() % 3 {
                    0 => Reading::All,
                    1 => Reading::Nothing,
                    _ => Reading::Trickle(6),
                };
                driver.set_reading(slot, reading);
            }
            6 => {
                let b = script.byte();
                // Mostly short steps (keep-alive, delays), some long ones.
                let ms = if b < 128 {
                    u64::from(b) * 100
                } else {
                    u64::from(b - 127) * 800
                };
                trace!("advance {ms} ms");
                driver.advance(Duration::from_millis(ms));
            }
            _ if restarts < MAX_RESTARTS && op & 8 != 0 => {
                restarts += 1;
                trace!("restart");
                driver.restart();
            }
            _ => driver.iteration(|_, _| {}),
        }
    }
    driver.settle();
    driver.stop();
}

/// The configuration a script's first byte picks.
fn config(pick: u8) -> Config {
    let mut c = Config::default();
    // `$SYS` (which reads /proc) is most of a run's time: half the runs.
    c.sys_interval = Duration::ZERO;
    if pick & 1 != 0 {
        c.max_inflight = 2;
        c.max_inflight_bytes = 2_000;
    }
    if pick & 2 != 0 {
        c.max_queued = 3;
        c.max_queued_bytes = 5_000;
        c.queue_qos0 = true;
    }
    if pick & 4 != 0 {
        c.memory_limit = SMALL_MEMORY_LIMIT;
    }
    if pick & 8 != 0 {
        c.max_outgoing_bytes = 300;
    }
    if pick & 16 != 0 {
        c.queue_full = QueueFull::Drop;
    }
    if pick & 32 != 0 {
        c.retain_available = false;
        c.max_qos = QoS::AtLeastOnce;
        c.max_topic_alias = 1;
    }
    if pick & 64 != 0 {
        c.sys_interval = Duration::from_secs(30);
        c.stall_timeout = Duration::from_secs(2);
        c.session_expiry = Some(Duration::from_secs(20));
        c.upgrade_outgoing_qos = true;
        c.max_keepalive = 30;
        c.message_size_limit = 2_000;
    }
    c
}

/// What a client's socket takes of the engine's writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    All,
    Nothing,
    /// At most this many bytes per write.
    Trickle(usize),
}

/// One client: what it sent that the engine has not read, and what it
/// received.
struct Client {
    key: ConnKey,
    /// Unread by the engine; `eof` once the peer closed after them.
    wire: BytesMut,
    eof: bool,
    /// The level its well-formed packets are encoded at.
    speaks: ProtocolLevel,
    /// What it sent until its first packet was complete, and the level
    /// that packet (a CONNECT) set: the engine replies at that level.
    first: BytesMut,
    level: Option<Option<ProtocolLevel>>,
    reading: Reading,
    received: BytesMut,
    /// What it owes for what it received: PUBACK, PUBREC, PUBCOMP.
    owed: Vec<Packet>,
    /// The engine's last write to it was taken whole.
    caught_up: bool,
    check: Checks,
}

/// What the packets written to one client must respect.
#[derive(Default)]
struct Checks {
    connack: bool,
    disconnected: bool,
    /// From its CONNECT (MQTT 5): Maximum Packet Size, Topic Alias Maximum.
    max_packet: Option<u32>,
    alias_max: u16,
    aliases: HashMap<u16, Box<str>>,
}

impl Input for Client {
    fn read_into(&mut self, buf: &mut BytesMut, wanted: usize) -> io::Result<ReadOutcome> {
        if self.wire.is_empty() {
            return Ok(if self.eof {
                ReadOutcome::Eof
            } else {
                ReadOutcome::WouldBlock
            });
        }
        // Short reads too: a frame arrives in pieces.
        let n = wanted.clamp(1, 4_096).min(self.wire.len());
        buf.extend_from_slice(&self.wire.split_to(n));
        Ok(ReadOutcome::Data {
            n,
            drained: self.wire.is_empty(),
        })
    }

    fn has_buffered_input(&self) -> bool {
        false
    }
}

/// The clients by slot, as the engine's [`Output`].
#[derive(Default)]
struct Clients([Option<Client>; CLIENTS]);

impl Clients {
    fn by_key(&mut self, key: ConnKey) -> Option<&mut Client> {
        self.0.iter_mut().flatten().find(|c| c.key == key)
    }
}

impl Clients {
    /// Every connected client sends the acknowledgements it owes.
    fn acknowledge(&mut self, engine: &mut Engine) {
        for c in self.0.iter_mut().flatten() {
            let acks = c.acknowledge();
            if !acks.is_empty() {
                c.wire.extend_from_slice(&acks);
                engine.read_conn(c.key, c);
            }
        }
    }
}

impl Output for Clients {
    fn write(&mut self, key: ConnKey, buf: &mut BytesMut) -> io::Result<bool> {
        let Some(client) = self.by_key(key) else {
            panic!("the engine wrote to connection {key}, which it does not have");
        };
        client.take(buf);
        Ok(buf.is_empty())
    }
}

impl Client {
    /// Takes what its reading allows of `buf`.
    fn take(&mut self, buf: &mut BytesMut) {
        let n = match self.reading {
            Reading::All => buf.len(),
            Reading::Nothing => 0,
            Reading::Trickle(n) => n.min(buf.len()),
        };
        self.received.extend_from_slice(&buf.split_to(n));
        self.caught_up = buf.is_empty();
    }

    /// Notes what it sends until its first packet is complete.
    fn note_sent(&mut self, bytes: &[u8]) {
        if self.level.is_some() {
            return;
        }
        self.first.extend_from_slice(bytes);
        let limits = Limits {
            max_remaining_length: protocol::MAX_CONNECT_LENGTH,
            mqtt5: true,
        };
        match protocol::decode(&mut self.first, None, Role::Server, &limits) {
            Ok(None) => {}
            Ok(Some(Packet::Connect(c))) => {
                self.level = Some(c.level);
                let v = c.properties.get();
                self.check.max_packet = v.and_then(|v| v.maximum_packet_size);
                self.check.alias_max = v.and_then(|v| v.topic_alias_maximum).unwrap_or(0);
            }
            Ok(Some(_)) | Err(_) => self.level = Some(None),
        }
        if self.level.is_some() {
            self.first = BytesMut::new();
        }
    }

    /// Decodes what it received, checking every packet.
    fn check_received(&mut self) {
        // An unknown level is answered in 3.1.1's form.
        let level = self.level.flatten().unwrap_or(ProtocolLevel::V311);
        let limits = Limits {
            max_remaining_length: protocol::MAX_REMAINING_LENGTH,
            mqtt5: true,
        };
        loop {
            let before = self.received.len();
            match protocol::decode(&mut self.received, Some(level), Role::Client, &limits) {
                Ok(Some(packet)) => {
                    trace!("  {} got {packet:?}", self.key);
                    self.check.packet(&packet, before - self.received.len());
                    self.owe(&packet);
                }
                Ok(None) => break,
                Err(e) => panic!("the engine wrote an invalid packet ({level:?}): {e:?}"),
            }
        }
        if self.caught_up {
            assert!(
                self.received.is_empty(),
                "a partial packet was written: {:?}",
                self.received
            );
        }
    }
}

impl Client {
    /// Notes the acknowledgement `packet` calls for.
    fn owe(&mut self, packet: &Packet) {
        let ack = match packet {
            Packet::Publish(p) if p.qos == QoS::AtLeastOnce => Packet::PubAck(Ack::new(p.pkid)),
            Packet::Publish(p) if p.qos == QoS::ExactlyOnce => Packet::PubRec(Ack::new(p.pkid)),
            Packet::PubRel(a) => Packet::PubComp(Ack::new(a.pkid)),
            _ => return,
        };
        if self.owed.len() == MAX_OWED {
            self.owed.remove(0);
        }
        self.owed.push(ack);
    }

    /// The acknowledgements it owes, encoded, if it is connected.
    fn acknowledge(&mut self) -> BytesMut {
        let mut bytes = BytesMut::new();
        let Some(Some(level)) = self.level else {
            return bytes;
        };
        if self.check.connack && !self.check.disconnected && !self.eof {
            for ack in self.owed.drain(..) {
                let _ = protocol::encode(&ack, level, &mut bytes);
            }
        }
        bytes
    }
}

impl Checks {
    fn packet(&mut self, packet: &Packet, size: usize) {
        assert!(!self.disconnected, "{} after DISCONNECT", packet.name());
        match packet {
            Packet::ConnAck(_) => {
                assert!(!self.connack, "a second CONNACK");
                self.connack = true;
            }
            // An MQTT 5 authentication exchange comes first.
            Packet::Auth(_) => {}
            _ => assert!(self.connack, "{} before CONNACK", packet.name()),
        }
        if let Some(max) = self.max_packet {
            assert!(
                size <= max as usize,
                "{size} bytes > Maximum Packet Size {max}: {packet:?}"
            );
        }
        match packet {
            Packet::Disconnect(_) => self.disconnected = true,
            Packet::Publish(p) => self.alias(p),
            _ => {}
        }
    }

    /// [MQTT-3.3.2-9], [MQTT-3.3.2-10]: outbound aliases.
    fn alias(&mut self, p: &protocol::Publish) {
        let alias = p.properties.get().and_then(|v| v.topic_alias);
        match alias {
            Some(a) => {
                assert!(
                    a >= 1 && a <= self.alias_max,
                    "alias {a} > {}",
                    self.alias_max
                );
                if p.topic.is_empty() {
                    assert!(self.aliases.contains_key(&a), "alias {a} used before set");
                } else {
                    self.aliases.insert(a, p.topic.clone());
                }
            }
            None => assert!(!p.topic.is_empty(), "a PUBLISH without topic or alias"),
        }
    }
}

/// The engine, its clients, its clock and its store.
struct Driver {
    config: Config,
    storage: Option<MemStorage>,
    engine: Engine,
    clients: Clients,
    now: Instant,
}

impl Driver {
    fn new(pick: u8) -> Driver {
        let config = config(pick);
        let storage = (pick & 128 != 0).then(MemStorage::default);
        let engine = new_engine(&config, storage.as_ref());
        Driver {
            config,
            storage,
            engine,
            clients: Clients::default(),
            now: Instant::now(),
        }
    }

    /// One loop iteration: deferred reads are taken first, `event` runs
    /// (what the poller reported), then the deferred reads, the timers
    /// and the flush; ended connections are closed after each step.
    fn iteration(&mut self, event: impl FnOnce(&mut Engine, &mut Clients)) {
        self.engine.begin_iteration(self.now);
        let deferred = self.engine.take_pending_reads();
        // A trickling peer keeps making room: the socket turns writable.
        for c in self.clients.0.iter().flatten() {
            if matches!(c.reading, Reading::Trickle(_)) {
                self.engine.conn_event(c.key, true, false);
            }
        }
        event(&mut self.engine, &mut self.clients);
        self.close_ended();
        for key in deferred {
            if let Some(client) = self.clients.by_key(key) {
                self.engine.read_conn(key, client);
            }
            self.close_ended();
        }
        self.engine.end_iteration(&mut self.clients);
        self.close_ended();
        for c in self.clients.0.iter_mut().flatten() {
            c.check_received();
        }
    }

    /// Gives each ended connection its last bytes (as far as it reads),
    /// checks what it received, and frees its slot.
    fn close_ended(&mut self) {
        let closed: Vec<Closed> = self.engine.take_closed().collect();
        for Closed {
            key,
            mut last,
            graceful,
        } in closed
        {
            let slot = self
                .clients
                .0
                .iter()
                .position(|c| c.as_ref().is_some_and(|c| c.key == key));
            let Some(mut client) = slot.and_then(|i| self.clients.0[i].take()) else {
                panic!("connection {key} ended twice, or was never opened");
            };
            trace!("  {key} closed");
            if graceful {
                client.take(&mut last);
            }
            client.check_received();
        }
    }

    fn open(&mut self, slot: usize) {
        if self.clients.0[slot].is_some() {
            return self.iteration(|_, _| {});
        }
        let addr = "127.0.0.1:40000".parse().expect("an address");
        let mut added = None;
        self.iteration(|engine, _| added = engine.add_conn(addr, 0));
        trace!("open {slot}: {added:?}");
        let Some(key) = added else {
            return;
        };
        assert!(
            self.clients.by_key(key).is_none(),
            "key {key} given out twice"
        );
        self.clients.0[slot] = Some(Client {
            key,
            wire: BytesMut::new(),
            eof: false,
            speaks: ProtocolLevel::V311,
            first: BytesMut::new(),
            level: None,
            reading: Reading::All,
            received: BytesMut::new(),
            owed: Vec::new(),
            caught_up: true,
            check: Checks::default(),
        });
    }

    /// Client `slot` sends `bytes`; the poller reports it readable.
    fn send(&mut self, slot: usize, bytes: &[u8]) {
        let Some(client) = self.clients.0[slot].as_mut() else {
            return self.iteration(|_, _| {});
        };
        if client.eof {
            return self.iteration(|_, _| {});
        }
        trace!("{} sends {bytes:?}", client.key);
        client.note_sent(bytes);
        client.wire.extend_from_slice(bytes);
        let key = client.key;
        self.iteration(|engine, clients| {
            if let Some(client) = clients.by_key(key) {
                engine.read_conn(key, client);
            }
        });
    }

    fn send_packet(&mut self, slot: usize, script: &mut Script) {
        let speaks = self.clients.0[slot]
            .as_ref()
            .map_or(ProtocolLevel::V311, |c| c.speaks);
        let packet = engine_packets::packet(script, speaks);
        let level = match &packet {
            Packet::Connect(c) => c.level.unwrap_or(speaks),
            _ => speaks,
        };
        trace!("slot {slot}: {packet:?}");
        let mut bytes = BytesMut::new();
        if protocol::encode(&packet, level, &mut bytes).is_err() {
            return self.iteration(|_, _| {});
        }
        if let Some(client) = self.clients.0[slot].as_mut() {
            client.speaks = level;
        }
        self.send(slot, &bytes);
    }

    /// The peer closes its side: the poller reports it, the engine reads
    /// to the end.
    fn peer_closes(&mut self, slot: usize) {
        let Some(client) = self.clients.0[slot].as_mut() else {
            return self.iteration(|_, _| {});
        };
        client.eof = true;
        let key = client.key;
        trace!("{key}: peer closes");
        self.iteration(|engine, clients| {
            engine.conn_event(key, false, true);
            if let Some(client) = clients.by_key(key) {
                engine.read_conn(key, client);
            }
        });
    }

    /// Client `slot` reads differently from now on; once it reads again,
    /// its socket is reported writable.
    fn set_reading(&mut self, slot: usize, reading: Reading) {
        let Some(client) = self.clients.0[slot].as_mut() else {
            return self.iteration(|_, _| {});
        };
        client.reading = reading;
        let key = client.key;
        trace!("{key}: reads {:?}", reading);
        self.iteration(|engine, _| {
            if reading != Reading::Nothing {
                engine.conn_event(key, true, false);
            }
        });
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.iteration(|_, _| {});
    }

    /// Lets every client read everything and acknowledge what it got,
    /// second after second: then no connection may still have input the
    /// engine stopped reading for good (it would wait forever: a wedge).
    fn settle(&mut self) {
        self.iteration(|engine, clients| {
            for c in clients.0.iter_mut().flatten() {
                c.reading = Reading::All;
                engine.conn_event(c.key, true, false);
            }
        });
        for _ in 0..SETTLE_ROUNDS {
            self.now += Duration::from_secs(1);
            self.iteration(|engine, clients| clients.acknowledge(engine));
        }
        self.quiesce();
        // Under the small `memory_limit` a frame over 16 KiB may wait, by
        // design, for room another connection holds as long as it lives
        // (its Will): only without it must every byte have been read.
        if self.config.memory_limit == SMALL_MEMORY_LIMIT {
            return;
        }
        for c in self.clients.0.iter().flatten() {
            assert!(
                c.wire.is_empty() && !c.eof,
                "connection {} wedged: {} bytes unread{}",
                c.key,
                c.wire.len(),
                if c.eof { ", then end of stream" } else { "" }
            );
        }
    }

    /// Runs the iterations the engine asks for at once (its deadline is
    /// now: reads deferred, a backlog to send as acknowledgements come), as
    /// a loop would, with the clients acknowledging: each must move bytes,
    /// else the loop would spin without end.
    fn quiesce(&mut self) {
        let mut idle = 0;
        for _ in 0..QUIESCE_ROUNDS {
            if self.engine.next_deadline().is_none_or(|at| at > self.now) {
                return;
            }
            let moved = |s: &midge::Stats| s.bytes_received + s.bytes_sent + s.store_bytes_written;
            let before = moved(&self.engine.stats());
            self.iteration(|engine, clients| clients.acknowledge(engine));
            idle = if moved(&self.engine.stats()) == before {
                idle + 1
            } else {
                0
            };
            assert!(
                idle < 3,
                "the engine wants an iteration at once, and does nothing in it"
            );
        }
    }

    /// Stops the engine and starts a new one on the same store (what it
    /// restores must be what it wrote).
    fn restart(&mut self) {
        self.stop();
        self.engine = new_engine(&self.config, self.storage.as_ref());
        self.now = self.now.max(Instant::now());
    }

    /// Stops: every connection ends, and every byte held for them is given
    /// back.
    fn stop(&mut self) {
        self.engine.begin_iteration(self.now);
        self.engine.stop(&mut self.clients);
        self.close_ended();
        let open: Vec<ConnKey> = self.clients.0.iter().flatten().map(|c| c.key).collect();
        assert!(open.is_empty(), "still open after stop: {open:?}");
        let stats = self.engine.stats();
        assert_eq!(stats.sockets, 0);
        assert_eq!(stats.clients_connected, 0);
        assert_eq!(
            stats.memory_used, 0,
            "memory held after every connection ended"
        );
    }
}

/// An engine on `storage` (if any) that implements the enhanced
/// authentication method "x" (see `engine_packets::auth`): a CONNECT
/// without data is asked for more, data "d" is accepted, other data
/// refused.
fn new_engine(config: &Config, storage: Option<&MemStorage>) -> Engine {
    let storage = storage.map(|s| Box::new(s.clone()) as Box<dyn Storage>);
    let mut engine = match Engine::new(config.clone(), storage) {
        Ok(engine) => engine,
        Err(e) => panic!("no engine: {e}"),
    };
    engine.set_auth_method("x", |request| match request.data {
        None => AuthStep::Continue(b"more".to_vec()),
        Some(b"d") => AuthStep::Accept(None),
        Some(_) => AuthStep::Refuse,
    });
    engine
}
