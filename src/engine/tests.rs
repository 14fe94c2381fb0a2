//! The engine driven packet in, packet out, with no sockets and no real
//! time (in the spirit of smoltcp's socket tests): each client is a byte
//! buffer the engine reads from and an outbox it writes to, and time moves
//! only when a test says so, so keep-alive and expiry take no waiting.

use super::*;
use crate::protocol::{ConnAck, Connect, Publish, Subscribe, SubscriptionOptions};
use bytes::BytesMut;
use std::collections::HashMap;

/// Bytes a client sent that the engine has not read yet.
#[derive(Default)]
struct Wire {
    bytes: BytesMut,
    /// The peer closed its side after `bytes`.
    eof: bool,
}

impl Input for Wire {
    fn read_into(&mut self, buf: &mut BytesMut, wanted: usize) -> io::Result<ReadOutcome> {
        if self.bytes.is_empty() {
            return Ok(if self.eof {
                ReadOutcome::Eof
            } else {
                ReadOutcome::WouldBlock
            });
        }
        let n = wanted.max(1).min(self.bytes.len());
        buf.extend_from_slice(&self.bytes.split_to(n));
        Ok(ReadOutcome::Data {
            n,
            drained: self.bytes.is_empty(),
        })
    }

    fn has_buffered_input(&self) -> bool {
        false
    }
}

/// What the engine wrote to each connection.
#[derive(Default)]
struct Outbox {
    bytes: HashMap<ConnKey, BytesMut>,
    /// Connections whose peer reads nothing: their writes take no bytes.
    stuck: std::collections::HashSet<ConnKey>,
}

impl Output for Outbox {
    fn write(&mut self, key: ConnKey, buf: &mut BytesMut) -> io::Result<bool> {
        if self.stuck.contains(&key) {
            return Ok(buf.is_empty());
        }
        self.bytes.entry(key).or_default().extend_from_slice(buf);
        buf.clear();
        Ok(true)
    }
}

/// An engine, its clients' outboxes and its clock.
struct Harness {
    engine: Engine,
    out: Outbox,
    now: Instant,
    /// Connections the engine ended, with their last bytes.
    ended: HashMap<ConnKey, BytesMut>,
    /// Packets read from an outbox but not looked at yet.
    unread: HashMap<ConnKey, Vec<Packet>>,
}

/// One client: its connection and the level it speaks.
#[derive(Clone, Copy)]
struct Client {
    key: ConnKey,
    level: ProtocolLevel,
}

fn config() -> Config {
    let mut config = Config::default();
    // Only the listener's settings matter: nothing is bound.
    config.listen_on(["127.0.0.1:1883".parse().expect("an address")]);
    config
}

impl Harness {
    fn new(config: Config) -> Harness {
        Harness::with_storage(config, None)
    }

    /// An engine whose store (if any) lives on `storage`.
    fn with_storage(config: Config, storage: Option<Box<dyn Storage>>) -> Harness {
        let engine = Engine::new(config, storage).expect("an engine");
        let now = engine.started;
        Harness {
            engine,
            out: Outbox::default(),
            now,
            ended: HashMap::new(),
            unread: HashMap::new(),
        }
    }

    /// A new connection, not yet connected.
    fn open(&mut self, level: ProtocolLevel) -> Client {
        let addr = "127.0.0.1:40000".parse().expect("an address");
        let key = self.engine.add_conn(addr, 0).expect("admitted");
        // The key may be an ended connection's: forget that one.
        self.ended.remove(&key);
        self.unread.remove(&key);
        self.out.bytes.remove(&key);
        Client { key, level }
    }

    /// A connection whose CONNECT was accepted (CONNACK checked).
    fn connect(&mut self, level: ProtocolLevel, id: &str, clean: bool) -> (Client, ConnAck) {
        self.connect_with(level, &connect(level, id, clean, 0, Properties::NONE))
    }

