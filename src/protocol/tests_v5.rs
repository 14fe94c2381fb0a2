//! MQTT 5 decoding rules: CONNECT, properties (placement, repetition,
//! direction, ranges), reason codes and short forms, subscription options.

use super::tests_decode::{code, dec, dec5, dec5_client, dec_at, publish_payload};
use super::*;
use bytes::BytesMut;

/// The spec's example: Session Expiry 10 s, Clean Start 0, ClientId `p`.
pub(super) const CONNECT5: [u8; 21] = [
    0x10, 0x13, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x00, 0x00, 0x3C, 0x05, 0x11, 0x00, 0x00,
    0x00, 0x0A, 0x00, 0x01, b'p',
];

#[test]
fn v5_connect_with_properties_is_decoded() {
    let Ok(Some(Packet::Connect(c))) = dec_at(&CONNECT5, None, Role::Server) else {
        panic!("v5 CONNECT refused");
    };
    assert_eq!(c.level, Some(ProtocolLevel::V5));
    assert_eq!(c.client_id, "p");
    assert!(!c.clean_session);
    let v = c.properties.get().expect("properties");
    assert_eq!(v.session_expiry_interval, Some(10));
    // A server without MQTT 5 reads no further than the version, and
    // answers as for any unsupported level [MQTT-3.1.2-2].
    let mut buf = BytesMut::from(&CONNECT5[..]);
    let limits = Limits {
        mqtt5: false,
        ..Limits::default()
    };
    let Ok(Some(Packet::Connect(c))) = decode(&mut buf, None, Role::Server, &limits) else {
        panic!("v5 CONNECT not decoded as unsupported");
    };
    assert_eq!(c.level, None);
}

#[test]
fn v5_connect_rules() {
    // [MQTT-2.2.2-1]: no Property Length: `01 61` is read as a 353-byte id.
    let no_props = [
        0x10, 0x0D, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 1, b'a',
    ];
    assert_eq!(
        code(dec_at(&no_props, None, Role::Server)),
        ReasonCode::MalformedPacket
    );
    // Maximum QoS is a CONNACK property.
    let misplaced = [
        0x10, 0x10, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 2, 0x24, 1, 0, 1, b'a',
    ];
    assert_eq!(
        dec_at(&misplaced, None, Role::Server),
        Err(DecodeError::PropertyNotAllowed(0x24))
    );
    // Session Expiry twice.
    let twice = [
        0x10, 0x18, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0x0A, 0x11, 0, 0, 0, 0x0A, 0x11, 0,
        0, 0, 0x0A, 0, 1, b'a',
    ];
    assert_eq!(
        code(dec_at(&twice, None, Role::Server)),
        ReasonCode::ProtocolError
    );
    // Receive Maximum 0.
    let rm0 = [
        0x10, 0x11, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 3, 0x21, 0, 0, 0, 1, b'a',
    ];
    assert_eq!(
        dec_at(&rm0, None, Role::Server),
        Err(DecodeError::BadPropertyValue(0x21))
    );
    // Authentication Data without a Method.
    let data_only = [
        0x10, 0x11, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 3, 0x16, 0, 0, 0, 1, b'a',
    ];
    assert_eq!(
        code(dec_at(&data_only, None, Role::Server)),
        ReasonCode::ProtocolError
    );
    // A password without a user name is allowed in 5.0.
    let pass_only = [
        0x10, 0x11, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x42, 0, 60, 0, 0, 1, b'a', 0, 1, b'x',
    ];
    let Ok(Some(Packet::Connect(c))) = dec_at(&pass_only, None, Role::Server) else {
        panic!("password without user name refused");
    };
    assert_eq!(c.password.as_deref(), Some(&b"x"[..]));
    // Will Properties: only the Will's; Will Delay is not a CONNECT one.
    let will_delay_in_connect = [
        0x10, 0x13, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 5, 0x18, 0, 0, 0, 1, 0, 1, b'a',
    ];
    assert_eq!(
        dec_at(&will_delay_in_connect, None, Role::Server),
        Err(DecodeError::PropertyNotAllowed(0x18))
    );
}

