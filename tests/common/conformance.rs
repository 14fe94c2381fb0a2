//! Helpers of the raw-byte conformance tests (conformance_framing.rs,
//! conformance_publish.rs, conformance_subscribe.rs): clients, barriers
//! that prove nothing more was delivered, and hand-built packets.

use super::*;
use std::net::SocketAddr;

/// A client id unique within the test binary.
pub fn cid(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A connected client (CleanSession 1).
pub fn client(addr: SocketAddr, prefix: &str) -> Raw {
    Raw::mqtt(addr, &cid(prefix), true).0
}

/// A connected client subscribed to `filters`.
pub fn subscriber(addr: SocketAddr, filters: &[(&str, u8)]) -> Raw {
    let mut c = client(addr, "sub");
    c.subscribe(1, filters);
    c
}

/// Sends PINGREQ and collects every PUBLISH that arrives before the PINGRESP.
/// Any other packet fails the test.
pub fn drain(c: &mut Raw) -> Vec<Pub> {
    c.send(&[0xC0, 0x00]);
    let mut got = Vec::new();
    for _ in 0..10_000 {
        let (first, body) = c.read_packet().expect("packet before PINGRESP, got EOF");
        if first == 0xD0 {
            assert!(body.is_empty());
            return got;
        }
        got.push(parse_publish(first, &body));
    }
    panic!("no PINGRESP after 10000 packets");
}

/// The publisher's barrier, then everything the subscriber got by then.
pub fn delivered(publisher: &mut Raw, sub: &mut Raw) -> Vec<Pub> {
    publisher.ping();
    drain(sub)
}

/// Payloads of a list of deliveries.
pub fn payloads(p: &[Pub]) -> Vec<Vec<u8>> {
    p.iter().map(|p| p.payload.clone()).collect()
}

/// Publishes and completes the publisher's side of the QoS flow: PUBACK
/// for QoS 1; PUBREC, PUBREL, PUBCOMP for QoS 2.
pub fn publish(p: &mut Raw, topic: &str, payload: &[u8], qos: u8, pkid: u16, retain: bool) {
    p.send(&publish_packet(topic, payload, qos, pkid, retain, false));
    let id = pkid.to_be_bytes();
    match qos {
        0 => {}
        1 => p.expect(&[0x40, 0x02, id[0], id[1]]),
        _ => {
            p.expect(&[0x50, 0x02, id[0], id[1]]);
            p.send(&[0x62, 0x02, id[0], id[1]]);
            p.expect(&[0x70, 0x02, id[0], id[1]]);
        }
    }
}

/// A fresh connection (after CONNECT) sends `bytes` and must be closed
/// without any answer.
pub fn assert_closes(addr: SocketAddr, bytes: &[u8]) {
    let mut c = client(addr, "bad");
    c.send(bytes);
    c.expect_closed();
}

/// Like `assert_closes`, and an observer on `#` got nothing from it:
/// the next thing it receives is a control message published afterwards.
pub fn assert_closes_undelivered(addr: SocketAddr, bytes: &[u8]) {
    let mut obs = subscriber(addr, &[("#", 0)]);
    assert_closes(addr, bytes);
    let mut ctl = client(addr, "ctl");
    ctl.send(&publish_packet("control", b"c", 0, 0, false, false));
    let got = delivered(&mut ctl, &mut obs);
    assert_eq!(got.len(), 1, "observer got {got:?}");
    assert_eq!(got[0].topic, "control");
}

/// Reads `n` PUBLISHes on `sub`, completing the subscriber's side of each
/// QoS flow (PUBACK; PUBREC then PUBCOMP for the PUBREL), and returns them.
pub fn receive_acking(sub: &mut Raw, n: usize) -> Vec<Pub> {
    let mut got = Vec::new();
    let mut open_pubrels = 0usize;
    for _ in 0..(3 * n + 10) {
        if got.len() == n && open_pubrels == 0 {
            break;
        }
        let (first, body) = sub.read_packet().expect("packet");
        if first == 0x62 {
            sub.send(&packet(0x70, &body));
            open_pubrels -= 1;
            continue;
        }
        let m = parse_publish(first, &body);
        match m.qos {
            1 => sub.send(&packet(0x40, &m.pkid.to_be_bytes())),
            2 => {
                sub.send(&packet(0x50, &m.pkid.to_be_bytes()));
                open_pubrels += 1;
            }
            _ => {}
        }
        got.push(m);
    }
    assert_eq!(got.len(), n);
    assert_eq!(open_pubrels, 0);
    got
}

/// Subscribes a new client and returns what it gets before its PINGRESP
/// (the retained messages for the new subscription), SUBACK first.
pub fn subscribe_and_collect(addr: SocketAddr, filter: &str, qos: u8) -> Vec<Pub> {
    let mut c = client(addr, "late");
    c.subscribe(1, &[(filter, qos)]);
    drain(&mut c)
}
