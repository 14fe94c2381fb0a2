//! The store's record format: one [`Record`] per change to durable state,
//! its body encoding, the `[u32 length][u32 CRC-32][body]` frame, and the
//! reader that keeps every good record of a log and says where and why it
//! stopped.

/// Largest record accepted when reading (a message is at most 256 MiB).
const MAX_RECORD: usize = 300 * 1024 * 1024;

/// One change, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Retained message of a topic; an empty payload deletes it. With
    /// `meta` (MQTT 5 properties or an expiry) it is written as a type of
    /// its own, so 3.x-only state is written as before.
    Retain {
        topic: String,
        qos: u8,
        payload: Vec<u8>,
        meta: Option<Meta>,
    },
    /// Like `Retain5` (never a delete), with the client that published it
    /// (for `check_retain_source`).
    RetainFrom {
        topic: String,
        qos: u8,
        payload: Vec<u8>,
        meta: Meta,
        client: String,
        username: Option<String>,
    },
    /// A persistent session starts (empty), replacing any with that id.
    Session {
        client: String,
    },
    /// A persistent session ends.
    SessionGone {
        client: String,
    },
    /// The user name a persistent session last connected with (for ACL
    /// checks of its subscriptions after a restart).
    SessionUser {
        client: String,
        username: Option<String>,
    },
    Sub {
        client: String,
        filter: String,
        qos: u8,
    },
    Unsub {
        client: String,
        filter: String,
    },
    /// A QoS 1/2 message enters a session's queue under sequence `seq`
    /// (written by midge before `MsgBody`; still read).
    Msg {
        client: String,
        seq: u64,
        qos: u8,
        retain: bool,
        topic: String,
        payload: Vec<u8>,
    },
    /// Like `Msg`, and the message's topic and payload are stored under
    /// `body` for later `MsgRef`s: a message for many persistent
    /// subscribers is written once. `meta` as for `Retain`.
    MsgBody {
        client: String,
        seq: u64,
        qos: u8,
        retain: bool,
        body: u64,
        topic: String,
        payload: Vec<u8>,
        meta: Option<Meta>,
    },
    /// The message stored earlier (in this log) under `body` enters a
    /// session's queue under sequence `seq`.
    MsgRef {
        client: String,
        seq: u64,
        qos: u8,
        retain: bool,
        body: u64,
    },
    /// Message `seq` was sent with packet id `pkid` (now in flight).
    Sent {
        client: String,
        seq: u64,
        pkid: u16,
    },
    /// PUBREC for message `seq`: only its PUBREL is resent from now on.
    Released {
        client: String,
        seq: u64,
    },
    /// Message `seq` completed or was dropped.
    Done {
        client: String,
        seq: u64,
    },
    /// Inbound QoS 2 id delivered, awaiting PUBREL.
    Qos2In {
        client: String,
        pkid: u16,
    },
    Qos2Rel {
        client: String,
        pkid: u16,
    },
    /// `Sub` with MQTT 5 subscription options or a Subscription Identifier.
    Sub5 {
        client: String,
        filter: String,
        qos: u8,
        /// Bit 0: No Local; bit 1: Retain As Published.
        options: u8,
        id: u32,
    },
    /// A persistent session's Session Expiry Interval (MQTT 5), in
    /// seconds, when it is not "never".
    SessionExpiry {
        client: String,
        expiry: u32,
    },
}

/// What an MQTT 5 message carries besides topic and payload: its
/// properties as a property block, and when it expires, in ms since the
/// Unix epoch (0: never), so the expiry holds across a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub properties: Vec<u8>,
    pub expires_unix_ms: u64,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// What every message record starts with: client, sequence, and QoS with
/// the RETAIN flag in one byte.
fn put_msg_head(out: &mut Vec<u8>, client: &str, seq: u64, qos: u8, retain: bool) {
    put_str(out, client);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(qos | (retain as u8) << 4);
}

