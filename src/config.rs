//! Broker settings with the defaults a small embedded machine wants.

use crate::codec::MAX_REMAINING_LENGTH;
use crate::session::Overflow;
use std::net::SocketAddr;
use std::time::Duration;

/// Policy for an online subscriber whose queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFull {
    /// Stop reading PUBLISHes from the connections that feed the full queue
    /// until it drains: TCP pushes back on the publishers, and nothing the
    /// broker acknowledged is dropped. The default.
    Block,
    /// Drop per `queue_overflow` and count it (mosquitto's behaviour).
    Drop,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on. Port 0 picks a free port (see
    /// [`crate::Broker::local_addrs`]).
    pub listen: Vec<SocketAddr>,
    /// Largest accepted Remaining Length (the standard allows 256 MiB - 1).
    /// A larger packet closes its connection.
    pub max_packet_size: usize,
    /// Outbound QoS 1/2 messages in flight per client (mosquitto:
    /// `max_inflight_messages`).
    pub max_inflight: usize,
    /// Messages queued per session behind the in-flight window, online or
    /// offline (mosquitto: `max_queued_messages`).
    pub max_queued: usize,
    /// What to drop when an offline session's queue is full (and an online
    /// one's, with [`QueueFull::Drop`]).
    pub queue_overflow: Overflow,
    /// What to do when an online subscriber's queue is full.
    pub queue_full: QueueFull,
    /// Bytes that may wait in one client's output buffer before QoS 0
    /// messages to it are dropped and QoS 1/2 ones wait in its queue. Also
    /// stops reading from a client whose replies it does not read.
    pub max_outgoing_bytes: usize,
    /// Simultaneous client connections; 0 means no limit beyond the
    /// process's file descriptors.
    pub max_connections: usize,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
    /// Accept an empty client id (CleanSession 1 only) by assigning one.
    pub allow_zero_length_client_id: bool,
    /// Queue QoS 0 messages for offline persistent sessions.
    pub queue_qos0: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 1883))],
            max_packet_size: MAX_REMAINING_LENGTH,
            max_inflight: 20,
            max_queued: 1000,
            queue_overflow: Overflow::DropNewest,
            queue_full: QueueFull::Block,
            max_outgoing_bytes: 1024 * 1024,
            max_connections: 0,
            connect_timeout: Duration::from_secs(10),
            allow_zero_length_client_id: true,
            queue_qos0: false,
        }
    }
}
