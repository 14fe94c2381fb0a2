//! Well-formed client packets for the `engine` target, each built from a
//! few bytes of the script with the crate's own encoder, from small sets
//! of client ids, topics and filters, so that clients collide on ids,
//! match each other's subscriptions, share groups and reuse packet ids.

use bytes::Bytes;
use midge::protocol::{
    Ack, Connect, LastWill, Packet, Properties, ProtocolLevel, Publish, QoS, ReasonAndProperties,
    ReasonCode, RetainHandling, Subscribe, SubscriptionOptions, Unsubscribe,
};

const CLIENT_IDS: [&str; 4] = ["a", "b", "c", ""];
/// "" is valid only with a Topic Alias (MQTT 5); `$SYS/...` is the broker's.
const TOPICS: [&str; 6] = ["a", "a/b", "b/c", "a/b/c", "$SYS/x", ""];
const FILTERS: [&str; 10] = [
    "a",
    "a/b",
    "a/+",
    "#",
    "+/c",
    "a/#",
    "$share/g/a/b",
    "$share/g/#",
    "$share/h/+/c",
    "$SYS/#",
];
/// Small, so that the engine's own packet ids (from 1) are hit.
const PACKET_IDS: [u16; 5] = [1, 2, 3, 4, 0];

/// The bytes of a script, read front to back; zeros once it runs out.
pub struct Script<'a>(pub &'a [u8]);

impl Script<'_> {
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }

    fn pick<T: Copy>(&mut self, set: &[T]) -> T {
        set[usize::from(self.byte()) % set.len()]
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn qos(&mut self) -> QoS {
        self.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
    }

    /// Mostly a few bytes; sometimes up to ~33 KB (memory and output
    /// limits), made up rather than read, to keep scripts short.
    fn payload(&mut self) -> Bytes {
        let b = self.byte();
        if b < 224 {
            Bytes::copy_from_slice(self.take(usize::from(b % 16)))
        } else {
            Bytes::from(vec![b; usize::from(b - 223) * 1_000])
        }
    }
}

/// A well-formed packet of the kind the script picks, as a client speaking
/// `level` would send it (a CONNECT picks its own level).
pub fn packet(s: &mut Script, level: ProtocolLevel) -> Packet {
    let v5 = level == ProtocolLevel::V5;
    match s.byte() % 12 {
        0 => connect(s),
        1 | 2 => Packet::Publish(publish(s, v5)),
        3 => subscribe(s, v5),
        4 => unsubscribe(s, v5),
        5 => Packet::PubAck(ack(s, v5)),
        6 => Packet::PubRec(ack(s, v5)),
        7 => Packet::PubRel(ack(s, v5)),
        8 => Packet::PubComp(ack(s, v5)),
        9 => Packet::PingReq,
        10 => disconnect(s, v5),
        _ => auth(s),
    }
}

fn connect(s: &mut Script) -> Packet {
    let level = s.pick(&[ProtocolLevel::V31, ProtocolLevel::V311, ProtocolLevel::V5]);
    let v5 = level == ProtocolLevel::V5;
    let mut properties = Properties::NONE;
    if v5 && s.flag() {
        let p = properties.values_mut();
        p.session_expiry_interval = s.pick(&[None, Some(0), Some(30), Some(u32::MAX)]);
        p.receive_maximum = s.pick(&[None, Some(1), Some(2), Some(100)]);
        p.topic_alias_maximum = s.pick(&[None, Some(2), Some(20)]);
        p.maximum_packet_size = s.pick(&[None, Some(40), Some(300)]);
        p.request_problem_information = s.pick(&[None, Some(false)]);
        p.authentication_method = s
            .pick(&[None, None, Some("x"), Some("y")])
            .map(String::from);
        if p.authentication_method.is_some() {
            p.authentication_data = auth_data(s);
        }
    }
    Packet::Connect(Box::new(Connect {
        level: Some(level),
        clean_session: s.flag(),
        keep_alive: s.pick(&[0, 1, 10, 60]),
        client_id: s.pick(&CLIENT_IDS).to_string(),
        will: s.flag().then(|| will(s, v5)),
        username: None,
        password: None,
        properties,
    }))
}

fn will(s: &mut Script, v5: bool) -> LastWill {
    let mut properties = Properties::NONE;
    if v5 && s.flag() {
        let p = properties.values_mut();
        p.will_delay_interval = s.pick(&[None, Some(0), Some(5), Some(200)]);
        p.message_expiry_interval = s.pick(&[None, Some(1), Some(50)]);
    }
    LastWill {
        topic: s.pick(&TOPICS[..4]).into(),
        payload: s.payload(),
        qos: s.qos(),
        retain: s.flag(),
        properties,
    }
}

