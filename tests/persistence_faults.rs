//! Persistence when the disk does not keep its promises (issue 13): a full
//! disk, a failing fdatasync, failing compactions, failing directory
//! fsyncs, and power cuts at every point. The store runs on an in-memory
//! file system that injects the faults and knows what a power cut keeps
//! (tests/common/memfs.rs).
//!
//! The rule every test checks: a PUBACK or PUBREC reaches the client only
//! once the message it acknowledges is on the (simulated) platter, and
//! whatever was acknowledged is there after a restart.

mod common;
use common::memfs::*;
use common::persistence::{ack, PUBACK, PUBCOMP, PUBREC, PUBREL};
use common::*;
use midge::store::{Fsync, Record, Store};
use midge::Broker;
use std::time::{Duration, Instant};

const LOG: &str = "midge.log";

fn broker_on(fs: &MemFs, adjust: impl FnOnce(&mut midge::Config)) -> TestBroker {
    let config = loopback_config(|c| {
        c.fsync = Fsync::Always;
        adjust(c);
    });
    TestBroker::run(Broker::with_storage(config, fs.storage()).expect("broker starts"))
}

fn payload(i: usize) -> Vec<u8> {
    format!("message-{i:05}-{}", "x".repeat(40)).into_bytes()
}

/// A persistent subscriber to `t` at `qos`, gone offline: every message
/// to `t` is stored for it.
fn offline_subscriber(fs_broker: &TestBroker, qos: u8) {
    let (mut sub, _) = Raw::mqtt(fs_broker.addr, "sub", false);
    sub.subscribe(1, &[("t", qos)]);
    sub.disconnect();
}

/// The log a power cut now would leave.
fn durable_log(fs: &MemFs) -> Vec<u8> {
    fs.durable().remove(LOG).unwrap_or_default()
}

/// Reads `n` acknowledgements of `kind`; each must find its message
/// already durable. Returns their packet ids in arrival order.
fn durable_acks(c: &mut Raw, fs: &MemFs, kind: u8, n: usize) -> Vec<u16> {
    let mut ids = Vec::new();
    while ids.len() < n {
        let (first, body) = c.read_packet().expect("an acknowledgement");
        assert_eq!(first, kind, "expected only acknowledgements");
        let pkid = u16::from_be_bytes([body[0], body[1]]);
        assert!(
            holds(&durable_log(fs), &payload(pkid as usize)),
            "acknowledgement of message {pkid} left before it was durable"
        );
        ids.push(pkid);
    }
    ids
}

/// The records a restart on `image` finds, and whether it cut damage.
fn restart_records(image: &Image) -> (Vec<Record>, Option<String>) {
    let fs = MemFs::from_image(image);
    let (_, records, recovery) = Store::open_in(fs.storage(), Fsync::Always).expect("store opens");
    (records, recovery.damage)
}

