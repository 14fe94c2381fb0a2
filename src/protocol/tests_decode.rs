//! Decoding rules: the checks of the 3.x codec, each error's reason code,
//! and random input. The MQTT 5 rules are in `tests_v5`.

use super::wire::{put_remaining_length, remaining_length};
use super::*;
use bytes::{BufMut, BytesMut};

pub(super) fn dec_at(
    bytes: &[u8],
    level: Option<ProtocolLevel>,
    role: Role,
) -> Result<Option<Packet>, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    decode(&mut buf, level, role, &Limits::default())
}

pub(super) fn dec(bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    dec_at(bytes, Some(ProtocolLevel::V311), Role::Server)
}

pub(super) fn dec5(bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    dec_at(bytes, Some(ProtocolLevel::V5), Role::Server)
}

pub(super) fn dec5_client(bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    dec_at(bytes, Some(ProtocolLevel::V5), Role::Client)
}

pub(super) fn code(r: Result<Option<Packet>, DecodeError>) -> ReasonCode {
    match r {
        Err(e) => e.reason_code(),
        Ok(p) => panic!("decoded {p:?}"),
    }
}

pub(super) fn publish_payload(r: Result<Option<Packet>, DecodeError>) -> Publish {
    match r {
        Ok(Some(Packet::Publish(p))) => p,
        other => panic!("not a PUBLISH: {other:?}"),
    }
}

// ------------------------------------------------------- the 3.x checks

