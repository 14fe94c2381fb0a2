//! Robustness against clients that misbehave over time: silent and
//! stalled clients, clients that do not read, too many connections and
//! connections dropped halfway. None of them crashes or wedges the broker
//! or holds back the other clients. After each abuse a well-behaved client
//! proves the broker still serves (connect, subscribe, publish, receive,
//! ping).
//!
//! Bad bytes on the wire: robustness_input.rs.

mod common;
use common::robustness::*;
use common::*;
use midge::config::QueueFull;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ timeouts

#[test]
fn client_without_connect_is_closed_after_connect_timeout() {
    let b = TestBroker::start_with(|c| c.connect_timeout = Duration::from_secs(1));
    let (mut normal, _) = Raw::mqtt(b.addr, "normal", true);
    let start = Instant::now();
    let mut silent = Raw::connect(b.addr);
    let mut partial = Raw::connect(b.addr);
    partial.send(&connect_packet("partial", true, 60)[..5]);
    silent.expect_silence(Duration::from_millis(500));
    partial.expect_silence(Duration::from_millis(10));
    silent.expect_closed();
    partial.expect_closed();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "closed after {:?}",
        start.elapsed()
    );
    // A client that did connect (Keep Alive 60) is not affected.
    normal.ping();
    assert_healthy(b.addr);
}

// ------------------------------------------------------ clients that don't read

/// A QoS 0 subscriber that stops reading while 20 MiB go to its topic: the
/// publisher and a reading subscriber get everything, the broker stays
/// responsive, and the stalled client's output is bounded (whole messages
/// dropped, in order, no torn packet).
#[test]
fn stalled_qos0_subscriber_does_not_hold_back_others() {
    let b = TestBroker::start_with(|c| c.max_outgoing_bytes = 64 * 1024);
    let (mut stalled, _) = Raw::mqtt(b.addr, "stalled0", true);
    stalled.subscribe(1, &[("t", 0)]);
    let (mut reader, _) = Raw::mqtt(b.addr, "reader0", true);
    reader.subscribe(1, &[("t", 0)]);
    let (mut publ, _) = Raw::mqtt(b.addr, "publisher0", true);
    const BATCH: usize = 8; // 32 KiB per batch: below the reader's limit
    const PAYLOAD: usize = 4096;
    const TOTAL: usize = (20 << 20) / PAYLOAD;
    let start = Instant::now();
    let mut payload = vec![b'.'; PAYLOAD];
    for batch in 0..TOTAL / BATCH {
        let mut burst = Vec::with_capacity(BATCH * (PAYLOAD + 8));
        for i in 0..BATCH {
            let seq = (batch * BATCH + i) as u64;
            payload[..8].copy_from_slice(&seq.to_be_bytes());
            burst.extend(publish_packet("t", &payload, 0, 0, false, false));
        }
        publ.send(&burst);
        for i in 0..BATCH {
            let m = reader.read_publish();
            let seq = u64::from_be_bytes(m.payload[..8].try_into().unwrap());
            assert_eq!(seq, (batch * BATCH + i) as u64, "reader lost or reordered");
        }
        if batch % 64 == 0 {
            publ.ping();
        }
    }
    publ.ping();
    reader.ping();
    assert_healthy(b.addr);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
    // The stalled client reads at last: whole messages, increasing, fewer
    // than were sent (the broker did not buffer 20 MiB for it).
    stalled.send(&[0xC0, 0x00]);
    let mut last = None;
    let mut count = 0;
    loop {
        match stalled.read_packet().expect("packet") {
            (0xD0, _) => break,
            (first, body) => {
                let m = parse_publish(first, &body);
                assert_eq!((m.topic.as_str(), m.payload.len()), ("t", PAYLOAD));
                let seq = u64::from_be_bytes(m.payload[..8].try_into().unwrap());
                assert!(last < Some(seq), "out of order: {seq} after {last:?}");
                last = Some(seq);
                count += 1;
                assert!(count < TOTAL, "the stalled client got every message");
            }
        }
    }
}

