//! The built-in scenarios as data: which subscribers (and their filters),
//! which streams (publisher, topic, and the subscribers the topic matches).
//! The matching is known here by construction; `plan::from_layout` gives
//! every stream the run's QoS, payload size and rate.

pub struct SubSpec {
    pub filters: Vec<String>,
}

/// The messages one publisher sends on one topic, numbered from 0.
pub struct StreamSpec {
    pub topic: String,
    pub publisher: u32,
    /// Subscribers whose filters match `topic`, each exactly once.
    pub subs: Vec<u32>,
}

pub struct Layout {
    pub scenario: &'static str,
    pub publishers: usize,
    pub subscribers: Vec<SubSpec>,
    pub streams: Vec<StreamSpec>,
    /// Total subscriptions (filters) across subscribers.
    pub subscriptions: usize,
    /// One line for the report's header.
    pub describe: String,
}

/// The knobs a scenario reads (already defaulted per scenario by the caller).
pub struct Shape {
    pub publishers: usize,
    pub subscribers: usize,
    pub connections: usize,
    pub subscriptions: usize,
    pub subs_per_client: usize,
    pub topics: usize,
}

pub const SCENARIOS: [&str; 6] = [
    "fan-in",
    "fan-out",
    "pairs",
    "latency",
    "connections",
    "subscriptions",
];

