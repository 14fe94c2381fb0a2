//! Raw-byte conformance tests for MQTT 5.0 sessions, Wills and expiry:
//! Clean Start and Session Expiry Interval, the Will with its delay and
//! its end at DISCONNECT, takeover, keep alive and Server Keep Alive, and
//! Message Expiry.
//!
//! The ids in the comments above the tests are MQTT 5.0 statement ids.
//! Tests that wait for an expiry use intervals of 1 s.

mod common;
use common::sessions::{kill, AuthBroker};
use common::v5::*;
use common::*;
use std::net::SocketAddr;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Clean Start 0 with this Session Expiry Interval.
fn keep(id: &str, expiry: u32) -> Connect5 {
    Connect5::new(id).clean(false).expiry(expiry)
}

/// Publishes one QoS 1 message from a fresh client.
fn publish_from(addr: SocketAddr, topic: &str, payload: &[u8], props: &Props) {
    let mut p = Raw::v5(addr, &cid5("pub"));
    p.pub5(topic, payload, 1, 1, props);
}

/// A Will on `w` with payload "x".
fn will() -> Will5 {
    Will5::new("w", b"x")
}

/// `obs` gets nothing before `quiet` is over, then the Will "x" by
/// `within` after `since`.
fn will_between(obs: &mut Raw, since: Instant, quiet: Duration, within: Duration) {
    let left = quiet.saturating_sub(since.elapsed());
    if !left.is_zero() {
        obs.expect_silence(left);
    }
    let m = obs.read_publish5();
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("w", &b"x"[..]));
    assert!(
        since.elapsed() <= within,
        "Will after {:?}",
        since.elapsed()
    );
}

// [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.1.2-6] [MQTT-3.2.2-3] [MQTT-3.1.4-4] [MQTT-3.1.2-23]
#[test]
fn clean_start_and_session_present() {
    let b = TestBroker::start();
    // A new session with Clean Start 0: Session Present 0.
    let (mut p, ack) = Raw::mqtt5(b.addr, &keep("p", 60));
    assert!(!ack.present);
    p.sub5("t", 1);
    p.disconnect();
    publish_from(b.addr, "t", b"away", &no_props());
    // Resumed: Session Present 1, the message waits.
    let (mut p, ack) = Raw::mqtt5(b.addr, &keep("p", 60));
    assert!(ack.present);
    assert_eq!(p.drain5()[0].payload, b"away");
    p.disconnect();
    // Clean Start 1 discards it: no subscription any more.
    let (mut p, ack) = Raw::mqtt5(b.addr, &Connect5::new("p"));
    assert!(!ack.present);
    publish_from(b.addr, "t", b"gone", &no_props());
    assert!(p.drain5().is_empty());
    p.disconnect();
    // That session had Session Expiry 0: nothing to resume.
    let (_, ack) = Raw::mqtt5(b.addr, &keep("p", 60));
    assert!(!ack.present);
}

// [MQTT-3.1.3-2]
#[test]
fn the_client_id_keys_the_session() {
    let b = TestBroker::start();
    for (id, topic) in [("k1", "one"), ("k2", "two")] {
        let (mut c, _) = Raw::mqtt5(b.addr, &keep(id, 60));
        c.sub5(topic, 1);
        c.disconnect();
    }
    publish_from(b.addr, "one", b"1", &no_props());
    publish_from(b.addr, "two", b"2", &no_props());
    for (id, want) in [("k1", b"1"), ("k2", b"2")] {
        let (mut c, _) = Raw::mqtt5(b.addr, &keep(id, 60));
        let got = c.drain5();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, want);
    }
}

// [MQTT-4.1.0-1] [MQTT-4.1.0-2] [MQTT-3.2.2-3]
#[test]
fn a_session_ends_once_its_expiry_interval_passed_offline() {
    let b = TestBroker::start();
    // Expiry 1 s: kept while connected beyond it...
    let (mut c, _) = Raw::mqtt5(b.addr, &keep("exp", 1));
    c.sub5("t", 1);
    sleep(Duration::from_millis(1200));
    publish_from(b.addr, "t", b"still", &no_props());
    assert_eq!(c.drain5().len(), 1, "session kept while connected");
    c.disconnect();
    // ...and discarded 1 s after the close.
    sleep(Duration::from_millis(1500));
    let (mut c, ack) = Raw::mqtt5(b.addr, &keep("exp", 60));
    assert!(!ack.present, "the session expired");
    publish_from(b.addr, "t", b"after", &no_props());
    assert!(c.drain5().is_empty(), "its subscription went with it");
    // Clean Start 0 without Session Expiry: the session ends at close.
    let none = Connect5::new("noexp").clean(false);
    Raw::mqtt5(b.addr, &none).0.disconnect();
    assert!(!Raw::mqtt5(b.addr, &none).1.present);
}

