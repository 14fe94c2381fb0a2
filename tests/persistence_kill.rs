//! Persistence (`--persistence DIR`): what survives a `kill -9` while
//! messages flow. Whatever the broker acknowledged is stored before the
//! acknowledgement leaves.
//!
//! Durable: retained messages (not `$SYS`), persistent sessions
//! (CleanSession 0) with their subscriptions, queued and in-flight QoS 1/2
//! messages and inbound QoS 2 ids awaiting PUBREL. Not durable: clean
//! sessions, QoS 0.

mod common;
use common::persistence::*;
use common::*;
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

/// splitmix64: a small seeded generator (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What one publisher sent and which of its messages the broker
/// acknowledged (PUBACK or PUBREC) before it died.
#[derive(Default)]
struct Flow {
    sent: Vec<u64>,
    acked: Vec<u64>,
}

const WINDOW: usize = 8;
const PER_ROUND: u64 = 30_000;

/// Publishes `{round}/{n}` to `topic` with up to WINDOW messages
/// unacknowledged, until the connection dies.
fn publish_until_killed(mut c: Raw, topic: &str, qos: u8, round: usize) -> Flow {
    c.stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut flow = Flow::default();
    // pkid -> (n, acknowledged)
    let mut open: HashMap<u16, (u64, bool)> = HashMap::new();
    let mut next = 1u64;
    loop {
        while open.len() < WINDOW && next <= PER_ROUND {
            let pkid = next as u16;
            let payload = format!("{round}/{next}");
            let packet = publish_packet(topic, payload.as_bytes(), qos, pkid, false, false);
            if c.stream.write_all(&packet).is_err() {
                return flow;
            }
            flow.sent.push(next);
            open.insert(pkid, (next, false));
            next += 1;
        }
        let Some((first, body)) = c.read_packet() else {
            return flow;
        };
        let pkid = u16::from_be_bytes([body[0], body[1]]);
        match first {
            PUBACK if qos == 1 => {
                let (n, _) = open.remove(&pkid).expect("PUBACK for an id in flight");
                flow.acked.push(n);
            }
            PUBREC if qos == 2 => {
                let e = open.get_mut(&pkid).expect("PUBREC for an id in flight");
                assert!(!e.1, "second PUBREC for {pkid}");
                e.1 = true;
                flow.acked.push(e.0);
                if c.stream.write_all(&ack(PUBREL, pkid)).is_err() {
                    return flow;
                }
            }
            PUBCOMP if qos == 2 => {
                let e = open.remove(&pkid).expect("PUBCOMP for an id in flight");
                assert!(e.1, "PUBCOMP before PUBREC");
            }
            f => panic!("publisher got {f:#04x}"),
        }
    }
}

