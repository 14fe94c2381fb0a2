//! Users and ACLs through a running broker: password files in mosquitto's
//! format, allow_anonymous, ACL decisions on SUBSCRIBE and PUBLISH.

mod common;
use common::*;
use midge::auth::hash_password;
use std::path::PathBuf;

fn write(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// CONNECT with user name (and password if given); returns the CONNACK code.
fn connect_as(
    addr: std::net::SocketAddr,
    id: &str,
    user: Option<&str>,
    pass: Option<&[u8]>,
) -> (Raw, u8) {
    let mut flags = 0x02u8;
    let mut payload = Vec::new();
    let mut put = |b: &[u8]| {
        payload.extend_from_slice(&(b.len() as u16).to_be_bytes());
        payload.extend_from_slice(b);
    };
    put(id.as_bytes());
    if let Some(u) = user {
        flags |= 0x80;
        put(u.as_bytes());
    }
    if let Some(p) = pass {
        flags |= 0x40;
        put(p);
    }
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 60];
    body.extend_from_slice(&payload);
    let mut c = Raw::connect(addr);
    c.send(&packet(0x10, &body));
    let (first, ack) = c.read_reply("CONNACK").expect("CONNACK, got EOF");
    assert_eq!((first, ack.len(), ack[0]), (0x20, 2, 0), "CONNACK shape");
    (c, ack[1])
}

fn password_file(tag: &str) -> PathBuf {
    let text = format!(
        "# users\nalice:{}\nbob:{}\n",
        hash_password(b"wonderland", 101),
        hash_password(b"builder", 101)
    );
    write(&format!("{tag}.passwd"), &text)
}

#[test]
fn password_file_decides_connack_4_and_5() {
    let file = password_file("pw");
    let b = TestBroker::start_with(|c| c.security.password_file = Some(file.clone()));
    assert_eq!(
        connect_as(b.addr, "a", Some("alice"), Some(b"wonderland")).1,
        0
    );
    let (mut refused, code) = connect_as(b.addr, "b", Some("alice"), Some(b"wrong"));
    assert_eq!(code, 4, "bad password: CONNACK 4");
    refused.expect_closed();
    assert_eq!(connect_as(b.addr, "c", Some("mallory"), Some(b"x")).1, 4);
    assert_eq!(
        connect_as(b.addr, "d", Some("bob"), None).1,
        4,
        "missing password"
    );
    // A password file turns anonymous access off unless asked for.
    assert_eq!(connect_as(b.addr, "e", None, None).1, 5);
}

#[test]
fn allow_anonymous_can_be_kept_on_with_a_password_file() {
    let file = password_file("anon");
    let b = TestBroker::start_with(|c| {
        c.security.password_file = Some(file.clone());
        c.security.allow_anonymous = Some(true);
    });
    assert_eq!(connect_as(b.addr, "anon", None, None).1, 0);
    assert_eq!(connect_as(b.addr, "x", Some("bob"), Some(b"nope")).1, 4);
}

#[test]
fn allow_anonymous_false_without_password_file_refuses_anonymous() {
    let b = TestBroker::start_with(|c| c.security.allow_anonymous = Some(false));
    assert_eq!(connect_as(b.addr, "anon", None, None).1, 5);
}

