//! Persistence (`--persistence DIR`): what survives a clean restart, with
//! ACLs too, in both fsync modes, and the expiry of offline sessions.
//!
//! Durable: retained messages (not `$SYS`), persistent sessions
//! (CleanSession 0) with their subscriptions, queued and in-flight QoS 1/2
//! messages and inbound QoS 2 ids awaiting PUBREL. Not durable: clean
//! sessions, QoS 0.
//!
//! `kill -9` and the store file itself have their own test files
//! (persistence_kill.rs, persistence_store.rs).

mod common;
use common::persistence::*;
use common::*;
use midge::store::Fsync;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn retained_map(items: &[(&str, &[u8], u8)]) -> BTreeMap<String, (Vec<u8>, u8)> {
    items
        .iter()
        .map(|(t, p, q)| (t.to_string(), (p.to_vec(), *q)))
        .collect()
}

// [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2] [MQTT-3.3.1-5] [MQTT-3.3.1-10]
// [MQTT-3.3.1-11] across a restart: the session state and retained
// messages the standard makes the server keep are kept by the store.
#[test]
fn sessions_subscriptions_queues_and_retained_messages_survive_a_restart() {
    let dir = store_dir("restart");
    let mut b = start(&dir);
    let (mut sub, present) = Raw::mqtt(b.addr, "keeper", false);
    assert!(!present);
    sub.subscribe(1, &[("r/q1", 1), ("r/q2", 2), ("r/unsub", 1)]);
    sub.send(&unsubscribe_packet(2, &["r/unsub"]));
    sub.expect(&[0xB0, 2, 0, 2]);
    // A persistent session ended by a CleanSession 1 connect [MQTT-3.1.2-6].
    let (mut gone, _) = Raw::mqtt(b.addr, "ended", false);
    gone.subscribe(1, &[("r/q1", 1)]);
    disconnect(gone);
    let (gone, present) = Raw::mqtt(b.addr, "ended", true);
    assert!(!present);
    disconnect(gone);
    // A clean session, still connected when the broker stops.
    let (mut fleeting, _) = Raw::mqtt(b.addr, "fleeting", true);
    fleeting.subscribe(1, &[("r/q1", 1)]);
    let (mut p, _) = Raw::mqtt(b.addr, "restart-pub", true);
    // QoS 0 reaches online subscribers but never the disk.
    publish(&mut p, "r/q1", b"qos0-never-stored", 0, 0, false);
    assert_eq!(sub.read_publish().payload, b"qos0-never-stored");
    assert_eq!(fleeting.read_publish().payload, b"qos0-never-stored");
    disconnect(sub);

    // Queued for the offline persistent session, in this order.
    let queued: [(&str, &[u8], u8, u8); 5] = [
        ("r/q1", b"m1", 1, 1),
        ("r/q2", b"m2", 2, 2),
        ("r/q1", b"m3 sent at QoS 2, granted 1", 2, 1),
        ("r/q2", b"m4", 2, 2),
        ("r/q1", b"m5", 1, 1),
    ];
    for (i, (topic, payload, qos, _)) in queued.iter().enumerate() {
        publish(&mut p, topic, payload, *qos, i as u16 + 1, false);
    }
    // Retained: one kept, one deleted, one replaced.
    publish(&mut p, "ret/keep", b"K", 1, 10, true);
    publish(&mut p, "ret/gone", b"G", 1, 11, true);
    publish(&mut p, "ret/upd", b"old", 0, 0, true);
    publish(&mut p, "ret/upd", b"new", 2, 12, true);
    publish(&mut p, "ret/gone", b"", 0, 0, true);
    p.ping();
    b.stop();

    // Not durable: clean sessions, QoS 0, $SYS.
    let data = std::fs::read(log_file(&dir)).unwrap();
    assert!(!contains(&data, b"fleeting"), "a clean session was stored");
    assert!(!contains(&data, b"qos0-never-stored"), "QoS 0 was stored");
    assert!(!contains(&data, b"$SYS"), "$SYS was stored");

    let b = start(&dir);
    // The clean session did not come back: no session, no subscription.
    let (mut f, present) = Raw::mqtt(b.addr, "fleeting", false);
    assert!(!present, "a clean session was restored");
    f.ping();
    disconnect(f);

    let (mut e, present) = Raw::mqtt(b.addr, "ended", false);
    assert!(!present, "a session ended before the stop was restored");
    e.ping();
    disconnect(e);

    let (mut sub, present) = Raw::mqtt(b.addr, "keeper", false);
    assert!(present, "Session Present after the restart");
    let got = drain(&mut sub);
    let want: Vec<(&str, &[u8], u8)> = queued.iter().map(|(t, p, _, q)| (*t, *p, *q)).collect();
    let seen: Vec<(&str, &[u8], u8)> = got
        .iter()
        .map(|m| (m.topic.as_str(), m.payload.as_slice(), m.qos))
        .collect();
    assert_eq!(seen, want, "queued messages, in order, at the granted QoS");
    for m in &got {
        assert!(!m.dup && !m.retain && m.pkid != 0, "{m:?}");
    }

    // The subscriptions still route new messages.
    let (mut p, _) = Raw::mqtt(b.addr, "restart-pub", true);
    publish(&mut p, "r/q2", b"after-2", 2, 1, false);
    publish(&mut p, "r/q1", b"after-1", 1, 2, false);
    publish(&mut p, "r/other", b"not subscribed", 1, 3, false);
    publish(
        &mut p,
        "r/unsub",
        b"unsubscribed before the stop",
        1,
        4,
        false,
    );
    let got = drain(&mut sub);
    let seen: Vec<(&str, &[u8], u8)> = got
        .iter()
        .map(|m| (m.topic.as_str(), m.payload.as_slice(), m.qos))
        .collect();
    assert_eq!(
        seen,
        vec![("r/q2", &b"after-2"[..], 2), ("r/q1", &b"after-1"[..], 1)]
    );

    let want = retained_map(&[("ret/keep", b"K", 1), ("ret/upd", b"new", 2)]);
    assert_retained(&retained_messages(b.addr), &want, "after the restart");
}