// Session Expiry Interval at DISCONNECT: may shorten, never raise from 0.
// [MQTT-3.1.2-23]
#[test]
fn disconnect_changes_the_session_expiry_interval() {
    let b = TestBroker::start();
    let (mut c, _) = Raw::mqtt5(b.addr, &keep("shorten", 60));
    c.send(&[0xE0, 0x07, 0x00, 0x05, 0x11, 0, 0, 0, 0]);
    c.expect_closed();
    assert!(!Raw::mqtt5(b.addr, &keep("shorten", 60)).1.present);
    let mut obs = sub_v5(b.addr, "w", 0);
    let (mut c, _) = Raw::mqtt5(b.addr, &Connect5::new("raise").clean(false).will(will()));
    c.violate(&[0xE0, 0x07, 0x00, 0x05, 0x11, 0, 0, 0, 10], 0x82);
    assert_eq!(obs.read_publish5().payload, b"x", "the Will goes");
    assert!(!Raw::mqtt5(b.addr, &keep("raise", 60)).1.present);
}

// [MQTT-3.1.2-7] [MQTT-3.1.2-10] [MQTT-3.1.2-14] [MQTT-3.14.4-3]
#[test]
fn will_is_published_once_unless_disconnect_0x00() {
    let b = TestBroker::start();
    let mut obs = sub_v5(b.addr, "w", 0x08);
    // DISCONNECT without and with reason code 0x00: no Will.
    for bye in [&[0xE0, 0x00][..], &[0xE0, 0x01, 0x00]] {
        let (mut c, _) = Raw::mqtt5(b.addr, &Connect5::new("wd").will(will()));
        c.send(bye);
        c.expect_closed();
    }
    assert!(obs.drain5().is_empty(), "no Will after DISCONNECT 0x00");
    // Killed: the Will once, RETAIN 0.
    kill(Raw::mqtt5(b.addr, &Connect5::new("wk").will(will())).0);
    let m = obs.read_publish5();
    assert!(!m.retain);
    assert!(obs.drain5().is_empty(), "once");
    assert!(sub_v5(b.addr, "w", 0).drain5().is_empty(), "not retained");
}

// [MQTT-3.14.4-3] [MQTT-3.1.2-8]
#[test]
fn will_is_published_after_disconnect_with_another_reason() {
    let b = TestBroker::start();
    let mut obs = sub_v5(b.addr, "w", 0);
    for code in [0x04u8, 0x80, 0x93] {
        let (mut c, _) = Raw::mqtt5(b.addr, &Connect5::new("wr").will(will()));
        c.send(&[0xE0, 0x01, code]);
        c.expect_closed();
        assert_eq!(
            obs.read_publish5().payload,
            b"x",
            "Will after DISCONNECT {code:#04x}"
        );
    }
}

// [MQTT-3.1.2-15] [MQTT-3.1.3-10]
#[test]
fn retained_will_keeps_its_user_properties_in_order() {
    let b = TestBroker::start();
    let w = Will5 {
        qos: 1,
        retain: true,
        props: Props::new().pair("k", "2").pair("k", "1"),
        ..will()
    };
    let mut obs = sub_v5(b.addr, "w", 0);
    kill(Raw::mqtt5(b.addr, &Connect5::new("wp").will(w)).0);
    assert_eq!(obs.read_publish5().props.user(), vec!["k=2", "k=1"]);
    let got = sub_v5(b.addr, "w", 1).drain5();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].retain, got[0].qos), (true, 1));
    assert_eq!(got[0].props.user(), vec!["k=2", "k=1"]);
    assert!(!got[0].props.has(0x18), "Will Delay is not forwarded");
}