    /// A connection that sent `packet`, a CONNECT, and had it accepted.
    fn connect_with(&mut self, level: ProtocolLevel, packet: &Packet) -> (Client, ConnAck) {
        let c = self.open(level);
        self.send(c, packet);
        let ack = self.connack(c);
        assert_eq!(ack.code, ReasonCode::Success);
        (c, ack)
    }

    /// Sends `packet` from client `c` and runs one loop iteration.
    fn send(&mut self, c: Client, packet: &Packet) {
        let mut wire = Wire::default();
        protocol::encode(packet, c.level, &mut wire.bytes).expect("encodable");
        self.deliver(c, &mut wire);
    }

    /// One loop iteration in which the engine reads `wire` from `c` (what
    /// it does not take stays there).
    fn deliver(&mut self, c: Client, wire: &mut Wire) {
        self.engine.begin_iteration(self.now);
        self.engine.read_conn(c.key, wire);
        self.end_iteration();
    }

    /// One loop iteration that reads `wire` again if the engine asks for
    /// it (a read it paused and now resumes).
    fn resume(&mut self, c: Client, wire: &mut Wire) {
        self.engine.begin_iteration(self.now);
        for key in self.engine.take_pending_reads() {
            if key == c.key {
                self.engine.read_conn(key, wire);
            }
        }
        self.end_iteration();
    }

    fn end_iteration(&mut self) {
        self.engine.end_iteration(&mut self.out);
        for closed in self.engine.take_closed() {
            self.ended.insert(closed.key, closed.last);
        }
    }

    /// Moves the clock on and runs one iteration (timers fire).
    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.engine.begin_iteration(self.now);
        self.end_iteration();
    }

    /// Every packet written to `c` since the last call (a closed
    /// connection's last bytes included).
    fn received(&mut self, c: Client) -> Vec<Packet> {
        let mut bytes = self.out.bytes.remove(&c.key).unwrap_or_default();
        if let Some(last) = self.ended.get_mut(&c.key) {
            bytes.extend_from_slice(&std::mem::take(last));
        }
        let limits = Limits {
            max_remaining_length: protocol::MAX_REMAINING_LENGTH,
            mqtt5: true,
        };
        let mut packets = self.unread.remove(&c.key).unwrap_or_default();
        while let Some(p) = protocol::decode(&mut bytes, Some(c.level), Role::Client, &limits)
            .expect("the engine writes valid packets")
        {
            packets.push(p);
        }
        assert!(bytes.is_empty(), "a partial packet was written");
        packets
    }

    /// The CONNACK written to `c`; what follows it stays unread.
    fn connack(&mut self, c: Client) -> ConnAck {
        let mut packets = self.received(c).into_iter();
        let Some(Packet::ConnAck(ack)) = packets.next() else {
            panic!("expected a CONNACK first");
        };
        self.unread.insert(c.key, packets.collect());
        ack
    }

    /// The PUBLISHes written to `c` since the last call.
    fn publishes(&mut self, c: Client) -> Vec<Publish> {
        let packets = self.received(c);
        packets
            .into_iter()
            .map(|p| match p {
                Packet::Publish(p) => p,
                other => panic!("expected PUBLISH, got {other:?}"),
            })
            .collect()
    }

    fn is_closed(&self, c: Client) -> bool {
        self.ended.contains_key(&c.key)
    }

    fn subscribe(&mut self, c: Client, filter: &str, qos: QoS) {
        let sub = Subscribe {
            pkid: 1,
            filters: vec![(filter.to_string(), SubscriptionOptions::qos(qos))],
            properties: Properties::NONE,
        };
        self.send(c, &Packet::Subscribe(sub));
        match self.received(c).as_slice() {
            [Packet::SubAck(ack)] => assert_eq!(ack.pkid, 1),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }
}