// [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-4.3.3-1] [MQTT-4.3.3-2] [MQTT-4.6.0-1]
// across a restart: unacknowledged PUBLISHes (sent live, from the queue, or
// as a retained copy) are resent with DUP=1 and their ids, released QoS 2
// messages as PUBREL, in the original order; an inbound QoS 2 id stays known
// until its PUBREL.
#[test]
fn in_flight_messages_and_inbound_qos2_ids_survive_a_restart() {
    let dir = store_dir("inflight");
    let mut b = start(&dir);
    let (mut p, _) = Raw::mqtt(b.addr, "inflight-pub", false);
    publish(&mut p, "inf/ret", b"retained", 1, 20, true);
    let (mut sub, _) = Raw::mqtt(b.addr, "inflight-sub", false);
    sub.subscribe(1, &[("inf/#", 2)]);
    let ret = sub.read_publish(); // (no PUBACK)
    assert_eq!((ret.retain, ret.qos, ret.dup), (true, 1, false));
    disconnect(sub);

    // Queued while offline, sent from the queue on the reconnect.
    publish(&mut p, "inf/q1", b"queued-1", 1, 1, false);
    publish(&mut p, "inf/q2", b"queued-2", 2, 2, false);
    let (mut sub, present) = Raw::mqtt(b.addr, "inflight-sub", false);
    assert!(present);
    let again = sub.read_publish();
    assert_eq!(
        (again.dup, again.retain, again.pkid),
        (true, true, ret.pkid)
    );
    let q1 = sub.read_publish(); // (no PUBACK)
    let q2 = sub.read_publish();
    assert_eq!((q1.payload.as_slice(), q1.qos), (&b"queued-1"[..], 1));
    assert_eq!((q2.payload.as_slice(), q2.qos), (&b"queued-2"[..], 2));
    sub.send(&ack(PUBREC, q2.pkid));
    sub.expect(&ack(PUBREL, q2.pkid)); // (no PUBCOMP)

    // Sent while online.
    publish(&mut p, "inf/one", b"one", 1, 3, false);
    let one = sub.read_publish(); // (no PUBACK)
    assert_eq!(
        (one.qos, one.dup, one.payload.as_slice()),
        (1, false, &b"one"[..])
    );
    publish(&mut p, "inf/two", b"two", 2, 4, false);
    let two = sub.read_publish();
    assert_eq!(
        (two.qos, two.dup, two.payload.as_slice()),
        (2, false, &b"two"[..])
    );
    sub.send(&ack(PUBREC, two.pkid));
    sub.expect(&ack(PUBREL, two.pkid)); // (no PUBCOMP)

    // Inbound QoS 2, delivered, awaiting the publisher's PUBREL.
    p.send(&publish_packet("inf/seven", b"seven", 2, 7, false, false));
    p.expect(&ack(PUBREC, 7));
    let seven = sub.read_publish();
    assert_eq!(seven.payload, b"seven");
    sub.send(&ack(PUBREC, seven.pkid));
    sub.expect(&ack(PUBREL, seven.pkid));
    sub.send(&ack(PUBCOMP, seven.pkid));
    sub.ping();
    b.stop();

    let mut b = start(&dir);
    let (mut sub, present) = Raw::mqtt(b.addr, "inflight-sub", false);
    assert!(present);
    let resent = |m: &Pub| Pub {
        dup: true,
        ..m.clone()
    };
    assert_eq!(sub.read_publish(), resent(&ret), "retained copy resent");
    assert_eq!(sub.read_publish(), resent(&q1), "queued QoS 1 resent");
    sub.expect(&ack(PUBREL, q2.pkid)); // not the PUBLISH again
    assert_eq!(sub.read_publish(), resent(&one), "live QoS 1 resent");
    sub.expect(&ack(PUBREL, two.pkid));
    sub.ping(); // nothing else (the completed QoS 2 is not resent)

    let (mut p, present) = Raw::mqtt(b.addr, "inflight-pub", false);
    assert!(present);
    // The publisher did not get PUBCOMP: it resends the PUBLISH.
    p.send(&publish_packet("inf/seven", b"seven", 2, 7, false, true));
    p.expect(&ack(PUBREC, 7));
    sub.ping(); // not delivered a second time
    p.send(&ack(PUBREL, 7));
    p.expect(&ack(PUBCOMP, 7));

    // Complete the subscriber's flows; then nothing is left in flight.
    for (kind, pkid) in [
        (PUBACK, ret.pkid),
        (PUBACK, q1.pkid),
        (PUBCOMP, q2.pkid),
        (PUBACK, one.pkid),
        (PUBCOMP, two.pkid),
    ] {
        sub.send(&ack(kind, pkid));
    }
    sub.ping();
    // Id 7 was released: a new message under it is delivered.
    publish(&mut p, "inf/seven", b"seven again", 2, 7, false);
    let got = drain(&mut sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"seven again");
    b.stop();

    // The completions and the release were stored too.
    let b = start(&dir);
    let (mut sub, present) = Raw::mqtt(b.addr, "inflight-sub", false);
    assert!(present);
    sub.ping(); // nothing resent
    let (mut p, present) = Raw::mqtt(b.addr, "inflight-pub", false);
    assert!(present);
    p.send(&publish_packet(
        "inf/seven",
        b"seven third",
        2,
        7,
        false,
        false,
    ));
    p.expect(&ack(PUBREC, 7));
    p.send(&ack(PUBREL, 7));
    p.expect(&ack(PUBCOMP, 7));
    let got = drain(&mut sub);
    assert_eq!(got.len(), 1, "id 7 is free after its PUBREL");
    assert_eq!(got[0].payload, b"seven third");
}

