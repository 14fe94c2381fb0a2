//! The broker's side of persistence: which changes become records, how the
//! records rebuild the state on start, and compaction in bounded steps.
//!
//! Only durable state is written: retained messages (not `$SYS`), and for
//! persistent sessions (CleanSession 0) their existence, subscriptions,
//! QoS 1/2 messages (queued, in flight, released) and inbound QoS 2 ids.
//! Clean sessions and QoS 0 traffic never touch the disk.

use super::Engine;
use crate::keys::{ConnKey, SessionKey};
use crate::protocol::{Properties, QoS};
use crate::retained::Source;
use crate::router::{Grant, SEVERAL_IDS};
use crate::session::{Delivery, Message, Session, Stage};
use crate::store::{Meta, Record, Storage, Store};
use log::{error, info, warn};
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Instant;

/// Records a compaction step may write before the loop moves on.
const SNAPSHOT_STEP: usize = 2000;

/// What replaying the store collects besides the state itself.
#[derive(Default)]
struct Replay {
    /// `MsgBody` messages, for the `MsgRef`s that follow them.
    bodies: HashMap<u64, Arc<Message>>,
    /// Sessions whose user name is stored.
    users_known: std::collections::HashSet<String>,
}

/// Where a compaction's snapshot has got to.
pub(super) struct Snapshot {
    retained: Vec<Box<str>>,
    sessions: Vec<Box<str>>,
    at: usize,
    /// Bodies the snapshot has written to the new file.
    bodies: Bodies,
}

/// Which message bodies are already in the log, so that a message for many
/// persistent subscribers is written once: a `MsgBody` record for the
/// first, `MsgRef`s naming its id for the others.
///
/// The live cache is cleared after every loop iteration and whenever a
/// compaction begins, so a `MsgRef` always follows its `MsgBody` in every
/// file it is written to. Each entry holds the message, so its address is
/// not reused while it is a key.
#[derive(Default)]
pub(super) struct Bodies {
    written: HashMap<usize, (Arc<Message>, u64)>,
    /// The Unix time (ms) of the broker clock's 0, to store expiry times
    /// that hold across a restart.
    pub unix_start: u64,
}

impl Bodies {
    /// No body written yet, on a clock that starts now.
    pub(super) fn starting_now() -> Bodies {
        Bodies {
            written: HashMap::new(),
            unix_start: unix_now_ms(),
        }
    }

    /// The record of a message entering a persistent session's stream;
    /// `next` is the last body id given out in this log.
    pub(super) fn record(&mut self, next: &mut u64, client: String, d: &Delivery) -> Record {
        let (seq, qos, retain) = (d.seq, d.qos as u8, d.retain);
        let key = Arc::as_ptr(&d.msg) as usize;
        if let Some(&(_, body)) = self.written.get(&key) {
            return Record::MsgRef {
                client,
                seq,
                qos,
                retain,
                body,
            };
        }
        *next += 1;
        self.written.insert(key, (d.msg.clone(), *next));
        Record::MsgBody {
            client,
            seq,
            qos,
            retain,
            body: *next,
            topic: d.msg.topic.to_string(),
            payload: d.msg.payload.to_vec(),
            meta: meta_of(&d.msg, self.unix_start),
        }
    }

    pub(super) fn clear(&mut self) {
        self.written.clear();
    }
}

/// What an MQTT 5 message needs stored besides topic and payload, if
/// anything: its properties, and its expiry as Unix time.
fn meta_of(msg: &Message, unix_start: u64) -> Option<Meta> {
    if msg.properties.is_empty() && msg.expires_at == 0 {
        return None;
    }
    let expires_unix_ms = match msg.expires_at {
        0 => 0,
        at => unix_start.saturating_add(at),
    };
    Some(Meta {
        properties: msg.properties.to_block(),
        expires_unix_ms,
    })
}

/// A stored message with its [`Meta`] if it has one, its expiry back on
/// this run's clock (an expired one stays expired: it is never sent).
fn message_with(
    topic: String,
    payload: Vec<u8>,
    meta: Option<&Meta>,
    unix_start: u64,
) -> Arc<Message> {
    let mut msg = Message::new(topic.into(), payload.into());
    let Some(meta) = meta else {
        return Arc::new(msg);
    };
    match Properties::from_block(&meta.properties) {
        Some(p) => msg.properties = p,
        None => warn!(
            "persistence: properties of a message on {} unreadable; dropped",
            msg.topic
        ),
    }
    if meta.expires_unix_ms != 0 {
        msg.expires_at = meta.expires_unix_ms.saturating_sub(unix_start).max(1);
    }
    Arc::new(msg)
}