/// The payloads of the messages stored for sessions in `records`.
fn stored_payloads(records: &[Record]) -> Vec<Vec<u8>> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Msg { payload, .. } | Record::MsgBody { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

/// Issue 13, case 1: a write fails part-way for want of space. The
/// acknowledgements that need the store wait (the publisher is not read
/// meanwhile), QoS 0 traffic of other clients goes on, the log gets no
/// damaged record in its middle, and once space returns everything is
/// written and acknowledged, by itself.
#[test]
fn a_full_disk_holds_acknowledgements_until_space_returns() {
    let fs = MemFs::new();
    let broker = broker_on(&fs, |_| {});
    offline_subscriber(&broker, 1);
    let (mut publisher, _) = Raw::mqtt(broker.addr, "pub", true);
    for i in 1..=5 {
        publisher.send(&publish_packet("t", &payload(i), 1, i as u16, false, false));
    }
    durable_acks(&mut publisher, &fs, PUBACK, 5);

    fs.faults(|f| f.space = Some(50)); // less than one message
    for i in 6..=15 {
        publisher.send(&publish_packet("t", &payload(i), 1, i as u16, false, false));
    }
    publisher.expect_silence(Duration::from_millis(400));
    let (records, damage) = restart_records(&fs.durable());
    assert_eq!(damage, None, "no damaged record in the log");
    assert_eq!(stored_payloads(&records).len(), 5);
    // Clients that need no store carry on.
    let (mut free_sub, _) = Raw::mqtt(broker.addr, "free-sub", true);
    free_sub.subscribe(1, &[("q0", 0)]);
    let (mut free_pub, _) = Raw::mqtt(broker.addr, "free-pub", true);
    free_pub.send(&publish_packet("q0", b"still here", 0, 0, false, false));
    assert_eq!(free_sub.read_publish().payload, b"still here");

    fs.faults(|f| f.space = None);
    let mut ids = durable_acks(&mut publisher, &fs, PUBACK, 10);
    ids.sort_unstable();
    assert_eq!(ids, (6..=15).collect::<Vec<u16>>());
    let (records, damage) = restart_records(&fs.durable());
    assert_eq!(damage, None);
    let stored = stored_payloads(&records);
    assert_eq!(
        stored,
        (1..=15).map(payload).collect::<Vec<_>>(),
        "each once, in order"
    );
}

/// Issue 13, case 4: an fdatasync fails with EIO. What it should have
/// written is not trusted (the kernel may have dropped it, and the next
/// fdatasync would "succeed" without it): the acknowledgement waits until
/// the store is rewritten from memory into a fresh file, and a power cut
/// then loses nothing acknowledged.
#[test]
fn a_failed_fsync_holds_acknowledgements_until_the_store_is_rewritten() {
    let fs = MemFs::new();
    let broker = broker_on(&fs, |_| {});
    offline_subscriber(&broker, 1);
    let (mut publisher, _) = Raw::mqtt(broker.addr, "pub", true);
    publisher.send(&publish_packet("t", &payload(1), 1, 1, false, false));
    durable_acks(&mut publisher, &fs, PUBACK, 1);
    let creates = fs.creates();

    fs.faults(|f| f.failing_syncs = 1);
    publisher.send(&publish_packet("t", &payload(2), 1, 2, false, false));
    durable_acks(&mut publisher, &fs, PUBACK, 1);
    assert!(
        fs.creates() > creates,
        "recovered by a rewrite into a new file"
    );
    for i in 3..=6 {
        publisher.send(&publish_packet("t", &payload(i), 1, i as u16, false, false));
    }
    durable_acks(&mut publisher, &fs, PUBACK, 4);
    let (records, damage) = restart_records(&fs.durable());
    assert_eq!(damage, None);
    assert_eq!(
        stored_payloads(&records),
        (1..=6).map(payload).collect::<Vec<_>>()
    );
}

/// Issue 13, case 2: the disk fills while a compaction writes its new
/// file. The new file is given up (never renamed over the log, where a
/// retry after the partial write made it corrupt), and the log goes on,
/// its own commit still fsynced (case 7: the compaction's error skipped
/// it).
#[test]
fn a_compaction_that_runs_out_of_space_is_given_up_and_the_log_goes_on() {
    let fs = MemFs::new();
    let (mut store, _, _) = Store::open_in(fs.storage(), Fsync::Always).unwrap();
    let record = |i: usize| Record::Retain {
        topic: format!("t/{i}"),
        qos: 1,
        payload: payload(i),
        meta: None,
    };
    for i in 0..20 {
        store.append(&record(i));
    }
    store.commit(Instant::now()).unwrap();
    store.begin_compaction().unwrap();
    for i in 0..20 {
        store.snapshot(&record(i));
    }
    store.append(&record(20));
    fs.faults(|f| f.space = Some(300));
    let syncs = fs.syncs();
    assert!(
        store.commit(Instant::now()).is_ok(),
        "the log's own write fits"
    );
    assert_eq!(fs.syncs(), syncs + 1, "and is fsynced");
    assert!(store.is_durable());
    assert!(!store.is_compacting(), "given up at the failed write");
    fs.faults(|f| f.space = None);
    assert!(store.finish_compaction(Instant::now()).is_err());
    assert!(!fs.current().contains_key("midge.log.new"), "removed");
    store.append(&record(21));
    store.commit(Instant::now()).unwrap();
    let (records, damage) = restart_records(&fs.durable());
    assert_eq!((records.len(), damage), (22, None));
}

/// Publishes `payload(i)` for i in `ids`, retained (so the live state
/// stays one message while the log grows), each acknowledged only once
/// durable.
fn publish_retained(c: &mut Raw, fs: &MemFs, ids: std::ops::RangeInclusive<usize>) {
    for i in ids {
        c.send(&publish_packet("r", &payload(i), 1, i as u16, true, false));
        durable_acks(c, fs, PUBACK, 1);
    }
}

/// The retained payload of topic `r` after a restart on `image`.
fn retained_after_restart(image: &Image) -> Vec<u8> {
    let (records, damage) = restart_records(image);
    assert_eq!(damage, None);
    records
        .into_iter()
        .filter_map(|r| match r {
            // A client's retained message carries its publisher.
            Record::Retain { topic, payload, .. } | Record::RetainFrom { topic, payload, .. }
                if topic == "r" =>
            {
                Some(payload)
            }
            _ => None,
        })
        .next_back()
        .expect("a retained message")
}

/// Issue 13, case 3: compactions that cannot start (no file descriptors)
/// are retried with a growing back-off, not once per loop iteration.
#[test]
fn compactions_that_cannot_start_back_off() {
    let fs = MemFs::new();
    let broker = broker_on(&fs, |c| c.persistence_max_bytes = 1500);
    let (mut publisher, _) = Raw::mqtt(broker.addr, "pub", true);
    fs.faults(|f| f.no_files = true);
    publish_retained(&mut publisher, &fs, 1..=30); // past the limit
    let tries = fs.creates();
    assert!(tries >= 1, "a compaction was wanted");
    let started = Instant::now();
    let mut i = 30;
    while started.elapsed() < Duration::from_millis(600) {
        i += 1;
        publish_retained(&mut publisher, &fs, i..=i);
    }
    let more = fs.creates() - tries;
    assert!(more <= 8, "{more} tries in 600 ms ({} publishes)", i - 30);
    fs.faults(|f| f.no_files = false);
    publish_retained(&mut publisher, &fs, i + 1..=i + 1);
    assert_eq!(retained_after_restart(&fs.durable()), payload(i + 1));
}

/// Issue 13, case 3: after a compaction every write goes to the file now
/// named midge.log, even when the descriptors run out right after the
/// compaction created its file (the log was reopened by name: on EMFILE
/// the broker wrote on into the replaced, unlinked file).
#[test]
fn after_a_compaction_writes_go_to_the_renamed_file() {
    let fs = MemFs::new();
    let broker = broker_on(&fs, |c| c.persistence_max_bytes = 1500);
    let (mut publisher, _) = Raw::mqtt(broker.addr, "pub", true);
    fs.faults(|f| {
        f.files_left = Some(1);
        f.sync_delay = Duration::from_millis(2);
    });
    publish_retained(&mut publisher, &fs, 1..=100);
    assert!(fs.creates() > 1, "compacted, then tried again");
    assert_eq!(retained_after_restart(&fs.durable()), payload(100));
}

/// A directory fsync that fails after a compaction's rename leaves it
/// unknown which file a power cut keeps: acknowledgements wait until a
/// rewrite has made a rename durable.
#[test]
fn a_failed_directory_fsync_after_the_rename_holds_acknowledgements() {
    let fs = MemFs::new();
    let broker = broker_on(&fs, |c| c.persistence_max_bytes = 1500);
    let (mut publisher, _) = Raw::mqtt(broker.addr, "pub", true);
    fs.faults(|f| {
        f.failing_dir_syncs = 3; // the rewrites' too, twice
        f.sync_delay = Duration::from_millis(2);
    });
    publish_retained(&mut publisher, &fs, 1..=60);
    assert_eq!(fs.state_dir_failures_left(), 0, "the fault was hit");
    assert_eq!(retained_after_restart(&fs.durable()), payload(60));
}

/// Issue 13, case 5, no fault needed: publishers paused by a full queue
/// are woken inside a flush pass, and their PUBACKs must still wait for
/// the commit that covers their messages.
#[test]
fn pubacks_of_publishers_woken_by_flow_control_wait_for_their_records() {
    let fs = MemFs::new();
    fs.faults(|f| f.sync_delay = Duration::from_millis(1));
    // The subscriber's output fills first: its queue drains (and the
    // publishers wake) when that output is written, inside a flush pass.
    let broker = broker_on(&fs, |c| {
        c.max_queued = 2;
        c.max_outgoing_bytes = 300;
    });
    let (mut sub, _) = Raw::mqtt(broker.addr, "sub", false);
    sub.subscribe(1, &[("t", 1)]);
    const N: usize = 400;
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let addr = broker.addr;
            let fs = fs.clone();
            std::thread::spawn(move || {
                let (mut c, _) = Raw::mqtt(addr, &format!("pub{p}"), true);
                for i in 0..N / 4 {
                    let n = p * (N / 4) + i + 1;
                    c.send(&publish_packet("t", &payload(n), 1, n as u16, false, false));
                }
                durable_acks(&mut c, &fs, PUBACK, N / 4);
            })
        })
        .collect();
    for _ in 0..N {
        let got = sub.read_publish();
        sub.send(&ack(PUBACK, got.pkid));
    }
    for p in publishers {
        p.join().expect("every PUBACK after its record");
    }
}

