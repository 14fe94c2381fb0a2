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

mod io;
mod record;

pub use io::{DirStorage, LogFile, Storage};
use record::{frame, frame_unsealed, read_log, seal_batch, seal_frame, BATCH_HEAD, UNKNOWN};
pub use record::{Meta, Record};

/// The record reader on untrusted bytes, for the fuzzer (`fuzz/`) and the
/// replay of its corpus (`tests/fuzz_corpus.rs`): the good records at the
/// start of a log's bytes, and the bytes they take.
pub fn read_log_bytes(data: &[u8]) -> (Vec<Record>, usize) {
    let (records, good, _) = read_log(data);
    (records, good)
}

/// One record's body, read without its frame: random input never matches
/// a frame's checksum, so this is how a fuzzer reaches the body's reader.
pub fn decode_record(body: &[u8]) -> Option<Record> {
    Record::decode(body)
}

use log::{error, info};
use std::io::{Error, ErrorKind, Result};
use std::path::Path;
use std::sync::Once;
use std::time::{Duration, Instant};

const LOG: &str = "midge.log";
const NEW: &str = "midge.log.new";
/// Compaction starts when the file is this large and twice its size after
/// the last compaction.
const COMPACT_MIN: u64 = 4 * 1024 * 1024;
/// Retries after a failure start this soon and back off to at most
/// `RETRY_MAX`.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(5);

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
    file: Box<dyn LogFile>,
    pending: Vec<u8>,
    size: u64,
}

/// Why the store cannot currently keep what it is given (one episode,
/// from the first failure to the recovery).
struct Trouble {
    /// A failed fsync (or a cut that failed) left the log's content since
    /// its last good sync unknown: only a rewrite of the live state into a
    /// fresh file (a compaction) restores durability. Otherwise a write
    /// failed and the log was cut back to its last good record: the
    /// pending records are written again once `retry_at` has passed.
    rewrite: bool,
    since: Instant,
    retry_at: Instant,
    backoff: Duration,
    failures: u64,
}

/// A retry after `backoff`, doubling it for the next one.
fn back_off(now: Instant, backoff: &mut Duration) -> Instant {
    let at = now + *backoff;
    *backoff = (*backoff * 2).min(RETRY_MAX);
    at
}

/// A process writing past its file size limit gets EFBIG from `write`
/// instead of being killed by SIGXFSZ (a handler, once, is enough).
fn survive_file_size_limit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGXFSZ, flag) {
            log::warn!("persistence: cannot catch SIGXFSZ: {e}");
        }
    });
}

/// The open store.
pub struct Store {
    storage: Box<dyn Storage>,
    file: Box<dyn LogFile>,
    /// Bytes of the log, all of them whole records.
    size: u64,
    /// This iteration's records: a batch header, then their frames.
    pending: Vec<u8>,
    pending_records: usize,
    /// Records buffered since start (see [`Store::appended`]).
    appended: u64,
    /// The first this many of them are durable.
    durable_records: u64,
    fsync: Fsync,
    /// Written but not yet fsynced since (interval mode).
    unsynced_since: Option<Instant>,
    compaction: Option<Compaction>,
    /// No compaction starts before this, after a failed one (and its
    /// back-off for the next failure).
    compact_after: Option<(Instant, Duration)>,
    trouble: Option<Trouble>,
    size_after_compaction: u64,
    pub bytes_written: u64,
    pub fsyncs: u64,
}

impl Store {
    /// Opens (or creates) the store in `dir`: returns it with every good
    /// record, after cutting off a damaged tail.
    pub fn open(dir: &Path, fsync: Fsync) -> Result<(Store, Vec<Record>, Recovery)> {
        survive_file_size_limit();
        Store::open_in(Box::new(DirStorage::new(dir)), fsync)
    }

