//! The engine: everything the broker knows and does, without I/O.
//!
//! Sessions, subscriptions, retained messages, access control, the
//! persistence records and the statistics live here, with each connection's
//! state and buffers. The engine never touches a socket: the event loop
//! (`crate::broker`) hands it a connection's bytes through an [`Input`]
//! ([`Engine::read_conn`]) and takes the output of every connection that
//! has some through an [`Output`] ([`Engine::flush_dirty`]); connections the
//! engine ends wait in [`Engine::take_closed`] with their last bytes. So
//! tests drive it packet in, packet out, with no sockets (`engine/tests.rs`).
//!
//! Time is the loop's too: it calls [`Engine::begin_iteration`] with the
//! current time, and the engine's timer heap says when it is next due
//! ([`Engine::next_deadline`]).
//!
//! Public so that a driver other than the event loop can run it (the fuzz
//! target `engine` in `fuzz/targets.rs` does). One iteration, as
//! [`crate::Broker::poll_once`] does it:
//!
//! 1. [`Engine::begin_iteration`] with the time;
//! 2. for each connection with news: [`Engine::conn_event`] (writable, or
//!    closed by the peer) and, if it is readable, [`Engine::read_conn`];
//!    then [`Engine::read_conn`] again for each of
//!    [`Engine::take_pending_reads`];
//! 3. [`Engine::end_iteration`] (timers, then every connection's output);
//! 4. [`Engine::take_closed`]: write each one's last bytes, close it.
//!
//! New connections come from [`Engine::add_conn`]; [`Engine::stop`] ends
//! them all.

// The engine's larger concerns, each an `impl Engine` of its own:
mod access; // credentials, ACL and authorizer checks, re-checks on reload
mod connect; // CONNECT: checks, takeover, resume, refusals; sessions made and dropped
mod conns; // admitting, reading, writing and ending connections
mod delivery; // routing; to connections, queues and the in-flight window; flow control
mod embed; // the host's flow control, the thread-safe Remote, disconnect, reload
mod enhanced_auth; // MQTT 5 AUTH exchanges through the host's methods
mod expiry; // MQTT 5: delayed Wills, sessions that end on their own time
mod groups; // shared subscriptions: joining, choosing a member, handing over
mod host_api; // the host's publish, subscribe and hooks
mod memory; // the global memory budget: bytes held for connections, reads waiting for room
mod mqtt5; // MQTT 5: terms of a connection, CONNACK properties, aliases, DISCONNECT
mod packets; // what each client packet does
mod persist; // records for the store, restore, compaction
mod stall; // subscribers that take nothing no longer hold publishers back
mod sys; // $SYS topics
mod timers; // keep-alive, connect timeout, $SYS, session expiry
mod write; // one copy of a message to a connection: size check, form per level, resends

use access::load_auth;
use delivery::{Fresh, Held, Routed};
pub use embed::{Published, Remote};
use enhanced_auth::Authenticated;
use mqtt5::write_within;
use timers::{expiry_step, millis};
use write::{drop_unsent, resend_inflight, Copy};

