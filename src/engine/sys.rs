//! `$SYS/broker/...`: the broker's counters, published retained under
//! mosquitto's topic names, with mosquitto's load averages (per-minute
//! rates averaged over 1, 5 and 15 minutes).

use super::*;

/// `$SYS/broker/load/STEM/WINDOW`: the counters whose per-minute rates are
/// averaged, as mosquitto names them, each over [`WINDOWS`].
const LOAD_TOPICS: [[&str; 3]; 9] = [
    [
        "$SYS/broker/load/messages/received/1min",
        "$SYS/broker/load/messages/received/5min",
        "$SYS/broker/load/messages/received/15min",
    ],
    [
        "$SYS/broker/load/messages/sent/1min",
        "$SYS/broker/load/messages/sent/5min",
        "$SYS/broker/load/messages/sent/15min",
    ],
    [
        "$SYS/broker/load/publish/received/1min",
        "$SYS/broker/load/publish/received/5min",
        "$SYS/broker/load/publish/received/15min",
    ],
    [
        "$SYS/broker/load/publish/sent/1min",
        "$SYS/broker/load/publish/sent/5min",
        "$SYS/broker/load/publish/sent/15min",
    ],
    [
        "$SYS/broker/load/publish/dropped/1min",
        "$SYS/broker/load/publish/dropped/5min",
        "$SYS/broker/load/publish/dropped/15min",
    ],
    [
        "$SYS/broker/load/bytes/received/1min",
        "$SYS/broker/load/bytes/received/5min",
        "$SYS/broker/load/bytes/received/15min",
    ],
    [
        "$SYS/broker/load/bytes/sent/1min",
        "$SYS/broker/load/bytes/sent/5min",
        "$SYS/broker/load/bytes/sent/15min",
    ],
    [
        "$SYS/broker/load/connections/1min",
        "$SYS/broker/load/connections/5min",
        "$SYS/broker/load/connections/15min",
    ],
    [
        "$SYS/broker/load/sockets/1min",
        "$SYS/broker/load/sockets/5min",
        "$SYS/broker/load/sockets/15min",
    ],
];

/// Averaging windows in seconds, in the order of [`LOAD_TOPICS`]' columns.
const WINDOWS: [f64; 3] = [60.0, 300.0, 900.0];

/// The counters behind [`LOAD_TOPICS`], in its order. midge counts
/// PUBLISH packets in `messages/*` (mosquitto counts every packet there).
fn load_counts(s: &Stats) -> [u64; 9] {
    [
        s.messages_received,
        s.messages_sent,
        s.messages_received,
        s.messages_sent,
        s.dropped_qos0 + s.dropped_queue_full,
        s.bytes_received,
        s.bytes_sent,
        s.connects_total,
        s.sockets_accepted,
    ]
}

/// Exponentially weighted averages of per-minute rates, updated at each
/// `$SYS` interval (mosquitto's `calc_load`).
#[derive(Debug, Default)]
pub(super) struct Load {
    /// When the counters were last sampled, and their values then.
    last: Option<(Instant, [u64; 9])>,
    /// Per counter, the averages over each of [`WINDOWS`].
    averages: [[f64; 3]; 9],
}

impl Load {
    fn update(&mut self, now: Instant, counts: [u64; 9]) {
        if let Some((then, before)) = self.last {
            let dt = now.saturating_duration_since(then).as_secs_f64();
            if dt > 0.0 {
                for (avg, (new, old)) in self.averages.iter_mut().zip(counts.iter().zip(before)) {
                    let rate = new.saturating_sub(old) as f64 * 60.0 / dt;
                    for (a, window) in avg.iter_mut().zip(WINDOWS) {
                        let keep = (-dt / window).exp();
                        *a = keep * *a + (1.0 - keep) * rate;
                    }
                }
            }
        }
        self.last = Some((now, counts));
    }

    /// (topic, value) of every load average, as mosquitto formats them.
    fn values(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        self.averages
            .iter()
            .zip(&LOAD_TOPICS)
            .flat_map(|(avg, names)| {
                avg.iter()
                    .zip(names)
                    .map(|(a, name)| (*name, format!("{a:.2}")))
            })
    }
}