// `kill -9` at random points while QoS 1 and QoS 2 messages flow, with the
// default `--fsync always`: whatever the broker acknowledged (PUBACK,
// PUBREC) reaches every persistent subscriber after the restart
// [MQTT-4.3.2-2] [MQTT-4.3.3-2]; QoS 2 at most once;
// per-topic order kept [MQTT-4.6.0-*].
#[test]
fn acknowledged_messages_survive_kill_9() {
    const ROUNDS: usize = 8;
    let seed = std::env::var("MIDGE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6d69_6467_6531);
    eprintln!("crash test seed {seed} (MIDGE_CRASH_SEED)");
    let mut rng = Rng(seed);
    let dir = store_dir("crash");
    // No queue limit gets in the way: every acknowledged message must be
    // kept, not dropped by policy.
    let opts = ["--max-queued", "1000000", "--sys-interval", "0"];
    let mut broker = Midge::start(&dir, &opts);
    // A: offline while messages flow; B: online but never reading.
    let subs: [(&str, &[(&str, u8)]); 2] = [
        ("crash-sub-a", &[("crash/#", 2)]),
        ("crash-sub-b", &[("crash/q1", 1), ("crash/q2", 2)]),
    ];
    for (id, filters) in subs {
        let (mut c, _) = Raw::mqtt(broker.addr, id, false);
        c.subscribe(1, filters);
        disconnect(c);
    }
    let topics = [("crash/q1", 1u8), ("crash/q2", 2u8)];
    // subscriber -> (topic, payload) -> times delivered, over all rounds
    let mut delivered: Vec<HashMap<(String, Vec<u8>), usize>> = vec![HashMap::new(); 2];
    let mut total_acked = 0;
    for round in 0..ROUNDS {
        let (online, _) = Raw::mqtt(broker.addr, "crash-sub-b", false);
        let publishers: Vec<Raw> = topics
            .iter()
            .enumerate()
            .map(|(i, _)| Raw::mqtt(broker.addr, &format!("crash-pub-{i}"), true).0)
            .collect();
        let delay = Duration::from_millis(5 + rng.below(300));
        let threads: Vec<_> = publishers
            .into_iter()
            .zip(topics)
            .map(|(c, (topic, qos))| {
                std::thread::spawn(move || publish_until_killed(c, topic, qos, round))
            })
            .collect();
        std::thread::sleep(delay);
        broker.kill9();
        let flows: Vec<Flow> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        drop(online);

        broker = Midge::start(&dir, &opts);
        let line = broker.wait_for("persistence: restored");
        assert!(
            line.contains("restored 2 sessions, 3 subscriptions"),
            "round {round}: {line}"
        );
        for (s, (id, _)) in subs.iter().enumerate() {
            let (mut c, present) = Raw::mqtt(broker.addr, id, false);
            assert!(present, "round {round}: {id} lost its session");
            let got = drain(&mut c);
            disconnect(c);
            // per topic: last first-seen number, to check the order
            let mut last: HashMap<String, u64> = HashMap::new();
            for m in got {
                let (t, q) = topics
                    .iter()
                    .find(|(t, _)| *t == m.topic)
                    .unwrap_or_else(|| panic!("unexpected topic {}", m.topic));
                assert_eq!(m.qos, *q, "{id}: QoS of {}", m.topic);
                let text = String::from_utf8(m.payload.clone()).unwrap();
                let (r, n) = text.split_once('/').unwrap();
                let (r, n): (usize, u64) = (r.parse().unwrap(), n.parse().unwrap());
                assert_eq!(r, round, "{id}: a message of round {r} in round {round}");
                let flow = &flows[topics.iter().position(|x| x.0 == *t).unwrap()];
                assert!(
                    n <= flow.sent.len() as u64,
                    "{id}: {t} {text} was never published"
                );
                let count = delivered[s].entry((m.topic, m.payload)).or_insert(0);
                *count += 1;
                if *q == 2 {
                    assert_eq!(*count, 1, "{id}: QoS 2 {text} delivered twice");
                }
                if *count == 1 {
                    let prev = last.insert(t.to_string(), n).unwrap_or(0);
                    assert!(n > prev, "{id}: {t} {n} after {prev}: out of order");
                }
            }
        }
        for (flow, (topic, _)) in flows.iter().zip(topics) {
            total_acked += flow.acked.len();
            for n in &flow.acked {
                let key = (topic.to_string(), format!("{round}/{n}").into_bytes());
                for (s, (id, _)) in subs.iter().enumerate() {
                    assert!(
                        delivered[s].contains_key(&key),
                        "round {round}: {topic} {round}/{n} was acknowledged before the kill \
                         but never reached {id} (sent {}, acked {})",
                        flow.sent.len(),
                        flow.acked.len()
                    );
                }
            }
        }
    }
    eprintln!("{total_acked} acknowledged messages survived {ROUNDS} kills");
    assert!(total_acked > 0, "nothing was acknowledged before any kill");
}

/// A 600-byte payload named `m{i}`.
fn big_payload(i: u16) -> Vec<u8> {
    let mut v = format!("m{i} ").into_bytes();
    v.resize(600, b'.');
    v
}

/// The PUBLISHes m1..=mN as one write, so the broker reads them in one
/// loop iteration.
fn big_batch(topic: &str, n: u16) -> Vec<u8> {
    let mut batch = Vec::new();
    for i in 1..=n {
        batch.extend(publish_packet(topic, &big_payload(i), 1, i, false, false));
    }
    batch
}

// A PUBLISH parked by flow control (its subscriber's queue was full) and
// handled when the queue drains while output is written: its PUBACK must
// still leave only after it is stored. A `kill -9` right after the PUBACK
// must not lose it [MQTT-4.3.2-2].
#[test]
fn a_parked_publish_is_stored_before_its_puback() {
    let dir = store_dir("parked");
    let opts = [
        "--max-outgoing-bytes",
        "1000",
        "--max-queued",
        "1",
        "--max-inflight",
        "4",
        "--sys-interval",
        "0",
    ];
    let mut m = Midge::start(&dir, &opts);
    // Online, never acknowledging: its window fills, then its queue.
    let (mut sub, _) = Raw::mqtt(m.addr, "parked-sub", false);
    sub.subscribe(1, &[("big/#", 1)]);
    let (mut p, _) = Raw::mqtt(m.addr, "parked-pub", true);
    // m1, m2 go out at once, m3 is queued, m4 fills the queue and pauses the
    // publisher (m5, m6 parked); writing the output sends m3 and m4 from the
    // queue, which lets m5 and m6 in, acknowledged.
    p.send(&big_batch("big/t", 6));
    let mut acked = Vec::new();
    p.stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    for i in 1..=6u16 {
        let mut got = [0u8; 4];
        if std::io::Read::read_exact(&mut p.stream, &mut got).is_err() {
            break; // not acknowledged (still parked)
        }
        assert_eq!(got, ack(PUBACK, i)[..]);
        acked.push(i);
    }
    eprintln!("acknowledged before the kill: {acked:?}");
    m.kill9();
    drop(sub);

    let m = Midge::start(&dir, &opts);
    let (mut sub, present) = Raw::mqtt(m.addr, "parked-sub", false);
    assert!(present);
    let got: Vec<Vec<u8>> = drain(&mut sub).into_iter().map(|m| m.payload).collect();
    for i in acked {
        assert!(
            got.contains(&big_payload(i)),
            "m{i} was acknowledged (PUBACK) before the kill but is lost; restored: {:?}",
            got.iter()
                .map(|p| String::from_utf8_lossy(&p[..4]).into_owned())
                .collect::<Vec<_>>()
        );
    }
}

// [MQTT-3.3.1-1] [MQTT-4.4.0-1] after a `kill -9`: PUBLISHes sent from the
// queue as the output drains are resent with DUP=1 under their ids, like
// those sent at once.
#[test]
fn messages_sent_from_the_queue_are_resent_as_duplicates_after_kill_9() {
    let dir = store_dir("sentq");
    let opts = ["--max-outgoing-bytes", "1000", "--sys-interval", "0"];
    let mut m = Midge::start(&dir, &opts);
    let (mut sub, _) = Raw::mqtt(m.addr, "sentq-sub", false);
    sub.subscribe(1, &[("big/#", 1)]);
    let (mut p, _) = Raw::mqtt(m.addr, "sentq-pub", true);
    // m1, m2 go out at once; m3 waits in the queue for the output to drain.
    p.send(&big_batch("big/t", 3));
    for i in 1..=3 {
        p.expect(&ack(PUBACK, i));
    }
    let first: Vec<Pub> = (0..3).map(|_| sub.read_publish()).collect(); // (no PUBACK)
    m.kill9();
    drop(sub);

    let m = Midge::start(&dir, &opts);
    let (mut sub, present) = Raw::mqtt(m.addr, "sentq-sub", false);
    assert!(present);
    for (i, before) in first.iter().enumerate() {
        let again = sub.read_publish();
        let name = |m: &Pub| String::from_utf8_lossy(&m.payload[..3]).into_owned();
        assert_eq!(
            (again.dup, again.pkid, name(&again)),
            (true, before.pkid, name(before)),
            "m{}: sent before the kill (id {}), so resent with DUP=1 and that id",
            i + 1,
            before.pkid
        );
    }
}
