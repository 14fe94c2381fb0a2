//! Retained messages owed to a new subscription are part of it
//! [MQTT-3.3.1-6]: however many match, every one arrives, paced by the
//! subscriber's socket, before what is published after the subscription.

mod common;
use common::*;
use std::collections::HashSet;

/// Publishes `n` retained messages of `size` bytes under `r/`, QoS `qos`,
/// and waits until the broker has handled them.
fn retain_many(addr: std::net::SocketAddr, n: usize, size: usize, qos: u8) {
    let (mut p, _) = Raw::mqtt(addr, "retainer", true);
    let payload = vec![b'x'; size];
    let mut burst = Vec::new();
    for i in 0..n {
        let pkid = (i % 65_535 + 1) as u16;
        burst.extend(publish_packet(
            &format!("r/{i}"),
            &payload,
            qos,
            pkid,
            true,
            false,
        ));
    }
    p.send(&burst);
    p.send(&[0xC0, 0x00]);
    loop {
        match p.read_packet().expect("PUBACK or PINGRESP") {
            (0xD0, _) => return,
            (0x40, _) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads `n` retained messages, acknowledging QoS 1, then one live message;
/// returns the distinct retained topics.
fn read_retained_then_live(sub: &mut Raw, n: usize) -> HashSet<String> {
    let mut topics = HashSet::new();
    for i in 0..n {
        let m = sub.read_publish();
        assert!(m.retain, "message {i} of {n} is a retained one: {m:?}");
        if m.qos == 1 {
            sub.send(&[0x40, 0x02, (m.pkid >> 8) as u8, m.pkid as u8]);
        }
        topics.insert(m.topic);
    }
    let live = sub.read_publish();
    assert!(
        !live.retain,
        "the live message comes after every retained one"
    );
    assert_eq!(
        (live.topic.as_str(), &live.payload[..]),
        ("r/0", &b"new"[..])
    );
    topics
}

/// The numbers: 3,000 retained messages of 600 bytes (1.8 MB, over
/// the 1 MiB of output a client may have waiting) to a QoS 0 subscriber.
/// midge used to deliver 1,715 and drop the rest.
#[test]
fn retained_backlog_past_the_output_limit_arrives_whole_at_qos0() {
    let b = TestBroker::start();
    retain_many(b.addr, 3_000, 600, 0);
    let (mut sub, _) = Raw::mqtt(b.addr, "ha", true);
    sub.subscribe(1, &[("r/#", 0)]);
    let (mut p, _) = Raw::mqtt(b.addr, "live", true);
    p.send(&publish_packet("r/0", b"new", 0, 0, false, false));
    p.ping();
    let topics = read_retained_then_live(&mut sub, 3_000);
    assert_eq!(topics.len(), 3_000, "each retained message once");
}

/// The same at QoS 1, through the in-flight window.
#[test]
fn retained_backlog_arrives_whole_at_qos1() {
    let b = TestBroker::start_with(|c| c.max_outgoing_bytes = 64 * 1024);
    retain_many(b.addr, 3_000, 600, 1);
    let (mut sub, _) = Raw::mqtt(b.addr, "ha", true);
    sub.subscribe(1, &[("r/#", 1)]);
    let (mut p, _) = Raw::mqtt(b.addr, "live", true);
    p.send(&publish_packet("r/0", b"new", 0, 0, false, false));
    p.ping();
    let topics = read_retained_then_live(&mut sub, 3_000);
    assert_eq!(topics.len(), 3_000, "each retained message once");
}

/// A subscriber owed many retained messages does not hold up the loop:
/// another client is answered while the backlog is still being sent.
#[test]
fn other_clients_are_served_while_a_backlog_is_owed() {
    let b = TestBroker::start_with(|c| c.max_outgoing_bytes = 16 * 1024);
    retain_many(b.addr, 2_000, 600, 0);
    let (mut sub, _) = Raw::mqtt(b.addr, "ha", true);
    sub.subscribe(1, &[("r/#", 0)]);
    // The subscriber reads nothing yet: most of its backlog is still owed.
    let (mut other, _) = Raw::mqtt(b.addr, "other", true);
    other.ping();
    let topics = (0..2_000)
        .map(|_| sub.read_publish().topic)
        .collect::<HashSet<_>>();
    assert_eq!(topics.len(), 2_000);
}

/// More retained messages than one pass of the loop scans (the scan goes
/// on over several iterations): still every one, before the live message.
#[test]
fn a_scan_spread_over_loop_iterations_misses_nothing() {
    let b = TestBroker::start();
    retain_many(b.addr, 40_000, 1, 0);
    let (mut sub, _) = Raw::mqtt(b.addr, "ha", true);
    sub.subscribe(1, &[("r/#", 0)]);
    let (mut p, _) = Raw::mqtt(b.addr, "live", true);
    p.send(&publish_packet("r/0", b"new", 0, 0, false, false));
    p.ping();
    let topics = read_retained_then_live(&mut sub, 40_000);
    assert_eq!(topics.len(), 40_000, "each retained message once");
}