/// The Unix time now, in ms.
pub(super) fn unix_now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The record of a retained message (an empty payload deletes), with its
/// publisher when there is one (a delete needs none).
pub(super) fn retain_record(
    msg: &Message,
    qos: QoS,
    unix_start: u64,
    source: Option<&Source>,
) -> Record {
    let (topic, payload, qos) = (msg.topic.to_string(), msg.payload.to_vec(), qos as u8);
    let meta = meta_of(msg, unix_start);
    if let Some(src) = source.filter(|_| !payload.is_empty()) {
        return Record::RetainFrom {
            topic,
            qos,
            payload,
            meta: meta.unwrap_or(Meta {
                properties: Vec::new(),
                expires_unix_ms: 0,
            }),
            client: src.client_id.to_string(),
            username: src.username.as_deref().map(String::from),
        };
    }
    Record::Retain {
        topic,
        qos,
        payload,
        meta,
    }
}

/// The record of a subscription: `Sub5` only when MQTT 5 options or an
/// identifier need it.
pub(super) fn sub_record(client: String, filter: String, grant: &Grant) -> Record {
    let qos = grant.qos as u8;
    let options = grant.no_local as u8 | (grant.retain_as_published as u8) << 1;
    if options == 0 && grant.id == 0 {
        return Record::Sub {
            client,
            filter,
            qos,
        };
    }
    Record::Sub5 {
        client,
        filter,
        qos,
        options,
        id: grant.id,
    }
}

fn qos_of(q: u8) -> QoS {
    QoS::from_u8(q).unwrap_or(QoS::AtLeastOnce)
}

/// The records that recreate one persistent session.
fn session_records(sess: &Session, bodies: &mut Bodies, next: &mut u64, out: &mut Vec<Record>) {
    let client = || sess.client_id.to_string();
    out.push(Record::Session { client: client() });
    if let Some(user) = &sess.username {
        out.push(Record::SessionUser {
            client: client(),
            username: Some(user.to_string()),
        });
    }
    if sess.expiry != u32::MAX {
        out.push(Record::SessionExpiry {
            client: client(),
            expiry: sess.expiry,
        });
    }
    for (filter, grant) in sess.subscriptions() {
        out.push(sub_record(client(), filter.to_string(), grant));
    }
    for pkid in sess.qos2_ids() {
        out.push(Record::Qos2In {
            client: client(),
            pkid,
        });
    }
    let mut msg = |d: &Delivery| bodies.record(next, client(), d);
    let flow = sess.flow();
    for f in &flow.inflight {
        out.push(msg(&f.delivery));
        out.push(Record::Sent {
            client: client(),
            seq: f.delivery.seq,
            pkid: f.pkid,
        });
        if f.stage == Stage::Released {
            out.push(Record::Released {
                client: client(),
                seq: f.delivery.seq,
            });
        }
    }
    out.extend(flow.queue.iter().map(msg));
}

impl Engine {
    /// Buffers a change for the store, if there is one.
    pub(super) fn persist(&mut self, rec: Record) {
        if let Some(store) = &mut self.store {
            store.append(&rec);
        }
    }

    /// The client id of `sid` if its state is durable.
    pub(super) fn durable(&self, sid: SessionKey) -> Option<String> {
        self.store.as_ref()?;
        let sess = self.sessions.get(sid)?;
        (!sess.clean).then(|| sess.client_id.to_string())
    }

    /// Opens the store (on `storage`, or in the configured directory, if
    /// any) and restores what it holds.
    pub(super) fn open_store(&mut self, storage: Option<Box<dyn Storage>>) -> io::Result<()> {
        let started = Instant::now();
        let fsync = self.config.fsync;
        let dir = self.config.persistence_dir();
        if let (None, Some(dir)) = (&storage, &dir) {
            notice_mosquitto_db(dir);
        }
        let (store, records, recovery) = match (storage, dir) {
            (Some(storage), _) => Store::open_in(storage, fsync)?,
            (None, Some(dir)) => Store::open(&dir, fsync).map_err(|e| {
                io::Error::new(e.kind(), format!("persistence in {}: {e}", dir.display()))
            })?,
            (None, None) => return Ok(()),
        };
        self.restore(records);
        self.store = Some(store);
        self.log_restored(started, recovery.dropped_bytes, recovery.damage);
        Ok(())
    }

