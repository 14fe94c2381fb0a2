//! Robustness against bad input: what a fuzzer or a hostile network would
//! find. Frames cut at every byte, garbage, mutated and oversized packets
//! never crash or wedge the broker: the offending connection is closed and
//! every other client carries on. After each abuse a well-behaved client
//! proves the broker still serves (connect, subscribe, publish, receive,
//! ping).
//!
//! Clients that stall, time out or crowd the broker: robustness_clients.rs.

mod common;
use common::robustness::*;
use common::*;
use std::io::{self, ErrorKind, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// xorshift64*: a seeded, dependency-free source of garbage.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// 1 to `max` random bytes.
    fn garbage(&mut self, max: usize) -> Vec<u8> {
        let n = 1 + self.below(max);
        self.bytes(n)
    }
}

/// Splits a byte stream into MQTT packets (first byte, body); panics on a
/// malformed or truncated stream.
fn split_packets(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut len = 0usize;
        let mut i = 1;
        loop {
            let b = bytes[i];
            len |= ((b & 0x7f) as usize) << (7 * (i - 1));
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            assert!(i < 5, "bad remaining length from the broker");
        }
        assert!(bytes.len() >= i + len, "truncated packet from the broker");
        out.push((bytes[0], bytes[i..i + len].to_vec()));
        bytes = &bytes[i + len..];
    }
    out
}

/// Writes `header` then `body_len` bytes of `fill` in 64 KiB chunks.
/// Returns the bytes written and the error that stopped the writing, if any.
/// A write that makes no progress for 5 s counts as an error (TimedOut).
fn write_big(
    s: &mut TcpStream,
    header: &[u8],
    body_len: usize,
    fill: u8,
) -> (usize, Option<io::Error>) {
    s.set_write_timeout(Some(WAIT)).unwrap();
    if let Err(e) = s.write_all(header) {
        return (0, Some(e));
    }
    let chunk = vec![fill; 64 * 1024];
    let mut written = 0;
    while written < body_len {
        let n = chunk.len().min(body_len - written);
        match s.write(&chunk[..n]) {
            Ok(0) => return (written, Some(ErrorKind::WriteZero.into())),
            Ok(k) => written += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (written, Some(e)),
        }
    }
    (written, None)
}

/// The peer closed while we were still writing (not: stopped reading).
fn assert_closed_while_writing(written: usize, err: Option<io::Error>) {
    let err = err.unwrap_or_else(|| panic!("all {written} bytes were accepted"));
    assert!(
        !matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
        "the broker stopped reading after {written} bytes but did not close"
    );
}

// ------------------------------------------------------- packet boundaries

/// CONNECT, SUBSCRIBE (QoS 1), PUBLISH QoS 1 and QoS 0 to it, PINGREQ.
fn script(client_id: &str) -> Vec<u8> {
    let mut s = connect_packet(client_id, true, 60);
    s.extend(subscribe_packet(1, &[("split/t", 1)]));
    s.extend(publish_packet("split/t", b"one", 1, 7, false, false));
    s.extend(publish_packet("split/t", b"two", 0, 0, false, false));
    s.extend([0xC0, 0x00]);
    s
}

/// The answers to `script`: CONNACK, SUBACK, then the PUBACK for id 7 and
/// both messages (in order), and PINGRESP last.
fn check_script_replies(c: &mut Raw, what: &str) {
    assert_eq!(
        c.read_reply("CONNACK"),
        Some((0x20, vec![0, 0])),
        "{what}: CONNACK"
    );
    assert_eq!(
        c.read_reply("SUBACK"),
        Some((0x90, vec![0, 1, 1])),
        "{what}: SUBACK"
    );
    let mut pubacks = Vec::new();
    let mut payloads = Vec::new();
    for _ in 0..4 {
        match c.read_packet().expect("packet") {
            (0xD0, body) => {
                assert!(body.is_empty());
                break;
            }
            (0x40, body) => pubacks.push(body),
            (first, body) => {
                let p = parse_publish(first, &body);
                assert_eq!(p.topic, "split/t", "{what}");
                payloads.push((p.payload, p.qos));
            }
        }
    }
    assert_eq!(pubacks, vec![vec![0, 7]], "{what}: PUBACK");
    assert_eq!(
        payloads,
        vec![(b"one".to_vec(), 1), (b"two".to_vec(), 0)],
        "{what}: deliveries"
    );
}