// A full queue whose oldest messages are dropped (queue_overflow oldest):
// the drops are stored, so a restart does not bring them back.
#[test]
fn messages_dropped_from_a_full_queue_stay_dropped_after_a_restart() {
    let dir = store_dir("overflow");
    let config = |c: &mut midge::Config| {
        c.max_queued = 2;
        c.queue_overflow = midge::session::Overflow::DropOldest;
    };
    let mut b = start_cfg(&dir, config);
    let (mut sub, _) = Raw::mqtt(b.addr, "overflow-sub", false);
    sub.subscribe(1, &[("o/#", 1)]);
    disconnect(sub);
    let (mut p, _) = Raw::mqtt(b.addr, "overflow-pub", true);
    for i in 1..=4u16 {
        publish(&mut p, &format!("o/{i}"), b"x", 1, i, false);
    }
    b.stop();
    let b = start_cfg(&dir, config);
    let (mut sub, present) = Raw::mqtt(b.addr, "overflow-sub", false);
    assert!(present);
    let topics: Vec<String> = drain(&mut sub).into_iter().map(|m| m.topic).collect();
    assert_eq!(
        topics,
        vec!["o/3", "o/4"],
        "the two newest, as before the restart"
    );
}

/// A persistent session subscribed to `#` under an ACL that denies
/// `secret/#` (a filtered subscription) keeps being filtered after a
/// restart: its user name is stored, and the subscription is checked again
/// when the store is read, so messages queued while it is offline skip the
/// denied topics.
#[test]
fn a_filtered_subscription_stays_filtered_after_a_restart() {
    let dir = store_dir("acl-partial");
    let acl = dir.with_extension("acl");
    std::fs::create_dir_all(&dir).unwrap();
    let rules = "user dash\ntopic read #\ntopic deny secret/#\nuser pub\ntopic write #\n";
    std::fs::write(&acl, rules).unwrap();
    let config = |c: &mut midge::Config| c.security.acl_file = Some(acl.clone());
    let connect = || connect_user_packet("dash", "dash", false);
    let b = start_cfg(&dir, config);
    let mut dash = Raw::connect(b.addr);
    dash.send(&connect());
    dash.expect(&[0x20, 2, 0, 0]);
    dash.send(&subscribe_packet(1, &[("#", 1)]));
    assert_eq!(dash.read_reply("SUBACK"), Some((0x90, vec![0, 1, 1])));
    disconnect(dash);
    drop(b);
    let b = start_cfg(&dir, config);
    let mut publisher = Raw::connect(b.addr);
    publisher.send(&connect_user_packet("pub", "pub", true));
    publisher.expect(&[0x20, 2, 0, 0]);
    publish(&mut publisher, "secret/key", b"s", 1, 1, false);
    publish(&mut publisher, "public/temp", b"21", 1, 2, false);
    let mut dash = Raw::connect(b.addr);
    dash.send(&connect());
    dash.expect(&[0x20, 2, 1, 0]);
    let got: Vec<String> = drain(&mut dash).into_iter().map(|p| p.topic).collect();
    assert_eq!(got, ["public/temp"]);
}

