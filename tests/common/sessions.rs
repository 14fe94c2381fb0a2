//! Helpers of the raw-byte session conformance tests (conformance_connect.rs,
//! conformance_sessions.rs, conformance_will_keepalive.rs): hand-built
//! CONNECTs, CONNACK checks and barriers.

use super::*;
use midge::{AuthDecision, Broker, Config, ShutdownHandle};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A length-prefixed string / binary field.
pub fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// CONNECT with any protocol name, level, flags and keep alive; `payload` is
/// appended verbatim (build it with `field`).
pub fn connect_raw(name: &[u8], level: u8, flags: u8, keep_alive: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = field(name);
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    body.extend_from_slice(payload);
    packet(0x10, &body)
}

/// MQTT 3.1.1 CONNECT with these flags and payload fields.
pub fn connect_fields(flags: u8, fields: &[&[u8]]) -> Vec<u8> {
    let payload: Vec<u8> = fields.iter().flat_map(|f| field(f)).collect();
    connect_raw(b"MQTT", 4, flags, 60, &payload)
}

/// Sends `bytes` on a fresh connection and returns the client.
pub fn open_and_send(addr: SocketAddr, bytes: &[u8]) -> Raw {
    let mut c = Raw::connect(addr);
    c.send(bytes);
    c
}

/// Reads a CONNACK and returns (session present, return code), checking
/// the reserved acknowledge-flag bits.
pub fn read_connack(c: &mut Raw) -> (bool, u8) {
    let (first, body) = c.read_reply("CONNACK").expect("CONNACK, got EOF");
    assert_eq!(first, 0x20, "expected CONNACK, got {first:#04x}");
    assert_eq!(body.len(), 2, "CONNACK remaining length");
    assert_eq!(body[0] & 0xFE, 0, "reserved acknowledge flags");
    assert!(body[1] <= 5, "return code {} is reserved", body[1]);
    (body[0] == 1, body[1])
}

/// The CONNECT is not acceptable: the server closes without any CONNACK.
pub fn assert_rejected_without_connack(addr: SocketAddr, bytes: &[u8]) {
    let mut c = open_and_send(addr, bytes);
    c.expect_closed();
}

/// The CONNECT is refused with `code` (Session Present 0), then closed.
pub fn assert_refused_with(addr: SocketAddr, bytes: &[u8], code: u8) {
    let mut c = open_and_send(addr, bytes);
    c.expect(&[0x20, 0x02, 0x00, code]);
    c.expect_closed();
}

/// The CONNECT is accepted (return code 0) and the connection works.
pub fn assert_accepted(addr: SocketAddr, bytes: &[u8]) -> Raw {
    let mut c = open_and_send(addr, bytes);
    let (_, code) = read_connack(&mut c);
    assert_eq!(code, 0, "CONNACK return code");
    c.ping();
    c
}

/// A clean-session client subscribed to `filter`.
pub fn observer(addr: SocketAddr, id: &str, filter: &str, qos: u8) -> Raw {
    let (mut c, _) = Raw::mqtt(addr, id, true);
    c.subscribe(1, &[(filter, qos)]);
    c
}

/// Publishes and waits until the broker has processed it (PUBACK/PUBREC or
/// a PINGREQ barrier).
pub fn publish(c: &mut Raw, topic: &str, payload: &[u8], qos: u8, pkid: u16, retain: bool) {
    c.send(&publish_packet(topic, payload, qos, pkid, retain, false));
    match qos {
        0 => c.ping(),
        1 => c.expect(&[0x40, 0x02, (pkid >> 8) as u8, pkid as u8]),
        _ => {
            c.expect(&[0x50, 0x02, (pkid >> 8) as u8, pkid as u8]);
            c.send(&[0x62, 0x02, (pkid >> 8) as u8, pkid as u8]);
            c.expect(&[0x70, 0x02, (pkid >> 8) as u8, pkid as u8]);
        }
    }
}

/// Closes the socket without DISCONNECT (a network failure for the broker).
pub fn kill(c: Raw) {
    let _ = c.stream.shutdown(std::net::Shutdown::Both);
}

/// Nothing was delivered to `c`: its PINGRESP is the next packet.
pub fn assert_nothing_delivered(c: &mut Raw) {
    c.ping();
}

/// (client id, user name, password) as the authenticator saw them.
pub type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<Vec<u8>>)>>>;

/// A broker with an authenticator that records what it saw and refuses the
/// password "bad" with CONNACK 4.
pub struct AuthBroker {
    pub addr: SocketAddr,
    pub seen: Seen,
    pub handle: ShutdownHandle,
    pub thread: Option<JoinHandle<()>>,
}

impl AuthBroker {
    pub fn start() -> AuthBroker {
        let mut config = Config::default();
        config.listen_on(["127.0.0.1:0".parse().unwrap()]);
        let mut broker = Broker::new(config).expect("broker starts");
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        broker.set_authenticator(move |c| {
            log.lock().unwrap().push((
                c.client_id.to_string(),
                c.username.map(str::to_string),
                c.password.map(<[u8]>::to_vec),
            ));
            if c.password == Some(b"bad".as_slice()) {
                AuthDecision::BadCredentials
            } else {
                AuthDecision::Accept
            }
        });
        let addr = broker.local_addr().expect("bound address");
        let handle = broker.shutdown_handle();
        let thread = std::thread::spawn(move || broker.run().expect("broker loop"));
        AuthBroker {
            addr,
            seen,
            handle,
            thread: Some(thread),
        }
    }
}

impl Drop for AuthBroker {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn puback(pkid: u16) -> Vec<u8> {
    vec![0x40, 0x02, (pkid >> 8) as u8, pkid as u8]
}

pub fn pubrec(pkid: u16) -> Vec<u8> {
    vec![0x50, 0x02, (pkid >> 8) as u8, pkid as u8]
}

pub fn pubrel(pkid: u16) -> Vec<u8> {
    vec![0x62, 0x02, (pkid >> 8) as u8, pkid as u8]
}

pub fn pubcomp(pkid: u16) -> Vec<u8> {
    vec![0x70, 0x02, (pkid >> 8) as u8, pkid as u8]
}
