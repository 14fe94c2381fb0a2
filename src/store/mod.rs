//! Persistence: an append-only log of state changes, in one file.
//!
//! Every change to durable state (retained messages, persistent sessions,
//! their subscriptions, queued and in-flight QoS 1/2 messages, inbound QoS 2
//! ids) is one record. Records are framed as `[u32 length][u32 CRC-32][body]`
//! (little endian), so a torn or corrupt tail is recognised and cut off at
//! the last good record on start.
//!
//! Writing: records of one loop iteration are buffered and written with one
//! `write` at the end of the iteration, before any acknowledgement leaves
//! the broker; with [`Fsync::Always`] that write is followed by one `fsync`
//! (group commit), with [`Fsync::Every`] at most one `fsync` per interval.
//!
//! Compaction never rewrites the store inside one iteration: a new file is
//! filled in bounded steps with a snapshot of the live state, while new
//! changes go to both files, then it replaces the old one with an atomic
//! rename. A crash in between leaves the old file complete (the unfinished
//! new one is deleted on start).

mod record;

use record::{frame, read_log, UNKNOWN};
pub use record::{Meta, Record};

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LOG: &str = "midge.log";
const NEW: &str = "midge.log.new";
/// Compaction starts when the file is this large and twice its size after
/// the last compaction.
const COMPACT_MIN: u64 = 4 * 1024 * 1024;

/// When written records reach stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before the acknowledgements of the iteration that wrote them leave.
    Always,
    /// At most this long after they were written.
    Every(Duration),
}

/// What was found on start.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub records: usize,
    pub bytes: u64,
    /// Bytes cut off the end (torn or corrupt tail).
    pub dropped_bytes: u64,
    /// Why the tail was cut, if it was.
    pub damage: Option<String>,
}

struct Compaction {
    file: File,
    pending: Vec<u8>,
    size: u64,
}