fn publish(s: &mut Script, v5: bool) -> Publish {
    let qos = s.qos();
    let flags = s.byte();
    let mut properties = Properties::NONE;
    if v5 && s.flag() {
        let p = properties.values_mut();
        p.topic_alias = s.pick(&[None, Some(1), Some(2), Some(11)]);
        p.message_expiry_interval = s.pick(&[None, Some(0), Some(1), Some(30)]);
        p.payload_format_indicator = s.pick(&[None, Some(true)]);
        p.response_topic = s.pick(&[None, Some("r")]).map(String::from);
    }
    Publish {
        dup: flags & 1 == 1 && qos != QoS::AtMostOnce,
        qos,
        retain: flags & 2 == 2,
        topic: s.pick(&TOPICS).into(),
        pkid: if qos == QoS::AtMostOnce {
            0
        } else {
            s.pick(&PACKET_IDS)
        },
        payload: s.payload(),
        properties,
    }
}

fn subscribe(s: &mut Script, v5: bool) -> Packet {
    let pkid = s.pick(&PACKET_IDS);
    let count = 1 + usize::from(s.byte() % 2);
    let filters = (0..count)
        .map(|_| {
            let filter = s.pick(&FILTERS).to_string();
            let o = s.byte();
            let options = SubscriptionOptions {
                qos: QoS::from_u8(o % 3).unwrap_or(QoS::AtMostOnce),
                no_local: v5 && o & 4 != 0,
                retain_as_published: v5 && o & 8 != 0,
                retain_handling: match (v5, (o >> 4) % 3) {
                    (true, 1) => RetainHandling::OnNewSubscription,
                    (true, 2) => RetainHandling::Never,
                    _ => RetainHandling::OnSubscribe,
                },
            };
            (filter, options)
        })
        .collect();
    let mut properties = Properties::NONE;
    if v5 && s.flag() {
        properties.values_mut().subscription_identifiers = vec![s.pick(&[1, 7])];
    }
    Packet::Subscribe(Subscribe {
        pkid,
        filters,
        properties,
    })
}

fn unsubscribe(s: &mut Script, v5: bool) -> Packet {
    let pkid = s.pick(&PACKET_IDS);
    let filters = vec![s.pick(&FILTERS).to_string()];
    let mut properties = Properties::NONE;
    if v5 && s.flag() {
        let pair = ("k".to_string(), "v".to_string());
        properties.values_mut().user_properties = vec![pair];
    }
    Packet::Unsubscribe(Unsubscribe {
        pkid,
        filters,
        properties,
    })
}

fn ack(s: &mut Script, v5: bool) -> Ack {
    let mut ack = Ack::new(s.pick(&PACKET_IDS[..4]));
    if v5 {
        ack.reason = s.pick(&[
            ReasonCode::Success,
            ReasonCode::UnspecifiedError,
            ReasonCode::PacketIdentifierNotFound,
        ]);
    }
    ack
}

fn disconnect(s: &mut Script, v5: bool) -> Packet {
    let mut d = ReasonAndProperties::new(ReasonCode::Success);
    if v5 {
        d.reason = s.pick(&[
            ReasonCode::Success,
            ReasonCode::DisconnectWithWillMessage,
            ReasonCode::UnspecifiedError,
        ]);
        let expiry = s.pick(&[None, Some(0), Some(60)]);
        if expiry.is_some() {
            d.properties.values_mut().session_expiry_interval = expiry;
        }
    }
    Packet::Disconnect(d)
}

/// MQTT 5 only (the encoder refuses it at other levels).
fn auth(s: &mut Script) -> Packet {
    let mut a = ReasonAndProperties::new(s.pick(&[
        ReasonCode::ContinueAuthentication,
        ReasonCode::ReAuthenticate,
        ReasonCode::Success,
    ]));
    if s.flag() {
        let p = a.properties.values_mut();
        p.authentication_method = Some("x".to_string());
        p.authentication_data = auth_data(s);
    }
    Packet::Auth(a)
}

/// Data the driver's method "x" asks for more of (none), accepts ("d") or
/// refuses (anything else).
fn auth_data(s: &mut Script) -> Option<Bytes> {
    s.pick(&[None, Some(&b"d"[..]), Some(&b"e"[..])])
        .map(Bytes::from_static)
}