// [MQTT-3.1.2-8]
#[test]
fn will_waits_for_its_delay_or_the_session_end() {
    let b = TestBroker::start();
    let mut obs = sub_v5(b.addr, "w", 0);
    let delayed = |id, expiry: Option<u32>, delay| {
        let w = Will5 {
            props: Props::new().four(0x18, delay),
            ..will()
        };
        let mut c = Connect5::new(id).clean(false).will(w);
        if let Some(e) = expiry {
            c = c.expiry(e);
        }
        c
    };
    // Will Delay 1 s, Session Expiry 60: after about 1 s.
    let start = Instant::now();
    kill(Raw::mqtt5(b.addr, &delayed("d1", Some(60), 1)).0);
    will_between(
        &mut obs,
        start,
        Duration::from_millis(700),
        Duration::from_secs(3),
    );
    // Will Delay 10 s, Session Expiry 1 s: at the session's end.
    let start = Instant::now();
    kill(Raw::mqtt5(b.addr, &delayed("d10", Some(1), 10)).0);
    will_between(
        &mut obs,
        start,
        Duration::from_millis(700),
        Duration::from_secs(3),
    );
    // Will Delay 10 s, no Session Expiry: the session ends now, so the Will goes now.
    let start = Instant::now();
    kill(Raw::mqtt5(b.addr, &delayed("d0", None, 10)).0);
    will_between(&mut obs, start, Duration::ZERO, Duration::from_secs(1));
}

// [MQTT-3.1.3-9]
#[test]
fn reconnecting_within_the_will_delay_cancels_the_will() {
    let b = TestBroker::start();
    let mut obs = sub_v5(b.addr, "w", 0);
    let w = Will5 {
        props: Props::new().four(0x18, 1),
        ..will()
    };
    let connect = keep("back", 60).will(w);
    kill(Raw::mqtt5(b.addr, &connect).0);
    let (mut c, ack) = Raw::mqtt5(b.addr, &keep("back", 60));
    assert!(ack.present);
    obs.expect_silence(Duration::from_millis(1500));
    c.ping();
}

// [MQTT-3.1.4-3] [MQTT-3.14.2-1] [MQTT-3.14.4-1] [MQTT-3.14.4-2]
#[test]
fn takeover_sends_0x8e_to_the_old_connection_after_every_check() {
    let b = AuthBroker::start();
    let (mut a, _) = Raw::mqtt5(b.addr, &Connect5::new("x"));
    a.sub5("t", 1);
    // A refused CONNECT for "x" leaves A alone.
    let mut bad = Raw::connect(b.addr);
    bad.send(&Connect5::new("x").user(b"u").password(b"bad").bytes());
    bad.expect_refused5(0x86);
    a.ping();
    let (mut c, ack) = Raw::mqtt5(b.addr, &Connect5::new("x"));
    assert_eq!(ack.code, 0);
    let props = a.expect_disconnect(0x8E);
    assert!(props.0.iter().all(|(id, _)| *id == 0x1F || *id == 0x26));
    c.ping();
}

// [MQTT-3.1.4-3] [MQTT-3.1.3-9] [MQTT-3.1.2-8]
#[test]
fn takeover_publishes_the_will_only_when_the_session_ends() {
    let b = TestBroker::start();
    let mut obs = sub_v5(b.addr, "w", 0);
    let w = Will5 {
        props: Props::new().four(0x18, 5),
        ..will()
    };
    // Taken over with Clean Start 0: the session goes on, no Will.
    let (mut a, _) = Raw::mqtt5(b.addr, &keep("to", 60).will(w.clone()));
    let (b2, _) = Raw::mqtt5(b.addr, &keep("to", 60));
    a.expect_disconnect(0x8E);
    obs.expect_silence(Duration::from_millis(500));
    b2.disconnect();
    // Taken over with Clean Start 1: the old session ends, the Will goes.
    let (mut a, _) = Raw::mqtt5(b.addr, &keep("to", 60).will(w));
    let (_b3, _) = Raw::mqtt5(b.addr, &Connect5::new("to"));
    a.expect_disconnect(0x8E);
    let start = Instant::now();
    will_between(&mut obs, start, Duration::ZERO, Duration::from_secs(1));
}