use crate::auth::{Acl, PasswordFile, PasswordGuard, Verdict};
use crate::config::{Config, ListenerSettings, QueueFull};
use crate::conn::{Conn, Conns};
use crate::host::{
    Access, AuthDecision, Authenticator, Authorizer, Credentials, Event, EventCallback,
    HostMessage, HostSub,
};
use crate::keys::{ConnKey, Destination, HostKey, Origin, SessionKey};
use crate::protocol::{
    self, Ack, AckKind, DecodeError, LastWill, Limits, Outbound, Packet, PacketRef, Properties,
    PropertyValues, ProtocolLevel, PublishFlags, PublishRef, QoS, ReasonCode, RetainHandling, Role,
    Violation,
};
use crate::retained::{Retained, Source};
use crate::router::{Grant, Router, Sub};
use crate::session::{Delivery, Frame, Inflight, Message, MessageView, Session, Sessions, Stage};
use crate::shared;
use crate::store::{Record, Storage, Store};
use crate::timer::{self, Due, Timers};
use crate::topic;
/// What one read of an [`Input`] gave.
pub use crate::transport::ReadOutcome;
use log::{debug, error, info, warn};
use slab::Slab;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes read from one connection before others get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// Counters a broker keeps; see [`crate::Broker::stats`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Clients whose CONNECT was accepted and who are still connected.
    pub clients_connected: usize,
    /// Open sockets, including those that have not sent CONNECT yet.
    pub sockets: usize,
    /// Accepted CONNECTs since start.
    pub connects_total: u64,
    /// Sessions held (online and offline).
    pub sessions: usize,
    pub subscriptions: usize,
    pub retained: usize,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// QoS 0 messages dropped because a client's output buffer was full.
    pub dropped_qos0: u64,
    /// Messages not sent to an MQTT 5 client because they were larger than
    /// its Maximum Packet Size.
    pub dropped_too_large: u64,
    /// Messages dropped because a session's queue was full.
    pub dropped_queue_full: u64,
    /// Subscribers disconnected because they took nothing while publishers
    /// waited for them (`stall_timeout`).
    pub stalled_subscribers: u64,
    /// Times a publisher was paused because a subscriber's queue was full.
    pub publishers_paused: u64,
    /// Bytes written to the persistence store, and fsyncs done.
    pub store_bytes_written: u64,
    pub store_fsyncs: u64,
    /// The store cannot write or sync: acknowledgements that need it wait.
    pub store_failing: bool,
    /// TCP connections accepted since start.
    pub sockets_accepted: u64,
    /// Offline sessions deleted by `persistent_client_expiration`.
    pub clients_expired: u64,
    /// Payload bytes of PUBLISHes received and sent.
    pub publish_bytes_received: u64,
    pub publish_bytes_sent: u64,
    /// Payload bytes of the retained messages.
    pub retained_bytes: u64,
    /// Messages waiting in sessions (queued or in flight), and their
    /// payload bytes: counted when asked, one pass over the sessions.
    pub queued_messages: usize,
    pub queued_bytes: u64,
    /// Bytes held for connections against `memory_limit` (their frames,
    /// output, parked PUBLISHes and Wills).
    pub memory_used: usize,
}

/// A subscription made by the host program with [`crate::Broker::subscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostSubscription(HostKey);

