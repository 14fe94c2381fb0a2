//! The store's own tests: records, torn tails, compaction, fsync modes.

use super::record::LAST_KNOWN_TYPE;
use super::*;
use std::path::PathBuf;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("midge-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn sample() -> Vec<Record> {
    vec![
        Record::Retain {
            topic: "a/b".into(),
            qos: 1,
            payload: b"v".to_vec(),
            meta: None,
        },
        Record::RetainFrom {
            topic: "a/c".into(),
            qos: 2,
            payload: b"w".to_vec(),
            meta: Meta {
                properties: vec![1, 1],
                expires_unix_ms: 7,
            },
            client: "pub".into(),
            username: Some("alice".into()),
        },
        Record::RetainFrom {
            topic: "a/d".into(),
            qos: 0,
            payload: b"x".to_vec(),
            meta: Meta {
                properties: Vec::new(),
                expires_unix_ms: 0,
            },
            client: "anon".into(),
            username: None,
        },
        Record::Session { client: "c".into() },
        Record::SessionUser {
            client: "c".into(),
            username: Some("alice".into()),
        },
        Record::SessionUser {
            client: "c".into(),
            username: None,
        },
        Record::Sub {
            client: "c".into(),
            filter: "a/#".into(),
            qos: 2,
        },
        Record::Msg {
            client: "c".into(),
            seq: 7,
            qos: 2,
            retain: true,
            topic: "a/b".into(),
            payload: vec![0, 1, 2],
        },
        Record::MsgBody {
            client: "c".into(),
            seq: 8,
            qos: 1,
            retain: false,
            body: 1 << 40,
            topic: "a/c".into(),
            payload: vec![3; 300],
            meta: None,
        },
        Record::MsgRef {
            client: "d".into(),
            seq: 1,
            qos: 2,
            retain: true,
            body: 1 << 40,
        },
        Record::Sent {
            client: "c".into(),
            seq: 7,
            pkid: 300,
        },
        Record::Released {
            client: "c".into(),
            seq: 7,
        },
        Record::Done {
            client: "c".into(),
            seq: 7,
        },
        Record::Qos2In {
            client: "c".into(),
            pkid: 9,
        },
        Record::Qos2Rel {
            client: "c".into(),
            pkid: 9,
        },
        Record::Unsub {
            client: "c".into(),
            filter: "a/#".into(),
        },
        Record::Retain {
            topic: "r".into(),
            qos: 1,
            payload: b"v5".to_vec(),
            meta: Some(Meta {
                properties: vec![3, 0x01, 1],
                expires_unix_ms: 1_700_000_000_000,
            }),
        },
        Record::MsgBody {
            client: "c".into(),
            seq: 8,
            qos: 2,
            retain: false,
            body: 4,
            topic: "t".into(),
            payload: b"p".to_vec(),
            meta: Some(Meta {
                properties: vec![0],
                expires_unix_ms: 0,
            }),
        },
        Record::Sub5 {
            client: "c".into(),
            filter: "s/#".into(),
            qos: 1,
            options: 3,
            id: 268_435_455,
        },
        Record::SessionExpiry {
            client: "c".into(),
            expiry: 60,
        },
        Record::SessionGone { client: "c".into() },
    ]
}

#[test]
fn records_survive_a_reopen() {
    let d = dir("reopen");
    let (mut s, recs, _) = Store::open(&d, Fsync::Always).unwrap();
    assert!(recs.is_empty());
    for r in sample() {
        s.append(&r);
    }
    s.commit(Instant::now()).unwrap();
    assert_eq!(s.fsyncs, 1, "one fsync for the whole batch");
    drop(s);
    let (_, recs, rec) = Store::open(&d, Fsync::Always).unwrap();
    assert_eq!(recs, sample());
    assert_eq!((rec.dropped_bytes, rec.damage), (0, None));
}

#[test]
fn a_torn_tail_is_cut_at_every_offset_and_good_records_kept() {
    let d = dir("torn");
    let (mut s, _, _) = Store::open(&d, Fsync::Always).unwrap();
    // The last record in a commit of its own (a commit of several is
    // one batch, kept or cut as a whole).
    let (last, rest) = sample()
        .split_last()
        .map(|(l, r)| (l.clone(), r.to_vec()))
        .unwrap();
    for r in rest {
        s.append(&r);
    }
    s.commit(Instant::now()).unwrap();
    s.append(&last);
    s.commit(Instant::now()).unwrap();
    drop(s);
    let full = std::fs::read(d.join(LOG)).unwrap();
    let mut last = Vec::new();
    frame(sample().last().unwrap(), &mut last);
    let keep = full.len() - last.len();
    for cut in keep..full.len() {
        std::fs::write(d.join(LOG), &full[..cut]).unwrap();
        let (_, recs, rec) = Store::open(&d, Fsync::Always).unwrap();
        assert_eq!(recs.len(), sample().len() - 1, "cut at {cut}");
        assert_eq!(rec.dropped_bytes as usize, cut - keep);
        assert_eq!(std::fs::metadata(d.join(LOG)).unwrap().len() as usize, keep);
    }
    // A flipped byte inside a record: everything before it survives.
    let mut bad = full.clone();
    bad[keep + 9] ^= 0xff;
    std::fs::write(d.join(LOG), &bad).unwrap();
    let (_, recs, rec) = Store::open(&d, Fsync::Always).unwrap();
    assert_eq!(recs.len(), sample().len() - 1);
    assert!(rec.damage.unwrap().contains("checksum"));
}

