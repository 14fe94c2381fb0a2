//! A subscriber that takes nothing no longer holds publishers back
//! (issue 14, item 1): flow control pauses a publisher while an online
//! subscriber's queue is full, which keeps a slow subscriber from losing
//! messages; a subscriber that keeps its connection alive but never
//! acknowledges is disconnected after `stall_timeout`, and everyone else
//! goes on. A slow but live one is never disconnected.

mod common;
use common::conformance::subscriber;
use common::sessions::puback;
use common::*;
use std::time::{Duration, Instant};

/// A QoS 1 bystander: `publisher` publishes on `b/t`, `sub` receives and
/// acknowledges; returns the longest publish-to-delivery time of `n`
/// round trips.
fn bystander_rounds(publisher: &mut Raw, sub: &mut Raw, n: u16) -> Duration {
    let mut longest = Duration::ZERO;
    for i in 1..=n {
        let start = Instant::now();
        publisher.send(&publish_packet("b/t", &i.to_be_bytes(), 1, i, false, false));
        let (first, body) = sub.read_packet().expect("the bystander's message");
        let got = parse_publish(first, &body);
        assert_eq!(got.payload, i.to_be_bytes(), "in order, none lost");
        sub.send(&puback(got.pkid));
        publisher.expect(&puback(i));
        longest = longest.max(start.elapsed());
    }
    longest
}

// A subscriber to `#` that answers PINGREQ but never PUBACKs: with
// `stall_timeout 1`, the bystander's round trips resume within about a
// second (against the old code: never), every message of theirs arrives,
// and the stalled client is disconnected and counted.
#[test]
fn a_subscriber_that_never_acknowledges_holds_publishers_back_for_a_bounded_time() {
    let b = TestBroker::start_polled(|c| {
        c.set("stall_timeout", "1").unwrap();
        c.set("max_queued_messages", "10").unwrap();
    });
    let mut attacker = subscriber(b.addr, &[("#", 1)]);
    let mut sub = subscriber(b.addr, &[("b/t", 1)]);
    let mut publisher = Raw::mqtt(b.addr, "bystander", true).0;
    let longest = bystander_rounds(&mut publisher, &mut sub, 200);
    assert!(
        longest < Duration::from_secs(4),
        "the bystander waited {longest:?} for a stalled subscriber"
    );
    assert_eq!(b.stats().stalled_subscribers, 1);
    // The attacker got its window's worth, then was closed.
    let mut closed = false;
    for _ in 0..1000 {
        match attacker.read_packet() {
            Some(_) => {}
            None => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the stalled subscriber was disconnected");
}

// A slow but live subscriber (it acknowledges one message every 100 ms)
// holds its publisher back, as flow control should, but is never taken
// for a stalled one: it stays connected and gets everything.
#[test]
fn a_slow_subscriber_that_keeps_acknowledging_is_not_disconnected() {
    let b = TestBroker::start_polled(|c| {
        c.set("stall_timeout", "1").unwrap();
        c.set("max_queued_messages", "5").unwrap();
        c.set("max_inflight_messages", "2").unwrap();
    });
    let mut slow = subscriber(b.addr, &[("s/t", 1)]);
    let addr = b.addr;
    let publisher = std::thread::spawn(move || {
        let mut p = Raw::mqtt(addr, "steady", true).0;
        for i in 1..=30u16 {
            p.publish_done("s/t", &i.to_be_bytes(), 1, i);
        }
    });
    for i in 1..=30u16 {
        let (first, body) = slow.read_packet().expect("a message, still connected");
        let got = parse_publish(first, &body);
        assert_eq!(got.payload, i.to_be_bytes());
        std::thread::sleep(Duration::from_millis(100));
        slow.send(&puback(got.pkid));
    }
    publisher.join().expect("publisher done");
    assert_eq!(b.stats().stalled_subscribers, 0);
    assert!(
        b.stats().publishers_paused > 0,
        "it was held back meanwhile"
    );
}