fn connect(
    level: ProtocolLevel,
    id: &str,
    clean: bool,
    keep_alive: u16,
    properties: Properties,
) -> Packet {
    Packet::Connect(Box::new(Connect {
        level: Some(level),
        clean_session: clean,
        keep_alive,
        client_id: id.to_string(),
        will: None,
        username: None,
        password: None,
        properties,
    }))
}

/// [`connect`] with a Will: "gone" on `topic`, QoS 0, with these Will
/// Properties.
fn connect_with_will(
    level: ProtocolLevel,
    id: &str,
    clean: bool,
    properties: Properties,
    topic: &str,
    will_properties: Properties,
) -> Packet {
    let mut packet = connect(level, id, clean, 0, properties);
    if let Packet::Connect(c) = &mut packet {
        c.will = Some(LastWill {
            topic: topic.into(),
            payload: bytes::Bytes::from_static(b"gone"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: will_properties,
        });
    }
    packet
}

fn publish(topic: &str, qos: QoS, pkid: u16, payload: &'static [u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        pkid,
        payload: bytes::Bytes::from_static(payload),
        properties: Properties::NONE,
    })
}

fn disconnect() -> Packet {
    Packet::Disconnect(protocol::ReasonAndProperties::new(ReasonCode::Success))
}

const V4: ProtocolLevel = ProtocolLevel::V311;
const V5: ProtocolLevel = ProtocolLevel::V5;

/// [MQTT-3.3.4-1]: a QoS 1 message reaches the subscriber at its granted
/// QoS with a packet id, and the publisher gets its PUBACK.
#[test]
fn qos1_publish_is_acknowledged_and_delivered() {
    let mut h = Harness::new(config());
    let (sub, _) = h.connect(V4, "sub", true);
    h.subscribe(sub, "a/b", QoS::AtLeastOnce);
    let (publisher, _) = h.connect(V4, "pub", true);
    h.send(publisher, &publish("a/b", QoS::AtLeastOnce, 7, b"hello"));
    assert_eq!(
        h.received(publisher),
        vec![Packet::PubAck(Ack::new(7))],
        "PUBACK with the publisher's packet id [MQTT-4.3.2-2]"
    );
    let got = h.publishes(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (&*got[0].topic, &got[0].payload[..]),
        ("a/b", &b"hello"[..])
    );
    assert_eq!(got[0].qos, QoS::AtLeastOnce);
    assert_ne!(got[0].pkid, 0);
}

/// [MQTT-4.4.0-1]: a persistent session's unacknowledged QoS 1 message is
/// sent again, with DUP set, when the client reconnects.
#[test]
fn unacknowledged_qos1_is_resent_with_dup_after_reconnect() {
    let mut h = Harness::new(config());
    let (sub, _) = h.connect(V4, "sub", false);
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    let (publisher, _) = h.connect(V4, "pub", true);
    h.send(publisher, &publish("t", QoS::AtLeastOnce, 1, b"x"));
    let first = h.publishes(sub);
    assert_eq!(first.len(), 1);
    assert!(!first[0].dup);
    // The subscriber goes away without acknowledging.
    h.send(sub, &disconnect());
    assert!(h.is_closed(sub));
    let (again, ack) = h.connect(V4, "sub", false);
    assert!(ack.session_present, "[MQTT-3.2.2-2]");
    let resent = h.publishes(again);
    assert_eq!(resent.len(), 1);
    assert!(resent[0].dup, "[MQTT-3.3.1-1]");
    assert_eq!(resent[0].pkid, first[0].pkid);
    // Acknowledged now: nothing more after a further reconnect.
    h.send(again, &Packet::PubAck(Ack::new(resent[0].pkid)));
    h.send(again, &disconnect());
    let (third, _) = h.connect(V4, "sub", false);
    assert!(h.publishes(third).is_empty());
}

