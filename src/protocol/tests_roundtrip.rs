//! Encode -> decode gives the same packet, for every packet type at every
//! level, decoded by the side that receives it: whole, in place
//! (`decode_ref`) and split at every byte.

use super::*;
use bytes::BytesMut;

const LEVELS: [ProtocolLevel; 3] = [ProtocolLevel::V31, ProtocolLevel::V311, ProtocolLevel::V5];

fn props(f: impl FnOnce(&mut PropertyValues)) -> Properties {
    let mut v = PropertyValues::default();
    f(&mut v);
    v.into()
}

fn user(v: &mut PropertyValues) {
    v.user_properties = vec![("k".into(), "2".into()), ("k".into(), "1".into())];
}

/// Properties only where the level has them.
fn at(level: ProtocolLevel, p: Properties) -> Properties {
    if level == ProtocolLevel::V5 {
        p
    } else {
        Properties::NONE
    }
}

fn v5_only(level: ProtocolLevel, v5: ReasonCode, v3: ReasonCode) -> ReasonCode {
    if level == ProtocolLevel::V5 {
        v5
    } else {
        v3
    }
}

fn connect(level: ProtocolLevel) -> Packet {
    Packet::Connect(Box::new(Connect {
        level: Some(level),
        clean_session: true,
        keep_alive: 60,
        client_id: "client-1".into(),
        will: Some(LastWill {
            topic: "will/t".into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: at(
                level,
                props(|v| {
                    v.will_delay_interval = Some(30);
                    v.payload_format_indicator = Some(true);
                    v.message_expiry_interval = Some(3600);
                    v.content_type = Some("text/plain".into());
                    v.response_topic = Some("reply/here".into());
                    v.correlation_data = Some(Bytes::from_static(&[0, 0xFF, 0]));
                    user(v);
                }),
            ),
        }),
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"secret")),
        properties: at(
            level,
            props(|v| {
                v.session_expiry_interval = Some(0xFFFF_FFFF);
                v.receive_maximum = Some(10);
                v.maximum_packet_size = Some(1 << 20);
                v.topic_alias_maximum = Some(5);
                v.request_response_information = Some(true);
                v.request_problem_information = Some(false);
                v.authentication_method = Some("SCRAM-SHA-1".into());
                v.authentication_data = Some(Bytes::from_static(b"first"));
                user(v);
            }),
        ),
    }))
}

fn publish(level: ProtocolLevel, from_server: bool) -> Packet {
    Packet::Publish(Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        retain: true,
        topic: "a/b".into(),
        pkid: 7,
        payload: Bytes::from_static(b"hello"),
        properties: at(
            level,
            props(|v| {
                v.payload_format_indicator = Some(false);
                v.message_expiry_interval = Some(9);
                v.topic_alias = Some(3);
                if from_server {
                    v.subscription_identifiers = vec![1, 268_435_455, 128];
                }
                user(v);
            }),
        ),
    })
}

fn ack(level: ProtocolLevel, reason: ReasonCode) -> Ack {
    Ack {
        pkid: 0xBEEF,
        reason: v5_only(level, reason, ReasonCode::Success),
        properties: at(level, props(|v| v.reason_string = Some("why".into()))),
    }
}

fn reason_block(level: ProtocolLevel, reason: ReasonCode, p: Properties) -> ReasonAndProperties {
    ReasonAndProperties {
        reason: v5_only(level, reason, ReasonCode::Success),
        properties: at(level, p),
    }
}