fn put_meta(out: &mut Vec<u8>, meta: Option<&Meta>) {
    if let Some(meta) = meta {
        put_bytes(out, &meta.properties);
        out.extend_from_slice(&meta.expires_unix_ms.to_le_bytes());
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

impl Record {
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Retain {
                topic,
                qos,
                payload,
                meta,
            } => {
                out.push(if meta.is_some() { 16 } else { 1 });
                put_str(out, topic);
                out.push(*qos);
                put_bytes(out, payload);
                put_meta(out, meta.as_ref());
            }
            Record::RetainFrom {
                topic,
                qos,
                payload,
                meta,
                client,
                username,
            } => {
                out.push(20);
                put_str(out, topic);
                out.push(*qos);
                put_bytes(out, payload);
                put_meta(out, Some(meta));
                put_str(out, client);
                if let Some(u) = username {
                    put_str(out, u);
                }
            }
            Record::Session { client } => {
                out.push(2);
                put_str(out, client);
            }
            Record::SessionGone { client } => {
                out.push(3);
                put_str(out, client);
            }
            Record::SessionUser { client, username } => {
                out.push(14);
                put_str(out, client);
                if let Some(u) = username {
                    put_str(out, u);
                }
            }
            Record::Sub {
                client,
                filter,
                qos,
            } => {
                out.push(4);
                put_str(out, client);
                put_str(out, filter);
                out.push(*qos);
            }
            Record::Unsub { client, filter } => {
                out.push(5);
                put_str(out, client);
                put_str(out, filter);
            }
            Record::Msg {
                client,
                seq,
                qos,
                retain,
                topic,
                payload,
            } => {
                out.push(6);
                put_msg_head(out, client, *seq, *qos, *retain);
                put_str(out, topic);
                put_bytes(out, payload);
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
                out.push(if meta.is_some() { 17 } else { 12 });
                put_msg_head(out, client, *seq, *qos, *retain);
                out.extend_from_slice(&body.to_le_bytes());
                put_str(out, topic);
                put_bytes(out, payload);
                put_meta(out, meta.as_ref());
            }
            Record::MsgRef {
                client,
                seq,
                qos,
                retain,
                body,
            } => {
                out.push(13);
                put_msg_head(out, client, *seq, *qos, *retain);
                out.extend_from_slice(&body.to_le_bytes());
            }
            Record::Sent { client, seq, pkid } => {
                out.push(7);
                put_str(out, client);
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&pkid.to_le_bytes());
            }
            Record::Released { client, seq } => {
                out.push(8);
                put_str(out, client);
                out.extend_from_slice(&seq.to_le_bytes());
            }
            Record::Done { client, seq } => {
                out.push(9);
                put_str(out, client);
                out.extend_from_slice(&seq.to_le_bytes());
            }
            Record::Qos2In { client, pkid } => {
                out.push(10);
                put_str(out, client);
                out.extend_from_slice(&pkid.to_le_bytes());
            }
            Record::Qos2Rel { client, pkid } => {
                out.push(11);
                put_str(out, client);
                out.extend_from_slice(&pkid.to_le_bytes());
            }
            Record::Sub5 {
                client,
                filter,
                qos,
                options,
                id,
            } => {
                out.push(18);
                put_str(out, client);
                put_str(out, filter);
                out.push(*qos);
                out.push(*options);
                out.extend_from_slice(&id.to_le_bytes());
            }
            Record::SessionExpiry { client, expiry } => {
                out.push(19);
                put_str(out, client);
                out.extend_from_slice(&expiry.to_le_bytes());
            }
        }
    }

    pub(super) fn decode(body: &[u8]) -> Option<Record> {
        let mut r = Cursor { b: body };
        let rec = match r.u8()? {
            kind @ (1 | 16) => Record::Retain {
                topic: r.str()?,
                qos: r.u8()?,
                payload: r.bytes()?,
                meta: r.meta(kind == 16)?,
            },
            20 => Record::RetainFrom {
                topic: r.str()?,
                qos: r.u8()?,
                payload: r.bytes()?,
                meta: r.meta(true)??,
                client: r.str()?,
                username: if r.b.is_empty() { None } else { Some(r.str()?) },
            },
            2 => Record::Session { client: r.str()? },
            3 => Record::SessionGone { client: r.str()? },
            14 => Record::SessionUser {
                client: r.str()?,
                username: if r.b.is_empty() { None } else { Some(r.str()?) },
            },
            4 => Record::Sub {
                client: r.str()?,
                filter: r.str()?,
                qos: r.u8()?,
            },
            5 => Record::Unsub {
                client: r.str()?,
                filter: r.str()?,
            },
            6 => {
                let (client, seq, qos, retain) = r.msg_head()?;
                Record::Msg {
                    client,
                    seq,
                    qos,
                    retain,
                    topic: r.str()?,
                    payload: r.bytes()?,
                }
            }
            7 => Record::Sent {
                client: r.str()?,
                seq: r.u64()?,
                pkid: r.u16()?,
            },
            8 => Record::Released {
                client: r.str()?,
                seq: r.u64()?,
            },
            9 => Record::Done {
                client: r.str()?,
                seq: r.u64()?,
            },
            10 => Record::Qos2In {
                client: r.str()?,
                pkid: r.u16()?,
            },
            11 => Record::Qos2Rel {
                client: r.str()?,
                pkid: r.u16()?,
            },
            kind @ (12 | 17) => {
                let (client, seq, qos, retain) = r.msg_head()?;
                Record::MsgBody {
                    client,
                    seq,
                    qos,
                    retain,
                    body: r.u64()?,
                    topic: r.str()?,
                    payload: r.bytes()?,
                    meta: r.meta(kind == 17)?,
                }
            }
            13 => {
                let (client, seq, qos, retain) = r.msg_head()?;
                Record::MsgRef {
                    client,
                    seq,
                    qos,
                    retain,
                    body: r.u64()?,
                }
            }
            18 => Record::Sub5 {
                client: r.str()?,
                filter: r.str()?,
                qos: r.u8()?,
                options: r.u8()?,
                id: r.u32()?,
            },
            19 => Record::SessionExpiry {
                client: r.str()?,
                expiry: r.u32()?,
            },
            _ => return None,
        };
        r.b.is_empty().then_some(rec)
    }
}