#[test]
fn stream_split_at_every_byte_boundary_is_handled() {
    let b = TestBroker::start();
    // One byte per write.
    let bytes = script("bytewise");
    let mut c = Raw::connect(b.addr);
    for byte in &bytes {
        c.send(std::slice::from_ref(byte));
        std::thread::sleep(Duration::from_micros(500));
    }
    check_script_replies(&mut c, "one byte per write");
    // Cut at every byte boundary: two writes.
    let len = script("split-00").len();
    for k in 1..len {
        let bytes = script(&format!("split-{k:02}"));
        assert_eq!(bytes.len(), len);
        let mut c = Raw::connect(b.addr);
        c.send(&bytes[..k]);
        std::thread::sleep(Duration::from_millis(1));
        c.send(&bytes[k..]);
        check_script_replies(&mut c, &format!("split at {k}"));
    }
    assert_healthy(b.addr);
}

#[test]
fn many_packets_in_one_write_are_handled_in_order() {
    let b = TestBroker::start();
    let (mut watcher, _) = Raw::mqtt(b.addr, "watcher", true);
    watcher.subscribe(1, &[("burst", 0)]);
    let mut s = connect_packet("burster", true, 60);
    s.extend(subscribe_packet(9, &[("burst", 0)]));
    for i in 1..=50u16 {
        s.extend(publish_packet(
            "burst",
            format!("m{i}").as_bytes(),
            1,
            i,
            false,
            false,
        ));
    }
    s.extend([0xC0, 0x00]);
    let mut c = Raw::connect(b.addr);
    c.send(&s);
    assert_eq!(c.read_reply("CONNACK"), Some((0x20, vec![0, 0])));
    assert_eq!(c.read_reply("SUBACK"), Some((0x90, vec![0, 9, 0])));
    let (mut acks, mut msgs) = (Vec::new(), Vec::new());
    loop {
        match c.read_packet().expect("packet") {
            (0xD0, _) => break,
            (0x40, body) => acks.push(u16::from_be_bytes([body[0], body[1]])),
            (first, body) => msgs.push(parse_publish(first, &body).payload),
        }
        assert!(acks.len() + msgs.len() <= 100, "more replies than packets");
    }
    let want: Vec<Vec<u8>> = (1..=50).map(|i| format!("m{i}").into_bytes()).collect();
    assert_eq!(acks, (1..=50).collect::<Vec<u16>>(), "PUBACKs in order");
    assert_eq!(msgs, want, "own deliveries in order, before PINGRESP");
    let seen: Vec<Vec<u8>> = (0..50).map(|_| watcher.read_publish().payload).collect();
    assert_eq!(seen, want, "another subscriber gets all 50 in order");
    assert_healthy(b.addr);
}

// ------------------------------------------------------------------ garbage