#[test]
fn remaining_length_boundaries() {
    assert_eq!(remaining_length(&[0, 0x7f]), Ok(Some((127, 1))));
    assert_eq!(remaining_length(&[0, 0x80, 0x01]), Ok(Some((128, 2))));
    assert_eq!(
        remaining_length(&[0, 0xff, 0xff, 0xff, 0x7f]),
        Ok(Some((MAX_REMAINING_LENGTH, 4)))
    );
    assert_eq!(
        remaining_length(&[0, 0x80, 0x80, 0x80, 0x01]),
        Ok(Some((2_097_152, 4)))
    );
    assert_eq!(
        remaining_length(&[0, 0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::BadRemainingLength)
    );
    assert_eq!(remaining_length(&[0, 0xff, 0xff]), Ok(None));
}

#[test]
fn encoded_lengths_round_trip() {
    for len in [
        0,
        1,
        127,
        128,
        16_383,
        16_384,
        2_097_151,
        2_097_152,
        MAX_REMAINING_LENGTH,
    ] {
        let mut out = BytesMut::new();
        out.put_u8(0x30);
        put_remaining_length(&mut out, len);
        assert_eq!(remaining_length(&out), Ok(Some((len, out.len() - 1))));
    }
}

#[test]
fn publish_round_trip_at_every_split() {
    let mut wire = BytesMut::new();
    let flags = PublishFlags {
        qos: QoS::AtLeastOnce,
        pkid: 7,
        dup: false,
        retain: true,
    };
    let level = ProtocolLevel::V311;
    encode_publish(&mut wire, level, "a/b", b"hello", &Properties::NONE, flags);
    assert_eq!(
        wire.len(),
        publish_len(level, "a/b", 5, &Properties::NONE, QoS::AtLeastOnce)
    );
    let limits = Limits {
        max_remaining_length: 1024,
        mqtt5: true,
    };
    for cut in 0..wire.len() {
        let mut buf = BytesMut::from(&wire[..cut]);
        assert_eq!(
            decode(&mut buf, None, Role::Server, &limits),
            Ok(None),
            "cut at {cut}"
        );
        buf.extend_from_slice(&wire[cut..]);
        let p = publish_payload(decode(&mut buf, None, Role::Server, &limits));
        assert_eq!(
            (&*p.topic, &p.payload[..], p.pkid),
            ("a/b", &b"hello"[..], 7)
        );
        assert!(p.retain && !p.dup && p.qos == QoS::AtLeastOnce);
        assert!(buf.is_empty());
    }
}

#[test]
fn size_limit_applies_before_the_body() {
    let mut buf = BytesMut::from(&[0x30, 0xff, 0xff, 0x7f][..]);
    let limits = Limits {
        max_remaining_length: 1000,
        mqtt5: true,
    };
    for role in [Role::Server, Role::Client] {
        assert_eq!(
            decode(&mut buf, None, role, &limits),
            Err(DecodeError::TooLarge(2_097_151))
        );
    }
}

#[test]
fn rejects_bad_flags_and_types() {
    assert!(matches!(
        dec(&[0x41, 2, 0, 1]),
        Err(DecodeError::BadFlags(_))
    ));
    assert!(matches!(
        dec(&[0x60, 2, 0, 1]),
        Err(DecodeError::BadFlags(_))
    ));
    assert!(matches!(
        dec(&[0x36, 5, 0, 1, b't', 0, 1]),
        Err(DecodeError::BadFlags(_))
    ));
    assert!(matches!(
        dec(&[0x38, 3, 0, 1, b't']),
        Err(DecodeError::BadFlags(_))
    ));
    assert!(matches!(
        dec(&[0xF0, 0]),
        Err(DecodeError::BadPacketType(15))
    ));
    assert!(matches!(
        dec(&[0x20, 2, 0, 0]),
        Err(DecodeError::BadPacketType(2))
    ));
    assert!(matches!(
        dec(&[0x40, 3, 0, 1, 0]),
        Err(DecodeError::Malformed(_))
    ));
    assert!(matches!(dec(&[0xC0, 1, 0]), Err(DecodeError::Malformed(_))));
    assert!(matches!(
        dec(&[0x82, 2, 0, 1]),
        Err(DecodeError::Malformed(_))
    ));
    assert!(matches!(
        dec(&[0x82, 6, 0, 0, 0, 1, b't', 1]),
        Err(DecodeError::ZeroPacketId)
    ));
    assert!(matches!(
        dec(&[0x82, 6, 0, 1, 0, 1, b't', 3]),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn rejects_bad_strings() {
    assert_eq!(dec(&[0x30, 4, 0, 2, 0xC0, 0xAF]), Err(DecodeError::BadUtf8));
    assert_eq!(
        dec(&[0x30, 5, 0, 3, b'a', 0, b'b']),
        Err(DecodeError::BadUtf8)
    );
    assert_eq!(
        dec(&[0x82, 9, 0, 1, 0, 4, b'a', 0xED, 0xA0, 0x80, 0]),
        Err(DecodeError::BadUtf8)
    );
    // U+FEFF is an ordinary character [MQTT-1.5.3-3].
    let p = publish_payload(dec(&[0x30, 6, 0, 4, 0xEF, 0xBB, 0xBF, b'a']));
    assert_eq!(&*p.topic, "\u{FEFF}a");
}

#[test]
fn a_nul_is_found_at_any_length_and_position() {
    use super::wire::has_nul;
    for len in 0..40 {
        let mut t = vec![b'a'; len];
        assert!(!has_nul(&t), "{len}");
        for i in 0..len {
            for other in [0x01u8, 0x7F, 0x80, 0xFF] {
                t[i] = other;
                assert!(!has_nul(&t), "{len} {i} {other:#x}");
            }
            t[i] = 0;
            assert!(has_nul(&t), "{len} {i}");
            t[i] = b'a';
        }
    }
    // Not ASCII, yet valid.
    let p = publish_payload(dec(&[0x30, 6, 0, 4, 0xC3, 0xA9, b'/', b'x']));
    assert_eq!(&*p.topic, "\u{e9}/x");
}

/// The ASCII fast path agrees with `from_utf8` and a NUL scan on every
/// string of up to 40 bytes with one byte (or a multi-byte sequence) in
/// any position: NUL, the ASCII edges, lone or truncated continuation
/// bytes, overlong and surrogate encodings [MQTT-1.5.3-1], [MQTT-1.5.3-2].
#[test]
fn text_is_utf8_without_nul_at_any_length_and_position() {
    use super::wire::text;
    let inserts: [&[u8]; 12] = [
        &[0],
        &[1],
        &[0x7F],
        &[0x80],
        &[0xFF],
        &[0xC3, 0xA9],
        &[0xC3],
        &[0xC0, 0x80],
        &[0xED, 0xA0, 0x80],
        &[0xEF, 0xBB, 0xBF],
        &[0xF0, 0x9F, 0x92, 0xA9],
        &[0xF0, 0x9F, 0x92],
    ];
    for len in 0..40 {
        let plain = vec![b'a'; len];
        assert_eq!(text(&plain), std::str::from_utf8(&plain).ok(), "{len}");
        for i in 0..=len {
            for insert in inserts {
                let mut t = plain.clone();
                t.splice(i..i, insert.iter().copied());
                let want = std::str::from_utf8(&t).ok().filter(|_| !t.contains(&0));
                assert_eq!(text(&t), want, "{len} {i} {insert:x?}");
            }
        }
    }
}

#[test]
fn connect_variants() {
    let ok = [
        0x10, 0x0D, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'a',
    ];
    let Ok(Some(Packet::Connect(c))) = dec(&ok) else {
        panic!("valid CONNECT refused");
    };
    assert_eq!(
        (c.level, c.client_id.as_str(), c.keep_alive),
        (Some(ProtocolLevel::V311), "a", 60)
    );
    let mut v3 = ok;
    v3[8] = 3;
    let Ok(Some(Packet::Connect(c))) = dec(&v3) else {
        panic!("MQTT level 3 not decoded");
    };
    assert_eq!(c.level, None);
    let mut bad_name = ok;
    bad_name[7] = b'X';
    assert_eq!(dec(&bad_name), Err(DecodeError::UnknownProtocol));
    let mut reserved = ok;
    reserved[9] = 3;
    assert!(dec(&reserved).is_err());
    let mut will_no_fields = ok;
    will_no_fields[9] = 0x06;
    assert!(dec(&will_no_fields).is_err());
}

#[test]
fn every_decode_error_has_its_reason_code() {
    use DecodeError::*;
    use ReasonCode::*;
    for (e, c) in [
        (BadRemainingLength, MalformedPacket),
        (TooLarge(1), PacketTooLarge),
        (BadPacketType(0), MalformedPacket),
        (BadPacketType(2), ProtocolError),
        (BadFlags(0x41), MalformedPacket),
        (Malformed("x"), MalformedPacket),
        (BadUtf8, MalformedPacket),
        (ZeroPacketId, ProtocolError),
        (UnknownProtocol, UnsupportedProtocolVersion),
        (Protocol("x"), ProtocolError),
        (PropertyNotAllowed(0x24), MalformedPacket),
        (PropertyFromWrongSide(0x0B), ProtocolError),
        (DuplicateProperty(0x11), ProtocolError),
        (BadPropertyValue(0x21), ProtocolError),
        (
            DecodeError::TopicAliasInvalid,
            ReasonCode::TopicAliasInvalid,
        ),
        (BadReasonCode(0x05), ProtocolError),
    ] {
        assert_eq!(e.reason_code(), c, "{e}");
    }
}

/// A small deterministic generator (xorshift): the same inputs every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random bytes, and valid packets with random bytes changed, decoded by
/// both roles at every level: never a panic, and every error has a code.
#[test]
fn random_input_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let seeds: [&[u8]; 4] = [
        &super::tests_v5::CONNECT5,
        &[
            0x30, 0x13, 0, 1, b't', 0x0E, 0x26, 0, 1, b'k', 0, 1, b'2', 0x26, 0, 1, b'k', 0, 1,
            b'1', b'x',
        ],
        &[0x82, 0x0B, 0, 1, 4, 0x0B, 1, 0x26, 2, 0, 1, b't', 1],
        &[0x20, 0x08, 0, 0, 5, 0x21, 0, 9, 0x24, 1],
    ];
    let levels = [
        None,
        Some(ProtocolLevel::V31),
        Some(ProtocolLevel::V311),
        Some(ProtocolLevel::V5),
    ];
    let limits = Limits {
        max_remaining_length: 512,
        mqtt5: true,
    };
    for round in 0..20_000 {
        let mut bytes: Vec<u8> = if round % 2 == 0 {
            let len = rng.below(48);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let mut b = seeds[rng.below(seeds.len())].to_vec();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            b
        };
        if round % 7 == 0 {
            bytes.truncate(rng.below(bytes.len() + 1));
        }
        for level in levels {
            for role in [Role::Server, Role::Client] {
                let mut buf = BytesMut::from(&bytes[..]);
                // Each packet consumes bytes: bounded by the input length.
                for _ in 0..=bytes.len() {
                    match decode(&mut buf, level, role, &limits) {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(e) => {
                            let _ = e.reason_code();
                            break;
                        }
                    }
                }
            }
        }
    }
}
