//! Shared test harness: a broker on an ephemeral loopback port in a
//! background thread, and a raw TCP client with bounded waits.
#![allow(dead_code)]

pub mod bystander;
pub mod clients;
pub mod conformance;
pub mod memfs;
pub mod persistence;
pub mod process;
pub mod robustness;
pub mod rumqtt5;
pub mod sessions;
pub mod v5;

use midge::{Broker, Config, ShutdownHandle, Stats};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any single expectation may wait. Generous: loopback answers in
/// microseconds, so this only bounds a failing test.
pub const WAIT: Duration = Duration::from_secs(5);

/// How long a reply the broker writes as soon as it has read the request
/// (CONNACK, SUBACK, UNSUBACK) may take. Shorter than WAIT, so a missing
/// reply fails its test fast and names the packet, instead of every test
/// that connects or subscribes waiting out WAIT; still far above the
/// milliseconds a loaded machine and an fsync take.
pub const REPLY_WAIT: Duration = Duration::from_secs(2);

/// The name of a reply the broker writes at once, by its first byte.
fn reply_name(first: u8) -> Option<&'static str> {
    match first {
        0x20 => Some("CONNACK"),
        0x90 => Some("SUBACK"),
        0xB0 => Some("UNSUBACK"),
        _ => None,
    }
}

/// How often a broker started with [`TestBroker::start_polled`] looks for
/// requests of the test thread.
const POLL_TICK: Duration = Duration::from_millis(2);

/// A running broker; stopped and joined when dropped.
pub struct TestBroker {
    pub addr: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
    /// Requests for [`Broker::stats`] (brokers from `start_polled` only).
    stats: Option<mpsc::Sender<mpsc::Sender<Stats>>>,
}

/// A broker on an ephemeral loopback port, with `adjust` applied to its
/// default configuration.
fn loopback_broker(adjust: impl FnOnce(&mut Config)) -> Broker {
    Broker::new(loopback_config(adjust)).expect("broker starts")
}

/// The default configuration on an ephemeral loopback port, adjusted.
pub fn loopback_config(adjust: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    config.listen_on(["127.0.0.1:0".parse().unwrap()]);
    adjust(&mut config);
    config
}

impl TestBroker {
    pub fn start() -> TestBroker {
        TestBroker::start_with(|_| {})
    }

    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> TestBroker {
        TestBroker::run(loopback_broker(adjust))
    }

    /// Runs `broker` (bound to loopback) in a thread of its own.
    pub fn run(mut broker: Broker) -> TestBroker {
        let addr = broker.local_addr().expect("bound address");
        let handle = broker.shutdown_handle();
        let thread = std::thread::spawn(move || broker.run().expect("broker loop"));
        TestBroker {
            addr,
            handle,
            thread: Some(thread),
            stats: None,
        }
    }

    /// Like `start_with`, but the broker thread drives the embedding API's
    /// `poll_once` itself (as a host program does) and answers
    /// [`TestBroker::stats`] between iterations.
    pub fn start_polled(adjust: impl FnOnce(&mut Config)) -> TestBroker {
        let mut broker = loopback_broker(adjust);
        let addr = broker.local_addr().expect("bound address");
        let handle = broker.shutdown_handle();
        let (tx, requests) = mpsc::channel::<mpsc::Sender<Stats>>();
        let thread = std::thread::spawn(move || {
            while !broker.is_shutting_down() {
                broker.poll_once(Some(POLL_TICK)).expect("broker loop");
                while let Ok(reply) = requests.try_recv() {
                    let _ = reply.send(broker.stats());
                }
            }
            broker.shutdown();
        });
        TestBroker {
            addr,
            handle,
            thread: Some(thread),
            stats: Some(tx),
        }
    }

    /// The broker's counters (`Broker::stats`), as of after everything it
    /// has read so far was handled. Only for `start_polled` brokers.
    pub fn stats(&self) -> Stats {
        let requests = self.stats.as_ref().expect("stats need start_polled");
        let (reply, answer) = mpsc::channel();
        requests.send(reply).expect("broker thread is gone");
        answer.recv_timeout(WAIT).expect("stats within WAIT")
    }