    /// [`Store::open`] on any [`Storage`].
    pub fn open_in(
        mut storage: Box<dyn Storage>,
        fsync: Fsync,
    ) -> Result<(Store, Vec<Record>, Recovery)> {
        storage.prepare()?;
        storage.remove(NEW)?; // an unfinished compaction
        let (mut file, data) = storage.open(LOG)?;
        let (records, good, damage) = read_log(&data);
        if let Some(why) = damage.as_ref().filter(|d| d.starts_with(UNKNOWN)) {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!(
                    "{LOG}: {why}: written by a newer midge? Not starting, so as not to cut it"
                ),
            ));
        }
        let dropped = (data.len() - good) as u64;
        if dropped > 0 {
            file.truncate(good as u64)?;
            file.sync_data()?;
        }
        storage.sync_dir()?;
        let recovery = Recovery {
            records: records.len(),
            bytes: good as u64,
            dropped_bytes: dropped,
            damage,
        };
        let store = Store {
            storage,
            file,
            size: good as u64,
            pending: Vec::new(),
            pending_records: 0,
            appended: 0,
            durable_records: 0,
            fsync,
            unsynced_since: None,
            compaction: None,
            compact_after: None,
            trouble: None,
            size_after_compaction: good as u64,
            bytes_written: 0,
            fsyncs: 0,
        };
        Ok((store, records, recovery))
    }

    /// Buffers a change (and copies it into a compaction in progress).
    pub fn append(&mut self, rec: &Record) {
        if self.pending.is_empty() {
            self.pending.extend_from_slice(&[0; BATCH_HEAD]);
        }
        let start = self.pending.len();
        frame_unsealed(rec, &mut self.pending);
        self.pending_records += 1;
        self.appended += 1;
        if let Some(c) = &mut self.compaction {
            let at = c.pending.len();
            c.pending.extend_from_slice(&self.pending[start..]);
            seal_frame(&mut c.pending[at..]);
        }
    }

    /// How many records were buffered since start: output that depends on
    /// the records buffered so far may leave once [`Store::is_durable`].
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// True if the first `records` records buffered (counted mod 2^32, as
    /// [`Store::appended`] truncated: output cannot wait on a store that
    /// fails while two billion records are added) are as durable as the
    /// policy promises.
    pub fn covers(&self, records: u32) -> bool {
        (self.durable_records as u32).wrapping_sub(records) as i32 >= 0
    }

    /// Notes that everything buffered so far is durable, if it is.
    fn settle(&mut self) {
        if self.is_durable() {
            self.durable_records = self.appended;
        }
    }

    /// True when every record buffered is as durable as the policy
    /// promises: written and (with [`Fsync::Always`]) fsynced, with no
    /// failure since that leaves it in doubt.
    pub fn is_durable(&self) -> bool {
        self.trouble.is_none()
            && self.pending.is_empty()
            && (self.fsync != Fsync::Always || self.unsynced_since.is_none())
    }

    /// True while writing or syncing fails (from the first failure until a
    /// write, or a rewrite, succeeds again).
    pub fn is_failing(&self) -> bool {
        self.trouble.is_some()
    }

    /// True if changes wait to be written.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
            || self
                .compaction
                .as_ref()
                .is_some_and(|c| !c.pending.is_empty())
    }

    /// Writes what this iteration buffered, as one batch (a power cut
    /// keeps all of it or none), and fsyncs as the policy says. An error
    /// means the records are not durable yet: they are kept and written
    /// again later (see [`Store::retry_deadline`]), or, after a failed
    /// fsync, the store waits for a rewrite (a compaction) instead.
    pub fn commit(&mut self, now: Instant) -> Result<()> {
        let result = self.write_log(now);
        self.write_compaction(now);
        result?;
        if self.sync_due(now) {
            if let Err(e) = self.file.sync_data() {
                // fsyncgate: the kernel may have dropped the pages it could
                // not write, and a later fsync would "succeed" without
                // them. Only a fresh file is to be trusted again.
                self.unsynced_since = None;
                self.fail(now, "fsync of the store", &e, true);
                return Err(e);
            }
            self.fsyncs += 1;
            self.unsynced_since = None;
        }
        if self.pending.is_empty() {
            self.recovered(now);
        }
        self.settle();
        Ok(())
    }

    /// The main log's part of [`Store::commit`].
    fn write_log(&mut self, now: Instant) -> Result<()> {
        if let Some(t) = &self.trouble {
            if t.rewrite {
                // The snapshot of the rewrite covers these changes.
                self.pending.clear();
                self.pending_records = 0;
                return Err(Error::other("the store waits for a rewrite"));
            }
            if now < t.retry_at {
                return Err(Error::other("the store waits to retry a write"));
            }
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = seal_batch(&mut self.pending, self.pending_records);
        let len = batch.len() as u64;
        if let Err(e) = self.file.append(batch) {
            // Cut what part of the batch landed, so the next try does not
            // leave a damaged record in the middle of the log.
            let cut = self.file.truncate(self.size);
            let rewrite = cut.is_err();
            self.fail(now, "writing the store", &e, rewrite);
            return Err(e);
        }
        self.size += len;
        self.bytes_written += len;
        self.pending.clear();
        self.pending_records = 0;
        self.unsynced_since.get_or_insert(now);
        Ok(())
    }

    /// The compaction's part of [`Store::commit`]: a failure gives the
    /// compaction up; the log goes on as it was.
    fn write_compaction(&mut self, now: Instant) {
        let Some(c) = &mut self.compaction else {
            return;
        };
        if c.pending.is_empty() {
            return;
        }
        match c.file.append(&c.pending) {
            Ok(()) => {
                c.size += c.pending.len() as u64;
                self.bytes_written += c.pending.len() as u64;
                c.pending.clear();
            }
            Err(e) => self.compaction_failed(now, "writing", &e),
        }
    }

    fn sync_due(&self, now: Instant) -> bool {
        match (self.fsync, self.unsynced_since) {
            (_, None) => false,
            (Fsync::Always, Some(_)) => true,
            (Fsync::Every(d), Some(since)) => now.duration_since(since) >= d,
        }
    }

    /// A write or sync failed: logged once per episode.
    fn fail(&mut self, now: Instant, what: &str, e: &Error, rewrite: bool) {
        match &mut self.trouble {
            Some(t) => {
                t.rewrite |= rewrite;
                t.failures += 1;
                t.retry_at = back_off(now, &mut t.backoff);
            }
            None => {
                error!(
                    "persistence: {what} failed: {e}; acknowledgements that need the store \
                     are held until it works again{}",
                    if rewrite {
                        " (the store will be rewritten from memory)"
                    } else {
                        ""
                    }
                );
                let mut backoff = RETRY_MIN;
                let retry_at = back_off(now, &mut backoff);
                self.trouble = Some(Trouble {
                    rewrite,
                    since: now,
                    retry_at,
                    backoff,
                    failures: 1,
                });
            }
        }
    }

    /// Ends a failure episode, with one line.
    fn recovered(&mut self, now: Instant) {
        if let Some(t) = self.trouble.take() {
            info!(
                "persistence: the store works again after {:.1?} ({} failed attempts); \
                 acknowledgements resume",
                now.duration_since(t.since),
                t.failures
            );
        }
    }

    /// Writes and fsyncs everything now (shutdown).
    pub fn sync(&mut self) -> Result<()> {
        let now = Instant::now();
        if let Some(t) = &mut self.trouble {
            t.retry_at = now;
        }
        self.commit(now)?;
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

    /// When the store next retries after a failure: a write, or (after a
    /// failed fsync) a rewrite.
    pub fn retry_deadline(&self) -> Option<Instant> {
        let t = self.trouble.as_ref()?;
        if !t.rewrite {
            return Some(t.retry_at);
        }
        if self.compaction.is_some() {
            return None; // under way, step by step
        }
        Some(
            self.compact_after
                .map_or(t.retry_at, |(at, _)| at.max(t.retry_at)),
        )
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_compacting(&self) -> bool {
        self.compaction.is_some()
    }

    /// True when a compaction should start: the store must be rewritten
    /// after a failed fsync (once its retry is due), or the file has grown
    /// enough that a snapshot would shrink it (past 4 MiB and twice its
    /// last compacted size, or past `limit` (0: none) with something to
    /// gain). Never within the back-off after a failed compaction.
    pub fn wants_compaction(&self, limit: u64) -> bool {
        let now = Instant::now();
        if self.compaction.is_some() || self.compact_after.is_some_and(|(at, _)| now < at) {
            return false;
        }
        let grown = self.size >= COMPACT_MIN && self.size >= 2 * self.size_after_compaction.max(1);
        let over = limit > 0 && self.size > limit && self.size > self.size_after_compaction;
        let rewrite = self
            .trouble
            .as_ref()
            .is_some_and(|t| t.rewrite && now >= t.retry_at);
        grown || over || rewrite
    }

    /// True when even the live state (the last compaction's size) exceeds
    /// `limit` (0: none): compaction cannot bring the file under it.
    pub fn live_over(&self, limit: u64) -> bool {
        limit > 0 && self.size > limit && self.size_after_compaction > limit
    }

    /// Starts filling a new file; the caller then adds the live state with
    /// [`Store::snapshot`] over several iterations and calls
    /// [`Store::finish_compaction`].
    pub fn begin_compaction(&mut self) -> Result<()> {
        match self.storage.create(NEW) {
            Ok(file) => {
                self.compaction = Some(Compaction {
                    file,
                    pending: Vec::new(),
                    size: 0,
                });
                Ok(())
            }
            Err(e) => {
                self.compaction_failed(Instant::now(), "starting", &e);
                Err(e)
            }
        }
    }

    /// Adds a record of the live state to the compaction only.
    pub fn snapshot(&mut self, rec: &Record) {
        if let Some(c) = &mut self.compaction {
            frame(rec, &mut c.pending);
        }
    }

    /// Makes the new file durable and swaps it in: written, fsynced,
    /// renamed over the log, the directory fsynced. Before the rename any
    /// failure abandons the new file and the log goes on; the new file's
    /// descriptor becomes the log's, so nothing is ever written to the
    /// replaced (unlinked) file.
    pub fn finish_compaction(&mut self, now: Instant) -> Result<()> {
        let _ = self.commit(now); // its failures are the log's, handled there
        let Some(mut c) = self.compaction.take() else {
            return Err(Error::other("the compaction was given up"));
        };
        let swapped = c
            .file
            .sync_data()
            .and_then(|()| self.storage.rename(NEW, LOG));
        if let Err(e) = swapped {
            self.compaction = Some(c);
            self.compaction_failed(now, "finishing", &e);
            return Err(e);
        }
        self.fsyncs += 1;
        let before = self.size;
        self.file = c.file;
        self.size = c.size;
        self.size_after_compaction = c.size;
        self.unsynced_since = None;
        // Every buffered change is in the new file.
        self.pending.clear();
        self.pending_records = 0;
        if let Err(e) = self.storage.sync_dir() {
            // A power cut might bring the old file back: not durable.
            self.fail(now, "fsync of the store's directory", &e, true);
            return Err(e);
        }
        self.fsyncs += 1;
        if self.compact_after.take().is_some() && self.trouble.is_none() {
            info!("persistence: compaction works again");
        }
        self.recovered(now);
        self.settle();
        info!("store compacted: {before} -> {} bytes", c.size);
        Ok(())
    }

    /// A compaction step failed: the new file is given up (the log stays
    /// as it was) and no compaction starts for a while. Logged once per
    /// episode.
    fn compaction_failed(&mut self, now: Instant, what: &str, e: &Error) {
        self.abandon_compaction();
        match &mut self.compact_after {
            Some((at, backoff)) => *at = back_off(now, backoff),
            None => {
                error!("persistence: {what} a compaction failed: {e}; keeping the old file, retrying with back-off");
                let mut backoff = RETRY_MIN;
                self.compact_after = Some((back_off(now, &mut backoff), backoff));
            }
        }
    }

    /// Gives up a compaction: the old file stays.
    pub fn abandon_compaction(&mut self) {
        if self.compaction.take().is_some() {
            let _ = self.storage.remove(NEW);
        }
    }
}

#[cfg(test)]
mod tests;
