//! One client connection as the engine keeps it: its protocol state and
//! its input and output buffers (the socket is the loop's).
//!
//! Reads append to the input buffer, from which the decoder takes whole
//! packets; replies and deliveries append to the output buffer, which the
//! loop writes once per iteration. Both buffers, and the box that holds
//! them, are released when empty, so an idle connection holds none.

use crate::engine::Output;
use crate::keys::{ConnKey, SessionKey};
use crate::protocol::{LastWill, ProtocolLevel, Publish, QoS};
use bytes::BytesMut;
use slab::Slab;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

/// The flag bit of `Conn::charge`, and the largest charge it records.
const WAITING: u32 = 1 << 31;
pub const MAX_CHARGE: u32 = WAITING - 1;

#[derive(Debug)]
pub struct Conn {
    pub addr: SocketAddr,
    /// Index of the listener that accepted it (at most 64 listeners).
    pub listener: u8,
    /// Distinguishes this connection from a later one that reuses its slab
    /// key, so a stale timer entry is recognised (wraps after 4 billion
    /// connections; a stale entry would still need the same key).
    pub serial: u32,
    /// `None` while both buffers are empty (see [`Io`]).
    io: Option<Box<Io>>,
    /// Set once CONNECT is accepted.
    pub level: Option<ProtocolLevel>,
    /// The session once CONNECT is accepted, as slab key + 1 (so `None`
    /// costs no bytes: every idle connection pays for each one here). The
    /// client id and user name live there, once.
    session: Option<NonZeroU32>,
    /// Boxed: most clients have none, and every byte here is paid by
    /// every idle connection.
    pub will: Option<Box<LastWill>>,
    /// Keep Alive in seconds (0: off).
    pub keep_alive: u16,
    /// When the last complete packet arrived (before CONNECT: when the
    /// connection was accepted), in ms on the broker's clock.
    pub last_rx: u64,
    /// The deadline (ms) this connection's timer entry is filed for; an
    /// entry for any other time is stale. Deadlines are never 0 (see
    /// [`Conn::deadline`]), so `NonZeroU64` keeps it at 8 bytes.
    timer_at: Option<NonZeroU64>,
    /// Already listed for a flush this iteration.
    pub dirty: bool,
    /// Reading stopped because the client does not read its replies.
    pub read_paused: bool,
    /// Listed for another read in the next iteration (read budget hit).
    pub read_pending: bool,
    /// A subscriber's queue that this client publishes into is full: its
    /// PUBLISHes wait here (unacknowledged) until that queue drains, while
    /// its other packets (acks, pings) are still handled.
    pub blocked: bool,
    /// The output depends on store records (the first `held_at`, counted
    /// mod 2^32, see `Store::covers`): it waits until they are durable (see
    /// `flush_dirty`).
    pub held: bool,
    pub held_at: u32,
    /// The poller reported the peer's FIN or an error: read until EOF or
    /// the error instead of stopping at a short read.
    pub peer_closed: bool,
    /// Boxed: only a paused publisher has any.
    parked: Option<Box<Parked>>,
    /// What an MQTT 5 client agreed on at CONNECT (`None` for 3.x).
    pub v5: Option<Box<V5>>,
}

/// An MQTT 5 connection's terms, and its topic aliases once it has any.
/// Boxed in [`Conn`]: 3.x connections pay 8 bytes for it, an idle v5 one
/// 16 more (one small allocation).
#[derive(Debug, Default)]
pub struct V5 {
    /// The client's Maximum Packet Size (`u32::MAX`: none): larger
    /// packets are not sent to it [MQTT-3.1.2-24].
    pub maximum_packet_size: u32,
    /// The client's Receive Maximum: QoS 1/2 messages it takes
    /// unacknowledged at once [MQTT-3.3.4-9].
    pub receive_maximum: u16,
    /// midge's own aliases toward the client: at most this many (the
    /// client's Topic Alias Maximum, capped by `max_topic_alias`).
    pub aliases_out_max: u16,
    /// Request Problem Information: reason strings and user properties
    /// may go on every packet, not only PUBLISH, CONNACK and DISCONNECT
    /// [MQTT-3.1.2-29].
    pub problem_information: bool,
    /// CONNECT's Session Expiry Interval was 0: DISCONNECT cannot raise it
    /// [MQTT-3.14.2-2].
    pub expiry_was_zero: bool,
    /// Allocated with the first alias either way.
    aliases: Option<Box<Aliases>>,
}