/// A record with a good checksum but a type this version does not
/// know (a newer midge's) is not damage: the store is left as it is
/// and opening it fails, instead of cutting good data.
#[test]
fn an_unknown_record_type_is_refused_not_cut() {
    let d = dir("unknown");
    let (mut s, _, _) = Store::open(&d, Fsync::Always).unwrap();
    s.append(&Record::Session { client: "c".into() });
    s.commit(Instant::now()).unwrap();
    drop(s);
    let mut data = std::fs::read(d.join(LOG)).unwrap();
    let body = [200u8, 1, 2, 3];
    data.extend_from_slice(&(body.len() as u32).to_le_bytes());
    data.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    data.extend_from_slice(&body);
    std::fs::write(d.join(LOG), &data).unwrap();
    let e = Store::open(&d, Fsync::Always).err().expect("refused");
    assert!(e.to_string().contains("unknown record type 200"), "{e}");
    assert_eq!(std::fs::read(d.join(LOG)).unwrap(), data, "left untouched");
}

#[test]
fn last_known_type_is_the_highest_written() {
    let highest = sample()
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            r.encode(&mut out);
            out[0]
        })
        .max();
    assert_eq!(highest, Some(LAST_KNOWN_TYPE), "sample() has every type");
}

/// Zeros appended after a crash (some file systems extend a file
/// before its data lands) pass the checksum of an empty record: they
/// are damage, cut like a torn tail.
#[test]
fn a_zero_filled_tail_is_cut() {
    let d = dir("zeros");
    let (mut s, _, _) = Store::open(&d, Fsync::Always).unwrap();
    s.append(&Record::Session { client: "c".into() });
    s.commit(Instant::now()).unwrap();
    drop(s);
    let good = std::fs::metadata(d.join(LOG)).unwrap().len();
    let mut data = std::fs::read(d.join(LOG)).unwrap();
    data.extend_from_slice(&[0; 4096]);
    std::fs::write(d.join(LOG), &data).unwrap();
    let (_, recs, rec) = Store::open(&d, Fsync::Always).unwrap();
    assert_eq!(recs, [Record::Session { client: "c".into() }]);
    assert_eq!(rec.dropped_bytes, 4096);
    assert_eq!(std::fs::metadata(d.join(LOG)).unwrap().len(), good);
}

#[test]
fn compaction_replaces_the_file_atomically() {
    let d = dir("compact");
    let (mut s, _, _) = Store::open(&d, Fsync::Always).unwrap();
    for _ in 0..100 {
        s.append(&Record::Retain {
            topic: "t".into(),
            qos: 0,
            payload: vec![1; 100],
            meta: None,
        });
    }
    s.commit(Instant::now()).unwrap();
    s.begin_compaction().unwrap();
    s.snapshot(&Record::Retain {
        topic: "t".into(),
        qos: 0,
        payload: vec![1; 100],
        meta: None,
    });
    // A change during compaction lands in both files.
    s.append(&Record::Retain {
        topic: "u".into(),
        qos: 0,
        payload: vec![2],
        meta: None,
    });
    s.commit(Instant::now()).unwrap();
    // A crash now would find the old file complete (the unfinished
    // new one is deleted by open).
    let (recs, _, damage) = read_log(&std::fs::read(d.join(LOG)).unwrap());
    assert_eq!((recs.len(), damage), (101, None));
    assert!(d.join(NEW).exists());
    s.finish_compaction(Instant::now()).unwrap();
    drop(s);
    let (_, recs, _) = Store::open(&d, Fsync::Always).unwrap();
    assert_eq!(recs.len(), 2);
    assert!(!d.join(NEW).exists());
}

#[test]
fn limit_triggers_compaction_and_reports_live_overflow() {
    let d = dir("limit");
    let (mut s, _, _) = Store::open(&d, Fsync::Always).unwrap();
    // One commit each, so the log holds what a snapshot holds (no
    // batch header).
    for _ in 0..20 {
        s.append(&Record::Retain {
            topic: "t".into(),
            qos: 0,
            payload: vec![1; 100],
            meta: None,
        });
        s.commit(Instant::now()).unwrap();
    }
    let size = s.size();
    assert!(
        !s.wants_compaction(0),
        "small files are left alone without a limit"
    );
    assert!(
        s.wants_compaction(size - 1),
        "over the limit with something to gain"
    );
    assert!(!s.live_over(size - 1), "not yet known to be live");
    s.begin_compaction().unwrap();
    for _ in 0..20 {
        s.snapshot(&Record::Retain {
            topic: "t".into(),
            qos: 0,
            payload: vec![1; 100],
            meta: None,
        });
    }
    s.finish_compaction(Instant::now()).unwrap();
    assert!(s.live_over(size - 1), "live state itself exceeds the limit");
    assert!(
        !s.wants_compaction(size - 1),
        "nothing to gain from compacting again"
    );
}

#[test]
fn interval_mode_defers_fsync() {
    let d = dir("interval");
    let (mut s, _, _) = Store::open(&d, Fsync::Every(Duration::from_secs(1))).unwrap();
    let t0 = Instant::now();
    s.append(&Record::Session { client: "x".into() });
    s.commit(t0).unwrap();
    assert_eq!(s.fsyncs, 0);
    assert_eq!(s.sync_deadline(), Some(t0 + Duration::from_secs(1)));
    s.commit(t0 + Duration::from_secs(1)).unwrap();
    assert_eq!((s.fsyncs, s.sync_deadline()), (1, None));
}