    /// Stops the broker and waits for its thread (wills are published).
    pub fn stop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            t.join().expect("broker thread panicked");
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A client that speaks raw bytes.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("tcp connect");
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Raw { stream }
    }

    /// TCP connect plus an MQTT 3.1.1 CONNECT; asserts CONNACK 0.
    /// Returns the client and the Session Present flag.
    pub fn mqtt(addr: SocketAddr, client_id: &str, clean: bool) -> (Raw, bool) {
        let mut c = Raw::connect(addr);
        c.send(&connect_packet(client_id, clean, 60));
        let ack = c.read_reply("CONNACK").expect("CONNACK, got EOF");
        assert_eq!(ack.0, 0x20, "first packet is CONNACK");
        assert_eq!(ack.1.len(), 2);
        assert_eq!(ack.1[1], 0, "CONNACK return code");
        (c, ack.1[0] == 1)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads one packet: (first byte, body). None on EOF.
    pub fn read_packet(&mut self) -> Option<(u8, Vec<u8>)> {
        self.read_within("packet", WAIT)
    }

    /// Reads one packet that the broker sends as soon as it has read the
    /// request (`what`: "CONNACK", "SUBACK", "UNSUBACK"), within
    /// REPLY_WAIT. None on EOF.
    pub fn read_reply(&mut self, what: &str) -> Option<(u8, Vec<u8>)> {
        self.stream.set_read_timeout(Some(REPLY_WAIT)).unwrap();
        let packet = self.read_within(what, REPLY_WAIT);
        self.stream.set_read_timeout(Some(WAIT)).unwrap();
        packet
    }

    /// Reads one packet by `deadline`, failing the test naming `what` was
    /// awaited if none comes. None on EOF.
    pub fn read_packet_by(&mut self, deadline: Instant, what: &str) -> Option<(u8, Vec<u8>)> {
        let left = deadline.saturating_duration_since(Instant::now());
        let left = left.max(Duration::from_millis(1));
        self.stream.set_read_timeout(Some(left)).unwrap();
        let packet = self.read_within(what, left);
        self.stream.set_read_timeout(Some(WAIT)).unwrap();
        packet
    }

    /// Reads one packet; the socket's read timeout is `wait`, and running
    /// out of it fails the test naming `what` was expected.
    fn read_within(&mut self, what: &str, wait: Duration) -> Option<(u8, Vec<u8>)> {
        let mut first = [0u8; 1];
        match read_some(&mut self.stream, &mut first) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!("no {what} within {wait:?}")
            }
            Err(_) => return None,
        }
        let mut len = 0usize;
        for i in 0..4 {
            let mut b = [0u8; 1];
            self.stream.read_exact(&mut b).ok()?;
            len |= ((b[0] & 0x7f) as usize) << (7 * i);
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).ok()?;
        Some((first[0], body))
    }

    /// Expects exactly these bytes next: within REPLY_WAIT if they start
    /// a CONNACK, SUBACK or UNSUBACK, within WAIT otherwise.
    pub fn expect(&mut self, bytes: &[u8]) {
        let reply = bytes.first().and_then(|&b| reply_name(b));
        let wait = if reply.is_some() { REPLY_WAIT } else { WAIT };
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut got = vec![0u8; bytes.len()];
        let read = self.stream.read_exact(&mut got);
        self.stream.set_read_timeout(Some(WAIT)).unwrap();
        if let Err(e) = read {
            let what = reply.unwrap_or("bytes");
            panic!("no {what} {bytes:02x?} within {wait:?}: {e}");
        }
        assert_eq!(got, bytes);
    }

    /// Expects the server to close the connection without sending anything
    /// more, within WAIT.
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 64];
        let deadline = Instant::now() + WAIT;
        loop {
            match read_some(&mut self.stream, &mut buf) {
                Ok(0) => return,
                Ok(n) => panic!("expected close, got bytes {:02x?}", &buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    assert!(
                        Instant::now() < deadline,
                        "connection not closed within {WAIT:?}"
                    );
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }

    /// Expects nothing to arrive for `d` (and the connection to stay open).
    pub fn expect_silence(&mut self, d: Duration) {
        self.stream.set_read_timeout(Some(d)).unwrap();
        let mut buf = [0u8; 64];
        let r = read_some(&mut self.stream, &mut buf);
        self.stream.set_read_timeout(Some(WAIT)).unwrap();
        match r {
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
            Ok(0) => panic!("connection closed, expected it open and silent"),
            Ok(n) => panic!("expected silence, got {:02x?}", &buf[..n]),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    /// PINGREQ and wait for the PINGRESP: proves everything sent before was
    /// processed.
    pub fn ping(&mut self) {
        self.send(&[0xC0, 0x00]);
        assert_eq!(self.read_packet(), Some((0xD0, vec![])));
    }
}

/// `read`, retried when a signal interrupts it. A blocking read with a
/// timeout fails with EINTR whenever the test process takes a signal,
/// whatever the handler's SA_RESTART says (seen in CI as a spurious
/// "got EOF"); `read_exact` retries on its own, a bare `read` does not.
pub fn read_some(stream: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A Remaining Length, encoded (7 bits a byte, least significant first).
pub fn remaining_length(mut len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            return out;
        }
    }
}

/// Fixed header + body with a correctly encoded Remaining Length.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(remaining_length(body.len()));
    out.extend_from_slice(body);
    out
}

pub fn connect_packet(client_id: &str, clean: bool, keep_alive: u16) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, if clean { 2 } else { 0 }];
    body.extend_from_slice(&keep_alive.to_be_bytes());
    put_str(&mut body, client_id.as_bytes());
    packet(0x10, &body)
}

