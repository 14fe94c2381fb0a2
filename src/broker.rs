//! The broker: one single-threaded `mio` event loop.
//!
//! Each call of [`Broker::poll_once`] is one iteration, in the spirit of
//! redis's `aeProcessEvents`: wait for readiness or the next deadline, read
//! and handle what arrived (replies and deliveries only append to output
//! buffers), fire due timers, then write every connection with pending
//! output once. [`Broker::run`] repeats that until shutdown; a host program
//! can instead watch [`Broker::as_raw_fd`] in its own loop.

// The loop's larger concerns, each an `impl Broker` of its own:
mod access; // credentials, ACL and authorizer checks, re-checks on reload
mod connect; // CONNECT: checks, takeover, resume, refusals; sessions made and dropped
mod conns; // accepting, reading, writing and closing connections
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
mod timers; // keep-alive, connect timeout, $SYS, session expiry, accept back-off

use access::load_auth;
use delivery::{resend_inflight, Copy};
pub use embed::{Published, Remote};
use enhanced_auth::Authenticated;
use mqtt5::write_within;
use timers::{expiry_step, millis};

use crate::auth::{Acl, PasswordFile, PasswordGuard, Verdict};
use crate::config::{Config, ListenerSettings, QueueFull};
use crate::conn::{Conn, Conns};
use crate::host::{
    Access, AuthDecision, Authenticator, Authorizer, Credentials, Event, EventCallback,
    HostMessage, HostSub,
};
use crate::keys::{ConnKey, Destination, HostKey, SessionKey};
use crate::protocol::{
    self, Ack, AckKind, DecodeError, LastWill, Limits, Outbound, Packet, Properties,
    PropertyValues, ProtocolLevel, Publish, PublishFlags, QoS, ReasonCode, RetainHandling, Role,
    Violation,
};
use crate::retained::{Retained, Source};
use crate::router::{Grant, Router, Sub};
use crate::session::{Delivery, Inflight, Message, Session, Sessions, Stage};
use crate::shared;
use crate::store::{Record, Storage, Store};
use crate::timer::{self, Due, Timers};
use crate::topic;
use crate::transport::{Listener, ReadOutcome, Stream};
use log::{debug, error, info, warn};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAKER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
const HANGUP: Token = Token(usize::MAX - 2);
/// Listener `i` has token `LISTENER_BASE - i`; client tokens are slab keys,
/// far below.
const LISTENER_BASE: usize = usize::MAX - 3;
const MAX_LISTENERS: usize = 64;
/// Bytes read from one connection before others get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// How long to stop accepting when the process runs out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Counters a broker keeps; see [`Broker::stats`].
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

/// Stops a running broker from any thread (or a signal handler's pipe).
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Makes the loop's descriptor readable, so it runs an iteration.
    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            warn!("could not wake the broker loop: {e}");
        }
    }
}

/// A subscription made by the host program with [`Broker::subscribe`].
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
    /// The host program asked ([`Broker::disconnect_client`]).
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

pub struct Broker {
    config: Config,
    poll: Poll,
    events: Events,
    listeners: Vec<Listener>,
    conns: Conns,
    sessions: Sessions,
    router: Router,
    /// Shared subscription groups ([`Destination::Group`]).
    groups: shared::Groups,
    retained: Retained,
    timers: Timers,
    stats: Stats,
    shutdown: Arc<AtomicBool>,
    waker: Arc<Waker>,
    signals: Option<mio::net::UnixStream>,
    hangup: Option<mio::net::UnixStream>,
    started: Instant,
    /// What `$SYS` published last (only changed values are sent again).
    sys_last: HashMap<&'static str, String>,
    /// `$SYS/broker/load/...` averages.
    sys_load: sys::Load,
    clients_maximum: usize,
    /// Connections with output to write at the end of this iteration.
    dirty: Vec<ConnKey>,
    /// Connections whose read budget ran out: read again next iteration.
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
    ready: Vec<(Token, bool, bool, bool)>,
    /// The read buffer lent to whichever connection is being read.
    scratch: bytes::BytesMut,
    now: Instant,
    /// `now` in ms on the broker's clock (since `started`), the form kept
    /// per connection.
    now_ms: u64,
    next_serial: u32,
    next_client_id: u64,
    /// Accepting stopped after a descriptor shortage (until
    /// [`Due::AcceptResume`]).
    accept_paused: bool,
    /// The connection whose PUBLISH is being routed, for flow control.
    publisher: Option<ConnKey>,
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
    stopped: bool,
    /// The last poll filled the event buffer: more may be ready that an
    /// edge-triggered host will not hear about again, so the next
    /// iteration is due at once.
    full_batch: bool,
    /// The host program as a publisher: flow control, the Remote queue.
    host: embed::HostState,
}