#[test]
fn v5_property_rules() {
    // Topic Alias twice.
    let alias_twice = [0x30, 0x0B, 0, 1, b't', 6, 0x23, 0, 1, 0x23, 0, 1, b'x'];
    assert_eq!(
        dec5(&alias_twice),
        Err(DecodeError::DuplicateProperty(0x23))
    );
    // Topic Alias 0 [MQTT-3.3.2-8].
    assert_eq!(
        code(dec5(&[0x30, 0x08, 0, 1, b't', 3, 0x23, 0, 0, b'x'])),
        ReasonCode::TopicAliasInvalid
    );
    // Response Topic with a wildcard [MQTT-3.3.2-14].
    let wild = [
        0x30, 0x0B, 0, 1, b't', 6, 0x08, 0, 3, b'r', b'/', b'#', b'x',
    ];
    assert_eq!(code(dec5(&wild)), ReasonCode::ProtocolError);
    // Content Type not UTF-8 [MQTT-3.3.2-19], a User Property name neither
    // [MQTT-1.5.7-1].
    let ct = [0x30, 0x09, 0, 1, b't', 4, 0x03, 0, 1, 0xFF, b'x'];
    assert_eq!(code(dec5(&ct)), ReasonCode::MalformedPacket);
    let up = [
        0x30, 0x0C, 0, 1, b't', 7, 0x26, 0, 2, 0xC0, 0x80, 0, 0, b'x',
    ];
    assert_eq!(dec5(&up), Err(DecodeError::BadUtf8));
    // Payload Format Indicator 2.
    assert_eq!(
        code(dec5(&[0x30, 0x07, 0, 1, b't', 2, 0x01, 2, b'x'])),
        ReasonCode::ProtocolError
    );
    // A Subscription Identifier from a client [MQTT-3.3.4-6]; from a server
    // several are kept in order.
    let sids = [
        0x30, 0x0A, 0, 1, b't', 5, 0x0B, 0x05, 0x0B, 0x80, 0x01, b'x',
    ];
    assert_eq!(dec5(&sids), Err(DecodeError::PropertyFromWrongSide(0x0B)));
    let p = publish_payload(dec5_client(&sids));
    assert_eq!(
        p.properties.get().expect("sids").subscription_identifiers,
        [5, 128]
    );
    // User Properties repeat, in order.
    let users = [
        0x30, 0x13, 0, 1, b't', 0x0E, 0x26, 0, 1, b'k', 0, 1, b'2', 0x26, 0, 1, b'k', 0, 1, b'1',
        b'x',
    ];
    let p = publish_payload(dec5(&users));
    let v = p.properties.get().expect("user properties");
    assert_eq!(
        v.user_properties,
        [("k".to_string(), "2".to_string()), ("k".into(), "1".into())]
    );
    assert_eq!(&p.payload[..], b"x");
    // Property Length past the end, unknown identifier, non-minimal
    // Property Length [MQTT-1.5.5-1].
    assert_eq!(
        code(dec5(&[0x30, 0x05, 0, 1, b't', 9, b'x'])),
        ReasonCode::MalformedPacket
    );
    assert_eq!(
        dec5(&[0x30, 0x07, 0, 1, b't', 2, 0x7F, 0, b'x']),
        Err(DecodeError::PropertyNotAllowed(0x7F))
    );
    let long_len = [0x82, 0x08, 0, 1, 0x80, 0x00, 0, 1, b't', 1];
    assert_eq!(code(dec5(&long_len)), ReasonCode::MalformedPacket);
    // Subscription Identifier 0, or twice, in SUBSCRIBE.
    let sid0 = [0x82, 0x09, 0, 1, 2, 0x0B, 0, 0, 1, b't', 1];
    assert_eq!(dec5(&sid0), Err(DecodeError::BadPropertyValue(0x0B)));
    let sid2 = [0x82, 0x0B, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b't', 1];
    assert_eq!(dec5(&sid2), Err(DecodeError::DuplicateProperty(0x0B)));
    // A server's DISCONNECT has no Session Expiry [MQTT-3.14.2-2]; a
    // client's no Server Reference.
    let sei = [0xE0, 0x07, 0x00, 5, 0x11, 0, 0, 0, 1];
    assert!(dec5(&sei).is_ok());
    assert_eq!(
        dec5_client(&sei),
        Err(DecodeError::PropertyFromWrongSide(0x11))
    );
    let sr = [0xE0, 0x06, 0x9C, 4, 0x1C, 0, 1, b'h'];
    assert!(dec5_client(&sr).is_ok());
    assert_eq!(code(dec5(&sr)), ReasonCode::ProtocolError);
}

/// A v5 CONNECT (client id `a`) carrying this property block.
fn connect5_with(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, props.len() as u8];
    body.extend_from_slice(props);
    body.extend_from_slice(&[0, 1, b'a']);
    let mut p = vec![0x10, body.len() as u8];
    p.extend_from_slice(&body);
    p
}

/// A v5 CONNACK (accepted) carrying this property block.
fn connack5_with(props: &[u8]) -> Vec<u8> {
    let mut p = vec![0x20, 3 + props.len() as u8, 0, 0, props.len() as u8];
    p.extend_from_slice(props);
    p
}