/// [MQTT-4.3.3-2]: a QoS 2 PUBLISH sent again before PUBREL (DUP) is
/// acknowledged again but delivered once; PUBREL gets PUBCOMP.
#[test]
fn qos2_duplicate_is_delivered_once() {
    let mut h = Harness::new(config());
    let (sub, _) = h.connect(V4, "sub", true);
    h.subscribe(sub, "t", QoS::ExactlyOnce);
    let (publisher, _) = h.connect(V4, "pub", true);
    h.send(publisher, &publish("t", QoS::ExactlyOnce, 9, b"once"));
    assert_eq!(h.received(publisher), vec![Packet::PubRec(Ack::new(9))]);
    let Packet::Publish(mut again) = publish("t", QoS::ExactlyOnce, 9, b"once") else {
        unreachable!()
    };
    again.dup = true;
    h.send(publisher, &Packet::Publish(again));
    assert_eq!(h.received(publisher), vec![Packet::PubRec(Ack::new(9))]);
    h.send(publisher, &Packet::PubRel(Ack::new(9)));
    assert_eq!(h.received(publisher), vec![Packet::PubComp(Ack::new(9))]);
    assert_eq!(h.publishes(sub).len(), 1, "delivered once");
}

/// [MQTT-3.1.2-24]: no packet within one and a half times the Keep Alive
/// closes the connection; a PINGREQ in time keeps it. No waiting: the
/// engine's clock is the test's.
#[test]
fn keep_alive_closes_a_silent_client_at_one_and_a_half_periods() {
    let mut h = Harness::new(config());
    let (c, _) = h.connect_with(V4, &connect(V4, "k", true, 10, Properties::NONE));
    h.advance(Duration::from_secs(14));
    h.send(c, &Packet::PingReq);
    assert_eq!(h.received(c), vec![Packet::PingResp]);
    h.advance(Duration::from_secs(14));
    assert!(!h.is_closed(c), "14 s after the PINGREQ is within 15 s");
    h.advance(Duration::from_millis(1_100));
    assert!(h.is_closed(c), "15 s after the last packet: closed");
}

/// [MQTT-3.1.4-2]: a CONNECT with a connected client's id closes the
/// first connection.
#[test]
fn a_second_connect_with_the_same_id_takes_over() {
    let mut h = Harness::new(config());
    let (first, _) = h.connect(V4, "same", false);
    h.subscribe(first, "t", QoS::AtMostOnce);
    let (second, ack) = h.connect(V4, "same", false);
    assert!(h.is_closed(first));
    assert!(ack.session_present, "the session goes on [MQTT-3.2.2-2]");
    let (publisher, _) = h.connect(V4, "pub", true);
    h.send(publisher, &publish("t", QoS::AtMostOnce, 0, b"m"));
    assert_eq!(h.publishes(second).len(), 1, "the subscription came along");
}

/// [MQTT-3.3.4-9]: no more unacknowledged QoS 1 messages than the
/// client's Receive Maximum; each PUBACK lets the next one go.
#[test]
fn receive_maximum_caps_the_window_of_a_v5_client() {
    let mut h = Harness::new(config());
    let mut props = Properties::NONE;
    props.values_mut().receive_maximum = Some(2);
    let (sub, _) = h.connect_with(V5, &connect(V5, "sub", true, 0, props));
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    let (publisher, _) = h.connect(V4, "pub", true);
    for pkid in 1..=5 {
        h.send(publisher, &publish("t", QoS::AtLeastOnce, pkid, b"m"));
    }
    let window = h.publishes(sub);
    assert_eq!(window.len(), 2);
    h.send(sub, &Packet::PubAck(Ack::new(window[0].pkid)));
    assert_eq!(h.publishes(sub).len(), 1, "one PUBACK, one more message");
}

