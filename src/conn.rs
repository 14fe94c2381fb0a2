//! One client connection: its socket and its input and output buffers.
//!
//! Reads append to `rbuf`, from which the codec takes whole packets; replies
//! and deliveries append to `wbuf`, which the loop writes once per iteration.
//! Both buffers are released when they are empty and large, so an idle
//! connection costs little memory.

use crate::codec::{LastWill, ProtocolLevel, Publish};
use bytes::BytesMut;
use mio::net::TcpStream;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// Smallest read the connection asks the kernel for.
const READ_CHUNK: usize = 4 * 1024;
/// Largest single read reservation, whatever the packet size claims.
const MAX_READ_CHUNK: usize = 64 * 1024;

pub enum ReadOutcome {
    /// Bytes were appended to `rbuf`.
    Data(usize),
    /// The socket has nothing more right now.
    WouldBlock,
    /// The peer closed its side.
    Eof,
}

#[derive(Debug)]
pub struct Conn {
    pub socket: TcpStream,
    pub addr: SocketAddr,
    /// Distinguishes this connection from a later one that reuses its slab
    /// key, so a stale timer entry is recognised (wraps after 4 billion
    /// connections; a stale entry would still need the same key).
    pub serial: u32,
    pub rbuf: BytesMut,
    pub wbuf: BytesMut,
    /// Set once CONNECT is accepted.
    pub level: Option<ProtocolLevel>,
    /// The session (slab key) once CONNECT is accepted. The client id and
    /// user name live there, once.
    session: Option<u32>,
    /// Boxed: most clients have none, and every byte here is paid by
    /// every idle connection.
    pub will: Option<Box<LastWill>>,
    /// Keep Alive in seconds (0: off).
    pub keep_alive: u16,
    /// When the last complete packet arrived (before CONNECT: when the
    /// connection was accepted), in ms on the broker's clock.
    pub last_rx: u64,
    /// The deadline (ms) this connection's timer entry is filed for; an
    /// entry for any other time is stale.
    pub timer_at: Option<u64>,
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
    /// Boxed: only a paused publisher has any.
    parked: Option<Box<Parked>>,
}

/// PUBLISHes waiting for a full queue to drain, and their size.
#[derive(Debug, Default)]
struct Parked {
    queue: VecDeque<Publish>,
    bytes: usize,
}

impl Conn {
    pub fn new(socket: TcpStream, addr: SocketAddr, serial: u32, now: u64) -> Conn {
        Conn {
            socket,
            addr,
            serial,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
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
            parked: None,
        }
    }

    /// The session this connection is attached to.
    pub fn session(&self) -> Option<usize> {
        self.session.map(|s| s as usize)
    }

    /// Attaches the connection to session `sid` (slab keys stay far below
    /// `u32::MAX`: every session costs memory).
    pub fn set_session(&mut self, sid: usize) {
        self.session = u32::try_from(sid).ok();
    }

    /// Topic and payload bytes of the parked PUBLISHes.
    pub fn parked_bytes(&self) -> usize {
        self.parked.as_ref().map_or(0, |p| p.bytes)
    }

    /// Keeps a PUBLISH until the queue it feeds drains.
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
    /// In ms on the broker's clock.
    pub fn deadline(&self, connect_timeout: Duration) -> Option<u64> {
        if self.level.is_none() {
            let timeout = u64::try_from(connect_timeout.as_millis()).ok()?;
            self.last_rx.checked_add(timeout)
        } else if self.keep_alive == 0 {
            None
        } else {
            Some(self.last_rx + u64::from(self.keep_alive) * 1500)
        }
    }

    /// One read into `rbuf`, sized for the packet being assembled.
    pub fn read(&mut self, wanted: usize) -> io::Result<ReadOutcome> {
        let chunk = wanted.clamp(READ_CHUNK, MAX_READ_CHUNK);
        // Zero the region handed to read() instead of reading into
        // uninitialised memory: no unsafe, and a few KiB of memset is cheap
        // next to the syscall.
        let start = self.rbuf.len();
        self.rbuf.resize(start + chunk, 0);
        loop {
            match self.socket.read(&mut self.rbuf[start..]) {
                Ok(0) => {
                    self.rbuf.truncate(start);
                    return Ok(ReadOutcome::Eof);
                }
                Ok(n) => {
                    self.rbuf.truncate(start + n);
                    return Ok(ReadOutcome::Data(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.rbuf.truncate(start);
                    return Ok(ReadOutcome::WouldBlock);
                }
                Err(e) => {
                    self.rbuf.truncate(start);
                    return Err(e);
                }
            }
        }
    }

    /// Writes as much of `wbuf` as the socket takes. Ok(true) when empty.
    pub fn flush(&mut self) -> io::Result<bool> {
        while !self.wbuf.is_empty() {
            match self.socket.write(&self.wbuf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    let _ = self.wbuf.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.shrink();
        Ok(true)
    }

    /// Gives back buffers once they are empty: an idle connection holds
    /// none (the input buffer is lent by the broker, see
    /// `Broker::read_conn`; a busy one reallocates its output buffer once
    /// per loop iteration at most, which costs far less than the write).
    pub fn shrink(&mut self) {
        if self.wbuf.is_empty() && self.wbuf.capacity() > 0 {
            self.wbuf = BytesMut::new();
        }
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            self.rbuf = BytesMut::new();
        }
    }

    /// Reads and discards what the peer already sent, so closing does not
    /// turn into a reset that could destroy our last reply (a CONNACK with
    /// an error code) before the peer reads it. Bounded.
    pub fn discard_input(&mut self) {
        let mut scratch = [0u8; 4096];
        for _ in 0..16 {
            match self.socket.read(&mut scratch) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}
