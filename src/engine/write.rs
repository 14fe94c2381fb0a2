//! Writing one copy of a message to a connection: its size check against
//! an MQTT 5 client's Maximum Packet Size, its form at the connection's
//! protocol level (the received bytes themselves when they are that form),
//! and the resends of the in-flight window at a reconnect.

use super::*;

/// One copy of a message for one subscriber.
#[derive(Clone, Copy)]
pub(super) struct Copy<'a> {
    pub msg: MessageView<'a>,
    pub qos: QoS,
    pub retain: bool,
    /// 0 for QoS 0.
    pub pkid: u16,
    /// A resend [MQTT-3.3.1-1].
    pub dup: bool,
    /// See [`Delivery::sub_id`].
    pub sub_id: u32,
}

impl<'a> Copy<'a> {
    /// A first send of a delivery under `pkid`.
    pub fn of(d: &'a Delivery, pkid: u16) -> Copy<'a> {
        Copy {
            msg: d.msg.view(),
            qos: d.qos,
            retain: d.retain,
            pkid,
            dup: false,
            sub_id: d.sub_id,
        }
    }

    /// Its PUBLISH's header flags and packet id.
    fn flags(&self) -> PublishFlags {
        PublishFlags {
            qos: self.qos,
            pkid: self.pkid,
            dup: self.dup,
            retain: self.retain,
        }
    }
}

/// True if the copy may go to this connection: always below MQTT 5; for
/// an MQTT 5 client, unless it is larger than the client's Maximum Packet
/// Size (then it is skipped for that client alone, as if sent
/// [MQTT-3.1.2-25]).
#[inline]
pub(super) fn fits(conn: &Conn, sess: &Session, copy: &Copy, now_ms: u64) -> bool {
    match conn.v5.as_deref() {
        Some(v5) if v5.maximum_packet_size != u32::MAX => fits_within(v5, sess, copy, now_ms),
        _ => true,
    }
}

/// `fits` for a client with a Maximum Packet Size: the copy's size as it
/// will be written, with the Topic Alias it would get and without the
/// topic if the client knows the alias.
#[inline(never)]
fn fits_within(v5: &crate::conn::V5, sess: &Session, copy: &Copy, now_ms: u64) -> bool {
    let m = copy.msg;
    let (topic_alias, known) = v5.alias_peek(m.topic);
    let topic = if known { "" } else { m.topic };
    let len = sess.with_subscription_ids(copy.sub_id, m.topic, |ids| {
        let extra = Outbound {
            message_expiry: m.expiry_left(now_ms),
            subscription_ids: ids,
            topic_alias,
        };
        let payload = m.payload.len();
        protocol::publish_out_len(topic, payload, m.properties, &extra, copy.qos)
    });
    len <= v5.maximum_packet_size as usize
}

pub(super) fn write_publish(
    conn: &mut Conn,
    sess: &Session,
    copy: Copy,
    now_ms: u64,
    stats: &mut Stats,
) {
    stats.messages_sent += 1;
    stats.publish_bytes_sent += copy.msg.payload.len() as u64;
    // An MQTT 5 copy with something to add goes the long way; one with
    // nothing (no properties, expiry, identifier or aliases) is written
    // here like a 3.1.1 one, the level adding the empty property block.
    if let Some(v5) = conn.v5.as_deref() {
        let m = copy.msg;
        let plain = m.properties.is_empty() && m.expires_at == 0 && copy.sub_id == 0;
        if !plain || v5.aliases_out_max > 0 {
            return write_publish_v5(conn, sess, copy, now_ms);
        }
    }
    let level = conn.level.unwrap_or(ProtocolLevel::V311);
    let msg = copy.msg;
    let frame = msg.frame;
    let same = !frame.bytes.is_empty() && frame.v5 == (level == ProtocolLevel::V5);
    if same && copy.qos == QoS::AtMostOnce && !copy.retain {
        // The bytes it came in (see `Frame`): ~50 instructions less than
        // encoding them again (callgrind).
        conn.wbuf().extend_from_slice(frame.bytes);
        return;
    }
    let flags = copy.flags();
    let none = &Properties::NONE;
    protocol::encode_publish(conn.wbuf(), level, msg.topic, msg.payload, none, flags);
}

/// The MQTT 5 form: the message's properties, the time left before it
/// expires, the subscription identifiers, and a Topic Alias if the client
/// takes them.
#[inline(never)]
fn write_publish_v5(conn: &mut Conn, sess: &Session, copy: Copy, now_ms: u64) {
    let msg = copy.msg;
    let (topic_alias, known) = match conn.v5.as_deref_mut() {
        Some(v5) if v5.aliases_out_max > 0 => v5.alias_for(msg.topic),
        _ => (None, false),
    };
    let flags = copy.flags();
    let topic = if known { "" } else { msg.topic };
    let out = conn.wbuf();
    sess.with_subscription_ids(copy.sub_id, msg.topic, |ids| {
        let extra = Outbound {
            message_expiry: msg.expiry_left(now_ms),
            subscription_ids: ids,
            topic_alias,
        };
        let props = msg.properties;
        protocol::encode_publish_out(out, topic, msg.payload, props, &extra, flags);
    });
}

/// Sends an in-flight message again (after a reconnect): the PUBLISH
/// with DUP set and its id, or its PUBREL once PUBREC came. False, with
/// nothing written, for a PUBLISH larger than the Maximum Packet Size of
/// the client's new connection: see [`drop_unsent`].
pub(super) fn resend_inflight(
    conn: &mut Conn,
    sess: &Session,
    f: &Inflight,
    now_ms: u64,
    stats: &mut Stats,
) -> bool {
    match f.stage {
        Stage::Sent => {
            let copy = Copy {
                dup: true,
                ..Copy::of(&f.delivery, f.pkid)
            };
            if !fits(conn, sess, &copy, now_ms) {
                return false;
            }
            write_publish(conn, sess, copy, now_ms, stats);
        }
        Stage::Released => {
            let level = conn.level.unwrap_or(ProtocolLevel::V311);
            let (rel, ok) = (AckKind::PubRel, ReasonCode::Success);
            protocol::encode_ack(conn.wbuf(), level, rel, f.pkid, ok);
        }
    }
    true
}

/// An in-flight message the client's new connection is too small for:
/// done with as if sent [MQTT-3.1.2-25], so it leaves the window (else it
/// would hold a slot for good); the store's record for it, if durable.
pub(super) fn drop_unsent(
    sess: &mut Session,
    f: &Inflight,
    durable: bool,
    stats: &mut Stats,
) -> Option<Record> {
    sess.drop_unsent(f.pkid)?;
    stats.dropped_too_large += 1;
    (durable && f.delivery.seq > 0).then(|| Record::Done {
        client: sess.client_id.to_string(),
        seq: f.delivery.seq,
    })
}

/// Sends a QoS 1/2 message under a fresh packet id and keeps it in flight
/// until acknowledged [MQTT-4.3.2-1], [MQTT-4.3.3-1].
pub(super) fn send_inflight(
    sess: &mut Session,
    conn: &mut Conn,
    delivery: Delivery,
    now_ms: u64,
    stats: &mut Stats,
) -> u16 {
    let pkid = sess.alloc_pkid();
    write_publish(conn, sess, Copy::of(&delivery, pkid), now_ms, stats);
    sess.send(pkid, delivery);
    pkid
}
