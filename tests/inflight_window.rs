//! The outbound in-flight window, counted by a subscriber over raw TCP: it
//! never holds more unacknowledged QoS 1/2 messages than
//! `max_inflight_messages`, and the window grows past its start (20) while
//! the subscriber acknowledges promptly, so a fast subscriber is not held
//! to one round trip per 20 messages.

mod common;
use common::*;
use std::collections::VecDeque;

/// Publishes `n` QoS `qos` messages to `topic` and waits for every
/// acknowledgement, so all of them are in the subscriber's window or queue.
fn publish_all(addr: std::net::SocketAddr, topic: &str, qos: u8, n: u16) {
    let (mut p, _) = Raw::mqtt(addr, "window-pub", true);
    let burst: Vec<u8> = (1..=n)
        .flat_map(|i| publish_packet(topic, format!("{i}").as_bytes(), qos, i, false, false))
        .collect();
    p.send(&burst);
    let ids = |kind: u8| -> Vec<u8> {
        (1..=n)
            .flat_map(|i| [kind, 0x02, (i >> 8) as u8, i as u8])
            .collect()
    };
    if qos == 1 {
        p.expect(&ids(0x40));
    } else {
        p.expect(&ids(0x50));
        p.send(&ids(0x62));
        p.expect(&ids(0x70));
    }
}

/// Completes one delivery: PUBACK, or for QoS 2 PUBREC and at once PUBCOMP
/// (the broker reads them in order; its PUBREL is skipped by
/// [`next_packet`]).
fn complete(sub: &mut Raw, m: &Pub) {
    let id = [(m.pkid >> 8) as u8, m.pkid as u8];
    if m.qos == 1 {
        sub.send(&[0x40, 0x02, id[0], id[1]]);
    } else {
        sub.send(&[0x50, 0x02, id[0], id[1], 0x70, 0x02, id[0], id[1]]);
    }
}

/// The next packet other than PUBREL.
fn next_packet(sub: &mut Raw) -> (u8, Vec<u8>) {
    loop {
        let p = sub.read_packet().expect("packet");
        if p.0 != 0x62 {
            return p;
        }
    }
}

/// Acknowledges `n` messages one by one as they arrive (a subscriber that
/// keeps up); returns their payloads.
fn read_promptly(sub: &mut Raw, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let (first, body) = next_packet(sub);
            let m = parse_publish(first, &body);
            complete(sub, &m);
            String::from_utf8(m.payload).unwrap()
        })
        .collect()
}

/// Stops acknowledging: PINGREQ, then every PUBLISH the broker wrote before
/// the PINGRESP. With nothing acknowledged nothing more can come, so these
/// are all the messages it has in flight to this subscriber.
fn unacknowledged(sub: &mut Raw) -> Vec<Pub> {
    sub.send(&[0xC0, 0x00]);
    let mut got = Vec::new();
    loop {
        let (first, body) = next_packet(sub);
        if first == 0xD0 {
            return got;
        }
        got.push(parse_publish(first, &body));
    }
}

/// Reads `total` messages: `prompt` acknowledged at once, then the rest a
/// window at a time. Returns every window's size and checks that all
/// messages arrived once, in order.
fn windows(sub: &mut Raw, total: usize, prompt: usize) -> Vec<usize> {
    let mut got: Vec<String> = read_promptly(sub, prompt);
    let mut sizes = Vec::new();
    while got.len() < total {
        let window: VecDeque<Pub> = unacknowledged(sub).into();
        assert!(!window.is_empty(), "nothing in flight with messages queued");
        sizes.push(window.len());
        for m in &window {
            complete(sub, m);
            got.push(String::from_utf8(m.payload.clone()).unwrap());
        }
    }
    let want: Vec<String> = (1..=total).map(|i| i.to_string()).collect();
    assert_eq!(got, want, "every message once, in order");
    sizes
}

/// A cap set in the configuration is never exceeded, however promptly the
/// subscriber acknowledges, and is reached (the window grows to it, or
/// starts there when it is below 20). [MQTT-4.3.2-1] [MQTT-4.3.3-1]
#[test]
fn max_inflight_is_never_exceeded_at_the_subscriber() {
    for (cap, qos) in [(7, 1), (50, 1), (50, 2)] {
        let b = TestBroker::start_with(|c| c.max_inflight = cap);
        let (mut sub, _) = Raw::mqtt(b.addr, "window-sub", true);
        sub.subscribe(1, &[("w", qos)]);
        const TOTAL: u16 = 400;
        publish_all(b.addr, "w", qos, TOTAL);
        let sizes = windows(&mut sub, TOTAL as usize, 150);
        let last = sizes.len() - 1;
        for (i, &n) in sizes.iter().enumerate() {
            assert!(n <= cap, "cap {cap}, QoS {qos}: {n} unacknowledged");
            if i < last {
                assert_eq!(n, cap, "cap {cap}, QoS {qos}: windows {sizes:?}");
            }
        }
    }
}

/// With the default configuration the window starts at 20 and grows while
/// the subscriber acknowledges promptly: after 300 prompt acknowledgements
/// far more than 20 messages are in flight at once (a fixed window of 20
/// would give 20).
#[test]
fn default_window_grows_past_20_while_the_subscriber_keeps_up() {
    for qos in [1, 2] {
        let b = TestBroker::start();
        let (mut sub, _) = Raw::mqtt(b.addr, "window-sub", true);
        sub.subscribe(1, &[("w", qos)]);
        const TOTAL: u16 = 900;
        publish_all(b.addr, "w", qos, TOTAL);
        let sizes = windows(&mut sub, TOTAL as usize, 300);
        assert!(
            sizes[0] > 20,
            "QoS {qos}: window {} after 300 prompt acknowledgements",
            sizes[0]
        );
        assert!(sizes.iter().all(|&n| n <= 1000), "{sizes:?}");
    }
}

/// A subscriber that does not acknowledge keeps the starting window of 20
/// (mosquitto's default).
#[test]
fn a_subscriber_that_does_not_acknowledge_stays_at_20() {
    let b = TestBroker::start();
    let (mut sub, _) = Raw::mqtt(b.addr, "window-sub", true);
    sub.subscribe(1, &[("w", 1)]);
    publish_all(b.addr, "w", 1, 100);
    assert_eq!(unacknowledged(&mut sub).len(), 20);
    sub.expect_silence(std::time::Duration::from_millis(100));
}