#[test]
fn v5_property_ranges() {
    // Each accepted at a valid value, refused outside its range.
    for (id, good, bad) in [
        (0x17u8, &[1u8][..], &[2u8][..]),     // Request Problem Information
        (0x19, &[0], &[2]),                   // Request Response Information
        (0x21, &[0, 1], &[0, 0]),             // Receive Maximum
        (0x27, &[0, 0, 0, 1], &[0, 0, 0, 0]), // Maximum Packet Size
    ] {
        let with = |v: &[u8]| [&[id][..], v].concat();
        assert!(dec_at(&connect5_with(&with(good)), None, Role::Server).is_ok());
        assert_eq!(
            dec_at(&connect5_with(&with(bad)), None, Role::Server),
            Err(DecodeError::BadPropertyValue(id))
        );
    }
    for id in [0x24u8, 0x25, 0x28, 0x29, 0x2A] {
        // Maximum QoS, Retain / Wildcard / Subscription Identifier /
        // Shared Subscription Available: 0 or 1.
        assert!(dec5_client(&connack5_with(&[id, 1])).is_ok());
        assert_eq!(
            dec5_client(&connack5_with(&[id, 2])),
            Err(DecodeError::BadPropertyValue(id))
        );
    }
    // A property of the right packet but of the wrong length runs past
    // the block: Malformed.
    assert_eq!(
        code(dec5_client(&connack5_with(&[0x13, 0]))),
        ReasonCode::MalformedPacket
    );
    // Server properties are not CONNECT ones.
    for id in [0x12u8, 0x13, 0x1A, 0x1C, 0x1F, 0x24, 0x25, 0x28, 0x29, 0x2A] {
        assert_eq!(
            dec_at(&connect5_with(&[id, 0, 0]), None, Role::Server),
            Err(DecodeError::PropertyNotAllowed(id))
        );
    }
}

#[test]
fn v5_acks_short_forms_and_codes() {
    let ack = |b: &[u8]| match dec5(b) {
        Ok(Some(
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a),
        )) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!(ack(&[0x40, 2, 0, 1]), Ack::new(1));
    assert_eq!(
        ack(&[0x50, 3, 0, 1, 0x97]).reason,
        ReasonCode::QuotaExceeded
    );
    assert_eq!(
        ack(&[0x62, 4, 0, 1, 0x92, 0]).reason,
        ReasonCode::PacketIdentifierNotFound
    );
    let with_reason = ack(&[0x70, 8, 0, 1, 0, 4, 0x1F, 0, 1, b'r']);
    assert_eq!(
        with_reason
            .properties
            .get()
            .expect("reason")
            .reason_string
            .as_deref(),
        Some("r")
    );
    // Codes outside the packet's list [MQTT-3.4.2-1], [MQTT-3.6.2-1].
    assert_eq!(
        dec5(&[0x40, 3, 0, 1, 0x05]),
        Err(DecodeError::BadReasonCode(0x05))
    );
    assert_eq!(
        dec5(&[0x62, 3, 0, 1, 0x10]),
        Err(DecodeError::BadReasonCode(0x10))
    );
    // A client's DISCONNECT with a server-only code [MQTT-3.14.2-1].
    assert_eq!(
        dec5(&[0xE0, 1, 0x8E]),
        Err(DecodeError::BadReasonCode(0x8E))
    );
    // AUTH, short forms.
    assert_eq!(
        dec5(&[0xF0, 0]),
        Ok(Some(Packet::Auth(ReasonAndProperties::new(
            ReasonCode::Success
        ))))
    );
    // 3.1.1 acks have exactly two bytes.
    assert!(matches!(
        dec(&[0x40, 3, 0, 1, 0]),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn v5_subscription_options() {
    let sub = |opt: u8| dec5(&[0x82, 7, 0, 1, 0, 0, 1, b't', opt]);
    let Ok(Some(Packet::Subscribe(s))) = sub(0x2D) else {
        panic!("valid options refused");
    };
    let o = s.filters[0].1;
    assert_eq!(o.qos, QoS::AtLeastOnce);
    assert!(o.no_local && o.retain_as_published);
    assert_eq!(o.retain_handling, RetainHandling::Never);
    // [MQTT-3.8.3-5]
    assert_eq!(code(sub(0xC1)), ReasonCode::MalformedPacket);
    assert_eq!(code(sub(0x03)), ReasonCode::ProtocolError);
    assert_eq!(code(sub(0x31)), ReasonCode::ProtocolError);
    // 3.1.1: the whole byte is the QoS [MQTT-3.8.3-4].
    assert!(matches!(
        dec(&[0x82, 6, 0, 1, 0, 1, b't', 0x05]),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn client_side_rules() {
    let v311 = |b: &[u8]| dec_at(b, Some(ProtocolLevel::V311), Role::Client);
    // Session Present with a refusal [MQTT-3.2.2-4].
    assert_eq!(code(v311(&[0x20, 2, 1, 5])), ReasonCode::ProtocolError);
    assert_eq!(v311(&[0x20, 2, 0, 6]), Err(DecodeError::BadReasonCode(6)));
    assert!(matches!(
        v311(&[0x20, 2, 2, 0]),
        Err(DecodeError::Malformed(_))
    ));
    assert_eq!(
        v311(&[0x90, 3, 0, 1, 0x87]),
        Err(DecodeError::BadReasonCode(0x87))
    );
    // A 3.1.1 server sends no DISCONNECT and no AUTH.
    assert_eq!(v311(&[0xE0, 0]), Err(DecodeError::BadPacketType(14)));
    assert_eq!(v311(&[0xF0, 0]), Err(DecodeError::BadPacketType(15)));
    assert_eq!(code(v311(&[0x10, 0])), ReasonCode::ProtocolError);
    assert_eq!(code(v311(&[0x00, 0])), ReasonCode::MalformedPacket);
}