/// A message dropped for one persistent subscriber (its queue is full) and
/// queued for another is stored in full for the second: a body is only
/// ever referred to once it is written.
#[test]
fn a_message_dropped_for_one_subscriber_is_stored_whole_for_the_next() {
    let dir = store_dir("dropped-body");
    let config = |c: &mut midge::Config| c.max_queued = 1;
    let b = start_cfg(&dir, config);
    for (id, filters) in [
        ("full", &[("t", 1), ("fill", 1)][..]),
        ("room", &[("t", 1)][..]),
    ] {
        let (mut c, _) = Raw::mqtt(b.addr, id, false);
        c.subscribe(1, filters);
        disconnect(c);
    }
    let (mut p, _) = Raw::mqtt(b.addr, "dropped-pub", true);
    publish(&mut p, "fill", b"fills the first queue", 1, 1, false);
    publish(&mut p, "t", b"for the second", 1, 2, false);
    disconnect(p);
    drop(b);
    let b = start_cfg(&dir, config);
    let (mut room, present) = Raw::mqtt(b.addr, "room", false);
    assert!(present);
    let got: Vec<Vec<u8>> = drain(&mut room).into_iter().map(|p| p.payload).collect();
    assert_eq!(got, [b"for the second".to_vec()]);
    let (mut full, _) = Raw::mqtt(b.addr, "full", false);
    let got: Vec<Vec<u8>> = drain(&mut full).into_iter().map(|p| p.payload).collect();
    assert_eq!(got, [b"fills the first queue".to_vec()]);
}

