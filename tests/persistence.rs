//! Persistence (`--persistence DIR`): what survives a clean restart, a
//! `kill -9` and a damaged store, and compaction of the store.
//!
//! Durable: retained messages (not `$SYS`), persistent sessions
//! (CleanSession 0) with their subscriptions, queued and in-flight QoS 1/2
//! messages and inbound QoS 2 ids awaiting PUBREL. Not durable: clean
//! sessions, QoS 0.

mod common;
use common::*;
use midge::store::Fsync;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PUBACK: u8 = 0x40;
const PUBREC: u8 = 0x50;
const PUBREL: u8 = 0x62;
const PUBCOMP: u8 = 0x70;

/// A fresh, empty store directory for one test.
fn store_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("persist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn log_file(dir: &Path) -> PathBuf {
    dir.join("midge.log")
}

/// An in-process broker storing in `dir` (`fsync always`), with other
/// settings adjusted.
fn start_cfg(dir: &Path, adjust: impl FnOnce(&mut midge::Config)) -> TestBroker {
    let dir = dir.to_path_buf();
    TestBroker::start_with(move |c| {
        c.persistence = true;
        c.persistence_location = Some(dir);
        c.fsync = Fsync::Always;
        adjust(c);
    })
}

fn start(dir: &Path) -> TestBroker {
    start_cfg(dir, |_| {})
}

fn ack(kind: u8, pkid: u16) -> Vec<u8> {
    let id = pkid.to_be_bytes();
    vec![kind, 2, id[0], id[1]]
}

/// DISCONNECT, then waits until the broker has closed the connection (so
/// the session is offline before anything else happens).
fn disconnect(mut c: Raw) {
    c.send(&[0xE0, 0x00]);
    c.expect_closed();
}

/// Publishes and completes the acknowledgement flow of its QoS.
fn publish(c: &mut Raw, topic: &str, payload: &[u8], qos: u8, pkid: u16, retain: bool) {
    c.send(&publish_packet(topic, payload, qos, pkid, retain, false));
    match qos {
        0 => c.ping(),
        1 => c.expect(&ack(PUBACK, pkid)),
        _ => {
            c.expect(&ack(PUBREC, pkid));
            c.send(&ack(PUBREL, pkid));
            c.expect(&ack(PUBCOMP, pkid));
        }
    }
}