pub fn build(name: &str, k: &Shape) -> Result<Layout, String> {
    let all = |n: usize| (0..n as u32).collect::<Vec<u32>>();
    let plan = match name {
        "fan-in" => {
            let p = k.publishers;
            Layout {
                scenario: "fan-in",
                publishers: p,
                subscribers: vec![SubSpec {
                    filters: vec!["bench/fanin".into()],
                }],
                streams: (0..p as u32)
                    .map(|i| StreamSpec {
                        topic: "bench/fanin".into(),
                        publisher: i,
                        subs: vec![0],
                    })
                    .collect(),
                subscriptions: 1,
                describe: format!("{p} publishers -> 1 subscriber on one topic"),
            }
        }
        "fan-out" => {
            let n = k.subscribers;
            Layout {
                scenario: "fan-out",
                publishers: 1,
                subscribers: (0..n)
                    .map(|_| SubSpec {
                        filters: vec!["bench/fanout".into()],
                    })
                    .collect(),
                streams: vec![StreamSpec {
                    topic: "bench/fanout".into(),
                    publisher: 0,
                    subs: all(n),
                }],
                subscriptions: n,
                describe: format!("1 publisher -> {n} subscribers on one topic"),
            }
        }
        "pairs" => {
            let p = k.publishers;
            let mut subscribers: Vec<SubSpec> = (0..p)
                .map(|i| SubSpec {
                    filters: vec![format!("bench/pair/{i}")],
                })
                .collect();
            subscribers.push(SubSpec {
                filters: vec!["bench/pair/+".into()],
            });
            subscribers.push(SubSpec {
                filters: vec!["#".into()],
            });
            let (plus, hash) = (p as u32, p as u32 + 1);
            Layout {
                scenario: "pairs",
                publishers: p,
                subscribers,
                streams: (0..p as u32)
                    .map(|i| StreamSpec { topic: format!("bench/pair/{i}"), publisher: i, subs: vec![i, plus, hash] })
                    .collect(),
                subscriptions: p + 2,
                describe: format!(
                    "{p} publisher/subscriber pairs on bench/pair/<i>, plus one 'bench/pair/+' and one '#' subscriber"
                ),
            }
        }
        "latency" => {
            let (p, n) = (k.publishers, k.subscribers);
            Layout {
                scenario: "latency",
                publishers: p,
                subscribers: (0..n)
                    .map(|_| SubSpec {
                        filters: vec!["bench/lat/+".into()],
                    })
                    .collect(),
                streams: (0..p as u32)
                    .map(|i| StreamSpec {
                        topic: format!("bench/lat/{i}"),
                        publisher: i,
                        subs: all(n),
                    })
                    .collect(),
                subscriptions: n,
                describe: format!(
                    "{p} publishers on bench/lat/<i> -> {n} subscribers to bench/lat/+"
                ),
            }
        }
        "connections" => {
            let (c, p) = (k.connections, k.publishers);
            Layout {
                scenario: "connections",
                publishers: p,
                subscribers: (0..c).map(|i| SubSpec { filters: vec![format!("bench/conn/{i}")] }).collect(),
                streams: (0..c as u32)
                    .map(|i| StreamSpec {
                        topic: format!("bench/conn/{i}"),
                        publisher: i % p as u32,
                        subs: vec![i],
                    })
                    .collect(),
                subscriptions: c,
                describe: format!(
                    "{c} idle clients, each subscribed to its own topic; then {p} publisher(s) send to each in turn"
                ),
            }
        }
        "subscriptions" => {
            let (s, per, p) = (k.subscriptions, k.subs_per_client, k.publishers);
            let clients = s.div_ceil(per);
            // 70% exact `sub/<i>/x`, 30% wildcard `sub/<i>/+`.
            let filter = |i: usize| {
                if i % 10 < 7 {
                    format!("sub/{i}/x")
                } else {
                    format!("sub/{i}/+")
                }
            };
            let subscribers = (0..clients)
                .map(|c| SubSpec {
                    filters: (c * per..((c + 1) * per).min(s)).map(filter).collect(),
                })
                .collect();
            // Topics spread evenly over the subscriptions, keeping the 70/30
            // exact/wildcard mix among the ones that match: each topic
            // `sub/<i>/x` matches exactly subscription i.
            let t = k.topics.min(s);
            let stride = s / t;
            let streams = (0..t)
                .map(|j| {
                    let i = j * stride + (j % 10).min(stride - 1);
                    StreamSpec {
                        topic: format!("sub/{i}/x"),
                        publisher: (j % p) as u32,
                        subs: vec![(i / per) as u32],
                    }
                })
                .collect();
            Layout {
                scenario: "subscriptions",
                publishers: p,
                subscribers,
                streams,
                subscriptions: s,
                describe: format!(
                    "{s} subscriptions (70% exact sub/<i>/x, 30% sub/<i>/+) on {clients} clients; \
                     {p} publisher(s) over {t} matching topics"
                ),
            }
        }
        other => {
            return Err(format!(
                "unknown scenario '{other}' (one of: {})",
                SCENARIOS.join(", ")
            ))
        }
    };
    if plan.publishers == 0 || plan.streams.is_empty() {
        return Err("a scenario needs at least one publisher and one topic".into());
    }
    if plan.subscribers.is_empty() {
        return Err("a scenario needs at least one subscriber".into());
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            publishers: 3,
            subscribers: 4,
            connections: 50,
            subscriptions: 1000,
            subs_per_client: 100,
            topics: 100,
        }
    }

    /// Minimal MQTT matcher, to check the plans' precomputed matches.
    fn matches(filter: &str, topic: &str) -> bool {
        let f: Vec<&str> = filter.split('/').collect();
        let t: Vec<&str> = topic.split('/').collect();
        for (i, level) in f.iter().enumerate() {
            match *level {
                "#" => return true,
                "+" if i < t.len() => {}
                l if t.get(i) == Some(&l) => {}
                _ => return false,
            }
        }
        f.len() == t.len()
    }

    #[test]
    fn precomputed_matches_are_exact() {
        for name in SCENARIOS {
            let plan = build(name, &shape()).unwrap();
            for st in &plan.streams {
                let want: Vec<u32> = plan
                    .subscribers
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.filters.iter().any(|f| matches(f, &st.topic)))
                    .map(|(i, _)| i as u32)
                    .collect();
                let mut got = st.subs.clone();
                got.sort();
                assert_eq!(got, want, "{name}: {}", st.topic);
                for s in &plan.subscribers {
                    assert!(s.filters.iter().filter(|f| matches(f, &st.topic)).count() <= 1);
                }
            }
        }
    }

    #[test]
    fn subscriptions_mix_exact_and_wildcard_among_targets() {
        let plan = build("subscriptions", &shape()).unwrap();
        let total: usize = plan.subscribers.iter().map(|s| s.filters.len()).sum();
        assert_eq!(total, 1000);
        let wild = plan
            .streams
            .iter()
            .filter(|st| {
                let s = &plan.subscribers[st.subs[0] as usize];
                s.filters
                    .iter()
                    .any(|f| f.ends_with('+') && matches(f, &st.topic))
            })
            .count();
        assert_eq!(wild, 30);
    }
}
