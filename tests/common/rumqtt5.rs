//! An MQTT 5 client from an independent implementation, rumqttc's v5
//! client, with bounded waits: its connection runs in a thread that
//! forwards every incoming packet.

use super::WAIT;
use rumqttc::v5::mqttbytes::v5::{Packet as P5, Publish as Publish5, PublishProperties};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::{Client as Client5, Event as Event5, MqttOptions as Options5};
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Options for `id` at `addr`: keep-alive 30 s, otherwise rumqttc's
/// defaults (Clean Start, no Session Expiry Interval).
pub fn options(addr: SocketAddr, id: &str) -> Options5 {
    let mut opts = Options5::new(id, addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(30));
    opts
}

/// A rumqttc v5 client whose connection runs in a thread; its PUBLISHes
/// and SUBACKs come through a channel.
pub struct Rumqtt5 {
    pub client: Client5,
    packets: Receiver<P5>,
}

impl Rumqtt5 {
    /// Connects with Clean Start and no session expiry; CONNACK 0.
    pub fn connect(addr: SocketAddr, id: &str) -> Rumqtt5 {
        Rumqtt5::connect_with(options(addr, id)).0
    }

    /// Connects with these options; CONNACK 0. Returns Session Present.
    pub fn connect_with(opts: Options5) -> (Rumqtt5, bool) {
        let (client, mut connection) = Client5::new(opts, 16);
        let (tx, packets) = mpsc::channel();
        std::thread::spawn(move || {
            for ev in connection.iter() {
                match ev {
                    Ok(Event5::Incoming(p)) => {
                        if tx.send(p).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        let mut c = Rumqtt5 { client, packets };
        match c.expect("CONNACK", |p| matches!(p, P5::ConnAck(_))) {
            P5::ConnAck(a) if a.code as u8 == 0 => (c, a.session_present),
            other => panic!("CONNACK refused: {other:?}"),
        }
    }

    pub fn suback(&mut self) {
        self.expect("SUBACK", |p| matches!(p, P5::SubAck(_)));
    }

    /// Waits (bounded) for a packet `want` accepts, skipping others.
    pub fn expect(&mut self, what: &str, want: impl Fn(&P5) -> bool) -> P5 {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.packets.recv_timeout(left) {
                Ok(p) if want(&p) => return p,
                Ok(_) => {}
                Err(e) => panic!("no {what} within {WAIT:?}: {e}"),
            }
        }
    }

    pub fn publish(&mut self, topic: &str, payload: &str, retain: bool, props: PublishProperties) {
        let (t, p) = (topic.to_string(), payload.to_string());
        let q = Q5::AtLeastOnce;
        self.client
            .publish_with_properties(t, q, retain, p, props)
            .expect("publish");
        self.expect("PUBACK", |p| matches!(p, P5::PubAck(_)));
    }

    pub fn next_publish(&mut self) -> Publish5 {
        match self.expect("PUBLISH", |p| matches!(p, P5::Publish(_))) {
            P5::Publish(p) => p,
            _ => unreachable!(),
        }
    }
}