/// What a client sends; decoded with `Role::Server`.
fn client_packets(level: ProtocolLevel) -> Vec<Packet> {
    let v5 = level == ProtocolLevel::V5;
    let full = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::Never,
    };
    let mut list = vec![
        connect(level),
        publish(level, false),
        Packet::PubAck(ack(level, ReasonCode::NoMatchingSubscribers)),
        Packet::PubRec(ack(level, ReasonCode::QuotaExceeded)),
        Packet::PubRel(ack(level, ReasonCode::PacketIdentifierNotFound)),
        Packet::PubComp(ack(level, ReasonCode::Success)),
        Packet::PubAck(Ack::new(1)),
        Packet::Subscribe(Subscribe {
            pkid: 2,
            filters: vec![
                ("a/+".into(), SubscriptionOptions::qos(QoS::ExactlyOnce)),
                (
                    "b/#".into(),
                    if v5 {
                        full
                    } else {
                        SubscriptionOptions::qos(QoS::AtLeastOnce)
                    },
                ),
            ],
            properties: at(level, props(|v| v.subscription_identifiers = vec![77])),
        }),
        Packet::Unsubscribe(Unsubscribe {
            pkid: 3,
            filters: vec!["a/+".into(), "b/#".into()],
            properties: at(level, props(user)),
        }),
        Packet::PingReq,
        Packet::Disconnect(reason_block(
            level,
            ReasonCode::DisconnectWithWillMessage,
            props(|v| v.session_expiry_interval = Some(5)),
        )),
        Packet::Disconnect(ReasonAndProperties::new(ReasonCode::Success)),
    ];
    if v5 {
        list.push(Packet::Auth(ReasonAndProperties {
            reason: ReasonCode::ReAuthenticate,
            properties: props(|v| {
                v.authentication_method = Some("m".into());
                v.authentication_data = Some(Bytes::from_static(b"d"));
            }),
        }));
        list.push(Packet::Auth(ReasonAndProperties::new(ReasonCode::Success)));
        list.push(Packet::Disconnect(ReasonAndProperties::new(
            ReasonCode::ProtocolError,
        )));
    }
    list
}

/// What a server sends; decoded with `Role::Client`.
fn server_packets(level: ProtocolLevel) -> Vec<Packet> {
    let v5 = level == ProtocolLevel::V5;
    let refused = v5_only(
        level,
        ReasonCode::NotAuthorized,
        ReasonCode::UnspecifiedError,
    );
    let mut list = vec![
        Packet::ConnAck(ConnAck {
            session_present: level != ProtocolLevel::V31,
            code: ReasonCode::Success,
            properties: at(
                level,
                props(|v| {
                    v.session_expiry_interval = Some(10);
                    v.assigned_client_identifier = Some("auto-1".into());
                    v.server_keep_alive = Some(30);
                    v.response_information = Some("resp/".into());
                    v.receive_maximum = Some(100);
                    v.topic_alias_maximum = Some(10);
                    v.maximum_qos = Some(QoS::AtLeastOnce);
                    v.retain_available = Some(false);
                    v.maximum_packet_size = Some(1000);
                    v.wildcard_subscription_available = Some(true);
                    v.subscription_identifiers_available = Some(false);
                    v.shared_subscription_available = Some(true);
                    v.reason_string = Some("welcome".into());
                    v.authentication_method = Some("m".into());
                    user(v);
                }),
            ),
        }),
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::BadUserNameOrPassword,
            properties: Properties::NONE,
        }),
        publish(level, true),
        Packet::PubAck(ack(level, ReasonCode::NotAuthorized)),
        Packet::PubRec(ack(level, ReasonCode::Success)),
        Packet::PubRel(ack(level, ReasonCode::Success)),
        Packet::PubComp(ack(level, ReasonCode::PacketIdentifierNotFound)),
        Packet::SubAck(SubAck {
            pkid: 2,
            codes: vec![
                ReasonCode::GrantedQoS2,
                ReasonCode::Success,
                ReasonCode::GrantedQoS1,
                refused,
            ],
            properties: at(level, props(user)),
        }),
        Packet::UnsubAck(UnsubAck {
            pkid: 3,
            codes: if v5 {
                vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
            } else {
                Vec::new()
            },
            properties: at(level, props(|v| v.reason_string = Some("ok".into()))),
        }),
        Packet::PingResp,
    ];
    if v5 {
        list.push(Packet::Disconnect(ReasonAndProperties {
            reason: ReasonCode::UseAnotherServer,
            properties: props(|v| v.server_reference = Some("other:1883".into())),
        }));
        list.push(Packet::Disconnect(ReasonAndProperties::new(
            ReasonCode::SessionTakenOver,
        )));
        list.push(Packet::Auth(ReasonAndProperties {
            reason: ReasonCode::ContinueAuthentication,
            properties: props(|v| v.authentication_method = Some("m".into())),
        }));
    }
    list
}

fn decode_all(
    wire: &[u8],
    level: ProtocolLevel,
    role: Role,
) -> Result<Option<Packet>, DecodeError> {
    let mut buf = BytesMut::from(wire);
    let got = decode(&mut buf, Some(level), role, &Limits::default());
    if let Ok(Some(_)) = got {
        assert!(buf.is_empty(), "bytes left after {got:?}");
    }
    got
}