impl Broker {
    /// Binds the configured listeners. Nothing is served until the loop runs.
    pub fn new(config: Config) -> io::Result<Broker> {
        Broker::build(config, None)
    }

    /// Like [`Broker::new`], with persistence on `storage` whatever the
    /// configuration says about it: a host's own storage, or a test's that
    /// injects faults.
    pub fn with_storage(config: Config, storage: Box<dyn Storage>) -> io::Result<Broker> {
        Broker::build(config, Some(storage))
    }

    fn build(config: Config, storage: Option<Box<dyn Storage>>) -> io::Result<Broker> {
        if config.listeners.is_empty() || config.listeners.len() > MAX_LISTENERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("between 1 and {MAX_LISTENERS} listen addresses are needed"),
            ));
        }
        let (passwords, acl) =
            load_auth(&config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut listeners = Vec::new();
        for (i, listener) in config.listeners.iter().enumerate() {
            let mut l = Listener::bind(listener)?;
            l.register(poll.registry(), Token(LISTENER_BASE - i))?;
            listeners.push(l);
        }
        let mut broker = Broker {
            config,
            poll,
            events: Events::with_capacity(1024),
            listeners,
            conns: Conns::default(),
            sessions: Sessions::default(),
            router: Router::new(),
            groups: shared::Groups::default(),
            retained: Retained::default(),
            timers: Timers::default(),
            stats: Stats::default(),
            shutdown: Arc::new(AtomicBool::new(false)),
            waker,
            signals: None,
            hangup: None,
            started: Instant::now(),
            sys_last: HashMap::new(),
            sys_load: sys::Load::default(),
            clients_maximum: 0,
            dirty: Vec::new(),
            pending_reads: Vec::new(),
            memory: memory::Memory::default(),
            pending_scans: Vec::new(),
            found: Vec::new(),
            routes: Vec::new(),
            ready: Vec::new(),
            scratch: bytes::BytesMut::new(),
            now: Instant::now(),
            now_ms: 0,
            next_serial: 0,
            next_client_id: 0,
            accept_paused: false,
            publisher: None,
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
            stopped: false,
            full_batch: false,
            host: embed::HostState::default(),
        };
        if !broker.config.sys_interval.is_zero() {
            broker.timers.schedule(0, Due::Sys);
        }
        if let Some(expiry) = broker.config.session_expiry {
            broker
                .timers
                .schedule(millis(expiry_step(expiry)), Due::SessionExpiry);
        }
        broker.open_store(storage)?;
        // Only now that nothing can fail the start any more.
        for addr in broker.local_addrs() {
            info!("listening on {addr}");
        }
        Ok(broker)
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The first listener's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self.listeners.first() {
            Some(l) => l.local_addr(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            flag: self.shutdown.clone(),
            waker: self.waker.clone(),
        }
    }

    /// True once a shutdown was requested (handle or signal).
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

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

    /// Stops the loop on SIGINT and SIGTERM, and reloads the password and
    /// ACL files on SIGHUP. The handlers only write a byte to a pipe that
    /// the loop watches, so nothing runs in signal context.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        self.signals = Some(self.signal_pipe(&[SIGINT, SIGTERM], SIGNALS)?);
        self.hangup = Some(self.signal_pipe(&[SIGHUP], HANGUP)?);
        Ok(())
    }

    fn signal_pipe(&self, signals: &[i32], token: Token) -> io::Result<mio::net::UnixStream> {
        let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        for &sig in signals {
            signal_hook::low_level::pipe::register(sig, tx.try_clone()?)?;
        }
        let mut rx = mio::net::UnixStream::from_std(rx);
        self.poll
            .registry()
            .register(&mut rx, token, Interest::READABLE)?;
        Ok(rx)
    }

    /// When the loop next has timed work to do (a keep-alive or connect
    /// deadline, `$SYS`, ...), for a host that drives
    /// [`Broker::poll_once`] itself. Now when work is pending: deferred
    /// reads or scans, a compaction, an owed ready callback, or a last poll
    /// that filled its event buffer (an edge-triggered host would not hear
    /// about the rest again).
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
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
            && !self.full_batch
            && !self.host.ready_pending
        {
            soonest
        } else {
            Some(now)
        }
    }

    /// Runs until a shutdown is requested, then closes every connection.
    pub fn run(&mut self) -> io::Result<()> {
        while !self.is_shutting_down() {
            self.poll_once(None)?;
        }
        self.shutdown();
        Ok(())
    }

    /// Stops serving: publishes the Wills of connected clients (their
    /// connections end without DISCONNECT), writes what is pending, closes
    /// every connection and the listening sockets (new clients are
    /// refused). Publishes queued by a [`Remote`] are published first
    /// (except QoS 1/2 ones held back while the host is paused, which are
    /// dropped), further ones refused. Idempotent.
    pub fn shutdown(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        if self.stopped {
            return;
        }
        self.stopped = true;
        // What other threads queued before asking to stop goes first.
        self.drain_remote();
        self.close_all();
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
        for l in &mut self.listeners {
            let _ = l.deregister(self.poll.registry());
        }
        // Closed, not only unwatched: a listening socket left open would
        // complete handshakes that nobody answers.
        self.listeners.clear();
        self.host.close_remote();
    }

    /// One loop iteration: waits at most `timeout` (and never past the next
    /// deadline; `None` means until something happens), then handles
    /// everything that is ready and returns.
    pub fn poll_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let wait = self
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        let wait = match (wait, timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        self.now = Instant::now();
        self.now_ms = timer::millis(self.started, self.now);
        self.guard.begin_iteration(self.now);
        // Reads deferred by an earlier iteration go after this iteration's
        // events, so one busy client cannot starve the rest.
        let deferred = std::mem::take(&mut self.pending_reads);
        let mut ready = std::mem::take(&mut self.ready);
        ready.extend(self.events.iter().map(|e| {
            let closed = e.is_read_closed() || e.is_error();
            let readable = e.is_readable() || closed;
            (e.token(), readable, e.is_writable(), closed)
        }));
        self.full_batch = ready.len() >= self.events.capacity();
        self.resume_waiting();
        for &(token, readable, writable, closed) in &ready {
            self.dispatch(token, readable, writable, closed);
        }
        ready.clear();
        self.ready = ready;
        for key in deferred {
            if let Some(conn) = self.conns.get_mut(key) {
                if conn.read_pending {
                    conn.read_pending = false;
                    self.read_conn(key);
                }
            }
        }
        let mut scans = std::mem::take(&mut self.pending_scans);
        scans.sort_unstable();
        scans.dedup();
        for sid in scans {
            self.pump(sid);
        }
        self.fire_timers();
        // Before the flush: a compaction that completes a rewrite releases
        // the output held meanwhile.
        self.compaction_step();
        self.flush_dirty();
        self.bodies.clear();
        self.host_turn();
        Ok(())
    }

    fn dispatch(&mut self, token: Token, readable: bool, writable: bool, closed: bool) {
        match token {
            WAKER => self.drain_remote(),
            SIGNALS => {
                if drain(self.signals.as_mut()) {
                    info!("signal received: shutting down");
                    self.shutdown.store(true, Ordering::SeqCst);
                }
            }
            HANGUP => {
                if drain(self.hangup.as_mut()) {
                    info!("SIGHUP received: reloading");
                    let _ = self.reload(); // logged; the old files stay
                }
            }
            Token(t) if t > LISTENER_BASE - MAX_LISTENERS => self.accept(LISTENER_BASE - t),
            Token(index) => {
                let Some(key) = ConnKey::new(index) else {
                    return;
                };
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.peer_closed |= closed;
                    if writable {
                        mark_dirty(conn, key, &mut self.dirty);
                    }
                }
                if readable {
                    self.read_conn(key);
                }
            }
        }
    }
}