/// Topic aliases of one connection, both ways.
#[derive(Debug, Default)]
struct Aliases {
    /// The topics of the client's Topic Aliases, by alias - 1
    /// [MQTT-3.3.2-10].
    inbound: Vec<Option<Box<str>>>,
    /// midge's aliases toward the client, by topic, given to the first
    /// topics sent and kept for the connection.
    outbound: std::collections::HashMap<Box<str>, u16>,
}

impl V5 {
    /// The Topic Alias to send `topic` with, and whether the topic itself
    /// may be left out (the client knows the alias already).
    pub fn alias_for(&mut self, topic: &str) -> (Option<u16>, bool) {
        let (alias, known) = self.alias_peek(topic);
        if let (Some(alias), false) = (alias, known) {
            let aliases = self.aliases.get_or_insert_with(Box::default);
            aliases.outbound.insert(topic.into(), alias);
        }
        (alias, known)
    }

    /// What [`V5::alias_for`] would answer, without recording a new
    /// alias: for sizing a copy before it is written.
    pub fn alias_peek(&self, topic: &str) -> (Option<u16>, bool) {
        if self.aliases_out_max == 0 {
            return (None, false);
        }
        let outbound = self.aliases.as_ref().map(|a| &a.outbound);
        if let Some(&alias) = outbound.and_then(|o| o.get(topic)) {
            return (Some(alias), true);
        }
        match u16::try_from(outbound.map_or(0, |o| o.len()) + 1) {
            Ok(alias) if alias <= self.aliases_out_max => (Some(alias), false),
            _ => (None, false),
        }
    }

    /// The slot of the client's Topic Alias `alias` (1..=`max`), `None`
    /// beyond `max`.
    pub fn alias_slot(&mut self, alias: u16, max: u16) -> Option<&mut Option<Box<str>>> {
        if alias == 0 || alias > max {
            return None;
        }
        let aliases = self.aliases.get_or_insert_with(Box::default);
        let i = usize::from(alias) - 1;
        if aliases.inbound.len() <= i {
            aliases.inbound.resize(i + 1, None);
        }
        aliases.inbound.get_mut(i)
    }
}

/// A connection's input and output buffers. Boxed: most connections are
/// idle, and two inline buffers would cost each of them 64 bytes.
#[derive(Debug, Default)]
struct Io {
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// What the connection holds against the memory budget as last
    /// counted (below 2 GiB), and in the top bit whether it waits for
    /// room (see `engine::memory`). Here, not in [`Conn`]: an idle
    /// connection holds nothing, and pays nothing for it.
    charge: u32,
}

/// PUBLISHes waiting for a full queue to drain, and their size.
#[derive(Debug, Default)]
struct Parked {
    queue: VecDeque<Publish>,
    bytes: usize,
}

impl Conn {
    pub fn new(addr: SocketAddr, listener: u8, serial: u32, now: u64) -> Conn {
        Conn {
            addr,
            listener,
            serial,
            io: None,
            level: None,
            session: None,
            will: None,
            keep_alive: 0,
            last_rx: now,
            timer_at: None,
            dirty: false,
            read_paused: false,
            read_pending: false,
            blocked: false,
            held: false,
            held_at: 0,
            peer_closed: false,
            parked: None,
            v5: None,
        }
    }