fn round_trip(packet: &Packet, level: ProtocolLevel, role: Role) {
    let mut wire = BytesMut::new();
    encode(packet, level, &mut wire).expect("encodable");
    assert_eq!(
        decode_all(&wire, level, role),
        Ok(Some(packet.clone())),
        "{level:?} {role:?} {wire:02x?}"
    );
    // In place: the same packet; a PUBLISH's payload not copied.
    let limits = Limits::default();
    let Ok(Some((in_place, used))) = decode_ref(&wire, Some(level), role, &limits) else {
        panic!("decode_ref refused {packet:?}");
    };
    assert_eq!(used, wire.len());
    let owned = match in_place {
        PacketRef::Publish(p) => {
            assert!(wire.as_ptr_range().contains(&p.payload.as_ptr()));
            Packet::Publish(p.into_publish())
        }
        PacketRef::Other(p) => p,
    };
    assert_eq!(&owned, packet);
    for cut in 0..wire.len() {
        let mut buf = BytesMut::from(&wire[..cut]);
        let limits = Limits::default();
        assert_eq!(
            decode(&mut buf, Some(level), role, &limits),
            Ok(None),
            "cut at {cut}"
        );
        buf.extend_from_slice(&wire[cut..]);
        let again = decode(&mut buf, Some(level), role, &limits);
        assert_eq!(again, Ok(Some(packet.clone())), "joined at {cut}");
    }
}

#[test]
fn every_packet_round_trips_at_every_level_for_both_roles() {
    for level in LEVELS {
        for p in client_packets(level) {
            round_trip(&p, level, Role::Server);
        }
        for p in server_packets(level) {
            round_trip(&p, level, Role::Client);
        }
    }
}