/// A store written before user names were stored (no `SessionUser`
/// records), opened with an ACL: the restored subscriptions are kept, and
/// checked when their session connects again, under its real user name.
#[test]
fn subscriptions_from_a_store_without_user_names_survive_an_acl() {
    use midge::store::{Record, Store};
    let dir = store_dir("old-acl");
    let (mut store, _, _) = Store::open(&dir, Fsync::Always).unwrap();
    store.append(&Record::Session {
        client: "dev".into(),
    });
    store.append(&Record::Sub {
        client: "dev".into(),
        filter: "alice/#".into(),
        qos: 1,
    });
    store.sync().unwrap();
    drop(store);
    let acl = dir.with_extension("acl");
    std::fs::write(&acl, "user alice\ntopic readwrite alice/#\n").unwrap();
    let b = start_cfg(&dir, |c| c.security.acl_file = Some(acl.clone()));
    let mut dev = Raw::connect(b.addr);
    dev.send(&connect_user_packet("dev", "alice", false));
    dev.expect(&[0x20, 2, 1, 0]);
    let mut p = Raw::connect(b.addr);
    p.send(&connect_user_packet("alice-pub", "alice", true));
    p.expect(&[0x20, 2, 0, 0]);
    publish(&mut p, "alice/x", b"kept", 1, 1, false);
    let got: Vec<Vec<u8>> = drain(&mut dev).into_iter().map(|m| m.payload).collect();
    assert_eq!(got, [b"kept".to_vec()]);
}

// A session resumed under a user who may not read some of its in-flight
// messages: the unacknowledged PUBLISHes it may not read are dropped, and
// stay dropped across a restart; those it may read are resent
// [MQTT-4.4.0-1], and a QoS 2 message past PUBREC (already delivered)
// keeps its PUBREL whatever its topic.
#[test]
fn in_flight_messages_a_resuming_user_may_not_read_are_dropped_for_good() {
    let dir = store_dir("acl-inflight");
    let acl = dir.with_extension("acl");
    std::fs::write(
        &acl,
        "user a\ntopic read #\nuser b\ntopic read public/#\nuser w\ntopic write #\n",
    )
    .unwrap();
    let config = |c: &mut midge::Config| c.security.acl_file = Some(acl.clone());
    let connect_as = |addr, user: &str| {
        let mut c = Raw::connect(addr);
        c.send(&connect_user_packet("dev", user, false));
        c
    };
    let mut b = start_cfg(&dir, config);
    let mut dev = connect_as(b.addr, "a");
    dev.expect(&[0x20, 2, 0, 0]);
    dev.subscribe(1, &[("#", 2)]);
    let mut w = Raw::connect(b.addr);
    w.send(&connect_user_packet("writer", "w", true));
    w.expect(&[0x20, 2, 0, 0]);
    publish(&mut w, "x/secret", b"for a", 1, 1, false);
    publish(&mut w, "public/one", b"for all", 1, 2, false);
    publish(&mut w, "x/released", b"delivered", 2, 3, false);
    let secret = dev.read_publish(); // (no PUBACK)
    let public = dev.read_publish(); // (no PUBACK)
    let released = dev.read_publish();
    assert_eq!(
        (secret.topic.as_str(), public.topic.as_str(), released.qos),
        ("x/secret", "public/one", 2)
    );
    dev.send(&ack(PUBREC, released.pkid));
    dev.expect(&ack(PUBREL, released.pkid)); // (no PUBCOMP)
    disconnect(dev);

    let resent = Pub {
        dup: true,
        ..public.clone()
    };
    let mut dev = connect_as(b.addr, "b");
    dev.expect(&[0x20, 2, 1, 0]);
    assert_eq!(dev.read_publish(), resent, "only what b may read");
    dev.expect(&ack(PUBREL, released.pkid));
    dev.ping();
    disconnect(dev);
    b.stop();

    let b = start_cfg(&dir, config);
    let mut dev = connect_as(b.addr, "b");
    dev.expect(&[0x20, 2, 1, 0]);
    assert_eq!(dev.read_publish(), resent, "x/secret did not come back");
    dev.expect(&ack(PUBREL, released.pkid));
    dev.send(&ack(PUBACK, public.pkid));
    dev.send(&ack(PUBCOMP, released.pkid));
    dev.ping();
}