/// The open store.
pub struct Store {
    dir: PathBuf,
    file: File,
    size: u64,
    pending: Vec<u8>,
    fsync: Fsync,
    /// Written but not yet fsynced since (interval mode).
    unsynced_since: Option<Instant>,
    compaction: Option<Compaction>,
    size_after_compaction: u64,
    pub bytes_written: u64,
    pub fsyncs: u64,
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Store {
    /// Opens (or creates) the store in `dir`: returns it with every good
    /// record, after cutting off a damaged tail.
    pub fn open(dir: &Path, fsync: Fsync) -> io::Result<(Store, Vec<Record>, Recovery)> {
        std::fs::create_dir_all(dir)?;
        let _ = std::fs::remove_file(dir.join(NEW)); // an unfinished compaction
        let path = dir.join(LOG);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let (records, good, damage) = read_log(&data);
        if let Some(why) = damage.as_ref().filter(|d| d.starts_with(UNKNOWN)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: {why}: written by a newer midge? Not starting, so as not to cut it",
                    path.display()
                ),
            ));
        }
        let dropped = (data.len() - good) as u64;
        if dropped > 0 {
            file.set_len(good as u64)?;
            file.sync_all()?;
        }
        sync_dir(dir)?;
        let recovery = Recovery {
            records: records.len(),
            bytes: good as u64,
            dropped_bytes: dropped,
            damage,
        };
        let store = Store {
            dir: dir.to_path_buf(),
            file,
            size: good as u64,
            pending: Vec::new(),
            fsync,
            unsynced_since: None,
            compaction: None,
            size_after_compaction: good as u64,
            bytes_written: 0,
            fsyncs: 0,
        };
        Ok((store, records, recovery))
    }

    /// Buffers a change (and copies it into a compaction in progress).
    pub fn append(&mut self, rec: &Record) {
        let start = self.pending.len();
        frame(rec, &mut self.pending);
        if let Some(c) = &mut self.compaction {
            c.pending.extend_from_slice(&self.pending[start..]);
        }
    }

    /// True if changes wait to be written.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
            || self
                .compaction
                .as_ref()
                .is_some_and(|c| !c.pending.is_empty())
    }

    /// Writes what this iteration buffered, and fsyncs as the policy says.
    pub fn commit(&mut self, now: Instant) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.file.write_all(&self.pending)?;
            self.size += self.pending.len() as u64;
            self.bytes_written += self.pending.len() as u64;
            self.pending.clear();
            self.unsynced_since.get_or_insert(now);
        }
        if let Some(c) = &mut self.compaction {
            if !c.pending.is_empty() {
                c.file.write_all(&c.pending)?;
                c.size += c.pending.len() as u64;
                self.bytes_written += c.pending.len() as u64;
                c.pending.clear();
            }
        }
        let due = match (self.fsync, self.unsynced_since) {
            (_, None) => false,
            (Fsync::Always, Some(_)) => true,
            (Fsync::Every(d), Some(since)) => now.duration_since(since) >= d,
        };
        if due {
            self.file.sync_data()?;
            self.fsyncs += 1;
            self.unsynced_since = None;
        }
        Ok(())
    }

    /// Writes and fsyncs everything now (shutdown).
    pub fn sync(&mut self) -> io::Result<()> {
        self.commit(Instant::now())?;
        if self.unsynced_since.take().is_some() {
            self.file.sync_data()?;
            self.fsyncs += 1;
        }
        Ok(())
    }

    /// When written data must next be fsynced (interval mode).
    pub fn sync_deadline(&self) -> Option<Instant> {
        match (self.fsync, self.unsynced_since) {
            (Fsync::Every(d), Some(since)) => since.checked_add(d),
            _ => None,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_compacting(&self) -> bool {
        self.compaction.is_some()
    }

    /// True when the file has grown enough that a snapshot would shrink it:
    /// past 4 MiB and twice its last compacted size, or past `limit`
    /// (0: none) with something to gain.
    pub fn wants_compaction(&self, limit: u64) -> bool {
        let grown = self.size >= COMPACT_MIN && self.size >= 2 * self.size_after_compaction.max(1);
        let over = limit > 0 && self.size > limit && self.size > self.size_after_compaction;
        self.compaction.is_none() && (grown || over)
    }

    /// True when even the live state (the last compaction's size) exceeds
    /// `limit` (0: none): compaction cannot bring the file under it.
    pub fn live_over(&self, limit: u64) -> bool {
        limit > 0 && self.size > limit && self.size_after_compaction > limit
    }

    /// Starts filling a new file; the caller then adds the live state with
    /// [`Store::snapshot`] over several iterations and calls
    /// [`Store::finish_compaction`].
    pub fn begin_compaction(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.dir.join(NEW))?;
        self.compaction = Some(Compaction {
            file,
            pending: Vec::new(),
            size: 0,
        });
        Ok(())
    }

    /// Adds a record of the live state to the compaction only.
    pub fn snapshot(&mut self, rec: &Record) {
        if let Some(c) = &mut self.compaction {
            frame(rec, &mut c.pending);
        }
    }

    /// Makes the new file durable and swaps it in.
    pub fn finish_compaction(&mut self, now: Instant) -> io::Result<()> {
        self.commit(now)?;
        let Some(c) = self.compaction.take() else {
            return Ok(());
        };
        c.file.sync_all()?;
        std::fs::rename(self.dir.join(NEW), self.dir.join(LOG))?;
        sync_dir(&self.dir)?;
        self.fsyncs += 2;
        let before = self.size;
        self.file = OpenOptions::new().append(true).open(self.dir.join(LOG))?;
        self.size = c.size;
        self.size_after_compaction = c.size;
        self.unsynced_since = None;
        log::info!("store compacted: {before} -> {} bytes", c.size);
        Ok(())
    }

    /// Gives up a compaction (after a write error): the old file stays.
    pub fn abandon_compaction(&mut self) {
        if self.compaction.take().is_some() {
            let _ = std::fs::remove_file(self.dir.join(NEW));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::record::LAST_KNOWN_TYPE;
    use super::*;

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
            Record::Retain5 {
                topic: "r".into(),
                qos: 1,
                payload: b"v5".to_vec(),
                meta: Meta {
                    properties: vec![3, 0x01, 1],
                    expires_unix_ms: 1_700_000_000_000,
                },
            },
            Record::MsgBody5 {
                client: "c".into(),
                seq: 8,
                qos: 2,
                retain: false,
                body: 4,
                topic: "t".into(),
                payload: b"p".to_vec(),
                meta: Meta {
                    properties: vec![0],
                    expires_unix_ms: 0,
                },
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
        for r in sample() {
            s.append(&r);
        }
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
            });
        }
        s.commit(Instant::now()).unwrap();
        s.begin_compaction().unwrap();
        s.snapshot(&Record::Retain {
            topic: "t".into(),
            qos: 0,
            payload: vec![1; 100],
        });
        // A change during compaction lands in both files.
        s.append(&Record::Retain {
            topic: "u".into(),
            qos: 0,
            payload: vec![2],
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
        for _ in 0..20 {
            s.append(&Record::Retain {
                topic: "t".into(),
                qos: 0,
                payload: vec![1; 100],
            });
        }
        s.commit(Instant::now()).unwrap();
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
}