#[test]
fn acl_denies_subscriptions_with_0x80_and_drops_denied_publishes() {
    let acl = write(
        "broker.acl",
        "# anonymous clients may only read public/#\n\
         topic read public/#\n\
         user alice\n\
         topic readwrite alice/#\n\
         topic write public/#\n\
         pattern readwrite devices/%c/#\n",
    );
    let b = TestBroker::start_with(|c| c.security.acl_file = Some(acl.clone()));
    let (mut alice, code) = connect_as(b.addr, "alice-phone", Some("alice"), None);
    assert_eq!(code, 0);
    // [MQTT-3.8.4-5]: one code per filter, 0x80 for the denied one.
    alice.send(&subscribe_packet(
        1,
        &[("alice/#", 1), ("bob/#", 1), ("devices/alice-phone/#", 0)],
    ));
    assert_eq!(
        alice.read_reply("SUBACK"),
        Some((0x90, vec![0, 1, 1, 0x80, 0]))
    );
    let (mut anon, _) = Raw::mqtt(b.addr, "anon", true);
    anon.send(&subscribe_packet(1, &[("public/#", 0), ("alice/#", 0)]));
    assert_eq!(anon.read_reply("SUBACK"), Some((0x90, vec![0, 1, 0, 0x80])));
    // Anonymous may not write public/#: acknowledged and dropped
    // [MQTT-3.3.5-2]; alice may, and anonymous readers get it.
    anon.send(&publish_packet(
        "public/news",
        b"from anon",
        1,
        7,
        false,
        false,
    ));
    anon.expect(&[0x40, 2, 0, 7]);
    alice.send(&publish_packet(
        "public/news",
        b"from alice",
        1,
        8,
        false,
        false,
    ));
    alice.expect(&[0x40, 2, 0, 8]);
    let m = anon.read_publish();
    assert_eq!(
        m.payload, b"from alice",
        "the denied publish was not delivered"
    );
    // The pattern grants alice's own device topic through %c.
    alice.send(&publish_packet(
        "devices/alice-phone/battery",
        b"80",
        0,
        0,
        false,
        false,
    ));
    assert_eq!(alice.read_publish().payload, b"80");
}

#[test]
fn denied_will_is_not_published() {
    let acl = write("will.acl", "topic read #\ntopic write status/ok\n");
    let b = TestBroker::start_with(|c| c.security.acl_file = Some(acl.clone()));
    let (mut observer, _) = Raw::mqtt(b.addr, "observer", true);
    observer.subscribe(1, &[("status/#", 0)]);
    for (id, topic) in [("denied", "status/secret"), ("allowed", "status/ok")] {
        let mut c = Raw::connect(b.addr);
        c.send(&connect_with_will(
            id,
            true,
            60,
            topic,
            id.as_bytes(),
            0,
            false,
        ));
        c.expect(&[0x20, 2, 0, 0]);
        drop(c);
    }
    // Only the allowed Will arrives.
    assert_eq!(observer.read_publish().payload, b"allowed");
    observer.ping();
}

/// `use_username_as_clientid`: the user name becomes the client id, so a
/// second connection of the same user takes over the first whatever id it
/// sends, and a client without a user name is refused (CONNACK 5).
#[test]
fn username_as_client_id() {
    let b = TestBroker::start_with(|c| c.listeners[0].settings.use_username_as_client_id = true);
    let (mut first, code) = connect_as(b.addr, "phone", Some("carol"), None);
    assert_eq!(code, 0);
    first.subscribe(1, &[("t", 0)]);
    let (mut second, code) = connect_as(b.addr, "laptop", Some("carol"), None);
    assert_eq!(code, 0);
    first.expect_closed(); // taken over: both are "carol"
    second.ping();
    let (mut anon, code) = connect_as(b.addr, "anon", None, None);
    assert_eq!(code, 5);
    anon.expect_closed();
}

/// `clientid_prefixes`: ids without the prefix get CONNACK 2 (identifier
/// rejected); `auto_id_prefix` names the ids the broker assigns, so they
/// can be allowed too.
#[test]
fn client_id_prefixes_and_assigned_ids() {
    let b = TestBroker::start_with(|c| {
        c.client_id_prefix = Some("sensor-".into());
        c.security.auto_id_prefix = "sensor-auto-".into();
    });
    let (mut ok, code) = connect_as(b.addr, "sensor-12", None, None);
    assert_eq!(code, 0);
    ok.ping();
    let (mut other, code) = connect_as(b.addr, "laptop", None, None);
    assert_eq!(code, 2);
    other.expect_closed();
    // An empty id (CleanSession 1) is assigned "sensor-auto-...": allowed.
    let (mut assigned, code) = connect_as(b.addr, "", None, None);
    assert_eq!(code, 0);
    assigned.ping();
}