/// CONNECT with a user name (no password), Keep Alive 60.
pub fn connect_user_packet(client_id: &str, user: &str, clean: bool) -> Vec<u8> {
    let flags = 0x80 | if clean { 2 } else { 0 };
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 60];
    put_str(&mut body, client_id.as_bytes());
    put_str(&mut body, user.as_bytes());
    packet(0x10, &body)
}

/// CONNECT with a Will.
pub fn connect_with_will(
    client_id: &str,
    clean: bool,
    keep_alive: u16,
    will_topic: &str,
    will_payload: &[u8],
    will_qos: u8,
    will_retain: bool,
) -> Vec<u8> {
    let flags =
        (if clean { 2 } else { 0 }) | 4 | (will_qos << 3) | if will_retain { 0x20 } else { 0 };
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags];
    body.extend_from_slice(&keep_alive.to_be_bytes());
    put_str(&mut body, client_id.as_bytes());
    put_str(&mut body, will_topic.as_bytes());
    put_str(&mut body, will_payload);
    packet(0x10, &body)
}

pub fn publish_packet(
    topic: &str,
    payload: &[u8],
    qos: u8,
    pkid: u16,
    retain: bool,
    dup: bool,
) -> Vec<u8> {
    let first = 0x30 | (qos << 1) | retain as u8 | if dup { 8 } else { 0 };
    let mut body = Vec::new();
    put_str(&mut body, topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    body.extend_from_slice(payload);
    packet(first, &body)
}

pub fn subscribe_packet(pkid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    for (f, q) in filters {
        put_str(&mut body, f.as_bytes());
        body.push(*q);
    }
    packet(0x82, &body)
}

pub fn unsubscribe_packet(pkid: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    for f in filters {
        put_str(&mut body, f.as_bytes());
    }
    packet(0xA2, &body)
}

/// A received PUBLISH, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pub {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub pkid: u16,
    pub payload: Vec<u8>,
}