/// [MQTT-3.1.2-23]: an MQTT 5 session ends Session Expiry Interval
/// seconds after its connection closes, not before.
#[test]
fn a_v5_session_expires_on_the_engines_clock() {
    let mut h = Harness::new(config());
    let mut props = Properties::NONE;
    props.values_mut().session_expiry_interval = Some(60);
    let (c, _) = h.connect_with(V5, &connect(V5, "s", false, 0, props.clone()));
    h.send(c, &disconnect());
    h.advance(Duration::from_secs(59));
    let (again, ack) = h.connect_with(V5, &connect(V5, "s", false, 0, props.clone()));
    assert!(ack.session_present, "59 s: still there");
    h.send(again, &disconnect());
    h.advance(Duration::from_secs(61));
    let (_, ack) = h.connect_with(V5, &connect(V5, "s", false, 0, props));
    assert!(!ack.session_present, "61 s: expired");
}

/// [MQTT-3.1.0-1]: a first packet other than CONNECT ends the connection,
/// and nothing is sent to it.
#[test]
fn a_packet_before_connect_closes_the_connection() {
    let mut h = Harness::new(config());
    let c = h.open(V4);
    h.send(c, &Packet::PingReq);
    assert!(h.is_closed(c));
    assert!(h.received(c).is_empty());
}

/// Every idle connection pays for one `Conn` and one `Session` (README,
/// Benchmarks): keep them from growing unnoticed (sizes of a 64-bit
/// build).
#[test]
#[cfg(target_pointer_width = "64")]
fn per_connection_records_stay_small() {
    let conn = std::mem::size_of::<crate::conn::Conn>();
    let session = std::mem::size_of::<crate::session::Session>();
    // What an idle MQTT 5 connection adds, boxed (one 32-byte block).
    let v5 = std::mem::size_of::<crate::conn::V5>();
    assert!(v5 <= 24, "conn::V5 grew to {v5} bytes");
    assert!(conn <= 104, "Conn grew to {conn} bytes");
    assert!(session <= 112, "Session grew to {session} bytes");
}

/// [MQTT-3.3.2-17], [MQTT-3.3.2-18]: toward a v5 client that allows
/// Topic Aliases, the first message on a topic carries the topic and an
/// alias, later ones the alias and an empty topic; no more aliases than
/// the client's Topic Alias Maximum, and other topics go in full.
#[test]
fn outbound_topic_aliases_within_the_clients_maximum() {
    let mut h = Harness::new(config());
    let mut props = Properties::NONE;
    props.values_mut().topic_alias_maximum = Some(2);
    let (sub, _) = h.connect_with(V5, &connect(V5, "sub", true, 0, props));
    h.subscribe(sub, "#", QoS::AtMostOnce);
    let (publisher, _) = h.connect(V4, "pub", true);
    for topic in ["a", "a", "b", "c", "b", "c"] {
        h.send(publisher, &publish(topic, QoS::AtMostOnce, 0, b"m"));
    }
    let got: Vec<(String, Option<u16>)> = h
        .publishes(sub)
        .iter()
        .map(|p| {
            let alias = p.properties.get().and_then(|v| v.topic_alias);
            (p.topic.to_string(), alias)
        })
        .collect();
    let expected = [
        ("a", Some(1)),
        ("", Some(1)),
        ("b", Some(2)),
        ("c", None),
        ("", Some(2)),
        ("c", None),
    ];
    let expected: Vec<(String, Option<u16>)> =
        expected.iter().map(|&(t, a)| (t.to_string(), a)).collect();
    assert_eq!(got, expected);
}

/// `max_connections` (mosquitto's option): past it a new connection is
/// refused at once; a closed one makes room again. Each accepted socket
/// is counted, refused ones too.
#[test]
fn max_connections_refuses_past_the_limit_and_frees_on_close() {
    let mut cfg = config();
    cfg.max_connections = 2;
    let mut h = Harness::new(cfg);
    let addr: SocketAddr = "127.0.0.1:40000".parse().expect("an address");
    let (first, _) = h.connect(V4, "a", true);
    h.open(V4);
    assert_eq!(h.engine.add_conn(addr, 0), None, "the third is refused");
    h.send(first, &disconnect());
    assert!(h.engine.add_conn(addr, 0).is_some(), "room again");
    let stats = h.engine.stats();
    assert_eq!(stats.sockets_accepted, 4);
    assert_eq!(stats.sockets, 2);
}