/// `topic read #` with `topic deny secret/#` (a common mosquitto ACL): the
/// subscription to `#` is granted, and messages on denied topics, live or
/// retained, never reach the subscriber, as with mosquitto.
#[test]
fn a_partly_denied_subscription_is_granted_and_filtered_per_message() {
    let acl = write(
        "partial.acl",
        "user dash\ntopic read #\ntopic deny secret/#\nuser pub\ntopic write #\n",
    );
    let b = TestBroker::start_with(|c| c.security.acl_file = Some(acl.clone()));
    let (mut publisher, code) = connect_as(b.addr, "pub", Some("pub"), None);
    assert_eq!(code, 0);
    publisher.send(&publish_packet("secret/key", b"s", 1, 1, true, false));
    publisher.expect(&[0x40, 2, 0, 1]);
    publisher.send(&publish_packet("public/temp", b"21", 1, 2, true, false));
    publisher.expect(&[0x40, 2, 0, 2]);
    let (mut dash, code) = connect_as(b.addr, "dash", Some("dash"), None);
    assert_eq!(code, 0);
    dash.send(&subscribe_packet(1, &[("#", 1), ("secret/#", 1)]));
    assert_eq!(dash.read_reply("SUBACK"), Some((0x90, vec![0, 1, 1, 0x80])));
    let retained = dash.read_publish();
    assert_eq!(
        (retained.topic.as_str(), retained.retain),
        ("public/temp", true)
    );
    for (i, topic) in ["secret/key", "public/hum", "secret/x/y", "public/end"]
        .iter()
        .enumerate()
    {
        let pkid = 10 + i as u16;
        publisher.send(&publish_packet(topic, b"v", 1, pkid, false, false));
        publisher.expect(&[0x40, 2, 0, pkid as u8]);
    }
    let mut got = Vec::new();
    while got.last().map(String::as_str) != Some("public/end") {
        let p = dash.read_publish();
        dash.send(&[0x40, 2, (p.pkid >> 8) as u8, p.pkid as u8]);
        got.push(p.topic);
    }
    assert_eq!(got, ["public/hum", "public/end"]);
    dash.ping(); // and nothing else was queued
}

/// A persistent session resumed under another user name keeps only the
/// subscriptions that user may have, and gets only the queued messages it
/// may read: they were granted and routed for the old one.
#[test]
fn a_session_resumed_by_another_user_is_checked_again() {
    let acl = write(
        "resume.acl",
        "user a\ntopic read #\nuser b\ntopic read public/#\nuser w\ntopic write #\n",
    );
    let b = TestBroker::start_with(|c| c.security.acl_file = Some(acl.clone()));
    let connect = |user: &str| {
        let mut c = Raw::connect(b.addr);
        c.send(&connect_user_packet("dev", user, false));
        c
    };
    let mut dev = connect("a");
    dev.expect(&[0x20, 2, 0, 0]);
    dev.send(&subscribe_packet(1, &[("#", 1)]));
    assert_eq!(dev.read_reply("SUBACK"), Some((0x90, vec![0, 1, 1])));
    dev.send(&[0xE0, 0]);
    dev.expect_closed();
    // Queued for the session while it is offline, readable by a.
    let (mut w, code) = connect_as(b.addr, "writer", Some("w"), None);
    assert_eq!(code, 0);
    w.send(&publish_packet("x/secret", b"for a", 1, 1, false, false));
    w.expect(&[0x40, 2, 0, 1]);
    w.send(&publish_packet("public/q", b"for all", 1, 2, false, false));
    w.expect(&[0x40, 2, 0, 2]);
    let mut dev = connect("b");
    dev.expect(&[0x20, 2, 1, 0]); // session present
                                  // Of the queue, only what b may read arrives.
    let p = dev.read_publish();
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("public/q", &b"for all"[..])
    );
    dev.send(&[0x40, 2, (p.pkid >> 8) as u8, p.pkid as u8]);
    dev.ping();
    w.send(&publish_packet("public/p", b"1", 0, 0, false, false));
    w.send(&publish_packet("x/y", b"2", 0, 0, false, false));
    w.ping();
    dev.ping(); // `#` was removed: nothing arrives
}

// ------------------------------------------------------------- MQTT 3.1

/// An MQTT 3.1 CONNECT ("MQIsdp", level 3, Keep Alive 60) with these flags
/// and payload fields (client id first).
fn connect_v31(flags: u8, fields: &[&[u8]]) -> Vec<u8> {
    let mut body = vec![0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, flags, 0, 60];
    for f in fields {
        body.extend_from_slice(&(f.len() as u16).to_be_bytes());
        body.extend_from_slice(f);
    }
    packet(0x10, &body)
}

