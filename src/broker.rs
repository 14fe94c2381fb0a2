//! The broker: the engine (`engine.rs`) behind one single-threaded `mio` event loop.
//!
//! The loop knows sockets, not MQTT: it owns the poller, the listeners and
//! each client's transport stream, and hands the engine what arrives. Each
//! call of [`Broker::poll_once`] is one iteration, in the spirit of redis's
//! `aeProcessEvents`: wait for readiness or the engine's next deadline,
//! read each ready connection through the engine (replies and deliveries
//! only append to output buffers), let the engine fire its timers and
//! write every connection with output once, then close the sockets of the
//! connections it ended. [`Broker::run`] repeats that until shutdown; a
//! host program can instead watch [`Broker::as_raw_fd`] in its own loop.

mod host_calls; // the host program's calls: handed to the engine, output written

use crate::config::Config;
use crate::engine::{Closed, Engine, Output};
pub use crate::engine::{HostSubscription, Published, Remote, Stats};
use crate::keys::ConnKey;
use crate::store::Storage;
use crate::transport::{Listener, Stream};
use bytes::BytesMut;
use log::{error, info, warn};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAKER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
const HANGUP: Token = Token(usize::MAX - 2);
/// Listener `i` has token `LISTENER_BASE - i`; client tokens are the
/// engine's connection keys, far below.
const LISTENER_BASE: usize = usize::MAX - 3;
const MAX_LISTENERS: usize = 64;
/// How long to stop accepting when the process runs out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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
    pub(crate) fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            warn!("could not wake the broker loop: {e}");
        }
    }
}

/// The client sockets, by the engine's connection key.
#[derive(Default)]
struct Streams(Vec<Option<Stream>>);

impl Streams {
    fn get_mut(&mut self, key: ConnKey) -> Option<&mut Stream> {
        self.0.get_mut(key.index())?.as_mut()
    }

    fn put(&mut self, key: ConnKey, stream: Stream) {
        let i = key.index();
        if self.0.len() <= i {
            self.0.resize_with(i + 1, || None);
        }
        self.0[i] = Some(stream);
    }

    fn take(&mut self, key: ConnKey) -> Option<Stream> {
        self.0.get_mut(key.index())?.take()
    }
}

