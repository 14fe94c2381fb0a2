//! Helpers of the robustness tests (robustness_input.rs,
//! robustness_clients.rs): seeded garbage, the check that the broker still
//! serves, and reading and writing until a connection closes.

use super::*;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn puback(pkid: u16) -> Vec<u8> {
    vec![0x40, 2, (pkid >> 8) as u8, pkid as u8]
}

/// A well-behaved client does a full round trip: connect, subscribe,
/// publish at QoS 1, receive its own message, PUBACK, ping, DISCONNECT.
pub fn assert_healthy(addr: SocketAddr) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let (mut c, _) = Raw::mqtt(addr, &format!("health-{n}"), true);
    let topic = format!("health/{n}");
    c.subscribe(1, &[(&topic, 1)]);
    c.send(&publish_packet(&topic, b"ok", 1, 2, false, false));
    let (mut acked, mut received) = (false, false);
    for _ in 0..2 {
        match c.read_packet().expect("PUBACK or PUBLISH") {
            (0x40, body) => {
                assert_eq!(body, [0, 2], "PUBACK id");
                acked = true;
            }
            (first, body) => {
                let p = parse_publish(first, &body);
                assert_eq!((p.topic.as_str(), &p.payload[..]), (&topic[..], &b"ok"[..]));
                c.send(&puback(p.pkid));
                received = true;
            }
        }
    }
    assert!(acked && received);
    c.ping();
    c.send(&[0xE0, 0x00]);
}

/// Reads until the peer closes (EOF or reset) and returns what arrived.
/// Panics if the connection is still open after `limit`.
pub fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match super::read_some(s, &mut buf) {
            Ok(0) => return got,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                assert!(got.len() < 4 << 20, "broker keeps sending");
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                assert!(
                    start.elapsed() < limit,
                    "connection still open after {limit:?} (received {} bytes)",
                    got.len()
                );
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Reset, aborted: closed.
            Err(_) => return got,
        }
    }
}
