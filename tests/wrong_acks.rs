//! An acknowledgement of the wrong type for a message in flight is a
//! protocol error: the connection closes (as in mosquitto's tests
//! 02-subpub-qos1-bad-pubcomp, -bad-pubrec and 02-subpub-qos2-bad-puback-1/2,
//! -bad-pubcomp). midge ignored them. An ack for an id with nothing in
//! flight is still ignored.

mod common;
use common::*;

/// A subscriber to `t` at `qos` with one message in flight to it; returns
/// it with the message's packet id.
fn one_in_flight(addr: std::net::SocketAddr, qos: u8) -> (Raw, Raw, u16) {
    let (mut sub, _) = Raw::mqtt(addr, "sub", true);
    sub.subscribe(1, &[("t", qos)]);
    let (mut publisher, _) = Raw::mqtt(addr, "pub", true);
    publisher.send(&publish_packet("t", b"m", qos, 1, false, false));
    publisher.read_packet().expect("PUBACK or PUBREC");
    let m = sub.read_publish();
    assert_eq!(m.qos, qos);
    (sub, publisher, m.pkid)
}

fn ack(kind: u8, pkid: u16) -> Vec<u8> {
    vec![kind, 0x02, (pkid >> 8) as u8, pkid as u8]
}

#[test]
fn pubcomp_or_pubrec_for_a_qos1_message_closes() {
    let b = TestBroker::start();
    for kind in [0x70, 0x50] {
        let (mut sub, _p, pkid) = one_in_flight(b.addr, 1);
        sub.send(&ack(kind, pkid));
        sub.expect_closed();
    }
}

#[test]
fn puback_for_a_qos2_message_closes_before_or_after_pubrec() {
    let b = TestBroker::start();
    let (mut sub, _p, pkid) = one_in_flight(b.addr, 2);
    sub.send(&ack(0x40, pkid));
    sub.expect_closed();
    let (mut sub, _p, pkid) = one_in_flight(b.addr, 2);
    sub.send(&ack(0x50, pkid));
    assert_eq!(
        sub.read_packet(),
        Some((0x62, vec![(pkid >> 8) as u8, pkid as u8]))
    );
    sub.send(&ack(0x40, pkid));
    sub.expect_closed();
}

#[test]
fn pubcomp_before_pubrec_closes() {
    let b = TestBroker::start();
    let (mut sub, _p, pkid) = one_in_flight(b.addr, 2);
    sub.send(&ack(0x70, pkid));
    sub.expect_closed();
}

/// The right acks, a resent PUBREC, and acks for ids with nothing in
/// flight keep the connection.
#[test]
fn fitting_and_unknown_acks_keep_the_connection() {
    let b = TestBroker::start();
    let (mut sub, _p, pkid) = one_in_flight(b.addr, 2);
    let pubrel = Some((0x62, vec![(pkid >> 8) as u8, pkid as u8]));
    sub.send(&ack(0x50, pkid));
    assert_eq!(sub.read_packet(), pubrel);
    sub.send(&ack(0x50, pkid));
    assert_eq!(sub.read_packet(), pubrel, "a resent PUBREC");
    sub.send(&ack(0x70, pkid));
    for kind in [0x40, 0x50, 0x70] {
        sub.send(&ack(kind, pkid.wrapping_add(100)));
    }
    sub.read_packet()
        .expect("PUBREL for the unknown id's PUBREC");
    sub.ping();
}