/// Issue 13, case 6: an inbound QoS 2 id and its message are one unit in
/// the log: a power cut tearing the write keeps both or neither, so the
/// publisher's resend is delivered exactly once either way. Checked on a
/// real file cut at every byte of the last commit.
#[test]
fn a_torn_commit_never_keeps_a_qos2_id_without_its_message() {
    use common::persistence::{log_file, start, store_dir};
    let dir = store_dir("qos2-torn");
    let mut broker = start(&dir);
    offline_subscriber(&broker, 2);
    let (mut publisher, _) = Raw::mqtt(broker.addr, "pub", false);
    publisher.ping();
    publisher.disconnect();
    let before = std::fs::metadata(log_file(&dir)).unwrap().len() as usize;
    let (mut publisher, _) = Raw::mqtt(broker.addr, "pub", false);
    publisher.send(&publish_packet("t", b"once", 2, 7, false, false));
    publisher.expect(&ack(PUBREC, 7));
    drop(publisher);
    broker.stop();
    let full = std::fs::read(log_file(&dir)).unwrap();
    for cut in before..full.len() {
        std::fs::write(log_file(&dir), &full[..cut]).unwrap();
        let broker = start(&dir);
        // The publisher did not see its PUBREC: it resends.
        let (mut publisher, _) = Raw::mqtt(broker.addr, "pub", false);
        publisher.send(&publish_packet("t", b"once", 2, 7, false, true));
        publisher.expect(&ack(PUBREC, 7));
        publisher.send(&ack(PUBREL, 7));
        publisher.expect(&ack(PUBCOMP, 7));
        let (mut sub, _) = Raw::mqtt(broker.addr, "sub", false);
        let copies = sub.drain().iter().filter(|p| p.payload == b"once").count();
        assert_eq!(
            copies, 1,
            "delivered exactly once with the log cut at {cut}"
        );
    }
}