/// Why a connection ends; decides the log line and whether the Will goes.
#[derive(Debug)]
enum Reason {
    Eof,
    Io(io::Error),
    /// The bytes were not a valid packet.
    Decode(DecodeError),
    /// A valid packet the connection's state or the topic rules forbid.
    ProtocolError(Violation),
    /// The broker's own state is inconsistent (a bug, not the client's).
    Internal(&'static str),
    KeepAlive,
    ConnectTimeout,
    TakenOver,
    /// The host program asked ([`crate::Broker::disconnect_client`]).
    Kicked,
    Disconnect,
    Refused(ReasonCode),
    /// A re-authentication (MQTT 5 AUTH) failed.
    AuthFailed,
    /// Nothing could be sent to this subscriber for this long while
    /// publishers waited for it (`stall_timeout`).
    Stalled(Duration),
    Shutdown,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Decode(e) => write!(f, "protocol violation: {e}"),
            Reason::ProtocolError(v) => write!(f, "protocol violation: {v}"),
            Reason::Internal(what) => write!(f, "internal error: {what}"),
            Reason::Io(e) => write!(f, "{e}"),
            Reason::Eof => write!(f, "closed by the client without DISCONNECT"),
            Reason::KeepAlive => write!(f, "keep-alive timeout"),
            Reason::ConnectTimeout => write!(f, "no CONNECT in time"),
            Reason::TakenOver => write!(f, "client id taken over by a new connection"),
            Reason::Kicked => write!(f, "disconnected by the host program"),
            Reason::Disconnect => write!(f, "client sent DISCONNECT"),
            Reason::Refused(code) => {
                write!(f, "refused with CONNACK code {}", code.v3_connack_code())
            }
            Reason::AuthFailed => write!(f, "re-authentication failed"),
            Reason::Stalled(d) => write!(
                f,
                "took no message for {}s while publishers waited for it (stall_timeout)",
                d.as_secs()
            ),
            Reason::Shutdown => write!(f, "broker shutting down"),
        }
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

fn mark_dirty(conn: &mut Conn, key: ConnKey, dirty: &mut Vec<ConnKey>) {
    if !conn.dirty {
        conn.dirty = true;
        dirty.push(key);
    }
}

/// A connection's incoming bytes, as the engine reads them: the loop's
/// transport stream, or a test's buffer.
pub trait Input {
    /// One read appended to `buf`, sized for the packet being assembled.
    fn read_into(&mut self, buf: &mut bytes::BytesMut, wanted: usize) -> io::Result<ReadOutcome>;
    /// Input held above the socket that no readiness event will announce
    /// (see `transport`): reading must not stop at a drained socket.
    fn has_buffered_input(&self) -> bool;
}

/// Where connections' output goes when the engine flushes.
pub trait Output {
    /// Writes as much of `buf` (connection `key`'s output) as it takes,
    /// removing what was written. Ok(true) when everything is out.
    fn write(&mut self, key: ConnKey, buf: &mut bytes::BytesMut) -> io::Result<bool>;
}

/// A connection the engine ended: the loop writes its last bytes (a
/// refusing CONNACK, a server DISCONNECT) if `graceful`, then closes the
/// socket.
#[derive(Debug)]
pub struct Closed {
    /// The connection (its key may be given out again from now on).
    pub key: ConnKey,
    /// Its output not yet written.
    pub last: bytes::BytesMut,
    /// Not after an I/O error: the output goes, then a FIN.
    pub graceful: bool,
}

/// The broker's state and behaviour, driven by a loop (see the module's
/// documentation for the order of the calls).
pub struct Engine {
    config: Config,
    /// Open connections per listener (each listener's `max_connections`).
    listener_clients: Vec<usize>,
    conns: Conns,
    /// Connections ended since the loop last asked ([`Engine::take_closed`]).
    closed: Vec<Closed>,
    sessions: Sessions,
    router: Router,
    /// Shared subscription groups ([`Destination::Group`]).
    groups: shared::Groups,
    retained: Retained,
    timers: Timers,
    stats: Stats,
    started: Instant,
    /// What `$SYS` published last (only changed values are sent again).
    sys_last: HashMap<&'static str, String>,
    /// `$SYS/broker/load/...` averages.
    sys_load: sys::Load,
    clients_maximum: usize,
    /// Connections with output to write at the end of this iteration.
    dirty: Vec<ConnKey>,
    /// Connections to read again in the next iteration (read budget hit,
    /// room in the memory budget, a CONNECT waiting for hashing budget).
    pending_reads: Vec<ConnKey>,
    /// Bytes held for connections against `memory_limit`.
    memory: memory::Memory,
    /// Sessions whose scan of the retained store for a new subscription
    /// ran out of budget: pumped again next iteration.
    pending_scans: Vec<SessionKey>,
    /// Reused scratch space, so routing does not allocate per message.
    routes: Vec<Sub>,
    /// Reused scratch space for retained messages found by a scan.
    found: Vec<(Arc<Message>, QoS, u32)>,
    /// The read buffer lent to whichever connection is being read.
    scratch: bytes::BytesMut,
    now: Instant,
    /// `now` in ms on the broker's clock (since `started`), the form kept
    /// per connection.
    now_ms: u64,
    next_serial: u32,
    next_client_id: u64,
    /// Where the message being routed came from (see [`Engine::route`]).
    origin: Origin,
    /// The time the [`Due::RetainedExpiry`] entry is filed for.
    retained_expiry_at: Option<u64>,
    /// Subscribers publishers wait for, with a timer entry to look at them
    /// again (see `stall`).
    stall_watch: std::collections::HashSet<SessionKey>,
    /// Subscribers found stalled while routing, to disconnect after it.
    stalled_subscribers: Vec<SessionKey>,
    /// Enhanced authentication methods the host implements, by name.
    auth_methods: HashMap<String, crate::host::AuthMethodHandler>,
    /// Connections that authenticated with one of them (or are doing so).
    auth_exchanges: HashMap<ConnKey, enhanced_auth::Exchange>,
    /// Wills waiting for their Will Delay Interval, by session.
    delayed_wills: HashMap<SessionKey, expiry::DelayedWill>,
    /// Subscriptions of the host program ([`Destination::Host`]).
    host_subs: Slab<HostSub>,
    on_event: Option<EventCallback>,
    authenticator: Option<Authenticator>,
    authorizer: Option<Authorizer>,
    /// From `password_file` / `acl_file`; reloaded on SIGHUP.
    passwords: Option<PasswordFile>,
    /// Bounds the password hashing work per iteration and per address.
    guard: PasswordGuard,
    acl: Option<Acl>,
    /// The persistence log, when `persistence` is on.
    store: Option<Store>,
    /// A compaction's progress.
    snapshot: Option<persist::Snapshot>,
    /// Message bodies written to the store this iteration.
    bodies: persist::Bodies,
    /// The last body id given out in the store.
    next_body: u64,
    /// Connections whose output waits for the store to make the records
    /// it depends on durable (see `flush_dirty`).
    held: Vec<ConnKey>,
    /// The store is over its byte limit (logged once each way).
    store_full_logged: bool,
    /// The host program as a publisher: flow control, the Remote queue.
    host: embed::HostState,
}

impl Engine {
    /// An engine for `config` (its listeners' settings; nothing is bound),
    /// with persistence on `storage` if given, else as configured.
    pub fn new(config: Config, storage: Option<Box<dyn Storage>>) -> io::Result<Engine> {
        let (passwords, acl) =
            load_auth(&config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let now = Instant::now();
        let mut engine = Engine {
            listener_clients: vec![0; config.listeners.len()],
            config,
            conns: Conns::default(),
            closed: Vec::new(),
            sessions: Sessions::default(),
            router: Router::new(),
            groups: shared::Groups::default(),
            retained: Retained::default(),
            timers: Timers::default(),
            stats: Stats::default(),
            started: now,
            sys_last: HashMap::new(),
            sys_load: sys::Load::default(),
            clients_maximum: 0,
            dirty: Vec::new(),
            pending_reads: Vec::new(),
            memory: memory::Memory::default(),
            pending_scans: Vec::new(),
            found: Vec::new(),
            routes: Vec::new(),
            scratch: bytes::BytesMut::new(),
            now,
            now_ms: 0,
            next_serial: 0,
            next_client_id: 0,
            origin: Origin::Broker,
            host_subs: Slab::new(),
            delayed_wills: HashMap::new(),
            auth_methods: HashMap::new(),
            stall_watch: std::collections::HashSet::new(),
            stalled_subscribers: Vec::new(),
            auth_exchanges: HashMap::new(),
            retained_expiry_at: None,
            on_event: None,
            authenticator: None,
            authorizer: None,
            passwords,
            guard: PasswordGuard::default(),
            acl,
            store: None,
            snapshot: None,
            bodies: persist::Bodies::starting_now(),
            next_body: 0,
            held: Vec::new(),
            store_full_logged: false,
            host: embed::HostState::default(),
        };
        if !engine.config.sys_interval.is_zero() {
            engine.timers.schedule(0, Due::Sys);
        }
        if let Some(expiry) = engine.config.session_expiry {
            engine
                .timers
                .schedule(millis(expiry_step(expiry)), Due::SessionExpiry);
        }
        engine.open_store(storage)?;
        Ok(engine)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Its counters now (queued messages counted by a pass over the
    /// sessions).
    pub fn stats(&self) -> Stats {
        Stats {
            sockets: self.conns.len(),
            sessions: self.sessions.len(),
            subscriptions: self.subscription_count(),
            retained: self.retained.len(),
            retained_bytes: self.retained.payload_bytes(),
            queued_messages: self
                .sessions
                .iter()
                .map(|(_, s)| sys::queued_messages(s))
                .sum(),
            queued_bytes: self
                .sessions
                .iter()
                .map(|(_, s)| sys::queued_bytes(s))
                .sum(),
            store_bytes_written: self.store.as_ref().map_or(0, |s| s.bytes_written),
            store_fsyncs: self.store.as_ref().map_or(0, |s| s.fsyncs),
            store_failing: self.store.as_ref().is_some_and(Store::is_failing),
            memory_used: self.memory.used(),
            ..self.stats.clone()
        }
    }

    /// When the engine next has timed work to do (a keep-alive or connect
    /// deadline, `$SYS`, a store sync or retry); now when work is pending:
    /// deferred reads or scans, a compaction, an owed ready callback.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self
            .timers
            .next_due()
            .map(|ms| timer::instant(self.started, ms));
        let sync = self.store.as_ref().and_then(Store::sync_deadline);
        let retry = self.store.as_ref().and_then(Store::retry_deadline);
        let soonest = [timer, sync, retry].into_iter().flatten().min();
        if self.pending_reads.is_empty()
            && self.pending_scans.is_empty()
            && self.snapshot.is_none()
            && !self.host.ready_pending
        {
            soonest
        } else {
            Some(Instant::now())
        }
    }

    /// Sets the engine's clock for what follows (the loop calls it after
    /// each wait), and lets waiting readers have the room freed meanwhile.
    pub fn begin_iteration(&mut self, now: Instant) {
        self.set_now(now);
        self.guard.begin_iteration(now);
        self.resume_waiting();
    }

    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = now;
        self.now_ms = timer::millis(self.started, now);
    }

    /// Connections to read again this iteration, each once (their turn
    /// comes after this iteration's events, so one busy client cannot
    /// starve the rest).
    pub fn take_pending_reads(&mut self) -> Vec<ConnKey> {
        let mut keys = std::mem::take(&mut self.pending_reads);
        keys.retain(|&key| {
            self.conns
                .get_mut(key)
                .is_some_and(|c| std::mem::take(&mut c.read_pending))
        });
        keys
    }

    /// The end of an iteration's input: scans of the retained store that
    /// ran out of budget go on, due timers fire, a compaction takes its
    /// step (before the flush: completing a rewrite releases the output
    /// held meanwhile), then every connection's output goes out, and the
    /// host's ready callback runs if it is owed.
    pub fn end_iteration(&mut self, out: &mut dyn Output) {
        let mut scans = std::mem::take(&mut self.pending_scans);
        scans.sort_unstable();
        scans.dedup();
        for sid in scans {
            self.pump(sid);
        }
        self.fire_timers();
        self.compaction_step();
        self.flush_dirty(out);
        self.bodies.clear();
        self.host_turn();
    }

    /// The loop saw connection `key` writable (its output can go on) or
    /// closed by the peer (read until EOF).
    pub fn conn_event(&mut self, key: ConnKey, writable: bool, closed: bool) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.peer_closed |= closed;
            if writable {
                mark_dirty(conn, key, &mut self.dirty);
            }
        }
    }

    /// Connections ended since the last call, for the loop to close.
    pub fn take_closed(&mut self) -> std::vec::Drain<'_, Closed> {
        self.closed.drain(..)
    }

    /// Counts bytes the loop wrote outside [`Engine::flush_dirty`] (the
    /// last bytes of a closed connection).
    pub fn count_sent(&mut self, bytes: usize) {
        self.stats.bytes_sent += bytes as u64;
    }

    /// Stops: publishes the Wills of connected clients (their connections
    /// end without DISCONNECT) and the delayed ones, writes what is
    /// pending, ends every connection and syncs the store.
    pub fn stop(&mut self, out: &mut dyn Output) {
        // What other threads queued before asking to stop goes first.
        self.drain_remote();
        self.close_all(out);
        if let Some(store) = &mut self.store {
            if let Err(e) = store.sync() {
                error!("persistence: final sync failed: {e}");
            }
            info!(
                "persistence: wrote {} bytes with {} fsyncs since start; store is {} bytes",
                store.bytes_written,
                store.fsyncs,
                store.size()
            );
        }
        self.host.close_remote();
    }
}

#[cfg(test)]
mod tests;