/// Garbage whose first byte is a packet type a client may not send, a
/// reserved type, or bad fixed-header flags: closed at once, nothing sent
/// [MQTT-2.2.2-2], [MQTT-4.8.0-1].
#[test]
fn garbage_after_connect_closes_only_that_connection() {
    let b = TestBroker::start();
    let (mut sub, _) = Raw::mqtt(b.addr, "bystander-sub", true);
    sub.subscribe(1, &[("by/t", 0)]);
    let (mut publ, _) = Raw::mqtt(b.addr, "bystander-pub", true);
    let bad_first = [
        0x00, 0xF0, 0x0F, 0x20, 0x90, 0xB0, 0xD0, 0x83, 0xA0, 0xC1, 0x60, 0x11,
    ];
    let mut rng = Rng::new(1);
    for (round, &first) in bad_first.iter().enumerate() {
        let (mut c, _) = Raw::mqtt(b.addr, &format!("garbage-{round}"), true);
        let mut garbage = vec![first];
        garbage.extend(rng.garbage(500));
        let _ = c.stream.write_all(&garbage); // may race with the close
        let got = read_until_closed(&mut c.stream, WAIT);
        assert!(got.is_empty(), "first byte {first:#04x}: got {got:02x?}");
        // The others carry on.
        let payload = format!("after {round}");
        publ.send(&publish_packet(
            "by/t",
            payload.as_bytes(),
            0,
            0,
            false,
            false,
        ));
        assert_eq!(sub.read_publish().payload, payload.as_bytes());
        publ.ping();
    }
    assert_healthy(b.addr);
}

/// 200 random byte streams, each on its own connection, all open at once:
/// 100 as the very first bytes (never a CONNECT: closed without CONNACK
/// [MQTT-3.1.0-1], [MQTT-3.1.4-1], by the connect timeout at the latest),
/// 100 after a valid CONNECT with Keep Alive 1 s (closed as malformed or by
/// the keep-alive timeout [MQTT-3.1.2-24]; whatever the broker answered is
/// well formed).
#[test]
fn random_byte_streams_are_closed_and_the_broker_keeps_serving() {
    let b = TestBroker::start_with(|c| c.connect_timeout = Duration::from_secs(1));
    let mut rng = Rng::new(42);
    let mut first_bytes = Vec::new();
    for _ in 0..100 {
        let mut garbage = rng.garbage(300);
        if garbage[0] == 0x10 {
            garbage[0] = 0x12; // CONNECT with bad flags: still not a CONNECT
        }
        let mut s = TcpStream::connect(b.addr).unwrap();
        let _ = s.write_all(&garbage);
        first_bytes.push((s, garbage));
    }
    let mut after_connect = Vec::new();
    for i in 0..100 {
        let mut bytes = connect_packet(&format!("fuzz-{i}"), true, 1);
        bytes.extend(rng.garbage(300));
        let mut s = TcpStream::connect(b.addr).unwrap();
        let _ = s.write_all(&bytes);
        after_connect.push((s, bytes));
    }
    // While 200 abusive connections are open, a normal client is served.
    assert_healthy(b.addr);
    let limit = Duration::from_secs(4);
    for (mut s, garbage) in first_bytes {
        let got = read_until_closed(&mut s, limit);
        assert!(
            got.is_empty(),
            "no CONNACK for garbage {:02x?}...: got {got:02x?}",
            &garbage[..garbage.len().min(8)]
        );
    }
    for (mut s, bytes) in after_connect {
        let got = read_until_closed(&mut s, limit);
        let packets = split_packets(&got);
        assert_eq!(
            packets.first(),
            Some(&(0x20, vec![0, 0])),
            "CONNACK first for {:02x?}",
            &bytes[..bytes.len().min(40)]
        );
    }
    assert_healthy(b.addr);
}