// `--fsync SECS` (interval mode) keeps everything over a clean stop
// (SIGTERM) and restart of the binary.
#[test]
fn interval_fsync_mode_keeps_state_over_a_restart_of_the_binary() {
    let dir = store_dir("interval");
    let opts = ["--fsync", "1", "--sys-interval", "0"];
    let mut m = Midge::start(&dir, &opts);
    let line = m.wait_for("persistence: restored");
    assert!(
        line.contains("restored 0 sessions, 0 subscriptions, 0 retained and 0 queued messages"),
        "{line}"
    );
    let (mut sub, _) = Raw::mqtt(m.addr, "interval-sub", false);
    sub.subscribe(1, &[("iv/#", 2)]);
    disconnect(sub);
    let (mut p, _) = Raw::mqtt(m.addr, "interval-pub", true);
    publish(&mut p, "iv/a", b"a1", 1, 1, false);
    publish(&mut p, "iv/b", b"b2", 2, 2, false);
    publish(&mut p, "ivr/keep", b"R", 1, 3, true);
    m.terminate();

    let mut m = Midge::start(&dir, &opts);
    let line = m.wait_for("persistence: restored");
    assert!(
        line.contains("restored 1 sessions, 1 subscriptions, 1 retained and 2 queued messages"),
        "{line}"
    );
    let (mut sub, present) = Raw::mqtt(m.addr, "interval-sub", false);
    assert!(present);
    let got = drain(&mut sub);
    let seen: Vec<(&str, &[u8], u8)> = got
        .iter()
        .map(|m| (m.topic.as_str(), m.payload.as_slice(), m.qos))
        .collect();
    assert_eq!(seen, vec![("iv/a", &b"a1"[..], 1), ("iv/b", &b"b2"[..], 2)]);
    let want = retained_map(&[("ivr/keep", b"R", 1)]);
    assert_retained(&retained_messages(m.addr), &want, "after the restart");
    m.terminate();
}

// persistent_client_expiration: an offline persistent session older than
// the expiry is deleted (and stays deleted across a restart); a session
// that reconnects in time is kept.
#[test]
fn offline_sessions_expire() {
    let dir = store_dir("expiry");
    let b = start_cfg(&dir, |c| {
        c.session_expiry = Some(Duration::from_secs(1));
        // Several $SYS updates fall within the second the session is
        // offline, so the count of 1 is seen whatever the timers' drift.
        c.sys_interval = Duration::from_millis(200);
    });
    let mut old = Raw::connect(b.addr);
    old.send(&connect_packet("sleeper", false, 60));
    old.expect(&[0x20, 2, 0, 0]);
    old.subscribe(1, &[("t", 1)]);
    disconnect(old);
    // Back at once: the session is still there.
    let mut back = Raw::connect(b.addr);
    back.send(&connect_packet("sleeper", false, 60));
    back.expect(&[0x20, 2, 1, 0]);
    disconnect(back);
    // Wait (bounded) until $SYS has counted the offline session and then
    // none.
    let (mut watch, _) = Raw::mqtt(b.addr, "watch", true);
    watch.send(&subscribe_packet(
        1,
        &[("$SYS/broker/clients/disconnected", 0)],
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut counted = false;
    loop {
        assert!(Instant::now() < deadline, "session never expired");
        let (first, body) = watch.read_packet().expect("packet");
        if first >> 4 != 3 {
            continue;
        }
        match &parse_publish(first, &body).payload[..] {
            b"1" => counted = true,
            b"0" if counted => break,
            _ => {}
        }
    }
    drop(b);
    let b = start(&dir);
    let mut late = Raw::connect(b.addr);
    late.send(&connect_packet("sleeper", false, 60));
    late.expect(&[0x20, 2, 0, 0]); // Session Present 0: it expired
}
