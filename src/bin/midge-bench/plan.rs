//! What one run does, as data the engine executes: its publishers and
//! subscribers, and its streams (one publisher's messages on one topic,
//! with the subscribers that topic reaches). Built from a built-in
//! scenario's layout here, or from workload groups (`workload`).

use crate::scenario::Layout;

pub struct Sub {
    pub filters: Vec<String>,
    pub qos: u8,
    /// CleanSession 1 (3.x) / Clean Start 1 (5).
    pub clean: bool,
    /// `None`: the run's prefix and the client's index.
    pub client_id: Option<String>,
    /// Index in `Plan::groups`.
    pub group: u16,
}

pub struct Pub {
    /// Messages per second, 0 = as fast as flow control allows.
    pub rate: f64,
    /// Where in its period this publisher's schedule starts (0..1), so
    /// that many slow clients do not all publish at the same instant.
    pub offset: f64,
    pub clean: bool,
    pub client_id: Option<String>,
}

/// The messages one publisher sends on one topic, numbered from 0.
pub struct Stream {
    pub topic: String,
    pub publisher: u32,
    /// Subscribers with a filter matching `topic`, each exactly once.
    pub subs: Vec<u32>,
    pub qos: u8,
    pub retain: bool,
    /// Payload bytes, inclusive range (at least the payload header).
    pub size: (usize, usize),
}

pub struct Plan {
    pub scenario: String,
    pub pubs: Vec<Pub>,
    pub subs: Vec<Sub>,
    /// Names of the subscriber groups (reported apart when several).
    pub groups: Vec<String>,
    pub streams: Vec<Stream>,
    /// Total subscriptions (filters) across subscribers.
    pub subscriptions: usize,
    /// One line for the report's header.
    pub describe: String,
}

impl Plan {
    pub fn clients(&self) -> usize {
        self.pubs.len() + self.subs.len()
    }

    /// The highest QoS any stream or subscription uses.
    pub fn max_qos(&self) -> u8 {
        let s = self.streams.iter().map(|s| s.qos);
        s.chain(self.subs.iter().map(|s| s.qos)).max().unwrap_or(0)
    }

    /// The largest payload any stream sends.
    pub fn max_size(&self) -> usize {
        self.streams.iter().map(|s| s.size.1).max().unwrap_or(0)
    }
}

/// The uniform knobs a built-in scenario runs with.
pub struct Uniform {
    pub qos: u8,
    pub size: (usize, usize),
    pub retain: bool,
    /// Messages per second over all publishers (0 = unlimited)...
    pub total_rate: f64,
    /// ...or per publisher, when set (`--interval`).
    pub per_pub_rate: Option<f64>,
    pub persistent_pubs: bool,
    pub persistent_subs: bool,
}

pub fn from_layout(l: Layout, u: &Uniform) -> Plan {
    let n = l.publishers;
    let rate = u.per_pub_rate.unwrap_or(if u.total_rate > 0.0 {
        u.total_rate / n as f64
    } else {
        0.0
    });
    Plan {
        scenario: l.scenario.to_string(),
        pubs: (0..n)
            .map(|i| Pub {
                rate,
                offset: i as f64 / n as f64,
                clean: !u.persistent_pubs,
                client_id: None,
            })
            .collect(),
        subs: l
            .subscribers
            .into_iter()
            .map(|s| Sub {
                filters: s.filters,
                qos: u.qos,
                clean: !u.persistent_subs,
                client_id: None,
                group: 0,
            })
            .collect(),
        groups: vec!["subscribers".into()],
        streams: l
            .streams
            .into_iter()
            .map(|s| Stream {
                topic: s.topic,
                publisher: s.publisher,
                subs: s.subs,
                qos: u.qos,
                retain: u.retain,
                size: u.size,
            })
            .collect(),
        subscriptions: l.subscriptions,
        describe: l.describe,
    }
}
