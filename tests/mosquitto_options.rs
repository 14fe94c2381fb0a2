//! mosquitto's options mean in midge what they mean in mosquitto: each
//! tested through the binary with a config file, as a user switching
//! would write it.

mod common;
use common::process::Process;
use common::*;

/// Publishes `n` QoS 1 messages to `topic` at once; returns how many
/// PUBACKs arrive before the PINGRESP sent after them.
fn publish_qos1(p: &mut Raw, topic: &str, n: u16) -> usize {
    let mut burst = Vec::new();
    for pkid in 1..=n {
        burst.extend(publish_packet(
            topic,
            &pkid.to_be_bytes(),
            1,
            pkid,
            false,
            false,
        ));
    }
    p.send(&burst);
    p.send(&[0xC0, 0x00]);
    let mut acks = 0;
    loop {
        match p.read_packet().expect("PUBACK or PINGRESP") {
            (0x40, _) => acks += 1,
            (0xD0, _) => return acks,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads `n` PUBLISHes, acknowledging each; returns their payloads.
fn receive(sub: &mut Raw, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let m = sub.read_publish();
            sub.send(&[0x40, 0x02, (m.pkid >> 8) as u8, m.pkid as u8]);
            m.payload
        })
        .collect()
}

/// `max_queued_messages 0` is "no maximum" in mosquitto. midge made it a
/// queue of none: an offline session got 0 of 5 messages, and an online
/// subscriber's publisher was paused.
#[test]
fn max_queued_messages_0_means_no_maximum() {
    let p = Process::with_config("queued-0.conf", "max_queued_messages 0\n");
    let (mut offline, _) = Raw::mqtt(p.addr, "offline", false);
    offline.subscribe(1, &[("q", 1)]);
    offline.send(&[0xE0, 0x00]);
    let (mut online, _) = Raw::mqtt(p.addr, "online", true);
    online.subscribe(1, &[("q", 1)]);
    let (mut publisher, _) = Raw::mqtt(p.addr, "publisher", true);
    // The online subscriber acknowledges nothing yet: past its in-flight
    // window, 180 of these wait in its queue, and the publisher goes on.
    assert_eq!(publish_qos1(&mut publisher, "q", 200), 200);
    let want: Vec<Vec<u8>> = (1..=200u16).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(receive(&mut online, 200), want);
    let (mut back, present) = Raw::mqtt(p.addr, "offline", false);
    assert!(present);
    assert_eq!(receive(&mut back, 200), want);
}

/// `max_inflight_messages 0` is "no maximum" in mosquitto (midge refused
/// it): the broker starts and delivers (that the window then grows past
/// the default 1,000 is tested in `session`).
#[test]
fn max_inflight_messages_0_means_no_maximum() {
    let p = Process::with_config("inflight-0.conf", "max_inflight_messages 0\n");
    let (mut sub, _) = Raw::mqtt(p.addr, "sub", true);
    sub.subscribe(1, &[("q", 1)]);
    let (mut publisher, _) = Raw::mqtt(p.addr, "publisher", true);
    assert_eq!(publish_qos1(&mut publisher, "q", 500), 500);
    let want: Vec<Vec<u8>> = (1..=500u16).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(receive(&mut sub, 500), want);
}

/// `message_size_limit` bounds a PUBLISH's payload, as in mosquitto
/// (its tests 02-subpub-qos0/1-oversize-payload): a larger one is
/// acknowledged and dropped, the connection goes on. midge applied it to
/// whole packets, so `message_size_limit 1` refused every CONNECT.
#[test]
fn message_size_limit_bounds_publish_payloads() {
    let p = Process::with_config("size-limit.conf", "message_size_limit 1\n");
    let (mut sub, _) = Raw::mqtt(p.addr, "sub", true);
    sub.subscribe(1, &[("t", 2)]);
    let (mut publisher, _) = Raw::mqtt(p.addr, "publisher", true);
    publisher.send(&publish_packet("t", b"AB", 0, 0, false, false));
    publisher.send(&publish_packet("t", b"AB", 1, 1, false, false));
    assert_eq!(publisher.read_packet(), Some((0x40, vec![0, 1])), "PUBACK");
    publisher.send(&publish_packet("t", b"AB", 2, 2, false, false));
    assert_eq!(publisher.read_packet(), Some((0x50, vec![0, 2])), "PUBREC");
    publisher.send(&[0x62, 0x02, 0, 2]);
    assert_eq!(publisher.read_packet(), Some((0x70, vec![0, 2])), "PUBCOMP");
    publisher.send(&publish_packet("t", b"A", 1, 3, false, false));
    assert_eq!(publisher.read_packet(), Some((0x40, vec![0, 3])), "PUBACK");
    let m = sub.read_publish();
    assert_eq!(m.payload, b"A", "only the message within the limit");
}

/// A Will over `message_size_limit` is refused with CONNACK 5; one within
/// it is published (mosquitto's 07-will-oversize-payload).
#[test]
fn message_size_limit_bounds_will_payloads() {
    let p = Process::with_config("will-limit.conf", "message_size_limit 1\n");
    let (mut sub, _) = Raw::mqtt(p.addr, "sub", true);
    sub.subscribe(1, &[("will", 0)]);
    let mut bad = Raw::connect(p.addr);
    bad.send(&connect_with_will("w", true, 60, "will", b"AB", 0, false));
    assert_eq!(bad.read_packet(), Some((0x20, vec![0, 5])));
    bad.expect_closed();
    let mut good = Raw::connect(p.addr);
    good.send(&connect_with_will("w", true, 60, "will", b"A", 0, false));
    assert_eq!(good.read_packet(), Some((0x20, vec![0, 0])));
    drop(good);
    assert_eq!(sub.read_publish().payload, b"A");
    sub.ping();
}

/// `max_inflight_bytes` (mosquitto): QoS 1/2 messages go in flight while
/// fewer payload bytes than the limit are; a larger message still goes,
/// alone. midge refused the option.
#[test]
fn max_inflight_bytes_limits_the_payload_in_flight() {
    let p = Process::with_config("inflight-bytes.conf", "max_inflight_bytes 100\n");
    let (mut sub, _) = Raw::mqtt(p.addr, "sub", true);
    sub.subscribe(1, &[("t", 1)]);
    let (mut publisher, _) = Raw::mqtt(p.addr, "publisher", true);
    let (small, big) = ([b'a'; 60], [b'b'; 150]);
    for (pkid, payload) in [
        (1, &small[..]),
        (2, &small[..]),
        (3, &big[..]),
        (4, &small[..]),
    ] {
        publisher.send(&publish_packet("t", payload, 1, pkid, false, false));
        assert_eq!(publisher.read_packet(), Some((0x40, vec![0, pkid as u8])));
    }
    // 0, then 60 bytes in flight: both go; at 120 the rest waits.
    let (first, second) = (sub.read_publish(), sub.read_publish());
    assert_eq!((first.payload.len(), second.payload.len()), (60, 60));
    sub.expect_silence(std::time::Duration::from_millis(200));
    for m in [first, second] {
        sub.send(&[0x40, 0x02, (m.pkid >> 8) as u8, m.pkid as u8]);
    }
    // The 150-byte message goes alone.
    let third = sub.read_publish();
    assert_eq!(third.payload.len(), 150);
    sub.expect_silence(std::time::Duration::from_millis(200));
    sub.send(&[0x40, 0x02, (third.pkid >> 8) as u8, third.pkid as u8]);
    assert_eq!(sub.read_publish().payload.len(), 60);
}

/// `upgrade_outgoing_qos true` (mosquitto, against the standard): messages
/// go out at the subscription's QoS, live and retained (mosquitto's
/// 04-retain-upgrade-outgoing-qos). midge ignored it with a warning.
#[test]
fn upgrade_outgoing_qos_delivers_at_the_subscription_qos() {
    let p = Process::with_config("upgrade.conf", "upgrade_outgoing_qos true\n");
    let (mut publisher, _) = Raw::mqtt(p.addr, "publisher", true);
    publisher.send(&publish_packet("r", b"kept", 0, 0, true, false));
    publisher.ping();
    let (mut sub, _) = Raw::mqtt(p.addr, "sub", true);
    sub.subscribe(1, &[("r", 2), ("t", 1)]);
    let retained = sub.read_publish();
    assert_eq!((retained.qos, retained.retain), (2, true));
    publisher.send(&publish_packet("t", b"live", 0, 0, false, false));
    let live = sub.read_publish();
    assert_eq!((live.qos, &live.payload[..]), (1, &b"live"[..]));
}

/// `listener PORT localhost` and `bind_address localhost`, as mosquitto
/// configs often say, listen on the name's address (127.0.0.1) instead of
/// being refused as invalid.
#[test]
fn listener_and_bind_address_take_a_host_name() {
    for text in [
        "listener 0 localhost\nallow_anonymous true\n",
        "port 0\nbind_address localhost\nallow_anonymous true\n",
    ] {
        let conf = common::process::temp_file("host-name.conf", text);
        let p = Process::start(&["-c", conf.to_str().unwrap()]);
        assert!(p.addr.ip().is_loopback(), "{text:?}: {}", p.addr);
        let (mut c, _) = Raw::mqtt(p.addr, "named", true);
        c.ping();
    }
}

/// A refused CONNECT is logged with its reason, not only its code: a
/// keep-alive of 0 ("none") or over `max_keepalive` gets CONNACK 2, as
/// mosquitto's documentation says for MQTT 3.x clients, and the log says
/// which limit it broke.
#[test]
fn a_refused_connect_is_logged_with_its_reason() {
    let mut p = Process::with_config("max-keepalive.conf", "max_keepalive 60\n");
    let mut c = Raw::connect(p.addr);
    c.send(&connect_packet("no-keepalive", true, 0));
    c.expect(&[0x20, 0x02, 0x00, 0x02]);
    let line = p.wait_for("refused with CONNACK code 2");
    assert!(
        line.contains("no-keepalive") && line.contains("max_keepalive 60s"),
        "{line}"
    );
}