/// Valid CONNECT/SUBSCRIBE/PUBLISH/... sequences with 1 to 3 bytes flipped:
/// whatever happens to that connection, the broker keeps serving. Each
/// mutated stream is followed by a half-close, so every byte is processed.
#[test]
fn mutated_valid_packets_never_hurt_the_broker() {
    let b = TestBroker::start();
    let (mut sub, _) = Raw::mqtt(b.addr, "mut-watcher", true);
    sub.subscribe(1, &[("watch/t", 0)]);
    let mut base = connect_with_will("mut", true, 30, "will/mut", b"w", 1, false);
    base.extend(subscribe_packet(1, &[("a/+", 1), ("b/#", 2)]));
    base.extend(publish_packet("a/x", b"payload-1", 1, 3, false, false));
    base.extend(publish_packet("b/y/z", b"payload-2", 2, 4, true, false));
    base.extend([0x62, 0x02, 0x00, 0x04]); // PUBREL 4
    base.extend(unsubscribe_packet(5, &["a/+"]));
    base.extend(publish_packet("a/x", b"", 0, 0, false, false));
    base.extend([0xC0, 0x00]);
    let mut rng = Rng::new(7);
    for round in 0..300 {
        let mut bytes = base.clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 + rng.below(255) as u8;
        }
        if round % 10 == 9 {
            bytes.truncate(rng.below(bytes.len())); // and some cut short
        }
        let mut s = TcpStream::connect(b.addr).unwrap();
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(Shutdown::Write);
        read_until_closed(&mut s, WAIT);
        if round % 50 == 49 {
            let (mut p, _) = Raw::mqtt(b.addr, "mut-pub", true);
            p.send(&publish_packet("watch/t", b"alive", 0, 0, false, false));
            assert_eq!(sub.read_publish().payload, b"alive", "round {round}");
        }
    }
    sub.ping();
    assert_healthy(b.addr);
}

// --------------------------------------------------------- oversized input