    /// Writes (and, per policy, fsyncs) what this iteration changed. Called
    /// before any output that depends on it is written to a socket.
    pub(super) fn commit_store(&mut self) {
        if let Some(store) = &mut self.store {
            // A failure is logged by the store (once per episode) and kept
            // there: what depends on it waits (`releasable`).
            let _ = store.commit(self.now.max(Instant::now()));
        }
    }

    /// True if every record given to the store is as durable as promised
    /// (or there is no store): held output may leave.
    pub(super) fn store_durable(&self) -> bool {
        self.store.as_ref().is_none_or(Store::is_durable)
    }

    /// Records given to the store so far (see [`Engine::hold_output`]).
    pub(super) fn store_appended(&self) -> u64 {
        self.store.as_ref().map_or(0, Store::appended)
    }

    /// After a packet of `key`'s was handled (with the store at `before`
    /// records): its output waits for the store if the packet produced
    /// records, or if it is a persistent session's while records are not
    /// yet durable (a resent PUBREL or PUBREC may depend on them).
    pub(super) fn hold_output(&mut self, key: ConnKey, before: u64) {
        let Some(store) = &self.store else {
            return;
        };
        let (added, durable) = (store.appended() != before, store.is_durable());
        let persistent = || {
            let conn = self.conns.get(key)?;
            Some(!self.sessions.get(conn.session()?)?.clean)
        };
        if added || (!durable && persistent() == Some(true)) {
            self.hold(key);
        }
    }

    /// `key`'s output depends on every record given to the store so far.
    pub(super) fn hold(&mut self, key: ConnKey) {
        let (Some(store), Some(conn)) = (&self.store, self.conns.get_mut(key)) else {
            return;
        };
        conn.held = true;
        conn.held_at = store.appended() as u32; // see `Store::covers`
    }

    /// True if `key`'s output may leave: it depends on no record that is
    /// not durable yet.
    pub(super) fn releasable(&self, key: ConnKey) -> bool {
        let Some(conn) = self.conns.get(key) else {
            return true;
        };
        !conn.held || self.store.as_ref().is_none_or(|s| s.covers(conn.held_at))
    }