#[test]
fn each_role_refuses_the_other_sides_packets() {
    for level in LEVELS {
        for (packets, role) in [
            (client_packets(level), Role::Client),
            (server_packets(level), Role::Server),
        ] {
            for p in packets {
                let one_way = !matches!(
                    p,
                    Packet::Publish(_)
                        | Packet::PubAck(_)
                        | Packet::PubRec(_)
                        | Packet::PubRel(_)
                        | Packet::PubComp(_)
                        | Packet::Disconnect(_)
                        | Packet::Auth(_)
                );
                let mut wire = BytesMut::new();
                encode(&p, level, &mut wire).expect("encodable");
                let got = decode_all(&wire, level, role);
                if one_way {
                    assert!(
                        matches!(got, Err(DecodeError::BadPacketType(_))),
                        "{p:?} decoded by {role:?}: {got:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn fast_paths_write_what_encode_writes() {
    for level in LEVELS {
        let Packet::Publish(p) = publish(level, true) else {
            unreachable!()
        };
        let flags = PublishFlags {
            qos: p.qos,
            pkid: p.pkid,
            dup: p.dup,
            retain: p.retain,
        };
        let mut fast = BytesMut::new();
        encode_publish(&mut fast, level, &p.topic, &p.payload, &p.properties, flags);
        assert_eq!(
            fast.len(),
            publish_len(level, &p.topic, p.payload.len(), &p.properties, p.qos)
        );
        let mut general = BytesMut::new();
        encode(&Packet::Publish(p), level, &mut general).expect("encodable");
        assert_eq!(fast, general, "{level:?}");

        let code = v5_only(level, ReasonCode::QuotaExceeded, ReasonCode::Success);
        let a = Ack {
            pkid: 9,
            reason: code,
            properties: Properties::NONE,
        };
        for (kind, packet) in [
            (AckKind::PubAck, Packet::PubAck(a.clone())),
            (AckKind::PubRec, Packet::PubRec(a.clone())),
        ] {
            let (mut fast, mut general) = (BytesMut::new(), BytesMut::new());
            encode_ack(&mut fast, level, kind, 9, code);
            encode(&packet, level, &mut general).expect("encodable");
            assert_eq!(fast, general);
        }
        let (mut fast, mut general) = (BytesMut::new(), BytesMut::new());
        encode_ack(&mut fast, level, AckKind::PubRel, 9, ReasonCode::Success);
        encode(&Packet::PubRel(Ack::new(9)), level, &mut general).expect("encodable");
        assert_eq!(fast, general);

        for packet in server_packets(level) {
            let mut fast = BytesMut::new();
            match &packet {
                Packet::ConnAck(c) => {
                    encode_connack(&mut fast, level, c.session_present, c.code, &c.properties)
                }
                Packet::SubAck(s) => {
                    encode_suback(&mut fast, level, s.pkid, &s.codes, &s.properties)
                }
                Packet::UnsubAck(u) => {
                    encode_unsuback(&mut fast, level, u.pkid, &u.codes, &u.properties)
                }
                Packet::PingResp => encode_pingresp(&mut fast),
                _ => continue,
            }
            let mut general = BytesMut::new();
            encode(&packet, level, &mut general).expect("encodable");
            assert_eq!(fast, general, "{packet:?}");
        }
    }
}

#[test]
fn short_forms_are_written_when_they_can_be() {
    let mut out = BytesMut::new();
    encode_ack(
        &mut out,
        ProtocolLevel::V5,
        AckKind::PubAck,
        1,
        ReasonCode::Success,
    );
    assert_eq!(&out[..], [0x40, 0x02, 0x00, 0x01]);
    out.clear();
    encode_ack(
        &mut out,
        ProtocolLevel::V5,
        AckKind::PubRec,
        1,
        ReasonCode::QuotaExceeded,
    );
    assert_eq!(&out[..], [0x50, 0x03, 0x00, 0x01, 0x97]);
    out.clear();
    let d = Packet::Disconnect(ReasonAndProperties::new(ReasonCode::Success));
    encode(&d, ProtocolLevel::V5, &mut out).expect("encodable");
    assert_eq!(&out[..], [0xE0, 0x00]);
    out.clear();
    let d = Packet::Disconnect(ReasonAndProperties::new(ReasonCode::SessionTakenOver));
    encode(&d, ProtocolLevel::V5, &mut out).expect("encodable");
    assert_eq!(&out[..], [0xE0, 0x01, 0x8E]);
    // A 3.1.1 CONNACK is the 4-byte form, whatever the code.
    out.clear();
    encode_connack(
        &mut out,
        ProtocolLevel::V311,
        false,
        ReasonCode::Banned,
        &Properties::NONE,
    );
    assert_eq!(&out[..], [0x20, 0x02, 0x00, 0x05]);
    out.clear();
    encode_connack(
        &mut out,
        ProtocolLevel::V5,
        true,
        ReasonCode::Success,
        &Properties::NONE,
    );
    assert_eq!(&out[..], [0x20, 0x03, 0x01, 0x00, 0x00]);
}

#[test]
fn encode_refuses_what_cannot_be_written() {
    let mut out = BytesMut::new();
    let auth = Packet::Auth(ReasonAndProperties::new(ReasonCode::Success));
    assert_eq!(
        encode(&auth, ProtocolLevel::V311, &mut out),
        Err(EncodeError::NotInLevel)
    );
    let long = Packet::Unsubscribe(Unsubscribe {
        pkid: 1,
        filters: vec!["x".repeat(70_000)],
        properties: Properties::NONE,
    });
    assert_eq!(
        encode(&long, ProtocolLevel::V311, &mut out),
        Err(EncodeError::FieldTooLong)
    );
    let huge = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t".into(),
        pkid: 0,
        payload: Bytes::from(vec![0; MAX_REMAINING_LENGTH]),
        properties: Properties::NONE,
    });
    assert!(matches!(
        encode(&huge, ProtocolLevel::V311, &mut out),
        Err(EncodeError::TooLarge(_))
    ));
    assert!(out.is_empty());
}

#[test]
fn packets_stay_small_and_empty_properties_allocate_nothing() {
    assert_eq!(std::mem::size_of::<Properties>(), 8);
    // The 3.x-era sizes, properties included.
    assert!(std::mem::size_of::<Publish>() <= 64);
    assert!(std::mem::size_of::<Packet>() <= 64);
    assert!(std::mem::size_of::<LastWill>() <= 64);
    let empty: Properties = PropertyValues::default().into();
    assert_eq!(empty, Properties::NONE);
    assert!(empty.is_empty() && empty.get().is_none());
    let mut p = Properties::NONE;
    p.values_mut().topic_alias = Some(1);
    assert!(!p.is_empty());
}