/// Power cuts at every point of a run of QoS 1 and QoS 2 publishes: just
/// before each fdatasync, with any prefix of the writes since the last
/// one, the last torn at any sector. A restart then finds every message
/// acknowledged before the cut, and no QoS 2 id without its message.
#[test]
fn power_cuts_at_every_point_lose_nothing_acknowledged() {
    let fs = MemFs::new();
    fs.faults(|f| f.sync_delay = Duration::from_millis(1));
    let broker = broker_on(&fs, |_| {});
    offline_subscriber(&broker, 2);
    fs.record_crashes();
    let (mut publisher, _) = Raw::mqtt(broker.addr, "pub", false);
    // (message, fdatasyncs done when its acknowledgement arrived)
    let mut acked = Vec::new();
    for round in 0..12 {
        let ids: Vec<usize> = (1..=3).map(|k| round * 3 + k).collect();
        for &i in &ids {
            let qos = if i % 2 == 0 { 2 } else { 1 };
            publisher.send(&publish_packet(
                "t",
                &payload(i),
                qos,
                i as u16,
                false,
                false,
            ));
        }
        let mut released = 0;
        for _ in &ids {
            let (first, body) = publisher.read_packet().expect("an acknowledgement");
            let pkid = u16::from_be_bytes([body[0], body[1]]);
            acked.push((pkid as usize, fs.syncs()));
            if first == PUBREC {
                publisher.send(&ack(PUBREL, pkid));
                released += 1;
            }
        }
        for _ in 0..released {
            let (first, _) = publisher.read_packet().expect("PUBCOMP");
            assert_eq!(first, PUBCOMP);
        }
    }
    drop(broker);
    let crashes = fs.crashes();
    assert!(crashes.len() > 50, "{} power cuts tried", crashes.len());
    for (synced, image) in crashes {
        let (records, _) = restart_records(&image);
        let stored = stored_payloads(&records);
        for &(i, seen) in &acked {
            if synced >= seen {
                assert!(
                    stored.contains(&payload(i)),
                    "acknowledged message {i} lost"
                );
            }
        }
        for r in &records {
            if let Record::Qos2In { pkid, .. } = r {
                assert!(
                    stored.contains(&payload(*pkid as usize)),
                    "QoS 2 id {pkid} without its message"
                );
            }
        }
    }
}

