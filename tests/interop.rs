//! Interoperability: the broker driven by real third-party clients, the
//! command-line `mosquitto_pub` / `mosquitto_sub` (Debian package
//! mosquitto-clients) and the Python `paho-mqtt` 2.x library, at MQTT 3.1
//! and 3.1.1 (MQTT 5: `interop_v5.rs`).

mod common;
use common::clients::*;
use common::*;

// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-3.8.4-6]: a retained
// message from mosquitto_pub -r reaches a later mosquitto_sub with the
// retain flag, at min(stored QoS, subscription QoS), for QoS 0, 1 and 2.
#[test]
fn mosquitto_sub_gets_retained_message_from_mosquitto_pub_at_qos_0_1_2() {
    if !have_mosquitto_clients() {
        return;
    }
    let b = TestBroker::start();
    // Proves each publish was processed before mosquitto_sub connects, also
    // for QoS 0 where mosquitto_pub gets no acknowledgement.
    let (mut watcher, _) = Raw::mqtt(b.addr, "watcher", true);
    watcher.subscribe(1, &[("interop/retained/#", 0)]);
    for q in 0..=2u8 {
        let topic = format!("interop/retained/q{q}");
        let payload = format!("retained at QoS {q}");
        let qs = q.to_string();
        mosquitto_pub(
            b.addr,
            &["-i", "mpub", "-t", &topic, "-m", &payload, "-q", &qs, "-r"],
        );
        let live = watcher.read_publish();
        assert_eq!(
            (live.topic.as_str(), &live.payload[..], live.retain),
            (topic.as_str(), payload.as_bytes(), false)
        );

        for sub_q in [2u8, 0] {
            let out = Proc::spawn(
                "mosquitto_sub",
                &args(
                    b.addr,
                    &[
                        "-t",
                        &topic,
                        "-q",
                        &sub_q.to_string(),
                        "-C",
                        "1",
                        "-W",
                        SUB_TIMEOUT_SECS,
                        "-F",
                        "%r|%q|%t|%p",
                    ],
                ),
            )
            .success();
            assert_eq!(
                out,
                vec![format!("1|{}|{topic}|{payload}", q.min(sub_q))],
                "mosquitto_sub -q {sub_q} on a message retained at QoS {q}"
            );
        }
    }
}

// [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2]: mosquitto_sub -c (persistent
// session, fixed id, QoS 1) receives what was published while it was away.
#[test]
fn mosquitto_sub_persistent_session_gets_messages_published_while_away() {
    if !have_mosquitto_clients() {
        return;
    }
    let b = TestBroker::start();
    let sub_args = |extra: &[&str]| {
        let mut a = vec![
            "-c",
            "-i",
            "interop-persist",
            "-q",
            "1",
            "-t",
            "interop/persist/#",
        ];
        a.extend_from_slice(extra);
        args(b.addr, &a)
    };
    // Subscribe, then exit (with DISCONNECT) once the SUBACK is in.
    Proc::spawn("mosquitto_sub", &sub_args(&["-E", "-W", SUB_TIMEOUT_SECS])).success();

    mosquitto_pub(
        b.addr,
        &["-t", "interop/persist/a", "-m", "while away 1", "-q", "1"],
    );
    mosquitto_pub(
        b.addr,
        &["-t", "interop/persist/b", "-m", "while away 2", "-q", "2"],
    );

    let out = Proc::spawn(
        "mosquitto_sub",
        &sub_args(&["-C", "2", "-W", SUB_TIMEOUT_SECS, "-F", "%q|%t|%p"]),
    )
    .success();
    assert_eq!(
        out,
        vec![
            "1|interop/persist/a|while away 1".to_string(),
            "1|interop/persist/b|while away 2".to_string(),
        ]
    );
}

// [MQTT-3.1.2-8]: the Will set with mosquitto_sub --will-topic/--will-payload
// is published when the process is killed.
#[test]
fn will_of_killed_mosquitto_sub_is_published() {
    if !have_mosquitto_clients() {
        return;
    }
    let b = TestBroker::start();
    let (mut watcher, _) = Raw::mqtt(b.addr, "watcher", true);
    watcher.subscribe(1, &[("interop/will/#", 1)]);
    // A retained message tells us when mosquitto_sub is connected and
    // subscribed: it prints it right after its SUBACK.
    let (mut setter, _) = Raw::mqtt(b.addr, "setter", true);
    setter.send(&publish_packet(
        "interop/ready",
        b"ready",
        1,
        1,
        true,
        false,
    ));
    setter.expect(&[0x40, 2, 0, 1]);

    let mut sub = Proc::spawn(
        "mosquitto_sub",
        &args(
            b.addr,
            &[
                "-i",
                "interop-will",
                "-t",
                "interop/ready",
                "-q",
                "1",
                "-W",
                "30",
                "-F",
                "%t|%p",
                "--will-topic",
                "interop/will/mosquitto_sub",
                "--will-payload",
                "mosquitto_sub died",
                "--will-qos",
                "1",
            ],
        ),
    );
    assert_eq!(sub.line(), "interop/ready|ready");
    sub.kill();

    let will = watcher.read_publish();
    assert_eq!(
        (
            will.topic.as_str(),
            &will.payload[..],
            will.qos,
            will.retain
        ),
        (
            "interop/will/mosquitto_sub",
            &b"mosquitto_sub died"[..],
            1,
            false
        )
    );
}

fn paho_qos2(version: &str) {
    if !have_paho() {
        return;
    }
    let b = TestBroker::start();
    let out = Proc::spawn(
        "python3",
        &[
            script("paho_qos2.py").to_string_lossy().into_owned(),
            b.addr.ip().to_string(),
            b.addr.port().to_string(),
            version.to_string(),
        ],
    )
    .success();
    assert_eq!(
        out,
        vec![format!("ok 20 messages at QoS 2 over MQTT v{version}")]
    );
}

// [MQTT-4.3.3-2] [MQTT-3.8.4-6] [MQTT-4.6.0-6]: paho-mqtt, MQTT 3.1.1.
#[test]
fn paho_mqttv311_qos2_publish_subscribe() {
    paho_qos2("311");
}

// MQTT 3.1 ("MQIsdp", level 3) clients are accepted: paho-mqtt with MQTTv31.
#[test]
fn paho_mqttv31_qos2_publish_subscribe() {
    paho_qos2("31");
}
