//! The transport: how bytes move between a socket and a connection's
//! buffers, below the codec.
//!
//! A [`Stream`] is one client connection's byte stream; a [`Listener`]
//! accepts them. Only plain TCP exists today. TLS and WebSocket listeners
//! will be further [`ListenerKind`]s whose streams wrap the TCP socket
//! (in the spirit of redis's `ConnectionType` and sozu's `SocketHandler`);
//! the broker only asks the questions below, so it does not change when
//! they arrive:
//! - *drained*: a short read emptied what the kernel held, so the next
//!   readiness edge will announce more (true for TCP);
//! - *has buffered input*: the transport itself holds decoded bytes the
//!   poller will never signal (a TLS record or WebSocket frame that held
//!   more than one read returned; never for TCP);
//! - *wants to write*: the transport has bytes of its own to send even with
//!   an empty output buffer (a TLS handshake; never for TCP).

use crate::config::{ListenerConfig, ListenerKind};
use bytes::BytesMut;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;

/// Smallest read the connection asks the kernel for.
const READ_CHUNK: usize = 4 * 1024;
/// Largest single read reservation, whatever the packet size claims.
const MAX_READ_CHUNK: usize = 64 * 1024;

pub enum ReadOutcome {
    /// Bytes were appended to the input buffer; `drained` when the read
    /// was short, i.e. the socket had nothing more at that moment.
    Data { n: usize, drained: bool },
    /// The socket has nothing more right now.
    WouldBlock,
    /// The peer closed its side.
    Eof,
}

/// One client connection's byte stream. A TLS variant will be boxed: every
/// idle connection pays for this enum's size.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
}

impl Stream {
    /// One read into `buf`, sized for the packet being assembled (`wanted`
    /// bytes, clamped to a sane reservation).
    pub fn read_into(&mut self, buf: &mut BytesMut, wanted: usize) -> io::Result<ReadOutcome> {
        let Stream::Tcp(socket) = self;
        let chunk = wanted.clamp(READ_CHUNK, MAX_READ_CHUNK);
        buf.reserve(chunk);
        loop {
            match read_spare(socket, buf, chunk) {
                Ok(0) => return Ok(ReadOutcome::Eof),
                Ok(n) => {
                    return Ok(ReadOutcome::Data {
                        n,
                        drained: n < chunk,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadOutcome::WouldBlock)
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes as much of `buf` as the socket takes, removing what was
    /// written. Ok(true) when everything, the transport's own bytes
    /// included, is out.
    pub fn write_from(&mut self, buf: &mut BytesMut) -> io::Result<bool> {
        let Stream::Tcp(socket) = self;
        while !buf.is_empty() {
            match socket.write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    let _ = buf.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(!self.wants_write())
    }

    /// Input the transport holds that no readiness event will announce:
    /// the read loop must not stop at a drained socket while there is some.
    pub fn has_buffered_input(&self) -> bool {
        match self {
            Stream::Tcp(_) => false,
        }
    }

    /// Bytes of the transport's own (not the output buffer's) wait to be
    /// written: the connection needs a flush even with nothing queued.
    pub fn wants_write(&self) -> bool {
        match self {
            Stream::Tcp(_) => false,
        }
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let Stream::Tcp(socket) = self;
        registry.register(socket, token, Interest::READABLE | Interest::WRITABLE)
    }

    pub fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        let Stream::Tcp(socket) = self;
        registry.deregister(socket)
    }

    /// Ends our side (FIN once the output is out).
    pub fn shutdown_write(&self) {
        let Stream::Tcp(socket) = self;
        let _ = socket.shutdown(Shutdown::Write);
    }

    /// Reads and discards what the peer already sent, so closing does not
    /// turn into a reset that could destroy our last reply (a CONNACK with
    /// an error code) before the peer reads it. Bounded.
    pub fn discard_input(&mut self) {
        let Stream::Tcp(socket) = self;
        let mut scratch = [0u8; 4096];
        for _ in 0..16 {
            match socket.read(&mut scratch) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

/// One recv(2) of at most `max` bytes into the spare capacity of `buf`,
/// appended to it (the call `Read::read` on a `TcpStream` makes). The region is not zeroed first, as `Read::read` on a
/// slice would need: the kernel writes it, and zeroing 4 KiB per read cost
/// ~85 user-space instructions per 64-byte message (a sixth of a
/// message's cost, counted with callgrind).
fn read_spare(socket: &TcpStream, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(max);
    // SAFETY: `spare` is writable memory of `buf`'s allocation past its
    // length, at least `len` bytes of it, borrowed for the call; recv(2)
    // writes at most `len` bytes there and says how many (or fails, -1).
    // Exactly those `n <= len` initialised bytes become part of `buf`.
    unsafe {
        let n = libc::recv(socket.as_raw_fd(), spare.as_mut_ptr().cast(), len, 0);
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        let n = n.min(len);
        buf.set_len(buf.len() + n);
        Ok(n)
    }
}

/// A listening socket and what its connections speak (its settings are
/// the engine's, from the configuration).
pub struct Listener {
    socket: TcpListener,
    pub kind: ListenerKind,
}

impl Listener {
    pub fn bind(config: &ListenerConfig) -> io::Result<Listener> {
        let addr = config.addr;
        let socket = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        Ok(Listener {
            socket,
            kind: config.kind,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.socket, token, Interest::READABLE)
    }

    pub fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.socket)
    }

    /// The next pending connection, as this listener's kind of stream.
    pub fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        let (socket, addr) = self.socket.accept()?;
        // Acks must not wait for Nagle's algorithm (mosquitto's 40 ms stalls).
        let _ = socket.set_nodelay(true);
        let stream = match self.kind {
            ListenerKind::Mqtt => Stream::Tcp(socket),
        };
        Ok((stream, addr))
    }
}

impl crate::engine::Input for Stream {
    fn read_into(&mut self, buf: &mut BytesMut, wanted: usize) -> io::Result<ReadOutcome> {
        Stream::read_into(self, buf, wanted)
    }

    fn has_buffered_input(&self) -> bool {
        Stream::has_buffered_input(self)
    }
}
