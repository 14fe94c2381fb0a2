//! `$SYS/broker/...`: the broker's counters, published retained under
//! mosquitto's topic names.

use super::*;

impl Broker {
    /// Publishes changed `$SYS/broker/...` values (mosquitto's topic names),
    /// retained, QoS 0.
    pub(super) fn publish_sys(&mut self) {
        let s = self.stats();
        let offline = s.sessions.saturating_sub(s.clients_connected);
        let values: [(&'static str, String); 19] = [
            (
                "$SYS/broker/version",
                format!("midge version {}", env!("CARGO_PKG_VERSION")),
            ),
            (
                "$SYS/broker/uptime",
                format!("{} seconds", self.started.elapsed().as_secs()),
            ),
            (
                "$SYS/broker/clients/connected",
                s.clients_connected.to_string(),
            ),
            ("$SYS/broker/clients/disconnected", offline.to_string()),
            (
                "$SYS/broker/clients/total",
                (s.clients_connected + offline).to_string(),
            ),
            (
                "$SYS/broker/clients/maximum",
                self.clients_maximum.to_string(),
            ),
            (
                "$SYS/broker/messages/received",
                s.messages_received.to_string(),
            ),
            ("$SYS/broker/messages/sent", s.messages_sent.to_string()),
            (
                "$SYS/broker/publish/messages/dropped",
                (s.dropped_qos0 + s.dropped_queue_full).to_string(),
            ),
            ("$SYS/broker/bytes/received", s.bytes_received.to_string()),
            ("$SYS/broker/bytes/sent", s.bytes_sent.to_string()),
            (
                "$SYS/broker/subscriptions/count",
                s.subscriptions.to_string(),
            ),
            (
                "$SYS/broker/retained messages/count",
                s.retained.to_string(),
            ),
            (
                "$SYS/broker/memory/rss",
                rss_bytes().unwrap_or(0).to_string(),
            ),
            ("$SYS/broker/connections/sockets", s.sockets.to_string()),
            (
                "$SYS/broker/publishers/paused",
                s.publishers_paused.to_string(),
            ),
            (
                "$SYS/broker/store/bytes written",
                s.store_bytes_written.to_string(),
            ),
            ("$SYS/broker/store/fsyncs", s.store_fsyncs.to_string()),
            (
                "$SYS/broker/store/failing",
                u8::from(s.store_failing).to_string(),
            ),
        ];
        for (topic, value) in values {
            if self.sys_last.get(topic) == Some(&value) {
                continue;
            }
            let msg = Arc::new(Message::new(
                topic.into(),
                bytes::Bytes::copy_from_slice(value.as_bytes()),
            ));
            self.retained.set(&msg, QoS::AtMostOnce, None);
            self.route(&msg, QoS::AtMostOnce);
            self.sys_last.insert(topic, value);
        }
    }
}

/// The process's resident set size, from /proc (Linux).
pub(super) fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