/// A QoS 1 subscriber that stops reading (and acknowledging), with the
/// queue_full = Drop policy: it keeps max_inflight + max_queued messages,
/// the rest are dropped for it only; the publisher and another QoS 1
/// subscriber are unaffected.
#[test]
fn stalled_qos1_subscriber_keeps_inflight_plus_queue_and_others_are_unaffected() {
    const INFLIGHT: usize = 20;
    const QUEUED: usize = 50;
    let b = TestBroker::start_with(|c| {
        c.max_outgoing_bytes = 64 * 1024;
        c.max_inflight = INFLIGHT;
        c.max_queued = QUEUED;
        c.queue_full = QueueFull::Drop;
    });
    let (mut stalled, _) = Raw::mqtt(b.addr, "stalled1", true);
    stalled.subscribe(1, &[("t", 1)]);
    let (mut reader, _) = Raw::mqtt(b.addr, "reader1", true);
    reader.subscribe(1, &[("t", 1)]);
    let (mut publ, _) = Raw::mqtt(b.addr, "publisher1", true);
    const TOTAL: u16 = 500;
    for batch in 0..TOTAL / 10 {
        let mut burst = Vec::new();
        for i in 1..=10 {
            let seq = batch * 10 + i;
            burst.extend(publish_packet(
                "t",
                format!("{seq:0100}").as_bytes(),
                1,
                seq,
                false,
                false,
            ));
        }
        publ.send(&burst);
        for i in 1..=10 {
            let seq = batch * 10 + i;
            let m = reader.read_publish();
            assert_eq!((m.qos, m.payload), (1, format!("{seq:0100}").into_bytes()));
            reader.send(&puback(m.pkid));
        }
        for i in 1..=10 {
            publ.expect(&puback(batch * 10 + i));
        }
    }
    publ.ping();
    reader.ping();
    assert_healthy(b.addr);
    // The stalled client now reads and acknowledges: the first 20 + 50.
    let mut got = Vec::new();
    while got.len() < INFLIGHT + QUEUED {
        let m = stalled.read_publish();
        got.push(
            String::from_utf8(m.payload)
                .unwrap()
                .parse::<usize>()
                .unwrap(),
        );
        stalled.send(&puback(m.pkid));
    }
    stalled.ping(); // and nothing more
    assert_eq!(got, (1..=INFLIGHT + QUEUED).collect::<Vec<_>>());
}

/// A client that floods PINGREQs and QoS 1 PUBLISHes and never reads its
/// PINGRESPs/PUBACKs: the broker stops reading from it (so the flood ends
/// up blocked in TCP, not in the broker's memory) and keeps serving others.
#[test]
fn client_not_reading_its_replies_is_throttled_and_others_are_served() {
    let b = TestBroker::start_with(|c| c.max_outgoing_bytes = 64 * 1024);
    let (flooder, _) = Raw::mqtt(b.addr, "flooder", true);
    let mut stream = flooder.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut chunk = Vec::with_capacity(64 * 1024);
        let mut pkid = 1u16;
        while chunk.len() < 60 * 1024 {
            chunk.extend([0xC0, 0x00, 0xC0, 0x00, 0xC0, 0x00]);
            chunk.extend(publish_packet("flood", b"", 1, pkid, false, false));
            pkid = pkid % 60000 + 1;
        }
        stream
            .set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let start = Instant::now();
        let mut written = 0usize;
        loop {
            // Continue where a partial write stopped: the stream stays a
            // sequence of whole, valid packets.
            match stream.write(&chunk[written % chunk.len()..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    return (written, true, start.elapsed());
                }
                Err(e) => panic!("flooder write failed: {e} after {written} bytes"),
            }
            if written > 512 << 20 || start.elapsed() > Duration::from_secs(15) {
                return (written, false, start.elapsed());
            }
        }
    });
    let mut rounds = 0;
    while !writer.is_finished() && rounds < 1000 {
        assert_healthy(b.addr);
        rounds += 1;
    }
    let (written, blocked, took) = writer.join().unwrap();
    assert!(
        blocked,
        "the broker kept reading {written} bytes in {took:?} from a client that reads nothing"
    );
    // With the flood stuck in TCP, others are still served.
    assert_healthy(b.addr);
    drop(flooder);
    assert_healthy(b.addr);
}

// --------------------------------------------------------------- connections

