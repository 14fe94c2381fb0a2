//! Sockets: opening the clients' connections (within the connect window
//! and ramp), reading and writing, and losing a client with a reason.

use super::*;
use bytes::Buf;
use midge::protocol::{self, Limits};
use mio::{Interest, Token};
use std::io::{self, Read, Write};

impl Bench {
    pub(super) fn start_clients(&mut self) {
        while self.handshaking < self.s.connect_window && self.fatal.is_none() {
            if self.to_start.is_empty() || !self.ramp_allows() {
                return;
            }
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
                    let why = format!(
                        "connect to {} failed after {} clients: {e}{hint}",
                        self.s.addr,
                        self.clients.len()
                    );
                    return self.fail(why);
                }
            };
            let _ = sock.set_nodelay(true);
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut sock, Token(index), interest)
            {
                return self.fail(format!("cannot register a socket: {e}"));
            }
            let mut wbuf = BytesMut::with_capacity(256);
            if let Err(e) = self.encode_connect(role, &mut wbuf) {
                return self.fail(e);
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
                started: self.now,
                keep_alive: self.s.keep_alive,
            });
            match role {
                Role::Pub(p) => self.pubs[p as usize].client = Some(key),
                Role::Sub(s) => self.subs[s as usize].client = Some(key),
            }
            self.handshaking += 1;
            self.started += 1;
        }
    }

    /// Whether the connection ramp (`--connect-rate`, shared evenly by the
    /// threads) lets one more client start now.
    fn ramp_allows(&self) -> bool {
        if self.s.connect_rate <= 0.0 {
            return true;
        }
        let mine = self.s.connect_rate / self.shared.threads as f64;
        let secs = self.now.saturating_duration_since(self.epoch).as_secs_f64();
        (self.started as f64) < secs * mine + 1.0
    }

    pub(super) fn on_ready(&mut self, role: Role) {
        self.handshaking -= 1;
        self.ready += 1;
        match role {
            Role::Sub(_) => self.shared.subscriber_ready(),
            // During a ramp a publisher starts once it is connected.
            Role::Pub(p) => self.enqueue(p),
        }
    }

    pub(super) fn on_writable(&mut self, key: usize) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        if !c.connected {
            match c.sock.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    return self.lost_client(key, &connect_error(&e, self.s.addr))
                }
            }
            match c.sock.peer_addr() {
                Ok(_) => {
                    c.connected = true;
                    c.state = CState::WaitConnack;
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => return self.lost_client(key, &connect_error(&e, self.s.addr)),
            }
        }
        self.flush(key);
    }

    pub(super) fn mark_dirty(clients: &mut Slab<Client>, dirty: &mut Vec<usize>, key: usize) {
        let c = &mut clients[key];
        if !c.dirty {
            c.dirty = true;
            dirty.push(key);
        }
    }

    pub(super) fn flush_dirty(&mut self) {
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
                Ok(0) => return self.lost_client(key, "the socket accepted no bytes"),
                Ok(n) => {
                    c.wbuf.advance(n);
                    c.last_tx = self.now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.lost_client(key, &stream_error("write", &e)),
            }
        }
        if let Role::Pub(p) = c.role {
            if c.wbuf.len() < CHUNK / 2 && c.state == CState::Ready {
                self.enqueue(p);
            }
        }
    }

    pub(super) fn read(&mut self, key: usize) {
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
                Ok(0) => {
                    let why = if c.state == CState::WaitConnack {
                        "the broker closed the connection without a CONNACK (not an MQTT \
                         listener, a TLS-only port, or a protocol level it refuses?)"
                    } else {
                        "the broker closed the connection"
                    };
                    return self.lost_client(key, why);
                }
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
                Err(e) if !c.connected => {
                    return self.lost_client(key, &connect_error(&e, self.s.addr))
                }
                Err(e) => return self.lost_client(key, &stream_error("read", &e)),
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
        let (client, level) = (protocol::Role::Client, Some(self.s.level));
        let mut used = 0;
        loop {
            match protocol::decode_ref(&rbuf[used..rlen], level, client, &limits) {
                Ok(None) => break,
                Ok(Some((packet, n))) => {
                    used += n;
                    if let Err(e) = self.handle(key, packet, at) {
                        self.lost_client(key, &e);
                        return false;
                    }
                }
                Err(e) => {
                    let why = match rbuf[used..rlen] {
                        // A 3.x CONNACK refusing level 5 [MQTT-3.1.2-2].
                        [0x20, 0x02, _, 1, ..]
                            if self.clients[key].state == CState::WaitConnack =>
                        {
                            "the broker does not speak MQTT 5 (CONNACK return code 1, unacceptable \
                             protocol version): try --protocol 4"
                                .to_string()
                        }
                        _ => format!("undecodable packet from the broker: {e}"),
                    };
                    self.lost_client(key, &why);
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

    pub(super) fn lost_client(&mut self, key: usize, why: &str) {
        let Some(mut c) = self.clients.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.sock);
        self.disconnects += 1;
        let who = match c.role {
            Role::Pub(p) => {
                self.pubs[p as usize].client = None;
                format!("publisher {}", self.client_name(c.role))
            }
            Role::Sub(s) => {
                self.subs[s as usize].client = None;
                format!("subscriber {}", self.client_name(c.role))
            }
        };
        if self.phase == Phase::Setup {
            // Reported once, as the reason the run could not start.
            self.fail(format!("{who}: {why}"));
        } else if self.disconnects <= 5 {
            eprintln!("midge-bench: {who} lost: {why}");
        }
    }
}

/// Why a TCP connection could not be made, in words.
pub(super) fn connect_error(e: &io::Error, addr: SocketAddr) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            format!("connection refused by {addr} (no broker listening on that port?)")
        }
        io::ErrorKind::TimedOut => format!("TCP connect to {addr} timed out"),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            format!("{addr} is unreachable: {e}")
        }
        _ => format!("TCP connect to {addr} failed: {e}"),
    }
}

/// An error on an established connection, in words.
fn stream_error(what: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "connection reset by the broker".into(),
        io::ErrorKind::BrokenPipe => "the broker closed the connection (broken pipe)".into(),
        _ => format!("{what} failed: {e}"),
    }
}