impl Output for Streams {
    fn write(&mut self, key: ConnKey, buf: &mut BytesMut) -> io::Result<bool> {
        match self.get_mut(key) {
            Some(stream) => stream.write_from(buf),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

pub struct Broker {
    engine: Engine,
    poll: Poll,
    events: Events,
    listeners: Vec<Listener>,
    streams: Streams,
    shutdown: Arc<AtomicBool>,
    waker: Arc<Waker>,
    signals: Option<mio::net::UnixStream>,
    hangup: Option<mio::net::UnixStream>,
    ready: Vec<(Token, bool, bool, bool)>,
    /// Accepting stopped after a descriptor shortage, until then.
    accept_resume_at: Option<Instant>,
    /// The last poll filled the event buffer: more may be ready that an
    /// edge-triggered host will not hear about again, so the next
    /// iteration is due at once.
    full_batch: bool,
    stopped: bool,
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
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut listeners = Vec::new();
        for (i, listener) in config.listeners.iter().enumerate() {
            let mut l = Listener::bind(listener)?;
            l.register(poll.registry(), Token(LISTENER_BASE - i))?;
            listeners.push(l);
        }
        let engine = Engine::new(config, storage)?;
        let broker = Broker {
            engine,
            poll,
            events: Events::with_capacity(1024),
            listeners,
            streams: Streams::default(),
            shutdown: Arc::new(AtomicBool::new(false)),
            waker,
            signals: None,
            hangup: None,
            ready: Vec::new(),
            accept_resume_at: None,
            full_batch: false,
            stopped: false,
        };
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
        self.engine.config()
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
        self.engine.stats()
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
        if self.full_batch {
            return Some(Instant::now());
        }
        let engine = self.engine.next_deadline();
        [engine, self.accept_resume_at].into_iter().flatten().min()
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
        self.engine.stop(&mut self.streams);
        self.close_ended();
        for l in &mut self.listeners {
            let _ = l.deregister(self.poll.registry());
        }
        // Closed, not only unwatched: a listening socket left open would
        // complete handshakes that nobody answers.
        self.listeners.clear();
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
        let now = Instant::now();
        self.engine.begin_iteration(now);
        if self.accept_resume_at.is_some_and(|at| at <= now) {
            self.accept_resume_at = None;
            for i in 0..self.listeners.len() {
                self.accept(i);
            }
        }
        // Reads deferred by an earlier iteration go after this iteration's
        // events, so one busy client cannot starve the rest.
        let deferred = self.engine.take_pending_reads();
        let mut ready = std::mem::take(&mut self.ready);
        ready.extend(self.events.iter().map(|e| {
            let closed = e.is_read_closed() || e.is_error();
            let readable = e.is_readable() || closed;
            (e.token(), readable, e.is_writable(), closed)
        }));
        self.full_batch = ready.len() >= self.events.capacity();
        for &(token, readable, writable, closed) in &ready {
            self.dispatch(token, readable, writable, closed);
            self.close_ended();
        }
        ready.clear();
        self.ready = ready;
        for key in deferred {
            self.read(key);
            self.close_ended();
        }
        self.engine.end_iteration(&mut self.streams);
        self.close_ended();
        Ok(())
    }

    fn dispatch(&mut self, token: Token, readable: bool, writable: bool, closed: bool) {
        match token {
            WAKER => self.engine.drain_remote(),
            SIGNALS => {
                if drain(self.signals.as_mut()) {
                    info!("signal received: shutting down");
                    self.shutdown.store(true, Ordering::SeqCst);
                }
            }
            HANGUP => {
                if drain(self.hangup.as_mut()) {
                    info!("SIGHUP received: reloading");
                    let _ = self.engine.reload(); // logged; the old files stay
                }
            }
            Token(t) if t > LISTENER_BASE - MAX_LISTENERS => self.accept(LISTENER_BASE - t),
            Token(index) => {
                let Some(key) = ConnKey::new(index) else {
                    return;
                };
                self.engine.conn_event(key, writable, closed);
                if readable {
                    self.read(key);
                }
            }
        }
    }

    fn accept(&mut self, index: usize) {
        if self.accept_resume_at.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) => self.add(stream, addr, index),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // EMFILE/ENFILE and the like: retrying at once would spin
                    // (mosquitto #948). Back off; the deadline retries.
                    error!("accept failed: {e}; not accepting for {ACCEPT_BACKOFF:?}");
                    self.accept_resume_at = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    /// A new connection: the engine admits it (or refuses it, and the
    /// socket is dropped), the poller watches it under the engine's key.
    fn add(&mut self, mut stream: Stream, addr: SocketAddr, index: usize) {
        // A key the engine gives out must have no socket left: connections
        // it ended (by a host call, say) are closed first.
        self.close_ended();
        let Some(key) = self.engine.add_conn(addr, index) else {
            return;
        };
        if let Err(e) = stream.register(self.poll.registry(), Token(key.index())) {
            warn!("{addr}: cannot register socket: {e}");
            self.engine.conn_failed(key, e);
            self.close_ended();
            return;
        }
        self.streams.put(key, stream);
    }

    /// Reads connection `key` through the engine.
    fn read(&mut self, key: ConnKey) {
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        self.engine.read_conn(key, stream);
        if stream.wants_write() {
            self.engine.conn_event(key, true, false);
        }
    }

    /// Closes the sockets of the connections the engine ended, after
    /// writing their last bytes, so that their keys are free before the
    /// engine gives them out again.
    fn close_ended(&mut self) {
        let mut sent = 0;
        for Closed {
            key,
            mut last,
            graceful,
        } in self.engine.take_closed()
        {
            let Some(mut stream) = self.streams.take(key) else {
                continue;
            };
            let _ = stream.deregister(self.poll.registry());
            if graceful {
                let before = last.len();
                let _ = stream.write_from(&mut last);
                sent += before - last.len();
                // Read what the peer already sent, so closing does not
                // turn into a reset that destroys our last reply.
                stream.discard_input();
                stream.shutdown_write();
            }
        }
        self.engine.count_sent(sent);
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