    /// The output buffer, to append to.
    pub fn wbuf(&mut self) -> &mut BytesMut {
        &mut self.io.get_or_insert_with(Box::default).wbuf
    }

    /// The input buffer, for the decoder to take packets from.
    pub fn rbuf(&mut self) -> &mut BytesMut {
        &mut self.io.get_or_insert_with(Box::default).rbuf
    }

    /// Bytes waiting to be written.
    pub fn out_len(&self) -> usize {
        self.io.as_ref().map_or(0, |io| io.wbuf.len())
    }

    /// Bytes received but not yet decoded (part of a packet, or packets
    /// held back by flow control).
    pub fn input(&self) -> &[u8] {
        self.io.as_ref().map_or(&[], |io| &io.rbuf[..])
    }

    /// The deadline this connection's timer entry is filed for.
    pub fn timer_at(&self) -> Option<u64> {
        self.timer_at.map(NonZeroU64::get)
    }

    /// Notes the deadline of the connection's timer entry (`None`: no
    /// entry, or a deadline of 0, which [`Conn::deadline`] never gives).
    pub fn set_timer_at(&mut self, at: Option<u64>) {
        self.timer_at = at.and_then(NonZeroU64::new);
    }

    /// Lends the broker's shared read buffer to this connection if it has
    /// no input of its own, so reads need no buffer per connection.
    pub fn borrow_input(&mut self, shared: &mut BytesMut) {
        if self.input().is_empty() {
            std::mem::swap(self.rbuf(), shared);
        }
    }

    /// Gives the shared read buffer back once the input is consumed, or
    /// keeps it (and hands over the smaller one) while a packet is
    /// incomplete.
    pub fn return_input(&mut self, shared: &mut BytesMut) {
        if let Some(io) = self.io.as_mut() {
            if io.rbuf.is_empty() && shared.capacity() < io.rbuf.capacity() {
                std::mem::swap(&mut io.rbuf, shared);
            }
        }
        self.shrink();
    }

    /// Bytes charged to this connection against the memory budget.
    pub fn charged(&self) -> usize {
        self.io
            .as_ref()
            .map_or(0, |io| (io.charge & !WAITING) as usize)
    }