#[test]
fn max_connections_refuses_extra_and_frees_the_slot_on_close() {
    let b = TestBroker::start_with(|c| c.max_connections = 5);
    let mut clients: Vec<Raw> = (0..5)
        .map(|i| Raw::mqtt(b.addr, &format!("slot-{i}"), true).0)
        .collect();
    // The sixth is closed without a CONNACK.
    let mut sixth = TcpStream::connect(b.addr).unwrap();
    let _ = sixth.write_all(&connect_packet("sixth", true, 60));
    assert!(read_until_closed(&mut sixth, WAIT).is_empty());
    for c in &mut clients {
        c.ping();
    }
    // One leaves; a new client gets its slot (the broker notices the close
    // within a few tries).
    clients.remove(0).send(&[0xE0, 0x00]);
    let mut connected = None;
    for _ in 0..100 {
        clients[0].ping();
        let mut s = TcpStream::connect(b.addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let _ = s.write_all(&connect_packet("newcomer", true, 60));
        let mut ack = [0u8; 4];
        if s.read_exact(&mut ack).is_ok() {
            assert_eq!(ack, [0x20, 2, 0, 0]);
            connected = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(connected.is_some(), "no slot freed after a client left");
    // Full again.
    let mut extra = TcpStream::connect(b.addr).unwrap();
    let _ = extra.write_all(&connect_packet("extra", true, 60));
    assert!(read_until_closed(&mut extra, WAIT).is_empty());
    for c in &mut clients {
        c.ping();
    }
}

/// 500 connections dropped abruptly in the middle of their CONNECT (50 at a
/// time, with max_connections 100 so a leaked slot would show): the broker
/// still serves.
#[test]
fn many_connections_dropped_mid_connect_leave_the_broker_serving() {
    let b = TestBroker::start_with(|c| c.max_connections = 100);
    let connect = connect_with_will("dropper", true, 60, "will/drop", b"x", 0, false);
    let (mut watcher, _) = Raw::mqtt(b.addr, "drop-watcher", true);
    watcher.subscribe(1, &[("will/#", 0)]);
    for batch in 0..10 {
        let mut open = Vec::new();
        for i in 0..50 {
            let Ok(mut s) = TcpStream::connect(b.addr) else {
                continue;
            };
            let cut = (batch * 50 + i) % connect.len(); // 0..len-1 bytes
            let _ = s.write_all(&connect[..cut]);
            open.push(s);
        }
        drop(open);
    }
    // The slots come back (bounded retries while the closes are processed).
    let mut ok = false;
    for _ in 0..100 {
        let mut s = TcpStream::connect(b.addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let _ = s.write_all(&connect_packet("after-drops", true, 60));
        let mut ack = [0u8; 4];
        if s.read_exact(&mut ack).is_ok() && ack == [0x20, 2, 0, 0] {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok, "no connection accepted after the drops");
    assert_healthy(b.addr);
    // No half-sent CONNECT's Will was published.
    watcher.expect_silence(Duration::from_millis(100));
}

/// A client sends half a packet and disappears: its Will is published
/// [MQTT-3.1.2-8] and everyone else carries on.
#[test]
fn half_written_packet_then_drop_publishes_the_will() {
    let b = TestBroker::start();
    let (mut sub, _) = Raw::mqtt(b.addr, "will-sub", true);
    sub.subscribe(1, &[("will/#", 1)]);
    let halves: [Vec<u8>; 3] = [
        publish_packet("x/y", &[7u8; 300], 1, 1, false, false),
        subscribe_packet(3, &[("a/b/c", 1)]),
        vec![0x30, 0xFF, 0xFF, 0x7F], // cut inside the Remaining Length
    ];
    for (i, full) in halves.iter().enumerate() {
        let mut c = Raw::connect(b.addr);
        let topic = format!("will/half-{i}");
        c.send(&connect_with_will(
            &format!("half-{i}"),
            true,
            60,
            &topic,
            b"gone",
            1,
            false,
        ));
        assert_eq!(c.read_reply("CONNACK"), Some((0x20, vec![0, 0])));
        let cut = (full.len() / 2).max(1);
        c.send(&full[..cut]);
        drop(c);
        let m = sub.read_publish();
        assert_eq!((m.topic, &m.payload[..], m.qos), (topic, &b"gone"[..], 1));
        sub.send(&puback(m.pkid));
        assert_healthy(b.addr);
    }
    sub.ping();
}