/// Reads everything the broker has for this client, acknowledging as it
/// goes (PUBACK; PUBREC, then PUBCOMP for the PUBREL), until a PINGREQ
/// round trip brings nothing else: every acknowledgement sent before that
/// PINGREQ was processed, so nothing more is queued. Returns the PUBLISHes
/// in arrival order.
fn drain(c: &mut Raw) -> Vec<Pub> {
    let mut got = Vec::new();
    for _ in 0..100_000 {
        c.send(&[0xC0, 0x00]);
        let mut quiet = true;
        loop {
            let (first, body) = c.read_packet().expect("a packet, got EOF");
            match first {
                0xD0 => break,
                PUBREL => {
                    quiet = false;
                    c.send(&ack(PUBCOMP, u16::from_be_bytes([body[0], body[1]])));
                }
                f if f >> 4 == 3 => {
                    quiet = false;
                    let p = parse_publish(first, &body);
                    match p.qos {
                        1 => c.send(&ack(PUBACK, p.pkid)),
                        2 => c.send(&ack(PUBREC, p.pkid)),
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

/// Every retained message (topic -> payload, QoS) as a new subscriber to
/// `#` sees it.
fn retained_messages(addr: SocketAddr) -> BTreeMap<String, (Vec<u8>, u8)> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let id = format!("retained-reader-{}", N.fetch_add(1, Ordering::SeqCst));
    let (mut c, _) = Raw::mqtt(addr, &id, true);
    c.subscribe(1, &[("#", 2)]);
    let mut out = BTreeMap::new();
    for p in drain(&mut c) {
        assert!(p.retain, "{} arrived without RETAIN", p.topic);
        let topic = p.topic.clone();
        assert!(
            out.insert(p.topic, (p.payload, p.qos)).is_none(),
            "retained {topic} twice"
        );
    }
    disconnect(c);
    out
}

/// Asserts two sets of retained messages are equal, naming only the
/// differences (payloads shortened).
#[track_caller]
fn assert_retained(
    got: &BTreeMap<String, (Vec<u8>, u8)>,
    want: &BTreeMap<String, (Vec<u8>, u8)>,
    what: &str,
) {
    let short = |v: Option<&(Vec<u8>, u8)>| {
        v.map(|(p, q)| {
            let text = String::from_utf8_lossy(&p[..p.len().min(24)]).into_owned();
            format!("{text:?} ({} bytes) QoS {q}", p.len())
        })
    };
    let mut diff = Vec::new();
    for topic in got.keys().chain(want.keys()) {
        let (g, w) = (got.get(topic), want.get(topic));
        if g != w
            && !diff
                .iter()
                .any(|d: &String| d.starts_with(&format!("{topic}:")))
        {
            diff.push(format!("{topic}: got {:?}, want {:?}", short(g), short(w)));
        }
    }
    assert!(
        diff.is_empty(),
        "{what}: retained messages differ ({} of {} wanted):\n{}",
        diff.len(),
        want.len(),
        diff[..diff.len().min(10)].join("\n")
    );
}

fn retained_map(items: &[(&str, &[u8], u8)]) -> BTreeMap<String, (Vec<u8>, u8)> {
    items
        .iter()
        .map(|(t, p, q)| (t.to_string(), (p.to_vec(), *q)))
        .collect()
}

/// The store's framing, `[u32 len LE][u32 crc32 LE][body]`: each record's
/// (start, end) byte range. Stops at the first incomplete record.
fn frames(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        if at + 8 + len > data.len() {
            break;
        }
        out.push((at, at + 8 + len));
        at += 8 + len;
    }
    out
}

/// Topic, QoS and payload of a Retain record body (tag 1).
fn retain_record(body: &[u8]) -> Option<(String, u8, Vec<u8>)> {
    if body.first() != Some(&1) {
        return None;
    }
    let tlen = u16::from_le_bytes([body[1], body[2]]) as usize;
    let topic = String::from_utf8(body[3..3 + tlen].to_vec()).ok()?;
    let qos = body[3 + tlen];
    let at = 4 + tlen;
    let plen = u32::from_le_bytes(body[at..at + 4].try_into().unwrap()) as usize;
    Some((topic, qos, body[at + 4..at + 4 + plen].to_vec()))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ------------------------------------------------------------- the binary

/// A `midge` process; killed (SIGKILL) on drop.
struct Midge {
    child: Child,
    log: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Midge {
    fn start(dir: &Path, extra: &[&str]) -> Midge {
        let mut child = Command::new(env!("CARGO_BIN_EXE_midge"))
            .env_remove("RUST_LOG")
            .arg("--persistence")
            .arg(dir)
            .args(["-p", "0"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("midge starts");
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut m = Midge {
            child,
            log,
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        let line = m.wait_for("listening on ");
        m.addr = line.rsplit(' ').next().unwrap().parse().unwrap();
        m
    }

    /// The next log line containing `text` (bounded wait).
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {text:?}"),
            }
        }
    }

    /// `kill -9`.
    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }

    /// SIGTERM, and waits (bounded) for a clean exit.
    fn terminate(&mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "midge exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "midge did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Midge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ tests

// [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2] [MQTT-3.3.1-5] [MQTT-3.3.1-10]
// [MQTT-3.3.1-11] across a restart: the session state and retained
// messages the standard makes the server keep are kept by the store.
#[test]
fn sessions_subscriptions_queues_and_retained_messages_survive_a_restart() {
    let dir = store_dir("restart");
    let mut b = start(&dir);
    let (mut sub, present) = Raw::mqtt(b.addr, "keeper", false);
    assert!(!present);
    sub.subscribe(1, &[("r/q1", 1), ("r/q2", 2), ("r/unsub", 1)]);
    sub.send(&unsubscribe_packet(2, &["r/unsub"]));
    sub.expect(&[0xB0, 2, 0, 2]);
    // A persistent session ended by a CleanSession 1 connect [MQTT-3.1.2-6].
    let (mut gone, _) = Raw::mqtt(b.addr, "ended", false);
    gone.subscribe(1, &[("r/q1", 1)]);
    disconnect(gone);
    let (gone, present) = Raw::mqtt(b.addr, "ended", true);
    assert!(!present);
    disconnect(gone);
    // A clean session, still connected when the broker stops.
    let (mut fleeting, _) = Raw::mqtt(b.addr, "fleeting", true);
    fleeting.subscribe(1, &[("r/q1", 1)]);
    let (mut p, _) = Raw::mqtt(b.addr, "restart-pub", true);
    // QoS 0 reaches online subscribers but never the disk.
    publish(&mut p, "r/q1", b"qos0-never-stored", 0, 0, false);
    assert_eq!(sub.read_publish().payload, b"qos0-never-stored");
    assert_eq!(fleeting.read_publish().payload, b"qos0-never-stored");
    disconnect(sub);

    // Queued for the offline persistent session, in this order.
    let queued: [(&str, &[u8], u8, u8); 5] = [
        ("r/q1", b"m1", 1, 1),
        ("r/q2", b"m2", 2, 2),
        ("r/q1", b"m3 sent at QoS 2, granted 1", 2, 1),
        ("r/q2", b"m4", 2, 2),
        ("r/q1", b"m5", 1, 1),
    ];
    for (i, (topic, payload, qos, _)) in queued.iter().enumerate() {
        publish(&mut p, topic, payload, *qos, i as u16 + 1, false);
    }
    // Retained: one kept, one deleted, one replaced.
    publish(&mut p, "ret/keep", b"K", 1, 10, true);
    publish(&mut p, "ret/gone", b"G", 1, 11, true);
    publish(&mut p, "ret/upd", b"old", 0, 0, true);
    publish(&mut p, "ret/upd", b"new", 2, 12, true);
    publish(&mut p, "ret/gone", b"", 0, 0, true);
    p.ping();
    b.stop();

    // Not durable: clean sessions, QoS 0, $SYS.
    let data = std::fs::read(log_file(&dir)).unwrap();
    assert!(!contains(&data, b"fleeting"), "a clean session was stored");
    assert!(!contains(&data, b"qos0-never-stored"), "QoS 0 was stored");
    assert!(!contains(&data, b"$SYS"), "$SYS was stored");

    let b = start(&dir);
    // The clean session did not come back: no session, no subscription.
    let (mut f, present) = Raw::mqtt(b.addr, "fleeting", false);
    assert!(!present, "a clean session was restored");
    f.ping();
    disconnect(f);

    let (mut e, present) = Raw::mqtt(b.addr, "ended", false);
    assert!(!present, "a session ended before the stop was restored");
    e.ping();
    disconnect(e);

    let (mut sub, present) = Raw::mqtt(b.addr, "keeper", false);
    assert!(present, "Session Present after the restart");
    let got = drain(&mut sub);
    let want: Vec<(&str, &[u8], u8)> = queued.iter().map(|(t, p, _, q)| (*t, *p, *q)).collect();
    let seen: Vec<(&str, &[u8], u8)> = got
        .iter()
        .map(|m| (m.topic.as_str(), m.payload.as_slice(), m.qos))
        .collect();
    assert_eq!(seen, want, "queued messages, in order, at the granted QoS");
    for m in &got {
        assert!(!m.dup && !m.retain && m.pkid != 0, "{m:?}");
    }

    // The subscriptions still route new messages.
    let (mut p, _) = Raw::mqtt(b.addr, "restart-pub", true);
    publish(&mut p, "r/q2", b"after-2", 2, 1, false);
    publish(&mut p, "r/q1", b"after-1", 1, 2, false);
    publish(&mut p, "r/other", b"not subscribed", 1, 3, false);
    publish(
        &mut p,
        "r/unsub",
        b"unsubscribed before the stop",
        1,
        4,
        false,
    );
    let got = drain(&mut sub);
    let seen: Vec<(&str, &[u8], u8)> = got
        .iter()
        .map(|m| (m.topic.as_str(), m.payload.as_slice(), m.qos))
        .collect();
    assert_eq!(
        seen,
        vec![("r/q2", &b"after-2"[..], 2), ("r/q1", &b"after-1"[..], 1)]
    );

    let want = retained_map(&[("ret/keep", b"K", 1), ("ret/upd", b"new", 2)]);
    assert_retained(&retained_messages(b.addr), &want, "after the restart");
}

// [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-4.3.3-1] [MQTT-4.3.3-2] [MQTT-4.6.0-1]
// across a restart: unacknowledged PUBLISHes (sent live, from the queue, or
// as a retained copy) are resent with DUP=1 and their ids, released QoS 2
// messages as PUBREL, in the original order; an inbound QoS 2 id stays known
// until its PUBREL.
#[test]
fn in_flight_messages_and_inbound_qos2_ids_survive_a_restart() {
    let dir = store_dir("inflight");
    let mut b = start(&dir);
    let (mut p, _) = Raw::mqtt(b.addr, "inflight-pub", false);
    publish(&mut p, "inf/ret", b"retained", 1, 20, true);
    let (mut sub, _) = Raw::mqtt(b.addr, "inflight-sub", false);
    sub.subscribe(1, &[("inf/#", 2)]);
    let ret = sub.read_publish(); // (no PUBACK)
    assert_eq!((ret.retain, ret.qos, ret.dup), (true, 1, false));
    disconnect(sub);

    // Queued while offline, sent from the queue on the reconnect.
    publish(&mut p, "inf/q1", b"queued-1", 1, 1, false);
    publish(&mut p, "inf/q2", b"queued-2", 2, 2, false);
    let (mut sub, present) = Raw::mqtt(b.addr, "inflight-sub", false);
    assert!(present);
    let again = sub.read_publish();
    assert_eq!(
        (again.dup, again.retain, again.pkid),
        (true, true, ret.pkid)
    );
    let q1 = sub.read_publish(); // (no PUBACK)
    let q2 = sub.read_publish();
    assert_eq!((q1.payload.as_slice(), q1.qos), (&b"queued-1"[..], 1));
    assert_eq!((q2.payload.as_slice(), q2.qos), (&b"queued-2"[..], 2));
    sub.send(&ack(PUBREC, q2.pkid));
    sub.expect(&ack(PUBREL, q2.pkid)); // (no PUBCOMP)

    // Sent while online.
    publish(&mut p, "inf/one", b"one", 1, 3, false);
    let one = sub.read_publish(); // (no PUBACK)
    assert_eq!(
        (one.qos, one.dup, one.payload.as_slice()),
        (1, false, &b"one"[..])
    );
    publish(&mut p, "inf/two", b"two", 2, 4, false);
    let two = sub.read_publish();
    assert_eq!(
        (two.qos, two.dup, two.payload.as_slice()),
        (2, false, &b"two"[..])
    );
    sub.send(&ack(PUBREC, two.pkid));
    sub.expect(&ack(PUBREL, two.pkid)); // (no PUBCOMP)

    // Inbound QoS 2, delivered, awaiting the publisher's PUBREL.
    p.send(&publish_packet("inf/seven", b"seven", 2, 7, false, false));
    p.expect(&ack(PUBREC, 7));
    let seven = sub.read_publish();
    assert_eq!(seven.payload, b"seven");
    sub.send(&ack(PUBREC, seven.pkid));
    sub.expect(&ack(PUBREL, seven.pkid));
    sub.send(&ack(PUBCOMP, seven.pkid));
    sub.ping();
    b.stop();

    let mut b = start(&dir);
    let (mut sub, present) = Raw::mqtt(b.addr, "inflight-sub", false);
    assert!(present);
    let resent = |m: &Pub| Pub {
        dup: true,
        ..m.clone()
    };
    assert_eq!(sub.read_publish(), resent(&ret), "retained copy resent");
    assert_eq!(sub.read_publish(), resent(&q1), "queued QoS 1 resent");
    sub.expect(&ack(PUBREL, q2.pkid)); // not the PUBLISH again
    assert_eq!(sub.read_publish(), resent(&one), "live QoS 1 resent");
    sub.expect(&ack(PUBREL, two.pkid));
    sub.ping(); // nothing else (the completed QoS 2 is not resent)

    let (mut p, present) = Raw::mqtt(b.addr, "inflight-pub", false);
    assert!(present);
    // The publisher did not get PUBCOMP: it resends the PUBLISH.
    p.send(&publish_packet("inf/seven", b"seven", 2, 7, false, true));
    p.expect(&ack(PUBREC, 7));
    sub.ping(); // not delivered a second time
    p.send(&ack(PUBREL, 7));
    p.expect(&ack(PUBCOMP, 7));

    // Complete the subscriber's flows; then nothing is left in flight.
    for (kind, pkid) in [
        (PUBACK, ret.pkid),
        (PUBACK, q1.pkid),
        (PUBCOMP, q2.pkid),
        (PUBACK, one.pkid),
        (PUBCOMP, two.pkid),
    ] {
        sub.send(&ack(kind, pkid));
    }
    sub.ping();
    // Id 7 was released: a new message under it is delivered.
    publish(&mut p, "inf/seven", b"seven again", 2, 7, false);
    let got = drain(&mut sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"seven again");
    b.stop();

    // The completions and the release were stored too.
    let b = start(&dir);
    let (mut sub, present) = Raw::mqtt(b.addr, "inflight-sub", false);
    assert!(present);
    sub.ping(); // nothing resent
    let (mut p, present) = Raw::mqtt(b.addr, "inflight-pub", false);
    assert!(present);
    p.send(&publish_packet(
        "inf/seven",
        b"seven third",
        2,
        7,
        false,
        false,
    ));
    p.expect(&ack(PUBREC, 7));
    p.send(&ack(PUBREL, 7));
    p.expect(&ack(PUBCOMP, 7));
    let got = drain(&mut sub);
    assert_eq!(got.len(), 1, "id 7 is free after its PUBREL");
    assert_eq!(got[0].payload, b"seven third");
}

// A full queue whose oldest messages are dropped (queue_overflow oldest):
// the drops are stored, so a restart does not bring them back.
#[test]
fn messages_dropped_from_a_full_queue_stay_dropped_after_a_restart() {
    let dir = store_dir("overflow");
    let config = |c: &mut midge::Config| {
        c.max_queued = 2;
        c.queue_overflow = midge::session::Overflow::DropOldest;
    };
    let mut b = start_cfg(&dir, config);
    let (mut sub, _) = Raw::mqtt(b.addr, "overflow-sub", false);
    sub.subscribe(1, &[("o/#", 1)]);
    disconnect(sub);
    let (mut p, _) = Raw::mqtt(b.addr, "overflow-pub", true);
    for i in 1..=4u16 {
        publish(&mut p, &format!("o/{i}"), b"x", 1, i, false);
    }
    b.stop();
    let b = start_cfg(&dir, config);
    let (mut sub, present) = Raw::mqtt(b.addr, "overflow-sub", false);
    assert!(present);
    let topics: Vec<String> = drain(&mut sub).into_iter().map(|m| m.topic).collect();
    assert_eq!(
        topics,
        vec!["o/3", "o/4"],
        "the two newest, as before the restart"
    );
}

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

// A torn or corrupt store tail: the broker cuts it, keeps every record
// before it, says so in its log, and later records land after the cut.
#[test]
fn a_damaged_store_tail_is_cut_and_everything_before_it_kept() {
    let dir = store_dir("torn");
    let mut b = start(&dir);
    let (mut p, _) = Raw::mqtt(b.addr, "torn-pub", true);
    let mut kept = Vec::new();
    for i in 0..8u16 {
        let (topic, payload) = (format!("ret/{i}"), format!("value {i}"));
        publish(&mut p, &topic, payload.as_bytes(), 1, i + 1, true);
        kept.push((topic, (payload.into_bytes(), 1u8)));
    }
    publish(&mut p, "ret/last", b"the last record", 1, 99, true);
    b.stop();
    let kept: BTreeMap<String, (Vec<u8>, u8)> = kept.into_iter().collect();

    let full = std::fs::read(log_file(&dir)).unwrap();
    let recs = frames(&full);
    let &(last, end) = recs.last().unwrap();
    assert_eq!(end, full.len(), "the store holds whole records");
    let (topic, _, _) = retain_record(&full[last + 8..end]).expect("a Retain record last");
    assert_eq!(topic, "ret/last");

    // Cut at every byte offset inside the last record.
    for cut in last..full.len() {
        std::fs::write(log_file(&dir), &full[..cut]).unwrap();
        let mut b = start(&dir);
        assert_retained(&retained_messages(b.addr), &kept, &format!("cut at {cut}"));
        assert_eq!(
            std::fs::metadata(log_file(&dir)).unwrap().len() as usize,
            last,
            "cut at {cut}: the damaged tail is removed from the file"
        );
        // A change after the cut is readable on the next start.
        let (mut p, _) = Raw::mqtt(b.addr, "torn-pub", true);
        publish(&mut p, "ret/after", format!("{cut}").as_bytes(), 1, 1, true);
        b.stop();
        let b = start(&dir);
        let mut want = kept.clone();
        want.insert("ret/after".into(), (format!("{cut}").into_bytes(), 1));
        let what = format!("cut at {cut}, then a write");
        assert_retained(&retained_messages(b.addr), &want, &what);
    }

    // The binary logs what it cut.
    let torn = last + 5;
    std::fs::write(log_file(&dir), &full[..torn]).unwrap();
    let mut m = Midge::start(&dir, &["--sys-interval", "0"]);
    let line = m.wait_for("persistence: restored");
    assert!(
        line.contains("restored 0 sessions, 0 subscriptions, 8 retained and 0 queued messages"),
        "{line}"
    );
    let line = m.wait_for("persistence: cut");
    assert!(line.contains("cut 5 damaged bytes"), "{line}");
    assert_retained(&retained_messages(m.addr), &kept, "torn header");
    m.kill9();

    // One flipped byte in the middle: the records before the damaged one
    // are kept, the damaged one and everything after it are cut.
    let mut bad = full.clone();
    let mid = full.len() / 2;
    bad[mid] ^= 0x5a;
    let &(hit, _) = recs.iter().find(|(s, e)| (*s..*e).contains(&mid)).unwrap();
    let before: BTreeMap<String, (Vec<u8>, u8)> = recs
        .iter()
        .take_while(|(s, _)| *s < hit)
        .filter_map(|(s, e)| retain_record(&full[s + 8..*e]))
        .map(|(t, q, p)| (t, (p, q)))
        .collect();
    assert!(!before.is_empty() && before.len() < kept.len());
    std::fs::write(log_file(&dir), &bad).unwrap();
    let mut m = Midge::start(&dir, &["--sys-interval", "0"]);
    m.wait_for("persistence: restored");
    let line = m.wait_for("persistence: cut");
    assert!(
        line.contains(&format!("cut {} damaged bytes", full.len() - hit)),
        "flipped byte {mid} in the record at {hit}: {line}"
    );
    assert_retained(&retained_messages(m.addr), &before, "flipped byte");
}

// Compaction: the store shrinks to the live state once it has grown past
// 4 MiB, with no leftover `midge.log.new`, and keeps sessions, in-flight and
// queued messages, inbound QoS 2 ids and the latest retained values.
#[test]
fn compaction_shrinks_the_store_and_keeps_the_live_state() {
    let dir = store_dir("compact");
    // A wide in-flight window only to read thousands of retained messages
    // back quickly.
    let config = |c: &mut midge::Config| c.max_inflight = 1000;
    let mut b = start_cfg(&dir, config);
    let (mut sub, _) = Raw::mqtt(b.addr, "compact-sub", false);
    sub.subscribe(1, &[("c/#", 2)]);
    let (mut p, _) = Raw::mqtt(b.addr, "compact-pub", false);
    publish(&mut p, "c/one", b"one", 1, 1, false);
    let one = sub.read_publish(); // in flight, never acknowledged
    publish(&mut p, "c/two", b"two", 2, 2, false);
    let two = sub.read_publish();
    sub.send(&ack(PUBREC, two.pkid));
    sub.expect(&ack(PUBREL, two.pkid)); // released, no PUBCOMP
    p.send(&publish_packet("c/nine", b"nine", 2, 9, false, false));
    p.expect(&ack(PUBREC, 9)); // inbound id 9 awaits PUBREL
    let nine = sub.read_publish();
    sub.send(&ack(PUBREC, nine.pkid));
    sub.expect(&ack(PUBREL, nine.pkid));
    sub.send(&ack(PUBCOMP, nine.pkid));
    sub.ping();
    disconnect(sub);
    publish(&mut p, "c/three", b"three", 1, 3, false); // queued
    publish(&mut p, "c/four", b"four", 2, 4, false); // queued

    // Enough live state for a snapshot in several steps...
    let (mut r, _) = Raw::mqtt(b.addr, "compact-retainer", true);
    let mut want: BTreeMap<String, (Vec<u8>, u8)> = BTreeMap::new();
    const MANY: usize = 6000;
    for chunk in (0..MANY).collect::<Vec<_>>().chunks(100) {
        for &i in chunk {
            let t = format!("many/{i}");
            r.send(&publish_packet(
                &t,
                t.as_bytes(),
                1,
                i as u16 + 1,
                true,
                false,
            ));
            want.insert(t.clone(), (t.into_bytes(), 1));
        }
        for &i in chunk {
            r.expect(&ack(PUBACK, i as u16 + 1));
        }
    }
    // ...and many updates of a few topics, past the 4 MiB threshold, with
    // new topics among them (some arrive while the snapshot is written).
    let big = vec![b'x'; 16 * 1024];
    let mut written = 0;
    let mut n = 0u16;
    while written < 4 * 1024 * 1024 + 512 * 1024 {
        for _ in 0..16 {
            n += 1;
            let (t, mut payload) = if n.is_multiple_of(4) {
                (format!("during/{n}"), Vec::new())
            } else {
                (format!("flood/{}", n % 4), big.clone())
            };
            payload.extend_from_slice(format!(" {n}").as_bytes());
            written += payload.len();
            r.send(&publish_packet(&t, &payload, 1, n, true, false));
            want.insert(t, (payload, 1));
        }
        for id in n - 15..=n {
            r.expect(&ack(PUBACK, id));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let size = loop {
        let size = std::fs::metadata(log_file(&dir)).unwrap().len();
        if size < 2 * 1024 * 1024 || Instant::now() > deadline {
            break size;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        size < 2 * 1024 * 1024,
        "no compaction: the store is {size} bytes after {written} bytes of updates"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir.join("midge.log.new").exists() {
        assert!(Instant::now() < deadline, "midge.log.new left behind");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Changes after the compaction go to the new file.
    for k in 1..4u16 {
        let t = format!("flood/{k}");
        publish(&mut r, &t, b"final", 2, 100 + k, true);
        want.insert(t, (b"final".to_vec(), 2));
    }
    publish(&mut p, "c/five", b"five", 1, 5, false);
    b.stop();
    assert!(!dir.join("midge.log.new").exists());

    let b = start_cfg(&dir, config);
    assert_retained(&retained_messages(b.addr), &want, "after compaction");
    let (mut sub, present) = Raw::mqtt(b.addr, "compact-sub", false);
    assert!(present);
    let m = sub.read_publish();
    assert_eq!(
        (m.dup, m.qos, m.pkid, m.payload.as_slice()),
        (true, 1, one.pkid, &b"one"[..]),
        "in-flight QoS 1 resent"
    );
    sub.expect(&ack(PUBREL, two.pkid));
    sub.send(&ack(PUBACK, one.pkid));
    sub.send(&ack(PUBCOMP, two.pkid));
    let got = drain(&mut sub);
    let seen: Vec<(&[u8], u8, bool)> = got
        .iter()
        .map(|m| (m.payload.as_slice(), m.qos, m.dup))
        .collect();
    assert_eq!(
        seen,
        vec![
            (&b"three"[..], 1, false),
            (&b"four"[..], 2, false),
            (&b"five"[..], 1, false)
        ],
        "queued messages after the compaction"
    );
    let (mut p, present) = Raw::mqtt(b.addr, "compact-pub", false);
    assert!(present);
    p.send(&publish_packet("c/nine", b"nine", 2, 9, false, true));
    p.expect(&ack(PUBREC, 9));
    sub.ping(); // id 9 was still awaiting PUBREL: not delivered again
    p.send(&ack(PUBREL, 9));
    p.expect(&ack(PUBCOMP, 9));
}

/// A message for many persistent subscribers is written to the store once
/// (one body, then a short reference per subscriber), and after a restart
/// every subscriber still gets it: SD cards on small gateways wear with
/// every byte written.
#[test]
fn a_message_for_many_persistent_subscribers_is_stored_once() {
    const SUBSCRIBERS: usize = 20;
    let dir = store_dir("shared-body");
    // Not periodic, so a slice of it occurs once per copy.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let payload: Vec<u8> = (0..16_384)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let b = start(&dir);
    for i in 0..SUBSCRIBERS {
        let (mut c, _) = Raw::mqtt(b.addr, &format!("shared-{i}"), false);
        c.subscribe(1, &[("fleet/update", 1)]);
        disconnect(c);
    }
    let before = std::fs::metadata(log_file(&dir)).unwrap().len();
    let (mut p, _) = Raw::mqtt(b.addr, "shared-pub", true);
    publish(&mut p, "fleet/update", &payload, 1, 1, false);
    disconnect(p);
    let grown = std::fs::metadata(log_file(&dir)).unwrap().len() - before;
    assert!(
        grown < 2 * payload.len() as u64,
        "{SUBSCRIBERS} subscribers of one 16 KiB message grew the store by {grown} bytes"
    );
    // Past 4 MiB of store with retained padding, each deleted at once: the
    // compaction's snapshot writes the small live state, the shared
    // message once among it.
    let (mut r, _) = Raw::mqtt(b.addr, "shared-padder", true);
    let pad = vec![0x55u8; 64 * 1024];
    for i in 0..80u16 {
        publish(&mut r, "pad", &pad, 1, 2 * i + 1, true);
        publish(&mut r, "pad", b"", 1, 2 * i + 2, true);
    }
    disconnect(r);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(log_file(&dir)).unwrap().len() > 2 << 20
        || dir.join("midge.log.new").exists()
    {
        assert!(Instant::now() < deadline, "no compaction");
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read(log_file(&dir)).unwrap();
    let copies = log
        .windows(64)
        .filter(|w| *w == &payload[1000..1064])
        .count();
    assert_eq!(copies, 1, "copies of the payload in the compacted store");
    drop(b);
    let b = start(&dir);
    for i in 0..SUBSCRIBERS {
        let (mut c, present) = Raw::mqtt(b.addr, &format!("shared-{i}"), false);
        assert!(present, "session shared-{i} survived the restart");
        let got = drain(&mut c);
        assert_eq!(got.len(), 1, "shared-{i} gets the message once");
        assert_eq!(
            (&*got[0].topic, &got[0].payload),
            ("fleet/update", &payload)
        );
        disconnect(c);
    }
}

/// A persistent session subscribed to `#` under an ACL that denies
/// `secret/#` (a filtered subscription) keeps being filtered after a
/// restart: its user name is stored, and the subscription is checked again
/// when the store is read, so messages queued while it is offline skip the
/// denied topics.
#[test]
fn a_filtered_subscription_stays_filtered_after_a_restart() {
    let dir = store_dir("acl-partial");
    let acl = dir.with_extension("acl");
    std::fs::create_dir_all(&dir).unwrap();
    let rules = "user dash\ntopic read #\ntopic deny secret/#\nuser pub\ntopic write #\n";
    std::fs::write(&acl, rules).unwrap();
    let config = |c: &mut midge::Config| c.security.acl_file = Some(acl.clone());
    let connect = || connect_user_packet("dash", "dash", false);
    let b = start_cfg(&dir, config);
    let mut dash = Raw::connect(b.addr);
    dash.send(&connect());
    dash.expect(&[0x20, 2, 0, 0]);
    dash.send(&subscribe_packet(1, &[("#", 1)]));
    assert_eq!(dash.read_reply("SUBACK"), Some((0x90, vec![0, 1, 1])));
    disconnect(dash);
    drop(b);
    let b = start_cfg(&dir, config);
    let mut publisher = Raw::connect(b.addr);
    publisher.send(&connect_user_packet("pub", "pub", true));
    publisher.expect(&[0x20, 2, 0, 0]);
    publish(&mut publisher, "secret/key", b"s", 1, 1, false);
    publish(&mut publisher, "public/temp", b"21", 1, 2, false);
    let mut dash = Raw::connect(b.addr);
    dash.send(&connect());
    dash.expect(&[0x20, 2, 1, 0]);
    let got: Vec<String> = drain(&mut dash).into_iter().map(|p| p.topic).collect();
    assert_eq!(got, ["public/temp"]);
}

/// A message dropped for one persistent subscriber (its queue is full) and
/// queued for another is stored in full for the second: a body is only
/// ever referred to once it is written.
#[test]
fn a_message_dropped_for_one_subscriber_is_stored_whole_for_the_next() {
    let dir = store_dir("dropped-body");
    let config = |c: &mut midge::Config| c.max_queued = 1;
    let b = start_cfg(&dir, config);
    for (id, filters) in [
        ("full", &[("t", 1), ("fill", 1)][..]),
        ("room", &[("t", 1)][..]),
    ] {
        let (mut c, _) = Raw::mqtt(b.addr, id, false);
        c.subscribe(1, filters);
        disconnect(c);
    }
    let (mut p, _) = Raw::mqtt(b.addr, "dropped-pub", true);
    publish(&mut p, "fill", b"fills the first queue", 1, 1, false);
    publish(&mut p, "t", b"for the second", 1, 2, false);
    disconnect(p);
    drop(b);
    let b = start_cfg(&dir, config);
    let (mut room, present) = Raw::mqtt(b.addr, "room", false);
    assert!(present);
    let got: Vec<Vec<u8>> = drain(&mut room).into_iter().map(|p| p.payload).collect();
    assert_eq!(got, [b"for the second".to_vec()]);
    let (mut full, _) = Raw::mqtt(b.addr, "full", false);
    let got: Vec<Vec<u8>> = drain(&mut full).into_iter().map(|p| p.payload).collect();
    assert_eq!(got, [b"fills the first queue".to_vec()]);
}

/// A store written before user names were stored (no `SessionUser`
/// records), opened with an ACL: the restored subscriptions are kept, and
/// checked when their session connects again, under its real user name.
#[test]
fn subscriptions_from_a_store_without_user_names_survive_an_acl() {
    use midge::store::{Record, Store};
    let dir = store_dir("old-acl");
    let (mut store, _, _) = Store::open(&dir, Fsync::Always).unwrap();
    store.append(&Record::Session {
        client: "dev".into(),
    });
    store.append(&Record::Sub {
        client: "dev".into(),
        filter: "alice/#".into(),
        qos: 1,
    });
    store.sync().unwrap();
    drop(store);
    let acl = dir.with_extension("acl");
    std::fs::write(&acl, "user alice\ntopic readwrite alice/#\n").unwrap();
    let b = start_cfg(&dir, |c| c.security.acl_file = Some(acl.clone()));
    let mut dev = Raw::connect(b.addr);
    dev.send(&connect_user_packet("dev", "alice", false));
    dev.expect(&[0x20, 2, 1, 0]);
    let mut p = Raw::connect(b.addr);
    p.send(&connect_user_packet("alice-pub", "alice", true));
    p.expect(&[0x20, 2, 0, 0]);
    publish(&mut p, "alice/x", b"kept", 1, 1, false);
    let got: Vec<Vec<u8>> = drain(&mut dev).into_iter().map(|m| m.payload).collect();
    assert_eq!(got, [b"kept".to_vec()]);
}

// A session resumed under a user who may not read some of its in-flight
// messages: the unacknowledged PUBLISHes it may not read are dropped, and
// stay dropped across a restart; those it may read are resent
// [MQTT-4.4.0-1], and a QoS 2 message past PUBREC (already delivered)
// keeps its PUBREL whatever its topic.
#[test]
fn in_flight_messages_a_resuming_user_may_not_read_are_dropped_for_good() {
    let dir = store_dir("acl-inflight");
    let acl = dir.with_extension("acl");
    std::fs::write(
        &acl,
        "user a\ntopic read #\nuser b\ntopic read public/#\nuser w\ntopic write #\n",
    )
    .unwrap();
    let config = |c: &mut midge::Config| c.security.acl_file = Some(acl.clone());
    let connect_as = |addr, user: &str| {
        let mut c = Raw::connect(addr);
        c.send(&connect_user_packet("dev", user, false));
        c
    };
    let mut b = start_cfg(&dir, config);
    let mut dev = connect_as(b.addr, "a");
    dev.expect(&[0x20, 2, 0, 0]);
    dev.subscribe(1, &[("#", 2)]);
    let mut w = Raw::connect(b.addr);
    w.send(&connect_user_packet("writer", "w", true));
    w.expect(&[0x20, 2, 0, 0]);
    publish(&mut w, "x/secret", b"for a", 1, 1, false);
    publish(&mut w, "public/one", b"for all", 1, 2, false);
    publish(&mut w, "x/released", b"delivered", 2, 3, false);
    let secret = dev.read_publish(); // (no PUBACK)
    let public = dev.read_publish(); // (no PUBACK)
    let released = dev.read_publish();
    assert_eq!(
        (secret.topic.as_str(), public.topic.as_str(), released.qos),
        ("x/secret", "public/one", 2)
    );
    dev.send(&ack(PUBREC, released.pkid));
    dev.expect(&ack(PUBREL, released.pkid)); // (no PUBCOMP)
    disconnect(dev);

    let resent = Pub {
        dup: true,
        ..public.clone()
    };
    let mut dev = connect_as(b.addr, "b");
    dev.expect(&[0x20, 2, 1, 0]);
    assert_eq!(dev.read_publish(), resent, "only what b may read");
    dev.expect(&ack(PUBREL, released.pkid));
    dev.ping();
    disconnect(dev);
    b.stop();

    let b = start_cfg(&dir, config);
    let mut dev = connect_as(b.addr, "b");
    dev.expect(&[0x20, 2, 1, 0]);
    assert_eq!(dev.read_publish(), resent, "x/secret did not come back");
    dev.expect(&ack(PUBREL, released.pkid));
    dev.send(&ack(PUBACK, public.pkid));
    dev.send(&ack(PUBCOMP, released.pkid));
    dev.ping();
}

// Only durable state is written: no message queued for a clean session
// (behind its in-flight window), no QoS 0 message queued for an offline
// persistent session (queue_qos0), and no "done" marker for one of those
// when it is evicted (queue_overflow oldest). The records themselves are
// checked, then a restart restores none of it.
#[test]
fn messages_that_are_not_durable_never_reach_the_store() {
    let dir = store_dir("not-durable");
    let config = |c: &mut midge::Config| {
        c.max_inflight = 1;
        c.max_queued = 2;
        c.queue_qos0 = true;
        c.queue_overflow = midge::session::Overflow::DropOldest;
    };
    let mut b = start_cfg(&dir, config);
    let (mut fleeting, _) = Raw::mqtt(b.addr, "fleeting-queue", true);
    fleeting.subscribe(1, &[("n/#", 1)]);
    let (mut durable, _) = Raw::mqtt(b.addr, "durable-queue", false);
    durable.subscribe(1, &[("n/#", 1)]);
    disconnect(durable);
    let (mut p, _) = Raw::mqtt(b.addr, "not-durable-pub", true);
    publish(&mut p, "n/1", b"stored-1", 1, 1, false);
    publish(&mut p, "n/2", b"stored-2", 1, 2, false); // queued for fleeting
    for (i, payload) in [&b"qos0-a"[..], b"qos0-b", b"qos0-c"].iter().enumerate() {
        // Each evicts the oldest of durable's queue: n/1, n/2, then qos0-a.
        publish(&mut p, &format!("n/0/{i}"), payload, 0, 0, false);
    }
    b.stop();

    assert_only_durable(&dir);
    let mut b = start_cfg(&dir, config);
    let (mut durable, present) = Raw::mqtt(b.addr, "durable-queue", false);
    assert!(present);
    assert_eq!(drain(&mut durable), [], "only QoS 0 was left, not kept");
    // A QoS 0 message sent from the queue is not marked sent either.
    disconnect(durable);
    let (mut p, _) = Raw::mqtt(b.addr, "not-durable-pub", true);
    publish(&mut p, "n/0/late", b"qos0-late", 0, 0, false);
    let (mut durable, _) = Raw::mqtt(b.addr, "durable-queue", false);
    assert_eq!(drain(&mut durable).len(), 1);
    b.stop();
    assert_only_durable(&dir);
}

/// The store in `dir` names no clean session, holds no QoS 0 payload and
/// no marker for an unstored message (sequence 0).
fn assert_only_durable(dir: &Path) {
    use midge::store::{Record, Store};
    let (_, records, _) = Store::open(dir, Fsync::Always).unwrap();
    for rec in &records {
        let text = format!("{rec:?}");
        assert!(
            !text.contains("fleeting-queue"),
            "clean session stored: {rec:?}"
        );
        if let Record::MsgBody { payload, .. } | Record::Msg { payload, .. } = rec {
            assert!(!contains(payload, b"qos0"), "QoS 0 stored: {rec:?}");
        }
        if let Record::Done { seq, .. } | Record::Sent { seq, .. } = rec {
            assert!(*seq > 0, "a marker for an unstored message: {rec:?}");
        }
    }
}

// `--fsync SECS` (interval mode) keeps everything over a clean stop
// (SIGTERM) and restart of the binary.
#[test]
fn interval_fsync_mode_keeps_state_over_a_restart_of_the_binary() {
    let dir = store_dir("interval");
    let opts = ["--fsync", "1", "--sys-interval", "0"];
    let mut m = Midge::start(&dir, &opts);
    let line = m.wait_for("persistence: restored");
    assert!(
        line.contains("restored 0 sessions, 0 subscriptions, 0 retained and 0 queued messages"),
        "{line}"
    );
    let (mut sub, _) = Raw::mqtt(m.addr, "interval-sub", false);
    sub.subscribe(1, &[("iv/#", 2)]);
    disconnect(sub);
    let (mut p, _) = Raw::mqtt(m.addr, "interval-pub", true);
    publish(&mut p, "iv/a", b"a1", 1, 1, false);
    publish(&mut p, "iv/b", b"b2", 2, 2, false);
    publish(&mut p, "ivr/keep", b"R", 1, 3, true);
    m.terminate();

    let mut m = Midge::start(&dir, &opts);
    let line = m.wait_for("persistence: restored");
    assert!(
        line.contains("restored 1 sessions, 1 subscriptions, 1 retained and 2 queued messages"),
        "{line}"
    );
    let (mut sub, present) = Raw::mqtt(m.addr, "interval-sub", false);
    assert!(present);
    let got = drain(&mut sub);
    let seen: Vec<(&str, &[u8], u8)> = got
        .iter()
        .map(|m| (m.topic.as_str(), m.payload.as_slice(), m.qos))
        .collect();
    assert_eq!(seen, vec![("iv/a", &b"a1"[..], 1), ("iv/b", &b"b2"[..], 2)]);
    let want = retained_map(&[("ivr/keep", b"R", 1)]);
    assert_retained(&retained_messages(m.addr), &want, "after the restart");
    m.terminate();
}

// The disk cap: once the live state alone is over `persistence_max_bytes`,
// messages for offline sessions are dropped (and said so once) instead of
// growing the store; the broker keeps serving and delivers what it stored.
#[test]
fn the_store_stays_under_its_disk_cap() {
    let dir = store_dir("cap");
    let mut m = Midge::start(
        &dir,
        &["--persistence-max-bytes", "20000", "--max-queued", "100000"],
    );
    let mut sub = Raw::connect(m.addr);
    sub.send(&connect_packet("capped", false, 60));
    sub.expect(&[0x20, 2, 0, 0]);
    sub.subscribe(1, &[("t", 1)]);
    disconnect(sub);
    let (mut publ, _) = Raw::mqtt(m.addr, "filler", true);
    for i in 1..=400u16 {
        let mut payload = vec![0u8; 100];
        payload[..2].copy_from_slice(&i.to_be_bytes());
        publish(&mut publ, "t", &payload, 1, i, false);
    }
    m.wait_for("store limit of 20000 bytes reached");
    let size = std::fs::metadata(log_file(&dir)).unwrap().len();
    assert!(
        size < 60_000,
        "store grew to {size} bytes despite a 20000-byte cap"
    );
    let mut sub = Raw::connect(m.addr);
    sub.send(&connect_packet("capped", false, 60));
    sub.expect(&[0x20, 2, 1, 0]);
    let got = drain(&mut sub);
    assert!(
        !got.is_empty() && got.len() < 400,
        "{} of 400 stored",
        got.len()
    );
    let seqs: Vec<u16> = got
        .iter()
        .map(|p| u16::from_be_bytes([p.payload[0], p.payload[1]]))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    publ.ping();
}

// persistent_client_expiration: an offline persistent session older than
// the expiry is deleted (and stays deleted across a restart); a session
// that reconnects in time is kept.
#[test]
fn offline_sessions_expire() {
    let dir = store_dir("expiry");
    let b = start_cfg(&dir, |c| {
        c.session_expiry = Some(Duration::from_secs(1));
        // Several $SYS updates fall within the second the session is
        // offline, so the count of 1 is seen whatever the timers' drift.
        c.sys_interval = Duration::from_millis(200);
    });
    let mut old = Raw::connect(b.addr);
    old.send(&connect_packet("sleeper", false, 60));
    old.expect(&[0x20, 2, 0, 0]);
    old.subscribe(1, &[("t", 1)]);
    disconnect(old);
    // Back at once: the session is still there.
    let mut back = Raw::connect(b.addr);
    back.send(&connect_packet("sleeper", false, 60));
    back.expect(&[0x20, 2, 1, 0]);
    disconnect(back);
    // Wait (bounded) until $SYS has counted the offline session and then
    // none.
    let (mut watch, _) = Raw::mqtt(b.addr, "watch", true);
    watch.send(&subscribe_packet(
        1,
        &[("$SYS/broker/clients/disconnected", 0)],
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut counted = false;
    loop {
        assert!(Instant::now() < deadline, "session never expired");
        let (first, body) = watch.read_packet().expect("packet");
        if first >> 4 != 3 {
            continue;
        }
        match &parse_publish(first, &body).payload[..] {
            b"1" => counted = true,
            b"0" if counted => break,
            _ => {}
        }
    }
    drop(b);
    let b = start(&dir);
    let mut late = Raw::connect(b.addr);
    late.send(&connect_packet("sleeper", false, 60));
    late.expect(&[0x20, 2, 0, 0]); // Session Present 0: it expired
}
