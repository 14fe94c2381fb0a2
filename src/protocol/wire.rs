//! The field types of the wire format, read and written: the cursor the
//! decoder reads a packet body with, and the sink the encoder writes to
//! (a buffer, or a counter that sizes a packet before it is written).

use super::decode::DecodeError;
use bytes::{BufMut, Bytes, BytesMut};

/// The packets (and the Will) that have a property block or a reason code;
/// what is legal in one depends on which it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

/// Reads a Remaining Length starting at `buf[1]`. Returns (value, bytes used)
/// or `None` if the buffer ends first. Errata 01: all four-byte lengths are
/// valid; only a fifth byte is an error.
pub(super) fn remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        value |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Err(DecodeError::BadRemainingLength)
}

/// Bytes a Variable Byte Integer of this value takes.
pub(super) fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// True if `raw` holds a zero byte (U+0000 [MQTT-1.5.3-2]), eight bytes
/// at a time: `contains(&0)` goes byte by byte and cost as much as the
/// UTF-8 check itself on a topic.
pub(super) fn has_nul(raw: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = raw.chunks_exact(8);
    let in_words = words.by_ref().any(|w| {
        // Never the default: chunks_exact yields 8 bytes.
        let v = u64::from_le_bytes(w.try_into().unwrap_or([1; 8]));
        v.wrapping_sub(ONES) & !v & HIGH != 0
    });
    in_words || words.remainder().contains(&0)
}

/// `raw` as a string if it is well-formed UTF-8 without U+0000
/// [MQTT-1.5.3-1], [MQTT-1.5.3-2]. Nearly every topic and client id is
/// ASCII: that case is one pass, eight bytes at a time (a topic's
/// UTF-8 check and NUL scan were 6% of a message's instructions); anything
/// else is checked by `from_utf8`, then scanned for NUL.
pub(super) fn text(raw: &[u8]) -> Option<&str> {
    if ascii_without_nul(raw) {
        // SAFETY: every byte is in 0x01..=0x7F, and ASCII is UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(raw) });
    }
    std::str::from_utf8(raw).ok().filter(|_| !has_nul(raw))
}

/// True if every byte of `raw` is in 0x01..=0x7F.
fn ascii_without_nul(raw: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of 0x80 or more sets its high bit in `v`; a zero byte (the
    // lowest one, whose lower neighbours borrow nothing) in `v - ONES`.
    let fine = |v: u64| (v | v.wrapping_sub(ONES)) & HIGH == 0;
    let word = |w: &[u8]| w.try_into().is_ok_and(|w| fine(u64::from_le_bytes(w)));
    match raw.len().checked_sub(8) {
        None => raw.iter().all(|&b| b.wrapping_sub(1) < 0x7F),
        // The last word overlaps the whole words when the length is not a
        // multiple of 8: no byte is left out, and none copied.
        Some(last) => raw.chunks_exact(8).all(word) && raw.get(last..).is_some_and(word),
    }
}

/// A cursor over one packet's body with the field readers MQTT needs.
pub(super) struct Reader<'a> {
    pub body: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self
            .body
            .split_first()
            .ok_or(DecodeError::Malformed("packet too short"))?;
        self.body = rest;
        Ok(b)
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        let (&two, rest) = self
            .body
            .split_first_chunk()
            .ok_or(DecodeError::Malformed("packet too short"))?;
        self.body = rest;
        Ok(u16::from_be_bytes(two))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let hi = self.u16()? as u32;
        let lo = self.u16()? as u32;
        Ok((hi << 16) | lo)
    }

    /// An MQTT 5 Variable Byte Integer, in its shortest encoding
    /// [MQTT-1.5.5-1].
    pub fn varint(&mut self) -> Result<usize, DecodeError> {
        let mut value = 0usize;
        for i in 0..4 {
            let byte = self.u8()?;
            value |= ((byte & 0x7f) as usize) << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(DecodeError::Malformed("variable byte integer not minimal"));
                }
                return Ok(value);
            }
        }
        Err(DecodeError::Malformed(
            "variable byte integer longer than 4 bytes",
        ))
    }

    pub fn pkid(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::ZeroPacketId),
            id => Ok(id),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.body.len() < n {
            return Err(DecodeError::Malformed("field runs past the end"));
        }
        let (field, rest) = self.body.split_at(n);
        self.body = rest;
        Ok(field)
    }

    pub fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u16()? as usize;
        self.take(len)
    }

    pub fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        Ok(Bytes::copy_from_slice(self.binary()?))
    }

    /// A UTF-8 string, borrowed, checked: well-formed, no U+0000
    /// [MQTT-1.5.3-1], [MQTT-1.5.3-2].
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        text(self.binary()?).ok_or(DecodeError::BadUtf8)
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        Ok(self.str()?.to_owned())
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.body)
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.body.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed("bytes after the last field"))
        }
    }
}

/// Where the encoder writes: a buffer, or a [`Counter`] that sizes a
/// packet first (its Remaining Length comes before its body).
pub(super) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    /// Marks a field too long for its 2-byte length prefix.
    fn too_long(&mut self) {}

    fn u8(&mut self, b: u8) {
        self.put(&[b]);
    }

    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    /// A Variable Byte Integer (the caller keeps it within 4 bytes).
    fn varint(&mut self, mut v: usize) {
        let mut out = [0u8; 4];
        let mut n = 0;
        while n < 4 {
            let mut byte = (v % 128) as u8;
            v /= 128;
            if v > 0 {
                byte |= 0x80;
            }
            out[n] = byte;
            n += 1;
            if v == 0 {
                break;
            }
        }
        self.put(&out[..n]);
    }

    fn binary(&mut self, b: &[u8]) {
        let Ok(len) = u16::try_from(b.len()) else {
            return self.too_long();
        };
        self.u16(len);
        self.put(b);
    }

    fn string(&mut self, s: &str) {
        self.binary(s.as_bytes());
    }
}

impl Sink for BytesMut {
    fn put(&mut self, bytes: &[u8]) {
        self.put_slice(bytes);
    }
}

/// Counts the bytes a packet will take, and whether a field is too long.
#[derive(Default)]
pub(super) struct Counter {
    pub len: usize,
    pub too_long: bool,
}

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.len += bytes.len();
    }

    fn too_long(&mut self) {
        self.too_long = true;
    }
}

/// The fast path's Remaining Length writer.
pub(super) fn put_remaining_length(out: &mut BytesMut, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if len == 0 {
            break;
        }
    }
}