pub fn parse_publish(first: u8, body: &[u8]) -> Pub {
    assert_eq!(first >> 4, 3, "expected PUBLISH, got {first:#04x}");
    let qos = (first >> 1) & 3;
    let tlen = u16::from_be_bytes([body[0], body[1]]) as usize;
    let topic = String::from_utf8(body[2..2 + tlen].to_vec()).unwrap();
    let mut at = 2 + tlen;
    let pkid = if qos > 0 {
        at += 2;
        u16::from_be_bytes([body[at - 2], body[at - 1]])
    } else {
        0
    };
    Pub {
        dup: first & 8 != 0,
        qos,
        retain: first & 1 != 0,
        topic,
        pkid,
        payload: body[at..].to_vec(),
    }
}

impl Raw {
    /// Reads the next packet and asserts it is a PUBLISH.
    pub fn read_publish(&mut self) -> Pub {
        let (first, body) = self.read_packet().expect("PUBLISH, got EOF");
        parse_publish(first, &body)
    }

    /// Subscribes and checks the SUBACK codes.
    pub fn subscribe(&mut self, pkid: u16, filters: &[(&str, u8)]) {
        self.send(&subscribe_packet(pkid, filters));
        let (first, body) = self.read_reply("SUBACK").expect("SUBACK, got EOF");
        assert_eq!(first, 0x90, "expected SUBACK");
        let mut want = pkid.to_be_bytes().to_vec();
        want.extend(filters.iter().map(|(_, q)| *q));
        assert_eq!(body, want);
    }
}

/// An acknowledgement packet (PUBACK, PUBREC, PUBREL, PUBCOMP) for `pkid`.
fn ack_packet(kind: u8, pkid: u16) -> Vec<u8> {
    let [hi, lo] = pkid.to_be_bytes();
    vec![kind, 2, hi, lo]
}

impl Raw {
    /// DISCONNECT, then waits until the broker has closed the connection,
    /// so the session is offline before the test goes on.
    pub fn disconnect(mut self) {
        self.send(&[0xE0, 0x00]);
        self.expect_closed();
    }

    /// Publishes and completes the exchange of its QoS: PUBACK; PUBREC,
    /// PUBREL, PUBCOMP; for QoS 0 a PINGREQ round trip, so the message has
    /// been routed when this returns.
    pub fn publish_done(&mut self, topic: &str, payload: &[u8], qos: u8, pkid: u16) {
        self.send(&publish_packet(topic, payload, qos, pkid, false, false));
        match qos {
            0 => self.ping(),
            1 => self.expect(&ack_packet(0x40, pkid)),
            _ => {
                self.expect(&ack_packet(0x50, pkid));
                self.send(&ack_packet(0x62, pkid));
                self.expect(&ack_packet(0x70, pkid));
            }
        }
    }

    /// Reads every PUBLISH the broker has for this client, acknowledging
    /// each (PUBACK, or PUBREC and then PUBCOMP for its PUBREL), until a
    /// PINGREQ round trip brings nothing new. Returns them in arrival
    /// order.
    pub fn drain(&mut self) -> Vec<Pub> {
        let mut got = Vec::new();
        for _ in 0..100_000 {
            self.send(&[0xC0, 0x00]);
            let mut quiet = true;
            loop {
                let (first, body) = self.read_packet().expect("a packet, got EOF");
                match first {
                    0xD0 => break,
                    0x62 => {
                        quiet = false;
                        let pkid = u16::from_be_bytes([body[0], body[1]]);
                        self.send(&ack_packet(0x70, pkid));
                    }
                    f if f >> 4 == 3 => {
                        quiet = false;
                        let p = parse_publish(first, &body);
                        match p.qos {
                            1 => self.send(&ack_packet(0x40, p.pkid)),
                            2 => self.send(&ack_packet(0x50, p.pkid)),
                            _ => {}
                        }
                        got.push(p);
                    }
                    f => panic!("unexpected packet {f:#04x} {body:02x?}"),
                }
            }
            if quiet {
                return got;
            }
        }
        panic!("the broker never ran out of messages");
    }
}
