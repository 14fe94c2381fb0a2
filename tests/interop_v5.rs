//! Interoperability at MQTT 5: the broker driven by independent clients
//! speaking version 5, `mosquitto_pub`/`mosquitto_sub -V 5`, paho-mqtt 2.x
//! (`MQTTv5`, following Home Assistant's own flow) and rumqttc's v5
//! client, beside 3.1.1 clients on the same listener.

mod common;
use common::clients::*;
use common::*;

use common::rumqtt5::*;
use rumqttc::v5::mqttbytes::v5::{Filter, PublishProperties};
use rumqttc::v5::mqttbytes::QoS as Q5;
use std::time::{Duration, Instant};

// Home Assistant (from 2027.1: MQTT 5 only) with a Zigbee2MQTT-like bridge:
// 2,000 retained discovery configs with their Content Type and User
// Property, commands with Response Topic and Correlation Data answered
// through the broker, and Home Assistant's Will when its connection dies.
// [MQTT-3.3.1-6] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17]
// [MQTT-3.3.2-18] [MQTT-3.3.2-19] [MQTT-3.3.2-20] [MQTT-3.1.2-8]
#[test]
fn home_assistant_flow_with_paho_mqttv5() {
    if !have_paho() {
        return;
    }
    let b = TestBroker::start();
    let out = Proc::spawn(
        "python3",
        &[
            script("paho_home_assistant.py")
                .to_string_lossy()
                .into_owned(),
            b.addr.ip().to_string(),
            b.addr.port().to_string(),
            "2000".into(),
        ],
    )
    .success();
    assert_eq!(
        out,
        vec!["ok 2000 discovery configs, 10 commands and responses, Will".to_string()]
    );
}

// Every property a publisher sets reaches an MQTT 5 subscriber as
// mosquitto_sub prints it, with the subscriber's Subscription Identifier;
// a 3.1.1 subscriber on the same listener gets the message without them.
// [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18]
// [MQTT-3.3.2-19] [MQTT-3.3.2-20] [MQTT-3.3.4-3]
#[test]
fn mosquitto_clients_v5_pass_every_property_on() {
    if !have_mosquitto_clients() {
        return;
    }
    let b = TestBroker::start_polled(|_| {});
    let format = "%t|%p|%P|%C|%R|%D|%F|%S";
    let v5 = Proc::spawn(
        "mosquitto_sub",
        &args(
            b.addr,
            &[
                "-V",
                "5",
                "-t",
                "t/#",
                "-C",
                "1",
                "-W",
                "5",
                "-F",
                format,
                "-D",
                "subscribe",
                "subscription-identifier",
                "7",
            ],
        ),
    );
    let v311 = Proc::spawn(
        "mosquitto_sub",
        &args(
            b.addr,
            &["-V", "311", "-t", "t/#", "-C", "1", "-W", "5", "-v"],
        ),
    );
    wait_for_subscriptions(&b, 2);
    mosquitto_pub(
        b.addr,
        &[
            "-V",
            "5",
            "-q",
            "1",
            "-t",
            "t/1",
            "-m",
            "hi",
            "-D",
            "publish",
            "user-property",
            "a",
            "b",
            "-D",
            "publish",
            "content-type",
            "text/x",
            "-D",
            "publish",
            "response-topic",
            "r/t",
            "-D",
            "publish",
            "correlation-data",
            "c1",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
        ],
    );
    assert_eq!(v5.success(), vec!["t/1|hi|a:b|text/x|r/t|c1|1|7"]);
    assert_eq!(v311.success(), vec!["t/1 hi"]);
}

/// Waits (bounded) until the broker holds `n` subscriptions.
fn wait_for_subscriptions(b: &TestBroker, n: usize) {
    let deadline = Instant::now() + WAIT;
    while b.stats().subscriptions < n {
        assert!(
            Instant::now() < deadline,
            "{n} subscriptions within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

// rumqttc's v5 client: No Local keeps a client's own messages from it,
// Retain As Published keeps the RETAIN flag on live forwarding, and User
// Properties arrive in order. [MQTT-3.8.3-3] [MQTT-3.3.1-12]
// [MQTT-3.3.1-13] [MQTT-3.3.2-17]
#[test]
fn rumqttc_v5_no_local_retain_as_published_and_user_properties() {
    let b = TestBroker::start();
    let mut a = Rumqtt5::connect(b.addr, "a");
    let mut no_local = Filter::new("n/#", Q5::AtLeastOnce);
    no_local.nolocal = true;
    let mut as_published = Filter::new("r/#", Q5::AtLeastOnce);
    as_published.preserve_retain = true;
    a.client
        .subscribe_many([no_local, as_published])
        .expect("subscribe");
    a.suback();
    let mut other = Rumqtt5::connect(b.addr, "other");
    let props = PublishProperties {
        user_properties: vec![("k".into(), "1".into()), ("k".into(), "2".into())],
        ..Default::default()
    };
    a.publish("n/own", "mine", false, PublishProperties::default());
    other.publish("n/theirs", "theirs", false, props);
    other.publish("r/kept", "r", true, PublishProperties::default());
    let first = a.next_publish();
    assert_eq!(
        &first.topic[..],
        b"n/theirs",
        "own message skipped by No Local"
    );
    let users = first.properties.map(|p| p.user_properties);
    assert_eq!(
        users,
        Some(vec![("k".into(), "1".into()), ("k".into(), "2".into())])
    );
    let second = a.next_publish();
    assert_eq!(&second.topic[..], b"r/kept");
    assert!(second.retain, "RETAIN kept for Retain As Published");
}