struct Cursor<'a> {
    b: &'a [u8],
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.b.len() < n {
            return None;
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    /// A [`Meta`] if the record's type says one follows (`present`);
    /// `Some(None)` if not, `None` if it is cut short.
    fn meta(&mut self, present: bool) -> Option<Option<Meta>> {
        if !present {
            return Some(None);
        }
        Some(Some(Meta {
            properties: self.bytes()?,
            expires_unix_ms: self.u64()?,
        }))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    /// `put_msg_head`'s fields: (client, seq, qos, retain).
    fn msg_head(&mut self) -> Option<(String, u64, u8, bool)> {
        let (client, seq, flags) = (self.str()?, self.u64()?, self.u8()?);
        Some((client, seq, flags & 0x0f, flags & 0x10 != 0))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        Some(self.take(n)?.to_vec())
    }
}

pub(super) fn frame(rec: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    frame_unsealed(rec, out);
    seal_frame(&mut out[start..]);
}

/// A frame whose checksum is left 0: one inside a batch needs none (the
/// batch's covers it), or gets it from [`seal_frame`] when it goes alone.
pub(super) fn frame_unsealed(rec: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    rec.encode(out);
    let len = ((out.len() - start - 8) as u32).to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
}

/// Puts the checksum into the one frame in `frame`.
pub(super) fn seal_frame(frame: &mut [u8]) {
    if let Some((head, body)) = frame.split_at_mut_checked(8) {
        head[4..].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    }
}

/// The type of a batch: the records of one commit in one frame
/// (`[length][CRC-32][BATCH][frame]...`), so a torn write keeps all of them
/// or none (a QoS 2 id and its message, say). The frames inside carry no
/// checksum of their own (0): every byte is checksummed once.
const BATCH: u8 = 15;
/// Bytes before a batch's first frame: its own frame header and type.
pub(super) const BATCH_HEAD: usize = 9;

/// The bytes to write for a commit: `pending` is [`BATCH_HEAD`] spare
/// bytes and then `records` unsealed frames. One record goes as it is
/// (sealed); more are sealed into one batch.
pub(super) fn seal_batch(pending: &mut [u8], records: usize) -> &[u8] {
    if records <= 1 {
        let frame = pending.get_mut(BATCH_HEAD..).unwrap_or_default();
        seal_frame(frame);
        return frame;
    }
    let len = (pending.len() - 8) as u32;
    pending[8] = BATCH;
    let crc = crc32fast::hash(&pending[8..]);
    pending[..4].copy_from_slice(&len.to_le_bytes());
    pending[4..8].copy_from_slice(&crc.to_le_bytes());
    pending
}

/// How `read_log` names a record with a good checksum and a type newer
/// than this version.
pub(super) const UNKNOWN: &str = "unknown record type";

/// The highest record type this version writes and reads (besides
/// [`BATCH`], 15).
pub(super) const LAST_KNOWN_TYPE: u8 = 20;

/// Reads every good record; stops at the first damaged one.
pub(super) fn read_log(data: &[u8]) -> (Vec<Record>, usize, Option<String>) {
    let mut records = Vec::new();
    let (good, damage) = read_frames(data, &mut records, true);
    (records, good, damage)
}

/// `read_log` into `records`; a batch's frames are read in turn (not
/// `outer`: their checksum is the batch's), all or none of them.
fn read_frames(data: &[u8], records: &mut Vec<Record>, outer: bool) -> (usize, Option<String>) {
    let mut at = 0;
    while at < data.len() {
        let Some(head) = data.get(at..at + 8) else {
            return (at, Some(format!("torn record header at byte {at}")));
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_RECORD {
            return (at, Some(format!("impossible record length at byte {at}")));
        }
        let Some(body) = data.get(at + 8..at + 8 + len) else {
            return (at, Some(format!("torn record at byte {at}")));
        };
        if outer && crc32fast::hash(body) != crc {
            return (at, Some(format!("checksum mismatch at byte {at}")));
        }
        if let (true, Some((&BATCH, frames))) = (outer, body.split_first()) {
            let mut batch = Vec::new();
            if let (_, Some(why)) = read_frames(frames, &mut batch, false) {
                let why = if why.starts_with(UNKNOWN) {
                    why
                } else {
                    format!("damaged batch at byte {at} ({why})")
                };
                return (at, Some(why));
            }
            records.append(&mut batch);
            at += 8 + len;
            continue;
        }
        let Some(rec) = Record::decode(body) else {
            // A type this version does not know, with a good checksum, is
            // not damage but a newer midge's record: cutting it would throw
            // good data away, so the caller refuses to start instead. An
            // empty body (zeros after a crash pass the checksum) or a known
            // type that does not decode is damage, cut as such.
            return match body.first() {
                Some(&kind) if kind > LAST_KNOWN_TYPE && kind != BATCH => {
                    (at, Some(format!("{UNKNOWN} {kind} at byte {at}")))
                }
                _ => (at, Some(format!("undecodable record at byte {at}"))),
            };
        };
        records.push(rec);
        at += 8 + len;
    }
    (at, None)
}