impl Engine {
    /// Publishes changed `$SYS/broker/...` values (mosquitto's topic names),
    /// retained, QoS 0.
    pub(super) fn publish_sys(&mut self) {
        let s = self.stats();
        self.sys_load.update(Instant::now(), load_counts(&s));
        let mut values = self.sys_values(&s);
        values.extend(self.sys_load.values());
        for (topic, value) in values {
            if self.sys_last.get(topic) == Some(&value) {
                continue;
            }
            let msg = Arc::new(Message::new(
                topic.into(),
                bytes::Bytes::copy_from_slice(value.as_bytes()),
            ));
            self.retained.set(&msg, QoS::AtMostOnce, None);
            self.route(&mut Routed::Shared(msg), QoS::AtMostOnce, Origin::Broker);
            self.sys_last.insert(topic, value);
        }
    }

    /// Every `$SYS` value but the load averages.
    fn sys_values(&self, s: &Stats) -> Vec<(&'static str, String)> {
        let offline = s.sessions.saturating_sub(s.clients_connected);
        let stored = (s.retained + s.queued_messages).to_string();
        let mut values = vec![
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
            (
                "$SYS/broker/clients/active",
                s.clients_connected.to_string(),
            ),
            ("$SYS/broker/clients/disconnected", offline.to_string()),
            ("$SYS/broker/clients/inactive", offline.to_string()),
            (
                "$SYS/broker/clients/total",
                (s.clients_connected + offline).to_string(),
            ),
            (
                "$SYS/broker/clients/maximum",
                self.clients_maximum.to_string(),
            ),
            ("$SYS/broker/clients/expired", s.clients_expired.to_string()),
            (
                "$SYS/broker/messages/received",
                s.messages_received.to_string(),
            ),
            ("$SYS/broker/messages/sent", s.messages_sent.to_string()),
            ("$SYS/broker/messages/stored", stored.clone()),
            (
                "$SYS/broker/publish/messages/received",
                s.messages_received.to_string(),
            ),
            (
                "$SYS/broker/publish/messages/sent",
                s.messages_sent.to_string(),
            ),
            (
                "$SYS/broker/publish/messages/dropped",
                (s.dropped_qos0 + s.dropped_queue_full).to_string(),
            ),
            (
                "$SYS/broker/publish/bytes/received",
                s.publish_bytes_received.to_string(),
            ),
            (
                "$SYS/broker/publish/bytes/sent",
                s.publish_bytes_sent.to_string(),
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
            ("$SYS/broker/store/messages/count", stored),
            (
                "$SYS/broker/store/messages/bytes",
                (s.retained_bytes + s.queued_bytes).to_string(),
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
        ];
        if self.store.is_some() {
            values.push((
                "$SYS/broker/store/bytes written",
                s.store_bytes_written.to_string(),
            ));
            values.push(("$SYS/broker/store/fsyncs", s.store_fsyncs.to_string()));
            values.push((
                "$SYS/broker/store/failing",
                u8::from(s.store_failing).to_string(),
            ));
        }
        values
    }
}

/// Messages a session holds: queued and in flight.
pub(super) fn queued_messages(sess: &Session) -> usize {
    let flow = sess.flow();
    flow.queue.len() + flow.inflight.len()
}

/// Their payload bytes.
pub(super) fn queued_bytes(sess: &Session) -> u64 {
    let flow = sess.flow();
    let inflight: usize = flow
        .inflight
        .iter()
        .map(|f| f.delivery.msg.payload.len())
        .sum();
    (flow.queued_bytes + inflight) as u64
}

/// The process's resident set size, from /proc (Linux).
pub(super) fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_averages_follow_mosquittos_per_minute_rates() {
        let mut load = Load::default();
        let t0 = Instant::now();
        load.update(t0, [0; 9]);
        // 60 messages received in one minute: a rate of 60 per minute.
        load.update(t0 + Duration::from_secs(60), [60, 0, 0, 0, 0, 0, 0, 0, 0]);
        let one = 60.0 * (1.0 - (-1.0f64).exp());
        assert!((load.averages[0][0] - one).abs() < 1e-9);
        let values: Vec<(&str, String)> = load.values().collect();
        assert_eq!(values.len(), 27);
        assert_eq!(
            values[0],
            (
                "$SYS/broker/load/messages/received/1min",
                format!("{one:.2}")
            )
        );
        assert_eq!(values[26].0, "$SYS/broker/load/sockets/15min");
        // A steady rate: every average converges to it.
        for m in 2..200u64 {
            let at = t0 + Duration::from_secs(60 * m);
            load.update(at, [60 * m, 0, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert!(load.averages[0].iter().all(|a| (a - 60.0).abs() < 0.01));
    }
}
