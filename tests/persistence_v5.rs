//! MQTT 5 state across a restart with persistence on: a session's Session
//! Expiry Interval, its subscriptions' options and identifiers, and
//! messages' properties and expiry (queued and retained), driven by
//! rumqttc's v5 client.

mod common;
use common::persistence::*;
use common::rumqtt5::*;

use rumqttc::v5::mqttbytes::v5::{ConnectProperties, Filter, PublishProperties};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::MqttOptions as Options5;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Options for a session that outlives its connection by `expiry` s.
fn lasting(addr: SocketAddr, id: &str, expiry: u32) -> Options5 {
    let mut o = options(addr, id);
    o.set_clean_start(false);
    o.set_connect_properties(ConnectProperties {
        session_expiry_interval: Some(expiry),
        ..ConnectProperties::new()
    });
    o
}

fn app_props(expiry: Option<u32>) -> PublishProperties {
    PublishProperties {
        message_expiry_interval: expiry,
        content_type: Some("text/plain".into()),
        user_properties: vec![("k".into(), "v".into())],
        ..PublishProperties::default()
    }
}

/// Waits (bounded) until the broker has `n` sessions.
fn wait_sessions(b: &common::TestBroker, n: usize) {
    let deadline = Instant::now() + common::WAIT;
    while b.stats().sessions != n {
        assert!(Instant::now() < deadline, "{n} sessions within the wait");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// A v5 session with a Subscription Identifier and No Local, offline with
// a queued message that has properties and an expiry, and a retained
// message with properties: after a restart the session is back (Session
// Present), the queued message arrives with its properties, its
// identifier and what is left of its expiry, and the retained message
// with its properties. [MQTT-3.1.2-23] [MQTT-3.3.2-6] [MQTT-3.3.4-3]
#[test]
fn v5_sessions_and_message_properties_survive_a_restart() {
    let dir = store_dir("v5-state");
    {
        let b = start_cfg(&dir, |c| c.sys_interval = Duration::ZERO);
        let (mut s, _) = Rumqtt5::connect_with(lasting(b.addr, "s", 3600));
        let mut f = Filter::new("t/#", Q5::AtLeastOnce);
        f.nolocal = true;
        let props = rumqttc::v5::mqttbytes::v5::SubscribeProperties {
            id: Some(42),
            user_properties: Vec::new(),
        };
        s.client
            .subscribe_many_with_properties([f], props)
            .expect("subscribe");
        s.suback();
        s.client.disconnect().expect("disconnect");
        let mut p = Rumqtt5::connect(b.addr, "p");
        p.publish("t/queued", "q", false, app_props(Some(3600)));
        p.publish("r/kept", "r", true, app_props(None));
    }
    let b = start(&dir);
    let (mut s, present) = Rumqtt5::connect_with(lasting(b.addr, "s", 3600));
    assert!(present, "the v5 session is back after the restart");
    let queued = s.next_publish();
    assert_eq!(&queued.topic[..], b"t/queued");
    let props = queued.properties.expect("properties kept");
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(props.user_properties, vec![("k".into(), "v".into())]);
    assert_eq!(props.subscription_identifiers, vec![42]);
    let left = props.message_expiry_interval.expect("expiry kept");
    assert!((3590..=3600).contains(&left), "expiry counted down: {left}");
    s.client
        .subscribe("r/#", Q5::AtLeastOnce)
        .expect("subscribe");
    let retained = s.next_publish();
    assert!(retained.retain);
    let props = retained.properties.expect("retained properties kept");
    assert_eq!(props.user_properties, vec![("k".into(), "v".into())]);
}

// A Session Expiry Interval holds across a restart: the session ends that
// long after the restart (restored sessions count as offline from then),
// and an expired queued message is not delivered. [MQTT-3.1.2-23]
// [MQTT-3.3.2-5]
#[test]
fn v5_session_and_message_expiry_hold_across_a_restart() {
    let dir = store_dir("v5-expiry");
    {
        let b = start_cfg(&dir, |c| c.sys_interval = Duration::ZERO);
        let (mut keep, _) = Rumqtt5::connect_with(lasting(b.addr, "keep", 3600));
        keep.client
            .subscribe("t", Q5::AtLeastOnce)
            .expect("subscribe");
        keep.suback();
        keep.client.disconnect().expect("disconnect");
        let (mut short, _) = Rumqtt5::connect_with(lasting(b.addr, "short", 1));
        short
            .client
            .subscribe("t", Q5::AtLeastOnce)
            .expect("subscribe");
        short.suback();
        short.client.disconnect().expect("disconnect");
        let mut p = Rumqtt5::connect(b.addr, "p");
        p.publish("t", "expiring", false, app_props(Some(1)));
        p.publish("t", "lasting", false, app_props(None));
    }
    let b = common::TestBroker::start_polled(|c| {
        c.persistence = true;
        c.persistence_location = Some(dir.clone());
    });
    // Both sessions restored; "short" ends one second later.
    let restored = b.stats().sessions;
    assert_eq!(restored, 2, "both v5 sessions restored");
    wait_sessions(&b, 1);
    std::thread::sleep(Duration::from_millis(1100)); // "expiring" is past its second
    let (mut keep, present) = Rumqtt5::connect_with(lasting(b.addr, "keep", 3600));
    assert!(present);
    let first = keep.next_publish();
    assert_eq!(
        &first.payload[..],
        b"lasting",
        "the expired message is not sent"
    );
}

// A Will waiting for its Will Delay Interval is not kept past the process:
// it is published when the broker shuts down (its session outlives the
// connection, so it would otherwise wait 60 s). A 3.1.1 subscriber on the
// same listener receives it without the Will Delay Interval, which is not
// a message property. [MQTT-3.1.3-9]
#[test]
fn a_delayed_will_is_published_at_shutdown() {
    let mut b = common::TestBroker::start_polled(|_| {});
    let mut watcher = common::conformance::subscriber(b.addr, &[("will/#", 0)]);
    // MQTT 5 CONNECT: Will flag, Session Expiry Interval 3600, client id
    // "dies", Will Delay Interval 60, Will topic and payload.
    let mut body = common::sessions::field(b"MQTT");
    body.extend_from_slice(&[5, 0x04, 0, 60, 5, 0x11, 0, 0, 0x0E, 0x10]);
    body.extend_from_slice(&common::sessions::field(b"dies"));
    body.extend_from_slice(&[5, 0x18, 0, 0, 0, 60]);
    body.extend_from_slice(&common::sessions::field(b"will/dies"));
    body.extend_from_slice(&common::sessions::field(b"gone"));
    let mut dies = common::Raw::connect(b.addr);
    dies.send(&common::packet(0x10, &body));
    let (first, _) = dies.read_reply("CONNACK").expect("CONNACK");
    assert_eq!(first, 0x20);
    drop(dies); // the socket closes without DISCONNECT
    let deadline = Instant::now() + common::WAIT;
    while b.stats().clients_connected > 1 {
        assert!(Instant::now() < deadline, "the client's close seen in time");
        std::thread::sleep(Duration::from_millis(5));
    }
    watcher.expect_silence(Duration::from_millis(200)); // delayed, not sent
    b.stop();
    let will = watcher.read_packet().expect("the Will before the close");
    assert_eq!(will.0, 0x30);
    assert!(will.1.ends_with(b"will/diesgone"), "{:?}", will.1);
}