/// Sends `connect` on a new connection; returns it and the CONNACK code.
fn connack_of(addr: std::net::SocketAddr, connect: &[u8]) -> (Raw, u8) {
    let mut c = Raw::connect(addr);
    c.send(connect);
    let (first, ack) = c.read_reply("CONNACK").expect("CONNACK, got EOF");
    assert_eq!((first, ack.len(), ack[0]), (0x20, 2, 0), "CONNACK shape");
    (c, ack[1])
}

/// MQTT 3.1 clients (level 3) send their user name and password in the
/// same payload fields as 3.1.1: the password file decides for them too
/// (CONNACK 4 for a bad password, then close [MQTT-3.2.2-5]).
#[test]
fn mqtt_3_1_clients_log_in_with_the_password_file() {
    let file = password_file("v31");
    let b = TestBroker::start_with(|c| c.security.password_file = Some(file.clone()));
    let good = connect_v31(0xC2, &[b"v31-good", b"alice", b"wonderland"]);
    let (mut ok, code) = connack_of(b.addr, &good);
    assert_eq!(code, 0, "alice with her password");
    ok.ping();
    let bad = connect_v31(0xC2, &[b"v31-bad", b"alice", b"wrong"]);
    let (mut refused, code) = connack_of(b.addr, &bad);
    assert_eq!(code, 4, "bad password: CONNACK 4");
    refused.expect_closed();
    let unknown = connect_v31(0xC2, &[b"v31-who", b"mallory", b"wonderland"]);
    assert_eq!(connack_of(b.addr, &unknown).1, 4, "unknown user");
    // Anonymous (no user name) is refused when a password file is set.
    assert_eq!(connack_of(b.addr, &connect_v31(0x02, &[b"v31-anon"])).1, 5);
}

/// ACL rules by user name apply to an MQTT 3.1 client under its user name
/// ([MQTT-3.8.4-5]: one return code per filter, 0x80 for a denied one).
#[test]
fn acl_rules_by_user_name_apply_to_mqtt_3_1_clients() {
    let acl = write(
        "v31.acl",
        "topic read public/#\nuser alice\ntopic readwrite alice/#\n",
    );
    let b = TestBroker::start_with(|c| c.security.acl_file = Some(acl.clone()));
    let (mut alice, code) = connack_of(b.addr, &connect_v31(0x82, &[b"v31-a", b"alice"]));
    assert_eq!(code, 0);
    alice.send(&subscribe_packet(1, &[("alice/#", 1), ("public/#", 0)]));
    assert_eq!(
        alice.read_reply("SUBACK"),
        Some((0x90, vec![0, 1, 1, 0x80]))
    );
    // alice may write alice/#: her own subscription gets it back (routed
    // before the PUBACK is written).
    alice.send(&publish_packet("alice/x", b"mine", 0, 0, false, false));
    assert_eq!(alice.read_publish().payload, b"mine");
    let (mut anon, code) = connack_of(b.addr, &connect_v31(0x02, &[b"v31-anon"]));
    assert_eq!(code, 0);
    anon.send(&subscribe_packet(1, &[("alice/#", 1), ("public/#", 0)]));
    assert_eq!(anon.read_reply("SUBACK"), Some((0x90, vec![0, 1, 0x80, 0])));
}

/// MQTT 3.1 clients sometimes set the user name (and password) flag
/// without the field; mosquitto accepts that as no user name, and so does
/// midge (3.1.1 requires the field: [MQTT-3.1.2-19], [MQTT-3.1.2-21]).
#[test]
fn an_mqtt_3_1_user_name_flag_without_the_field_is_tolerated() {
    let b = TestBroker::start();
    for flags in [0x82, 0xC2] {
        let (mut c, code) = connack_of(b.addr, &connect_v31(flags, &[b"v31-flagged"]));
        assert_eq!(code, 0, "flags {flags:#04x}");
        c.ping();
        c.disconnect();
    }
    // Anonymous access off: such a client is anonymous, so refused.
    let b = TestBroker::start_with(|c| c.security.allow_anonymous = Some(false));
    let (mut c, code) = connack_of(b.addr, &connect_v31(0x82, &[b"v31-flagged"]));
    assert_eq!(code, 5);
    c.expect_closed();
}