    /// Rebuilds sessions, subscriptions, queues and retained messages.
    pub(super) fn restore(&mut self, records: Vec<Record>) {
        let mut replay = Replay::default();
        for rec in records {
            self.apply(rec, &mut replay);
        }
        self.next_body = replay.bodies.keys().copied().max().unwrap_or(0);
        // Subscriptions with denied topics are marked again (the ACL may
        // also have changed while the broker was down), for the sessions
        // whose user name is stored; a store from before user names were
        // stored leaves that to the session's next CONNECT. Nothing is
        // removed here: that happens at the next CONNECT or SIGHUP.
        if self.acl.is_some() {
            for client in replay.users_known {
                if let Some(sid) = self.sessions.find(&client) {
                    self.recheck_session(sid, false);
                }
            }
        }
        // Sequences continue after the highest restored one; restored
        // sessions count as offline from now on (for expiry).
        let now = self.now_ms;
        let timed: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.expiry != u32::MAX)
            .map(|(sid, _)| sid)
            .collect();
        for (_, sess) in self.sessions.iter_mut() {
            sess.offline_since = Some(now);
            let flow = sess.flow();
            let top = flow.inflight.iter().map(|f| f.delivery.seq);
            let top = top
                .chain(flow.queue.iter().map(|d| d.seq))
                .max()
                .unwrap_or(0);
            sess.next_seq = sess.next_seq.max(top);
            // Which subscription a stored message came through is not
            // stored: its identifiers are looked up when it is sent.
            if sess.subscriptions().iter().any(|(_, g)| g.id != 0) {
                let flow = sess.flow_mut();
                let inflight = flow.inflight.iter_mut().map(|f| &mut f.delivery);
                for d in inflight.chain(flow.queue.iter_mut()) {
                    d.sub_id = SEVERAL_IDS;
                }
            }
            sess.tidy();
        }
        for sid in timed {
            self.schedule_session_end(sid);
        }
    }

    fn restore_msg(&mut self, client: &str, msg: Arc<Message>, seq: u64, qos: u8, retain: bool) {
        if let Some(sess) = self.restored_session(client) {
            sess.push(Delivery {
                msg,
                qos: qos_of(qos),
                retain,
                seq,
                sub_id: 0,
                // Not stored: after a restart the message stays with
                // this member (see the README on shared subscriptions).
                shared: false,
            });
        }
    }

    /// A subscription back in the router and its session. Filtered or not
    /// is decided once all is restored (`recheck_subscriptions`).
    fn restore_sub(&mut self, client: &str, filter: &str, grant: Grant) {
        let Some(sid) = self.sessions.find(client) else {
            return;
        };
        // A `$share/` filter joins its group again.
        let Some((_, stored)) = self.add_subscription(sid, filter, grant, false) else {
            warn!("persistence: {client}: invalid filter {filter:?}; skipped");
            return;
        };
        if let Some(sess) = self.sessions.get_mut(sid) {
            sess.subscribe(stored, grant);
        }
    }

    fn restored_session(&mut self, client: &str) -> Option<&mut Session> {
        let sid = self.sessions.find(client)?;
        self.sessions.get_mut(sid)
    }

    /// Replays one record.
    fn apply(&mut self, rec: Record, replay: &mut Replay) {
        match rec {
            Record::Retain {
                topic,
                qos,
                payload,
                meta,
            } => {
                let msg = message_with(topic, payload, meta.as_ref(), self.bodies.unix_start);
                if !msg.expired(self.now_ms) {
                    self.retained.set(&msg, qos_of(qos), None);
                }
            }
            Record::RetainFrom {
                topic,
                qos,
                payload,
                meta,
                client,
                username,
            } => {
                let source = Source {
                    client_id: client.into(),
                    username: username.map(String::into_boxed_str),
                };
                let msg = message_with(topic, payload, Some(&meta), self.bodies.unix_start);
                if !msg.expired(self.now_ms) {
                    self.retained.set(&msg, qos_of(qos), Some(source));
                }
            }
            Record::Session { client } => {
                if let Some(sid) = self.sessions.find(&client) {
                    self.drop_session(sid);
                }
                replay.users_known.remove(&client);
                self.new_session(client.into(), u32::MAX);
            }
            Record::SessionUser { client, username } => {
                if let Some(sess) = self.restored_session(&client) {
                    sess.username = username.map(String::into_boxed_str);
                    replay.users_known.insert(client);
                }
            }
            Record::SessionGone { client } => {
                if let Some(sid) = self.sessions.find(&client) {
                    self.drop_session(sid);
                }
            }
            Record::Sub {
                client,
                filter,
                qos,
            } => self.restore_sub(&client, &filter, Grant::qos(qos_of(qos))),
            Record::Sub5 {
                client,
                filter,
                qos,
                options,
                id,
            } => {
                let grant = Grant {
                    qos: qos_of(qos),
                    no_local: options & 1 != 0,
                    retain_as_published: options & 2 != 0,
                    id,
                };
                self.restore_sub(&client, &filter, grant);
            }
            Record::SessionExpiry { client, expiry } => {
                if let Some(sess) = self.restored_session(&client) {
                    sess.expiry = expiry;
                    sess.clean = false; // 0 is never stored
                }
            }
            Record::Unsub { client, filter } => {
                if let Some(sid) = self.sessions.find(&client) {
                    if let Some(sess) = self.sessions.get_mut(sid) {
                        sess.unsubscribe(&filter);
                    }
                    self.remove_subscription(sid, &filter);
                }
            }
            Record::Msg {
                client,
                seq,
                qos,
                retain,
                topic,
                payload,
            } => {
                let msg = message_with(topic, payload, None, self.bodies.unix_start);
                self.restore_msg(&client, msg, seq, qos, retain);
            }
            Record::MsgBody {
                client,
                seq,
                qos,
                retain,
                body,
                topic,
                payload,
                meta,
            } => {
                let msg = message_with(topic, payload, meta.as_ref(), self.bodies.unix_start);
                replay.bodies.insert(body, msg.clone());
                self.restore_msg(&client, msg, seq, qos, retain);
            }
            Record::MsgRef {
                client,
                seq,
                qos,
                retain,
                body,
            } => match replay.bodies.get(&body) {
                // Restored subscribers share one copy, as they did live.
                Some(msg) => {
                    let msg = msg.clone();
                    self.restore_msg(&client, msg, seq, qos, retain);
                }
                None => warn!(
                    "persistence: {client}: message {seq} names an unknown body {body}; skipped"
                ),
            },
            Record::Sent { client, seq, pkid } => {
                if let Some(sess) = self.restored_session(&client) {
                    sess.replay_sent(seq, pkid);
                }
            }
            Record::Released { client, seq } => {
                if let Some(sess) = self.restored_session(&client) {
                    sess.replay_released(seq);
                }
            }
            Record::Done { client, seq } => {
                if let Some(sess) = self.restored_session(&client) {
                    sess.replay_done(seq);
                }
            }
            Record::Qos2In { client, pkid } => {
                if let Some(sess) = self.restored_session(&client) {
                    sess.qos2_insert(pkid);
                }
            }
            Record::Qos2Rel { client, pkid } => {
                if let Some(sess) = self.restored_session(&client) {
                    sess.qos2_remove(pkid);
                }
            }
        }
    }

    /// One bounded step of compaction: starts one when the store has grown,
    /// writes up to [`SNAPSHOT_STEP`] records of live state, and swaps the
    /// files in when the snapshot is complete.
    pub(super) fn compaction_step(&mut self) {
        let Some(store) = &mut self.store else {
            return;
        };
        if !store.is_compacting() {
            self.snapshot = None; // given up after a write error
        }
        if self.snapshot.is_none() {
            // A failed start is logged by the store and retried after a
            // back-off.
            if !store.wants_compaction(self.config.persistence_max_bytes)
                || store.begin_compaction().is_err()
            {
                return;
            }
            let retained = self
                .retained
                .topics()
                .filter(|t| !t.starts_with("$SYS"))
                .collect();
            let sessions = self
                .sessions
                .iter()
                .filter(|(_, s)| !s.clean)
                .map(|(_, s)| s.client_id.clone())
                .collect();
            self.snapshot = Some(Snapshot {
                retained,
                sessions,
                at: 0,
                bodies: Bodies::default(),
            });
            // Bodies written before the new file began are not in it.
            self.bodies.clear();
        }
        let Some(snap) = &mut self.snapshot else {
            return;
        };
        let mut records = Vec::new();
        while records.len() < SNAPSHOT_STEP {
            let (r, s) = (snap.retained.len(), snap.sessions.len());
            if snap.at < r {
                // The current value, which may be newer than when the list
                // was taken (or gone: then its delete is already written).
                let topic = &snap.retained[snap.at];
                if let Some((msg, qos)) = self.retained.get(topic) {
                    let source = self.retained.source(topic);
                    records.push(retain_record(&msg, qos, self.bodies.unix_start, source));
                }
            } else if snap.at < r + s {
                let client = &snap.sessions[snap.at - r];
                if let Some(sess) = self
                    .sessions
                    .find(client)
                    .and_then(|sid| self.sessions.get(sid))
                {
                    if !sess.clean {
                        session_records(sess, &mut snap.bodies, &mut self.next_body, &mut records);
                    }
                }
            } else {
                break;
            }
            snap.at += 1;
        }
        let done = snap.at >= snap.retained.len() + snap.sessions.len();
        for rec in &records {
            store.snapshot(rec);
        }
        if done {
            self.snapshot = None;
            // A failure is logged by the store, which keeps the old file
            // (or, after the rename, the new one) and retries later.
            let _ = store.finish_compaction(Instant::now());
        }
    }

    /// The store's byte limit is reached by live state: messages for
    /// offline sessions are then dropped (counted) instead of stored. Logs
    /// the change once each way.
    pub(super) fn store_full(&mut self) -> bool {
        let limit = self.config.persistence_max_bytes;
        let full = self.store.as_ref().is_some_and(|s| s.live_over(limit));
        if full != self.store_full_logged {
            self.store_full_logged = full;
            if full {
                error!(
                    "persistence: store limit of {limit} bytes reached by live state; \
                     messages for offline sessions are dropped until it shrinks"
                );
            } else {
                info!("persistence: store back under its limit of {limit} bytes");
            }
        }
        full
    }

    /// Logs what was restored on start.
    pub(super) fn log_restored(&self, started: Instant, dropped: u64, damage: Option<String>) {
        let persistent = self.sessions.iter().filter(|(_, s)| !s.clean).count();
        let queued: usize = self
            .sessions
            .iter()
            .map(|(_, s)| s.flow().queue.len() + s.flow().inflight.len())
            .sum();
        info!(
            "persistence: restored {persistent} sessions, {} subscriptions, {} retained and {queued} queued messages in {:?}",
            self.subscription_count(),
            self.retained.len(),
            started.elapsed()
        );
        if let Some(why) = damage {
            warn!("persistence: cut {dropped} damaged bytes off the end of the store ({why}); everything before them was kept");
        }
    }
}

/// A mosquitto store left where midge now keeps its own: said aloud, as
/// its retained messages and sessions are not carried over (README,
/// "Switching from mosquitto").
pub(super) fn notice_mosquitto_db(dir: &std::path::Path) {
    let db = dir.join("mosquitto.db");
    if db.is_file() {
        warn!(
            "persistence: found {}, mosquitto's store: midge does not import it, so its \
             retained messages and sessions are not restored (README \"Switching from \
             mosquitto\" shows how to carry retained messages over)",
            db.display()
        );
    }
}
