//! Overload without silent loss: a subscriber whose queue is full pauses the
//! publishers that feed it (flow control through TCP) instead of dropping
//! messages the broker already acknowledged.

mod common;
use common::*;
use midge::config::QueueFull;
use std::time::Duration;

const PUBLISHERS: usize = 4;
const PER_PUBLISHER: u16 = 200;

fn small_limits(c: &mut midge::Config) {
    c.max_inflight = 5;
    c.max_queued = 10;
}

/// Reads packets until PINGRESP; returns how many PUBACKs came before it.
fn pubacks_until_pingresp(p: &mut Raw) -> usize {
    p.send(&[0xC0, 0x00]);
    let mut acks = 0;
    loop {
        match p.read_packet().expect("packet") {
            (0x40, _) => acks += 1,
            (0xD0, _) => return acks,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Each publisher pipelines its QoS 1 messages without waiting for acks.
fn start_publishers(addr: std::net::SocketAddr) -> Vec<Raw> {
    (0..PUBLISHERS)
        .map(|i| {
            let (mut p, _) = Raw::mqtt(addr, &format!("pub{i}"), true);
            let mut burst = Vec::new();
            for seq in 1..=PER_PUBLISHER {
                let payload = format!("{i}:{seq}");
                burst.extend(publish_packet(
                    "t",
                    payload.as_bytes(),
                    1,
                    seq,
                    false,
                    false,
                ));
            }
            p.send(&burst);
            p
        })
        .collect()
}

/// Receives and acknowledges `n` messages; returns their payloads in order.
fn drain(sub: &mut Raw, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let m = sub.read_publish();
            sub.send(&[0x40, 0x02, (m.pkid >> 8) as u8, m.pkid as u8]);
            String::from_utf8(m.payload).unwrap()
        })
        .collect()
}

#[test]
fn full_queue_pauses_publishers_and_loses_nothing() {
    let b = TestBroker::start_with(small_limits);
    let (mut sub, _) = Raw::mqtt(b.addr, "slow", true);
    sub.subscribe(1, &[("t", 1)]);
    let mut pubs = start_publishers(b.addr);
    // The subscriber acknowledges nothing yet: its window and queue fill,
    // and the publishers stop being acknowledged (they are paused).
    let acked: usize = pubs.iter_mut().map(pubacks_until_pingresp).sum();
    let total = PUBLISHERS * PER_PUBLISHER as usize;
    assert!(
        acked < total / 2,
        "{acked} of {total} acknowledged while the subscriber was stalled"
    );
    // Once it reads, everything arrives, once, in order per publisher.
    let got = drain(&mut sub, total);
    for i in 0..PUBLISHERS {
        let seqs: Vec<u16> = got
            .iter()
            .filter_map(|p| p.strip_prefix(&format!("{i}:")))
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            seqs,
            (1..=PER_PUBLISHER).collect::<Vec<_>>(),
            "publisher {i}"
        );
    }
    sub.expect_silence(Duration::from_millis(200));
    for (i, p) in pubs.iter_mut().enumerate() {
        let rest = pubacks_until_pingresp(p);
        assert!(rest <= PER_PUBLISHER as usize, "publisher {i}");
    }
}

#[test]
fn stalled_subscriber_does_not_block_unrelated_topics() {
    let b = TestBroker::start_with(small_limits);
    let (mut stalled, _) = Raw::mqtt(b.addr, "stalled", true);
    stalled.subscribe(1, &[("t", 1)]);
    let mut pubs = start_publishers(b.addr);
    pubacks_until_pingresp(&mut pubs[0]);
    // Another publisher and subscriber on another topic are unaffected.
    let (mut other_sub, _) = Raw::mqtt(b.addr, "other-sub", true);
    other_sub.subscribe(1, &[("u", 1)]);
    let (mut other_pub, _) = Raw::mqtt(b.addr, "other-pub", true);
    for seq in 1..=100u16 {
        other_pub.send(&publish_packet(
            "u",
            &seq.to_be_bytes(),
            1,
            seq,
            false,
            false,
        ));
        other_pub.expect(&[0x40, 0x02, (seq >> 8) as u8, seq as u8]);
        let m = other_sub.read_publish();
        assert_eq!(m.payload, seq.to_be_bytes());
        other_sub.send(&[0x40, 0x02, (m.pkid >> 8) as u8, m.pkid as u8]);
    }
    // A paused publisher still gets PINGRESPs (only its PUBLISHes wait).
    pubacks_until_pingresp(&mut pubs[1]);
}

#[test]
fn drop_policy_keeps_mosquittos_behaviour_and_counts() {
    let b = TestBroker::start_with(|c| {
        small_limits(c);
        c.queue_full = QueueFull::Drop;
    });
    let (mut sub, _) = Raw::mqtt(b.addr, "slow", true);
    sub.subscribe(1, &[("t", 1)]);
    let mut pubs = start_publishers(b.addr);
    // With drop, every publish is acknowledged at once...
    for p in pubs.iter_mut() {
        let mut acks = 0;
        while acks < PER_PUBLISHER {
            assert_eq!(p.read_packet().expect("PUBACK").0, 0x40);
            acks += 1;
        }
    }
    // ...and the subscriber gets only its window plus its queue.
    let got = drain(&mut sub, 15);
    assert_eq!(got.len(), 15);
    sub.expect_silence(Duration::from_millis(300));
}

/// A paused publisher whose unread PUBLISHes pass max_outgoing_bytes stops
/// being read; when the subscriber catches up, reading resumes by itself:
/// every PUBLISH is acknowledged without the publisher sending anything
/// more (an edge-triggered socket reports those bytes only once).
#[test]
fn a_paused_publisher_is_read_again_without_new_input() {
    let b = TestBroker::start_with(|c| {
        small_limits(c);
        c.max_outgoing_bytes = 2048;
    });
    let (mut sub, _) = Raw::mqtt(b.addr, "slow", true);
    sub.subscribe(1, &[("t", 1)]);
    let (mut p, _) = Raw::mqtt(b.addr, "burst", true);
    let mut burst = Vec::new();
    for seq in 1..=PER_PUBLISHER {
        burst.extend(publish_packet("t", &[b'x'; 100], 1, seq, false, false));
    }
    p.send(&burst); // 200 PUBLISHes of ~110 bytes in one write
    let got = drain(&mut sub, PER_PUBLISHER as usize);
    assert_eq!(got.len(), PER_PUBLISHER as usize);
    for seq in 1..=PER_PUBLISHER {
        let [hi, lo] = seq.to_be_bytes();
        p.expect(&[0x40, 2, hi, lo]);
    }
}
