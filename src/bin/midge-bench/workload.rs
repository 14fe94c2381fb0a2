//! Workloads users describe, as groups of alike clients: "1,000 sensors
//! publishing to `sensors/%i/temp` every second at QoS 1", "one dashboard
//! subscribed to `#`". Groups come from the command line or a scenario
//! file; [`build`] expands their templates and works out which subscriber
//! receives which stream (with midge's own topic matcher), so the engine
//! can check every delivery.

use crate::plan::{Plan, Pub, Stream, Sub};
use midge::topic;
use std::collections::{HashMap, HashSet};

pub struct PubGroup {
    pub name: String,
    pub clients: usize,
    /// Topic template: `%i` is the client's number in its group (from 1),
    /// `%c` its client id.
    pub topic: String,
    /// Each client publishes every `interval_ms`; 0 = as fast as it can.
    pub interval_ms: f64,
    pub qos: u8,
    pub retain: bool,
    pub size: (usize, usize),
    pub clean: bool,
    /// Client id template (`%i`); `None`: the run's prefix.
    pub client_id: Option<String>,
}

pub struct SubGroup {
    pub name: String,
    pub clients: usize,
    /// Filter templates, like topics.
    pub filters: Vec<String>,
    pub qos: u8,
    pub clean: bool,
    pub client_id: Option<String>,
}

/// Most clients one run may have (descriptors and ports run out first).
pub const MAX_CLIENTS: usize = 1_000_000;
/// Most subscriber groups (each has its own latency histogram).
const MAX_GROUPS: usize = 100;
/// Most (topic, wildcard filter) pairs worked out before the run.
const MAX_MATCH_WORK: usize = 100_000_000;