    /// Whether its reading waits for room in the memory budget.
    pub fn mem_waiting(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.charge & WAITING != 0)
    }

    /// Records its charge (below [`MAX_CHARGE`]) and whether it waits.
    /// Nothing to record allocates nothing (and may release the buffers).
    pub fn set_charge(&mut self, bytes: u32, waiting: bool) {
        let charge = bytes.min(MAX_CHARGE) | if waiting { WAITING } else { 0 };
        if charge == 0 {
            if let Some(io) = self.io.as_mut() {
                io.charge = 0;
            }
            self.shrink();
        } else {
            self.io.get_or_insert_with(Box::default).charge = charge;
        }
    }

    /// The session this connection is attached to.
    pub fn session(&self) -> Option<SessionKey> {
        self.session
            .and_then(|s| SessionKey::new(s.get() as usize - 1))
    }

    /// Attaches the connection to session `sid` (stored plus one, so that
    /// "none" costs no extra bytes).
    pub fn set_session(&mut self, sid: SessionKey) {
        self.session = sid
            .index()
            .checked_add(1)
            .and_then(|n| u32::try_from(n).ok())
            .and_then(NonZeroU32::new);
    }

    /// Topic and payload bytes of the parked PUBLISHes.
    pub fn parked_bytes(&self) -> usize {
        self.parked.as_ref().map_or(0, |p| p.bytes)
    }

    /// Parked PUBLISHes that wait for an acknowledgement (QoS 1 and 2).
    pub fn parked_unacked(&self) -> usize {
        let parked = self.parked.as_ref().map(|p| p.queue.iter());
        parked.map_or(0, |q| q.filter(|p| p.qos != QoS::AtMostOnce).count())
    }

    /// Keeps a PUBLISH until the queue it feeds drains. It must have its
    /// own payload ([`crate::protocol::PublishRef::into_publish`]), not a
    /// view of the read buffer, which it would pin.
    pub fn park(&mut self, p: Publish) {
        let parked = self.parked.get_or_insert_with(Box::default);
        parked.bytes += p.topic.len() + p.payload.len();
        parked.queue.push_back(p);
    }

    /// The oldest parked PUBLISH; the box goes when the last one does.
    pub fn unpark(&mut self) -> Option<Publish> {
        let parked = self.parked.as_mut()?;
        let p = parked.queue.pop_front();
        if let Some(p) = &p {
            parked.bytes -= p.topic.len() + p.payload.len();
        }
        if parked.queue.is_empty() {
            self.parked = None;
        }
        p
    }

    /// When this connection must be closed if nothing arrives: the connect
    /// timeout before CONNECT, 1.5 x Keep Alive after it [MQTT-3.1.2-24].
    /// In ms on the broker's clock, one more than the limit: times are
    /// whole milliseconds (truncated), so a deadline due at `now >= d`
    /// never fires before the full period has passed.
    pub fn deadline(&self, connect_timeout: Duration) -> Option<u64> {
        let period = if self.level.is_none() {
            u64::try_from(connect_timeout.as_millis()).ok()?
        } else if self.keep_alive == 0 {
            return None;
        } else {
            u64::from(self.keep_alive) * 1500
        };
        self.last_rx.checked_add(period + 1)
    }

    /// Writes as much of the output as `out` takes. Ok(true) when
    /// everything is out (an empty output still asks `out`: a transport
    /// may have bytes of its own to send).
    pub fn flush(&mut self, key: ConnKey, out: &mut dyn Output) -> io::Result<bool> {
        let done = match self.io.as_mut() {
            Some(io) => out.write(key, &mut io.wbuf)?,
            None => out.write(key, &mut BytesMut::new())?,
        };
        if done {
            self.shrink();
        }
        Ok(done)
    }

    /// The output, taken whole (a closed connection's last bytes).
    pub fn take_output(&mut self) -> BytesMut {
        let out = self.io.as_mut().map(|io| std::mem::take(&mut io.wbuf));
        out.unwrap_or_default()
    }

    /// Gives back buffers once they are empty (and nothing is charged
    /// against the memory budget): an idle connection holds
    /// none (the input buffer is lent by the broker, see
    /// `Engine::read_conn`; a busy one reallocates its output buffer once
    /// per loop iteration at most, which costs far less than the write).
    pub fn shrink(&mut self) {
        if self
            .io
            .as_ref()
            .is_some_and(|io| io.rbuf.is_empty() && io.wbuf.is_empty() && io.charge == 0)
        {
            self.io = None;
        }
    }
}

/// Every open connection, by [`ConnKey`].
#[derive(Debug, Default)]
pub struct Conns {
    slab: Slab<Conn>,
}

impl Conns {
    pub fn get(&self, key: ConnKey) -> Option<&Conn> {
        self.slab.get(key.index())
    }

    pub fn get_mut(&mut self, key: ConnKey) -> Option<&mut Conn> {
        self.slab.get_mut(key.index())
    }

    pub fn try_remove(&mut self, key: ConnKey) -> Option<Conn> {
        self.slab.try_remove(key.index())
    }

    /// The key the next [`Conns::insert`] will use (to register the socket
    /// under it first).
    pub fn next_key(&self) -> ConnKey {
        ConnKey::saturating(self.slab.vacant_key())
    }

    pub fn insert(&mut self, conn: Conn) -> ConnKey {
        ConnKey::saturating(self.slab.insert(conn))
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn keys(&self) -> impl Iterator<Item = ConnKey> + '_ {
        self.slab.iter().map(|(k, _)| ConnKey::saturating(k))
    }
}
