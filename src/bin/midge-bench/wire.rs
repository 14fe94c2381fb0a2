//! Client-side decoding of what a broker sends: just enough MQTT 3.1.1 for
//! the load generator (CONNACK, SUBACK, PUBLISH, the four acks, UNSUBACK,
//! PINGRESP). Client packets are encoded with `midge::codec`.

/// One packet from the broker. Borrowed from the read buffer: decoding
/// allocates nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    ConnAck {
        session_present: bool,
        code: u8,
    },
    SubAck {
        pkid: u16,
        codes: &'a [u8],
    },
    Publish {
        qos: u8,
        dup: bool,
        topic: &'a [u8],
        pkid: u16,
        payload: &'a [u8],
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    UnsubAck(u16),
    PingResp,
}

/// Decodes the packet at the front of `buf`. `Ok(None)`: incomplete;
/// `Ok(Some((packet, used)))`: a packet and how many bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Incoming<'_>, usize)>, String> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        len |= ((b & 0x7f) as usize) << (7 * (i - 1));
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            return Err(format!(
                "remaining length longer than 4 bytes (first byte {first:#04x})"
            ));
        }
    }
    let total = i + len;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[i..total];
    let id = |b: &[u8]| -> Result<u16, String> {
        if b.len() != 2 {
            return Err(format!("ack {first:#04x} with a {}-byte body", b.len()));
        }
        Ok(u16::from_be_bytes([b[0], b[1]]))
    };
    let packet = match first {
        0x20 => {
            if body.len() != 2 {
                return Err(format!("CONNACK with a {}-byte body", body.len()));
            }
            Incoming::ConnAck {
                session_present: body[0] & 1 == 1,
                code: body[1],
            }
        }
        0x90 => {
            if body.len() < 3 {
                return Err("SUBACK too short".into());
            }
            Incoming::SubAck {
                pkid: u16::from_be_bytes([body[0], body[1]]),
                codes: &body[2..],
            }
        }
        0x40 => Incoming::PubAck(id(body)?),
        0x50 => Incoming::PubRec(id(body)?),
        0x62 => Incoming::PubRel(id(body)?),
        0x70 => Incoming::PubComp(id(body)?),
        0xB0 => Incoming::UnsubAck(id(body)?),
        0xD0 if body.is_empty() => Incoming::PingResp,
        f if f >> 4 == 3 => {
            let qos = (f >> 1) & 3;
            if qos == 3 {
                return Err("PUBLISH with QoS 3".into());
            }
            if body.len() < 2 {
                return Err("PUBLISH too short".into());
            }
            let tlen = u16::from_be_bytes([body[0], body[1]]) as usize;
            let mut at = 2 + tlen;
            if body.len() < at {
                return Err("PUBLISH topic runs past the end".into());
            }
            let topic = &body[2..at];
            let mut pkid = 0;
            if qos > 0 {
                if body.len() < at + 2 {
                    return Err("PUBLISH without packet identifier".into());
                }
                pkid = u16::from_be_bytes([body[at], body[at + 1]]);
                if pkid == 0 {
                    return Err("PUBLISH with packet identifier 0".into());
                }
                at += 2;
            }
            Incoming::Publish {
                qos,
                dup: f & 0x08 != 0,
                topic,
                pkid,
                payload: &body[at..],
            }
        }
        f => return Err(format!("unexpected packet type byte {f:#04x}")),
    };
    Ok(Some((packet, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_acks_and_publish() {
        assert_eq!(
            decode(&[0x20, 2, 0, 0]),
            Ok(Some((
                Incoming::ConnAck {
                    session_present: false,
                    code: 0
                },
                4
            )))
        );
        assert_eq!(
            decode(&[0x40, 2, 0, 7, 0xff]),
            Ok(Some((Incoming::PubAck(7), 4)))
        );
        assert_eq!(decode(&[0x40, 2, 0]), Ok(None));
        let p = [0x32, 7, 0, 1, b'a', 0, 5, b'x', b'y'];
        assert_eq!(
            decode(&p),
            Ok(Some((
                Incoming::Publish {
                    qos: 1,
                    dup: false,
                    topic: b"a",
                    pkid: 5,
                    payload: b"xy"
                },
                9
            )))
        );
        assert!(decode(&[0x00, 0]).is_err());
    }

    #[test]
    fn multi_byte_remaining_length() {
        let mut p = vec![0x30, 0x80, 0x01, 0, 1, b't'];
        p.resize(3 + 128, 0);
        match decode(&p) {
            Ok(Some((Incoming::Publish { payload, .. }, used))) => {
                assert_eq!(payload.len(), 125);
                assert_eq!(used, 131);
            }
            other => panic!("{other:?}"),
        }
    }
}