/// A listener's own `max_connections` bounds its connections only.
#[test]
fn a_listeners_max_connections_bounds_that_listener_only() {
    let mut cfg = config();
    let other = "127.0.0.1:1884".parse().expect("an address");
    cfg.listen_on(["127.0.0.1:1883".parse().expect("an address"), other]);
    cfg.listeners[0].settings.max_connections = 1;
    let mut h = Harness::new(cfg);
    let addr: SocketAddr = "127.0.0.1:40000".parse().expect("an address");
    assert!(h.engine.add_conn(addr, 0).is_some());
    assert_eq!(h.engine.add_conn(addr, 0), None);
    assert!(h.engine.add_conn(addr, 1).is_some(), "the other listener");
    assert!(h.engine.add_conn(addr, 1).is_some());
}

/// Every byte read is counted (`$SYS/broker/bytes/received`).
#[test]
fn bytes_received_counts_every_byte_read() {
    let mut h = Harness::new(config());
    let c = h.open(V4);
    let mut wire = Wire::default();
    let packets = [
        connect(V4, "b", true, 0, Properties::NONE),
        publish("t", QoS::AtMostOnce, 0, b"payload"),
        Packet::PingReq,
    ];
    for p in &packets {
        protocol::encode(p, V4, &mut wire.bytes).expect("encodable");
    }
    let sent = wire.bytes.len() as u64;
    h.deliver(c, &mut wire);
    assert!(wire.bytes.is_empty());
    assert_eq!(h.engine.stats().bytes_received, sent);
    // And every byte written: the CONNACK and the PINGRESP.
    let written = h.out.bytes.get(&c.key).map_or(0, |b| b.len() as u64);
    assert_eq!(written, 4 + 2);
    assert_eq!(h.engine.stats().bytes_sent, written);
}

/// Stopping publishes the Will of each connected client (the server ends
/// their connections without DISCONNECT [MQTT-3.1.2-8]) and ends every
/// connection.
#[test]
fn stopping_publishes_the_wills_and_ends_every_connection() {
    let mut h = Harness::new(config());
    let (watcher, _) = h.connect(V4, "watcher", true);
    h.subscribe(watcher, "will/#", QoS::AtMostOnce);
    let none = Properties::NONE;
    let with_will = connect_with_will(V4, "dev", true, none.clone(), "will/dev", none);
    let (c, _) = h.connect_with(V4, &with_will);
    h.engine.stop(&mut h.out);
    for closed in h.engine.take_closed() {
        h.ended.insert(closed.key, closed.last);
    }
    assert!(h.is_closed(c) && h.is_closed(watcher));
    let wills = h.publishes(watcher);
    assert_eq!(wills.len(), 1);
    assert_eq!(&*wills[0].topic, "will/dev");
    assert_eq!(h.engine.stats().sockets, 0);
}

/// A client that reads nothing of what it is sent stops being read once
/// its output passes `max_outgoing_bytes` (its input waits in the socket),
/// and is read again once its output drains.
#[test]
fn a_client_that_does_not_read_is_not_read_either() {
    let mut cfg = config();
    cfg.max_outgoing_bytes = 2_000;
    let mut h = Harness::new(cfg);
    let (sub, _) = h.connect(V4, "sub", true);
    h.subscribe(sub, "t", QoS::AtMostOnce);
    h.out.stuck.insert(sub.key);
    let (publisher, _) = h.connect(V4, "pub", true);
    for _ in 0..50 {
        h.send(publisher, &publish("t", QoS::AtMostOnce, 0, &[0; 100]));
    }
    let mut wire = Wire::default();
    protocol::encode(&Packet::PingReq, V4, &mut wire.bytes).expect("encodable");
    h.deliver(sub, &mut wire);
    assert!(!wire.bytes.is_empty(), "its PINGREQ was not read");
    // The peer reads at last: the poller reports the socket writable.
    h.out.stuck.clear();
    h.engine.conn_event(sub.key, true, false);
    h.advance(Duration::ZERO); // its output goes out: reading resumes
    h.deliver(sub, &mut wire);
    assert!(wire.bytes.is_empty(), "read again");
    let packets = h.received(sub);
    assert_eq!(packets.last(), Some(&Packet::PingResp));
    assert!(
        h.engine.stats().dropped_qos0 > 0,
        "what did not fit was dropped"
    );
}