/// Reads and discards what a signal pipe holds; true if anything was there.
fn drain(pipe: Option<&mut mio::net::UnixStream>) -> bool {
    let Some(rx) = pipe else {
        return false;
    };
    let mut buf = [0u8; 64];
    let mut any = false;
    while let Ok(n) = rx.read(&mut buf) {
        if n == 0 {
            break;
        }
        any = true;
    }
    any
}

impl AsRawFd for Broker {
    /// The loop's epoll descriptor: readable when [`Broker::poll_once`] has
    /// work to do.
    fn as_raw_fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }
}
#[cfg(test)]
mod tests {
    /// Every idle connection pays for one `Conn` and one `Session` (README,
    /// Benchmarks): keep them from growing unnoticed (sizes of a 64-bit
    /// build).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn per_connection_records_stay_small() {
        let conn = std::mem::size_of::<crate::conn::Conn>();
        let session = std::mem::size_of::<crate::session::Session>();
        // What an idle MQTT 5 connection adds, boxed (one 32-byte block).
        let v5 = std::mem::size_of::<crate::conn::V5>();
        assert!(v5 <= 24, "conn::V5 grew to {v5} bytes");
        assert!(conn <= 120, "Conn grew to {conn} bytes");
        assert!(session <= 112, "Session grew to {session} bytes");
    }
}
