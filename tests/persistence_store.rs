//! Persistence (`--persistence DIR`): the store file itself. A damaged
//! tail is cut, compaction shrinks it, a message is written once, only
//! durable state is written, and the disk cap holds.
//!
//! Durable: retained messages (not `$SYS`), persistent sessions
//! (CleanSession 0) with their subscriptions, queued and in-flight QoS 1/2
//! messages and inbound QoS 2 ids awaiting PUBREL. Not durable: clean
//! sessions, QoS 0.

mod common;
use common::persistence::*;
use common::*;
use midge::store::Fsync;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

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

/// Topic, QoS and payload of a Retain record body (tag 1, or 20 with the
/// publisher after them).
fn retain_record(body: &[u8]) -> Option<(String, u8, Vec<u8>)> {
    if !matches!(body.first(), Some(&1) | Some(&20)) {
        return None;
    }
    let tlen = u16::from_le_bytes([body[1], body[2]]) as usize;
    let topic = String::from_utf8(body[3..3 + tlen].to_vec()).ok()?;
    let qos = body[3 + tlen];
    let at = 4 + tlen;
    let plen = u32::from_le_bytes(body[at..at + 4].try_into().unwrap()) as usize;
    Some((topic, qos, body[at + 4..at + 4 + plen].to_vec()))
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
