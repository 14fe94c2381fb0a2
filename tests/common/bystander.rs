//! A well-behaved client that measures what an attack costs everyone else
//! (issue 14): it publishes QoS 1 to a topic of its own and receives it
//! back, one round trip after another, until told to stop.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A running bystander; [`Bystander::finish`] stops it and returns its
/// round trips.
pub struct Bystander {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Duration>>,
}

impl Bystander {
    /// Connects as `id`, subscribes to its own topic at QoS 1 and starts
    /// the round trips (one every `pause` at most).
    pub fn start(addr: SocketAddr, id: &str, pause: Duration) -> Bystander {
        let (mut c, _) = Raw::mqtt(addr, id, true);
        let topic = format!("bystander/{id}");
        c.subscribe(1, &[(&topic, 1)]);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut trips = Vec::new();
            let mut pkid = 0u16;
            while !flag.load(Ordering::Relaxed) {
                pkid = pkid % 60_000 + 1;
                trips.push(round_trip(&mut c, &topic, pkid));
                std::thread::sleep(pause);
            }
            trips
        });
        Bystander { stop, thread }
    }

    /// Stops and returns the round trips, each no longer than WAIT (a
    /// longer one fails the test in the bystander's thread).
    pub fn finish(self) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("bystander failed")
    }
}

/// One QoS 1 PUBLISH until both its PUBACK and its delivery are in.
fn round_trip(c: &mut Raw, topic: &str, pkid: u16) -> Duration {
    let start = Instant::now();
    c.send(&publish_packet(topic, b"ping", 1, pkid, false, false));
    let (mut acked, mut delivered) = (false, false);
    while !(acked && delivered) {
        let (first, body) = c.read_packet().expect("bystander: EOF");
        match first >> 4 {
            4 => acked = true,
            3 => {
                let p = parse_publish(first, &body);
                let [hi, lo] = p.pkid.to_be_bytes();
                c.send(&[0x40, 2, hi, lo]);
                delivered = true;
            }
            _ => panic!("bystander: unexpected packet {first:#04x}"),
        }
    }
    start.elapsed()
}

/// The `p`th percentile (0..=100) of `trips`.
pub fn percentile(trips: &[Duration], p: usize) -> Duration {
    let mut sorted = trips.to_vec();
    sorted.sort();
    let i = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or_default()
}