// [MQTT-3.1.2-22] [MQTT-3.2.2-22] [MQTT-4.13.2-1]
#[test]
fn keep_alive_closes_a_silent_client_with_0x8d() {
    let b = TestBroker::start();
    let capped = TestBroker::start_with(|c| c.max_keepalive = 1);
    let mut obs = sub_v5(b.addr, "w", 0);
    let start = Instant::now();
    let (mut own, ack) = Raw::mqtt5(b.addr, &Connect5::new("ka").keep_alive(1).will(will()));
    assert!(
        !ack.props.has(0x13),
        "no Server Keep Alive: the client's applies"
    );
    // The server's Keep Alive of 1 s replaces the client's 60 s.
    let (mut told, ack) = Raw::mqtt5(capped.addr, &Connect5::new("ka60"));
    assert_eq!(ack.props.num(0x13), Some(1), "Server Keep Alive");
    own.expect_silence(Duration::from_millis(1000));
    own.expect_disconnect(0x8D);
    told.expect_disconnect(0x8D);
    assert!(
        start.elapsed() < Duration::from_millis(2600),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(obs.read_publish5().payload, b"x", "the Will goes");
}

// [MQTT-3.3.2-5] [MQTT-3.3.2-6]
#[test]
fn message_expiry_counts_down_and_drops_expired_copies() {
    let b = TestBroker::start();
    let (mut s, _) = Raw::mqtt5(b.addr, &keep("off", 60));
    s.sub5("t", 1);
    s.disconnect();
    let mut online = sub_v5(b.addr, "t", 1);
    publish_from(b.addr, "t", b"short", &Props::new().four(0x02, 1));
    publish_from(b.addr, "t", b"long", &Props::new().four(0x02, 10));
    let mut p = Raw::v5(b.addr, "ret-exp");
    p.send(&publish5(
        "r",
        b"x",
        0,
        0,
        true,
        &Props::new().four(0x02, 1),
    ));
    p.ping();
    let got = online.drain5();
    assert_eq!(got[0].props.num(0x02), Some(1));
    assert!(matches!(got[1].props.num(0x02), Some(9..=10)));
    sleep(Duration::from_millis(1500));
    let (mut s, _) = Raw::mqtt5(b.addr, &keep("off", 60));
    let got = s.drain5();
    assert_eq!(got.len(), 1, "the expired copy is gone: {got:?}");
    assert_eq!(got[0].payload, b"long");
    assert!(matches!(got[0].props.num(0x02), Some(8..=9)), "{got:?}");
    assert!(
        sub_v5(b.addr, "r", 0).drain5().is_empty(),
        "retained expired"
    );
}

// [MQTT-4.3.3-7] [MQTT-4.3.3-13]
#[test]
fn qos2_in_flight_is_not_expired() {
    let b = TestBroker::start();
    let (mut s, _) = Raw::mqtt5(b.addr, &keep("q2exp", 60));
    s.sub5("t", 2);
    let mut p = Raw::v5(b.addr, "q2exp-pub");
    p.send(&publish5(
        "t",
        b"x",
        2,
        1,
        false,
        &Props::new().four(0x02, 1),
    ));
    p.read_ack(0x50, 1);
    let m = s.read_publish5();
    kill(s);
    sleep(Duration::from_millis(1500));
    // The receiver's side finishes after the expiry...
    p.send(&[0x62, 0x02, 0x00, 0x01]);
    assert_eq!(p.read_ack(0x70, 1), 0);
    // ...and the sender's side resends what it had sent.
    let (mut s, _) = Raw::mqtt5(b.addr, &keep("q2exp", 60));
    let again = s.read_publish5();
    assert_eq!(
        (again.pkid, again.dup, &again.payload[..]),
        (m.pkid, true, &b"x"[..])
    );
    // Its lifetime is not given as 0 (which reads as "already over").
    assert_eq!(again.props.num(0x02), Some(1));
}

// [MQTT-4.4.0-2] [MQTT-4.3.3-4]
#[test]
fn refusing_acks_count_as_acknowledged() {
    let b = TestBroker::start();
    let (mut s, _) = Raw::mqtt5(b.addr, &keep("refuser", 60));
    s.sub5("t", 2);
    let mut p = Raw::v5(b.addr, "refuser-pub");
    p.pub5("t", b"1", 1, 1, &no_props());
    p.pub5("t", b"2", 2, 2, &no_props());
    for (code, first) in [(0x80, 0x40), (0x80, 0x50)] {
        let m = s.read_publish5();
        let [hi, lo] = m.pkid.to_be_bytes();
        s.send(&[first, 0x03, hi, lo, code]);
    }
    // No PUBREL after the refusing PUBREC; nothing resent after a reconnect.
    s.expect_silence(Duration::from_millis(200));
    kill(s);
    let (mut s, _) = Raw::mqtt5(b.addr, &keep("refuser", 60));
    assert!(s.drain5().is_empty());
}

// Takeover across versions: the old connection gets DISCONNECT 0x8E if it
// speaks MQTT 5, a plain close if it speaks 3.1.1.
// [MQTT-3.1.4-3]
#[test]
fn takeover_across_versions() {
    let b = TestBroker::start();
    let (mut new5, _) = Raw::mqtt5(b.addr, &keep("cross", 60));
    let (mut old311, _) = Raw::mqtt(b.addr, "cross", false);
    new5.expect_disconnect(0x8E);
    let (mut again5, ack) = Raw::mqtt5(b.addr, &keep("cross", 60));
    assert!(ack.present, "the session went on across versions");
    old311.expect_closed();
    again5.ping();
}