/// `template` with `%i` (client number from 1), `%c` (client id) and `%%`.
pub fn expand(template: &str, number: usize, client_id: &str) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    let mut chars = template.chars();
    while let Some(ch) = chars.next() {
        if ch != '%' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('i') => out.push_str(&number.to_string()),
            Some('c') => out.push_str(client_id),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

fn varies(template: &str) -> bool {
    template.contains("%i") || template.contains("%c")
}

/// The client ids of a group: its template, or `{prefix}{tag}{n}`.
fn client_ids(
    group: &str,
    clients: usize,
    template: &Option<String>,
    default: impl Fn(usize) -> String,
    seen: &mut HashSet<String>,
) -> Result<Vec<String>, String> {
    if let Some(t) = template {
        if clients > 1 && !t.contains("%i") {
            return Err(format!(
                "group '{group}': client_id '{t}' needs %i to tell its {clients} clients apart"
            ));
        }
    }
    let mut ids = Vec::with_capacity(clients);
    for n in 1..=clients {
        let id = match template {
            Some(t) => expand(t, n, ""),
            None => default(n),
        };
        if id.len() > 65_535 {
            return Err(format!("group '{group}': client id too long"));
        }
        if !seen.insert(id.clone()) {
            return Err(format!("group '{group}': client id '{id}' is used twice"));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// The plan for these groups. Client ids default to `prefix` plus `s` or
/// `p` and a number; payloads are at least `header` bytes.
pub fn build(
    name: &str,
    pubs: &[PubGroup],
    subs: &[SubGroup],
    prefix: &str,
    header: usize,
) -> Result<Plan, String> {
    let total: usize = pubs.iter().map(|g| g.clients).sum::<usize>()
        + subs.iter().map(|g| g.clients).sum::<usize>();
    if total == 0 {
        return Err("the workload has no clients".into());
    }
    if total > MAX_CLIENTS {
        return Err(format!("{total} clients: at most {MAX_CLIENTS}"));
    }
    if subs.len() > MAX_GROUPS {
        return Err(format!("at most {MAX_GROUPS} subscriber groups"));
    }
    let mut seen = HashSet::new();
    let mut plan = Plan {
        scenario: name.to_string(),
        pubs: Vec::new(),
        subs: Vec::new(),
        groups: Vec::new(),
        streams: Vec::new(),
        subscriptions: 0,
        describe: describe(pubs, subs),
    };
    for g in subs {
        check_qos(&g.name, g.qos)?;
        if g.filters.is_empty() {
            return Err(format!("subscriber group '{}' has no filters", g.name));
        }
        let base = plan.subs.len();
        let ids = client_ids(
            &g.name,
            g.clients,
            &g.client_id,
            |n| format!("{prefix}s{}", base + n),
            &mut seen,
        )?;
        for (i, id) in ids.into_iter().enumerate() {
            let filters: Vec<String> = g.filters.iter().map(|f| expand(f, i + 1, &id)).collect();
            for f in &filters {
                if !topic::valid_filter(f) {
                    return Err(format!(
                        "group '{}': '{f}' is not a valid topic filter",
                        g.name
                    ));
                }
            }
            plan.subscriptions += filters.len();
            plan.subs.push(Sub {
                filters,
                qos: g.qos,
                clean: g.clean,
                client_id: Some(id),
                group: plan.groups.len() as u16,
            });
        }
        plan.groups.push(g.name.clone());
    }
    for g in pubs {
        check_qos(&g.name, g.qos)?;
        if g.size.0 < header || g.size.0 > g.size.1 || g.size.1 > crate::cli::MAX_SIZE {
            return Err(format!(
                "group '{}': payload size {}-{}: from {header} bytes (the payload header) to 16 MiB, low to high",
                g.name, g.size.0, g.size.1
            ));
        }
        if !(g.interval_ms >= 0.0 && g.interval_ms.is_finite()) {
            return Err(format!(
                "group '{}': interval must be 0 or more milliseconds",
                g.name
            ));
        }
        let rate = if g.interval_ms > 0.0 {
            1000.0 / g.interval_ms
        } else {
            0.0
        };
        let base = plan.pubs.len();
        let ids = client_ids(
            &g.name,
            g.clients,
            &g.client_id,
            |n| format!("{prefix}p{}", base + n),
            &mut seen,
        )?;
        for (i, id) in ids.into_iter().enumerate() {
            let topic = expand(&g.topic, i + 1, &id);
            if !topic::valid_name(&topic) || topic.len() > 65_535 {
                return Err(format!(
                    "group '{}': '{topic}' is not a valid topic name",
                    g.name
                ));
            }
            plan.streams.push(Stream {
                topic,
                publisher: plan.pubs.len() as u32,
                subs: Vec::new(),
                qos: g.qos,
                retain: g.retain,
                size: g.size,
            });
            plan.pubs.push(Pub {
                rate,
                offset: i as f64 / g.clients as f64,
                clean: g.clean,
                client_id: Some(id),
            });
        }
        if g.clients > 1 && !varies(&g.topic) {
            eprintln!(
                "midge-bench: note: the {} clients of group '{}' all publish to '{}' (no %i in the topic)",
                g.clients, g.name, g.topic
            );
        }
    }
    match_streams(&mut plan)?;
    Ok(plan)
}

fn check_qos(group: &str, qos: u8) -> Result<(), String> {
    if qos > 2 {
        return Err(format!("group '{group}': QoS is 0, 1 or 2"));
    }
    Ok(())
}

/// Fills in each stream's subscribers. A subscriber with two filters
/// matching one topic is refused: brokers differ in whether they deliver
/// such a message once or twice, so duplicates could not be judged.
fn match_streams(plan: &mut Plan) -> Result<(), String> {
    let mut exact: HashMap<&str, Vec<u32>> = HashMap::new();
    let mut wild: Vec<(&str, u32)> = Vec::new();
    for (s, sub) in plan.subs.iter().enumerate() {
        for f in &sub.filters {
            if topic::has_wildcard(f) {
                wild.push((f, s as u32));
            } else {
                exact.entry(f).or_default().push(s as u32);
            }
        }
    }
    if wild.len().saturating_mul(plan.streams.len()) > MAX_MATCH_WORK {
        return Err(format!(
            "{} wildcard filters x {} topics is too many to match before the run",
            wild.len(),
            plan.streams.len()
        ));
    }
    for st in &mut plan.streams {
        let mut subs: Vec<u32> = exact.get(st.topic.as_str()).cloned().unwrap_or_default();
        subs.extend(
            wild.iter()
                .filter(|(f, _)| topic::matches(f, &st.topic))
                .map(|&(_, s)| s),
        );
        subs.sort_unstable();
        if let Some(w) = subs.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "subscriber {} has two filters matching '{}' ({}): brokers may deliver such a \
                 message twice, so use filters that do not overlap",
                w[0],
                st.topic,
                plan.subs[w[0] as usize].filters.join(", ")
            ));
        }
        st.subs = subs;
    }
    Ok(())
}

fn describe(pubs: &[PubGroup], subs: &[SubGroup]) -> String {
    let mut parts = Vec::new();
    for g in pubs {
        let every = if g.interval_ms > 0.0 {
            format!("every {} ms", g.interval_ms)
        } else {
            "flat out".into()
        };
        let size = if g.size.0 == g.size.1 {
            format!("{} B", g.size.0)
        } else {
            format!("{}-{} B", g.size.0, g.size.1)
        };
        let retain = if g.retain { ", retained" } else { "" };
        parts.push(format!(
            "{} x {} -> {} {every}, QoS {}, {size}{retain}",
            g.clients, g.name, g.topic, g.qos
        ));
    }
    for g in subs {
        parts.push(format!(
            "{} x {} <- {} QoS {}",
            g.clients,
            g.name,
            g.filters.join(" "),
            g.qos
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensors(n: usize) -> PubGroup {
        PubGroup {
            name: "sensors".into(),
            clients: n,
            topic: "sensors/%i/temp".into(),
            interval_ms: 1000.0,
            qos: 1,
            retain: false,
            size: (24, 64),
            clean: true,
            client_id: None,
        }
    }

    fn watcher(filters: &[&str]) -> SubGroup {
        SubGroup {
            name: "dash".into(),
            clients: 1,
            filters: filters.iter().map(|f| f.to_string()).collect(),
            qos: 1,
            clean: true,
            client_id: None,
        }
    }

    #[test]
    fn templates_expand() {
        assert_eq!(expand("sensors/%i/temp", 7, "x"), "sensors/7/temp");
        assert_eq!(expand("%c/%%/%q%", 1, "id"), "id/%/%q%");
    }

    #[test]
    fn matches_are_worked_out() {
        let plan = build(
            "t",
            &[sensors(3)],
            &[watcher(&["#"]), watcher(&["sensors/2/+"])],
            "b-",
            24,
        )
        .unwrap();
        let topics: Vec<&str> = plan.streams.iter().map(|s| s.topic.as_str()).collect();
        assert_eq!(
            topics,
            ["sensors/1/temp", "sensors/2/temp", "sensors/3/temp"]
        );
        assert_eq!(plan.streams[1].subs, [0, 1]);
        assert_eq!(plan.streams[2].subs, [0]);
        assert_eq!(plan.pubs[2].client_id.as_deref(), Some("b-p3"));
        assert_eq!(plan.subs[1].client_id.as_deref(), Some("b-s2"));
    }

    #[test]
    fn overlapping_filters_and_bad_templates_are_refused() {
        assert!(build(
            "t",
            &[sensors(2)],
            &[watcher(&["#", "sensors/+/temp"])],
            "b-",
            24
        )
        .is_err());
        let mut g = sensors(2);
        g.client_id = Some("same".into());
        assert!(build("t", &[g], &[], "b-", 24).is_err());
        assert!(build("t", &[sensors(1)], &[watcher(&["a/#/b"])], "b-", 24).is_err());
    }
}