/// Once the poller reported the peer's FIN, a short read does not end
/// the reading: the end of the stream must be seen (and the connection
/// closed, its Will published) now, as no further readiness will come.
#[test]
fn a_peer_that_closed_is_read_to_the_end() {
    let mut h = Harness::new(config());
    let (c, _) = h.connect(V4, "gone", true);
    let mut wire = Wire {
        eof: true,
        ..Wire::default()
    };
    protocol::encode(&Packet::PingReq, V4, &mut wire.bytes).expect("encodable");
    h.engine.conn_event(c.key, false, true);
    h.deliver(c, &mut wire);
    assert!(h.is_closed(c));
    assert_eq!(h.received(c), vec![Packet::PingResp]);
}

/// A v5 CONNECT for a persistent session with a Will on `will/x` after
/// `delay` seconds.
fn connect_with_delayed_will(id: &str, delay: u32) -> Packet {
    let mut session = Properties::NONE;
    session.values_mut().session_expiry_interval = Some(3_600);
    let mut will_props = Properties::NONE;
    will_props.values_mut().will_delay_interval = Some(delay);
    connect_with_will(V5, id, false, session, "will/x", will_props)
}

/// The connection of `c` drops without DISCONNECT (end of stream).
fn drop_connection(h: &mut Harness, c: Client) {
    let mut wire = Wire {
        eof: true,
        ..Wire::default()
    };
    h.deliver(c, &mut wire);
    assert!(h.is_closed(c));
}

/// [MQTT-3.1.3-9]: the Will waits for its Will Delay Interval after the
/// connection drops, and goes then; no sooner.
#[test]
fn a_delayed_will_goes_after_its_delay_on_the_engines_clock() {
    let mut h = Harness::new(config());
    let (watcher, _) = h.connect(V4, "watcher", true);
    h.subscribe(watcher, "will/#", QoS::AtMostOnce);
    let (c, _) = h.connect_with(V5, &connect_with_delayed_will("dev", 30));
    drop_connection(&mut h, c);
    h.advance(Duration::from_secs(29));
    assert!(h.publishes(watcher).is_empty(), "29 s: not yet");
    h.advance(Duration::from_millis(1_100));
    let wills = h.publishes(watcher);
    assert_eq!(wills.len(), 1, "30 s: the Will");
    assert_eq!(&*wills[0].topic, "will/x");
}

/// [MQTT-3.1.3-9]: a client that reconnects within the Will Delay
/// Interval takes its session back and the Will is not sent.
#[test]
fn reconnecting_within_the_will_delay_cancels_the_will() {
    let mut h = Harness::new(config());
    let (watcher, _) = h.connect(V4, "watcher", true);
    h.subscribe(watcher, "will/#", QoS::AtMostOnce);
    let (c, _) = h.connect_with(V5, &connect_with_delayed_will("dev", 30));
    drop_connection(&mut h, c);
    h.advance(Duration::from_secs(20));
    let (_, ack) = h.connect_with(V5, &connect(V5, "dev", false, 0, Properties::NONE));
    assert!(ack.session_present);
    h.advance(Duration::from_secs(60));
    assert!(h.publishes(watcher).is_empty(), "no Will");
}

mod fuzz_found;
mod store;