/// A Remaining Length with a fifth byte is malformed: closed as soon as the
/// fifth length byte arrives, before any body [MQTT-4.8.0-1]; before
/// CONNECT without a CONNACK [MQTT-3.1.4-1].
#[test]
fn five_byte_remaining_length_is_closed_before_any_body() {
    let b = TestBroker::start();
    let (mut c, _) = Raw::mqtt(b.addr, "len5", true);
    c.send(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    c.expect_closed();
    // Even without the sixth byte: four continuation bits are enough.
    let (mut c, _) = Raw::mqtt(b.addr, "len5-cut", true);
    c.send(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF]);
    c.expect_closed();
    // As the very first bytes: no CONNACK.
    let mut c = Raw::connect(b.addr);
    c.send(&[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    c.expect_closed();
    assert_healthy(b.addr);
}

const TEN_MIB: usize = 10 << 20;

/// A "10 MB topic" sent by a client whose encoder cannot say so (a topic
/// length is 16 bits): every way it comes out malformed closes the
/// connection, with the default max_packet_size (256 MiB).
#[test]
fn ten_mb_topic_malformed_closes_the_connection() {
    let b = TestBroker::start();
    let (mut watcher, _) = Raw::mqtt(b.addr, "watcher10", true);
    watcher.subscribe(1, &[("#", 0)]);

    // (a) Remaining Length covers the 10 MiB; the topic length was truncated
    // to 16 bits (10 MiB mod 65536 = 0): an empty topic [MQTT-4.7.3-1].
    let (mut c, _) = Raw::mqtt(b.addr, "truncated-len", true);
    let mut header = vec![0x30];
    header.extend(remaining_length(2 + TEN_MIB));
    header.extend((TEN_MIB as u16).to_be_bytes());
    let (written, err) = write_big(&mut c.stream, &header, TEN_MIB, b'a');
    assert!(err.is_none(), "stopped at {written}: {err:?}");
    c.expect_closed();

    // (b) Topic length saturated at 65535 and the Remaining Length computed
    // from it: the 65535 'a' make a valid PUBLISH, and the rest of the 10 MiB
    // runs past it and is read as the next fixed header (0x61: PUBREL with
    // bad flags) [MQTT-2.2.2-2].
    let (mut c, _) = Raw::mqtt(b.addr, "saturated-len", true);
    let mut header = vec![0x30];
    header.extend(remaining_length(2 + 65535));
    header.extend([0xFF, 0xFF]);
    let (written, err) = write_big(&mut c.stream, &header, TEN_MIB, b'a');
    assert_closed_while_writing(written, err);
    c.expect_closed();
    let p = watcher.read_publish();
    assert_eq!((p.topic.len(), p.payload.len()), (65535, 0));

    // (c) A topic length larger than the packet, with 10 MiB following.
    let (mut c, _) = Raw::mqtt(b.addr, "long-topic-len", true);
    let mut header = vec![0x30];
    header.extend(remaining_length(2 + 1000));
    header.extend([0xFF, 0xFF]);
    let (written, err) = write_big(&mut c.stream, &header, TEN_MIB, b'a');
    assert_closed_while_writing(written, err);
    c.expect_closed();

    watcher.ping(); // nothing else was published
    assert_healthy(b.addr);
}

/// With max_packet_size 1 MiB a 10 MiB PUBLISH is refused from its fixed
/// header: the broker closes while the client is still writing, without
/// reading the body. A packet of exactly the limit is accepted.
#[test]
fn oversized_publish_is_refused_from_its_header() {
    let b = TestBroker::start_with(|c| c.max_packet_size = 1 << 20);
    let (mut sub, _) = Raw::mqtt(b.addr, "big-sub", true);
    sub.subscribe(1, &[("big", 0)]);

    // The header alone is enough to close.
    let (mut c, _) = Raw::mqtt(b.addr, "header-only", true);
    let mut header = vec![0x30];
    header.extend(remaining_length(TEN_MIB));
    c.send(&header);
    c.expect_closed();

    // Streaming the body: the writes fail long before 10 MiB are taken.
    let (mut c, _) = Raw::mqtt(b.addr, "streaming", true);
    let mut header = vec![0x30];
    header.extend(remaining_length(TEN_MIB));
    header.extend([0, 3, b'b', b'i', b'g']);
    let start = Instant::now();
    let (written, err) = write_big(&mut c.stream, &header, TEN_MIB - 5, b'x');
    assert_closed_while_writing(written, err);
    assert!(
        written + (1 << 20) < TEN_MIB,
        "{written} bytes accepted before the close"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "close took {:?}",
        start.elapsed()
    );
    c.expect_closed();

    // Exactly max_packet_size: delivered. One more byte: closed.
    let (mut p, _) = Raw::mqtt(b.addr, "at-limit", true);
    let payload = vec![b'p'; (1 << 20) - 5];
    let packet = publish_packet("big", &payload, 0, 0, false, false);
    assert_eq!(packet.len(), 1 + 3 + (1 << 20));
    p.send(&packet);
    p.ping();
    assert_eq!(sub.read_publish().payload.len(), payload.len());
    let payload = vec![b'p'; (1 << 20) - 4];
    let _ = p
        .stream
        .write_all(&publish_packet("big", &payload, 0, 0, false, false));
    assert!(read_until_closed(&mut p.stream, WAIT).is_empty());

    sub.ping(); // the refused ones were not delivered
    assert_healthy(b.addr);
}

/// The longest topic the encoding allows, 65535 bytes, works as a filter
/// and as a name, live and retained (§1.5.3: strings up to 65535 bytes).
#[test]
fn maximal_topic_publish_and_subscribe_work() {
    let b = TestBroker::start();
    let topic: String = (0..65535)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let (mut exact, _) = Raw::mqtt(b.addr, "exact", true);
    exact.subscribe(1, &[(&topic, 1)]);
    let (mut wild, _) = Raw::mqtt(b.addr, "wild", true);
    wild.subscribe(1, &[("#", 0)]);
    let (mut p, _) = Raw::mqtt(b.addr, "maxpub", true);
    p.send(&publish_packet(&topic, b"max", 1, 1, true, false));
    p.expect(&puback(1));
    let m = exact.read_publish();
    assert_eq!(
        (m.topic == topic, &m.payload[..], m.qos),
        (true, &b"max"[..], 1)
    );
    exact.send(&puback(m.pkid));
    let m = wild.read_publish();
    assert_eq!((m.topic == topic, &m.payload[..]), (true, &b"max"[..]));
    // Retained: a new subscriber gets it after its SUBACK.
    let (mut late, _) = Raw::mqtt(b.addr, "late", true);
    late.subscribe(1, &[(&topic, 0)]);
    let m = late.read_publish();
    assert_eq!(
        (m.topic == topic, &m.payload[..], m.retain),
        (true, &b"max"[..], true)
    );
    assert_healthy(b.addr);
}