/// Issue 13, case 7, on the real binary and a real file: the store reaches
/// the process's file size limit. SIGXFSZ no longer kills the broker: the
/// write fails with EFBIG, acknowledgements wait, one error line says so;
/// when the limit is lifted the store catches up by itself, with one line,
/// and every message is stored once, in order.
#[test]
fn a_file_size_limit_holds_acknowledgements_until_it_is_lifted() {
    use common::persistence::{store_dir, Midge};
    let dir = store_dir("fsize");
    let mut midge = Midge::start_limited(&dir, &[], 32 * 1024);
    let (mut sub, _) = Raw::mqtt(midge.addr, "sub", false);
    sub.subscribe(1, &[("t", 1)]);
    sub.disconnect();
    let (mut publisher, _) = Raw::mqtt(midge.addr, "pub", true);
    let big = |i: usize| [payload(i), vec![b'.'; 1000]].concat();
    const N: usize = 60; // about twice the limit
    for i in 1..=N {
        publisher.send(&publish_packet("t", &big(i), 1, i as u16, false, false));
    }
    midge.wait_for("writing the store failed");
    assert!(midge.running(), "not killed by SIGXFSZ");
    // The acknowledgements of what fitted; then nothing.
    let mut acked = 0;
    publisher
        .stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut ack4 = [0u8; 4];
    while std::io::Read::read_exact(&mut publisher.stream, &mut ack4).is_ok() {
        assert_eq!(ack4[0], PUBACK);
        acked += 1;
    }
    assert!(acked < N, "{acked} of {N} acknowledged past the limit");

    midge.lift_file_size_limit();
    let lines = midge.lines_until("works again");
    assert!(
        !lines.iter().any(|l| l.contains("ERROR")),
        "one error line per episode: {lines:?}"
    );
    publisher.stream.set_read_timeout(Some(WAIT)).unwrap();
    for _ in acked..N {
        let (first, _) = publisher.read_packet().expect("PUBACK");
        assert_eq!(first, PUBACK);
    }
    midge.terminate();
    let (_, records, recovery) = Store::open(&dir, Fsync::Always).unwrap();
    assert_eq!(recovery.damage, None);
    assert_eq!(
        stored_payloads(&records),
        (1..=N).map(big).collect::<Vec<_>>()
    );
}
