//! The wildcard half of the subscription table.
//!
//! Every wildcard filter is cut into three parts: its literal prefix (the
//! levels before the first wildcard, possibly none), the run of `+` levels
//! that follows (possibly empty), and the level after that run: a literal,
//! `#`, or nothing. The filter is filed under its *anchor*, the filter text
//! up to and including that level (`a/+/t7/#` under `a/+/t7`, `+/+/x`
//! under itself, `a/#` under itself, `#` under itself), in a hash map keyed
//! by the anchor. A short table says, per prefix length, which run lengths
//! have anchors, and whether those end with `#` or not.
//!
//! Routing a topic of L levels then looks up, for each prefix length and
//! run length in that table, the anchors the topic could be under: its
//! level after the run, `#` after the run, or the run alone if the topic
//! ends there. Only filters under those anchors are compared with the
//! topic. So 20,000 filters `+/tN`, `a/+/tN` or `a/tN/#` cost a publish to
//! an unrelated topic nothing, and neither does one client's 100,000th
//! subscription. (Filters that share their anchor, `a/+/b/+/tN` for
//! instance, are still compared one by one.) The table holds one entry per
//! filter *shape*, not per filter, so an idle client's wildcard filter
//! costs no more memory than its anchor.
//!
//! Each probe costs one hash, and a topic is hashed as one stream of bytes,
//! level after level: the probes after its first k levels continue the
//! stream of those levels instead of hashing them again (`finish` does not
//! end a SipHash stream), so routing cost grows with the topic's length
//! once, not once per prefix. The probes are bounded by the shapes in the
//! table with k + run at most the topic's levels, and those by
//! `max_topic_levels`.

use super::Sub;
use crate::keyed_list::{Keyed, KeyedList};
use crate::topic;
use hashbrown::HashTable;
use std::hash::{BuildHasher, DefaultHasher, Hasher, RandomState};
use std::iter;
use std::sync::Arc;

/// A wildcard filter and everyone subscribed to it: the filter is matched
/// once, however many destinations share it.
#[derive(Debug)]
pub struct WildEntry {
    pub filter: Arc<str>,
    pub subs: KeyedList<Sub>,
}

impl Keyed for WildEntry {
    type Key = Arc<str>;
    fn key(&self) -> &Arc<str> {
        &self.filter
    }
}

/// The filters filed under one anchor.
#[derive(Debug)]
struct Anchor {
    text: Box<str>,
    entries: KeyedList<WildEntry>,
}

/// The anchors after prefixes of one length and one run of `+`: how many
/// end with `#` and how many with a literal level or the run itself, so
/// routing only looks up the kinds that exist.
#[derive(Debug, Clone, Copy)]
struct Run {
    len: u16,
    hash: u32,
    other: u32,
}

type Runs = Vec<Run>;

/// How a filter is filed (see the module documentation).
struct Shape<'a> {
    /// Number of literal levels before the first wildcard.
    depth: usize,
    /// `+` levels right after the prefix.
    run: u16,
    anchor: &'a str,
}

impl Shape<'_> {
    /// The anchor ends with `#` (literal levels cannot hold one).
    fn ends_with_hash(&self) -> bool {
        self.anchor.ends_with('#')
    }
}

fn shape(filter: &str) -> Shape<'_> {
    let (mut depth, mut run, mut start) = (0, 0u16, 0);
    for level in filter.split('/') {
        let end = start + level.len();
        match level {
            "+" => run = run.saturating_add(1),
            _ if run == 0 && level != "#" => depth += 1,
            // `#`, or the literal after the run: the anchor ends here.
            _ => {
                let anchor = &filter[..end];
                return Shape { depth, run, anchor };
            }
        }
        start = end + 1;
    }
    // The filter ends with its run.
    Shape {
        depth,
        run,
        anchor: filter,
    }
}

/// Hashes topics and filters as byte streams (see the module
/// documentation); keyed at random, as std's maps are, so that clients
/// cannot choose colliding filters.
#[derive(Debug, Default)]
struct StreamHash(RandomState);

impl StreamHash {
    fn start(&self) -> DefaultHasher {
        self.0.build_hasher()
    }

    fn of(&self, text: &str) -> u64 {
        let mut h = self.start();
        h.write(text.as_bytes());
        h.finish()
    }
}

#[derive(Debug, Default)]
pub struct WildTable {
    anchors: HashTable<Anchor>,
    /// Per prefix length (0: filters starting with a wildcard), the runs
    /// of `+` that have anchors.
    depths: Vec<Runs>,
    hash: StreamHash,
    /// Where each level of the topic being routed starts and ends (kept to
    /// reuse its memory).
    levels: Vec<(usize, usize)>,
}

/// Counts an anchor of run length `len` in (`delta` 1) or out (-1).
fn count(runs: &mut Runs, len: u16, hash: bool, delta: i32) {
    let i = match runs.binary_search_by_key(&len, |r| r.len) {
        Ok(i) => i,
        Err(_) if delta < 0 => return,
        Err(i) => {
            runs.reserve_exact(1);
            runs.insert(
                i,
                Run {
                    len,
                    hash: 0,
                    other: 0,
                },
            );
            i
        }
    };
    let Some(run) = runs.get_mut(i) else { return };
    let n = if hash { &mut run.hash } else { &mut run.other };
    *n = n.saturating_add_signed(delta);
    if run.hash == 0 && run.other == 0 {
        runs.remove(i);
    }
}

impl WildTable {
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// The entry of `filter`, created if needed (always `Some`).
    pub fn entry(&mut self, filter: &str) -> Option<&mut WildEntry> {
        let s = shape(filter);
        let h = self.hash.of(s.anchor);
        let hash = &self.hash;
        let found = self.anchors.find(h, |a| &*a.text == s.anchor).is_some();
        if !found {
            self.anchors.insert_unique(
                h,
                Anchor {
                    text: s.anchor.into(),
                    entries: KeyedList::default(),
                },
                |a| hash.of(&a.text),
            );
            self.count_run(&s, 1);
        }
        let anchor = self.anchors.find_mut(h, |a| &*a.text == s.anchor)?;
        if anchor.entries.get_mut(filter).is_none() {
            anchor.entries.push(WildEntry {
                filter: filter.into(),
                subs: KeyedList::default(),
            });
        }
        anchor.entries.get_mut(filter)
    }

    /// Applies `change` to the entry of `filter`, if there is one, then
    /// drops the entry if it has no subscriber left.
    pub fn update<R>(
        &mut self,
        filter: &str,
        change: impl FnOnce(&mut WildEntry) -> R,
    ) -> Option<R> {
        let s = shape(filter);
        let h = self.hash.of(s.anchor);
        let Ok(mut slot) = self.anchors.find_entry(h, |a| &*a.text == s.anchor) else {
            return None;
        };
        let anchor = slot.get_mut();
        let entry = anchor.entries.get_mut(filter)?;
        let result = change(entry);
        let unused = entry.subs.is_empty();
        if unused {
            anchor.entries.remove(filter);
            if anchor.entries.is_empty() {
                slot.remove();
                self.count_run(&s, -1);
            }
        }
        Some(result)
    }

    /// Counts an anchor in or out of the table of shapes.
    fn count_run(&mut self, s: &Shape<'_>, delta: i32) {
        if self.depths.len() <= s.depth {
            if delta < 0 {
                return;
            }
            self.depths.resize_with(s.depth + 1, Runs::new);
        }
        if let Some(runs) = self.depths.get_mut(s.depth) {
            count(runs, s.run, s.ends_with_hash(), delta);
        }
        while self.depths.last().is_some_and(Vec::is_empty) {
            self.depths.pop();
        }
    }

    /// Calls `found` with the subscribers of every filter matching
    /// `topic_name`.
    pub fn matching(&mut self, topic_name: &str, mut found: impl FnMut(&[Sub])) {
        // A byte loop: topics are short, and `split` costs more per level.
        self.levels.clear();
        let mut start = 0;
        for (i, b) in topic_name.bytes().enumerate() {
            if b == b'/' {
                self.levels.push((start, i));
                start = i + 1;
            }
        }
        self.levels.push((start, topic_name.len()));
        let probe = Probe {
            topic: topic_name,
            levels: &self.levels,
            anchors: &self.anchors,
        };
        // Filters starting with a wildcard never match `$` topics
        // [MQTT-4.7.2-1].
        let dollar = topic_name.starts_with('$');
        let (mut stream, mut hashed) = (self.hash.start(), 0);
        for (k, runs) in self.depths.iter().enumerate() {
            // The topic's first k levels, hashed.
            if let Some(i) = k.checked_sub(1) {
                let Some(&(_, end)) = self.levels.get(i) else {
                    break; // no longer prefixes than the topic
                };
                stream.write(topic_name.as_bytes().get(hashed..end).unwrap_or_default());
                hashed = end;
            }
            let wildcard_first = k == 0;
            if runs.is_empty() || (wildcard_first && dollar) {
                continue;
            }
            probe.runs(k, stream.clone(), runs, &mut found);
        }
    }
}

/// One topic being routed.
struct Probe<'a> {
    topic: &'a str,
    levels: &'a [(usize, usize)],
    anchors: &'a HashTable<Anchor>,
}

impl Probe<'_> {
    /// Level `i` of the topic, with the `/` before it (none before the
    /// first).
    fn level(&self, i: usize) -> Option<&str> {
        let &(start, end) = self.levels.get(i)?;
        self.topic.get(start.saturating_sub(1)..end)
    }

    /// The anchors after the topic's first `k` levels (whose hash stream
    /// is `stream`) for each run in `runs`.
    fn runs(
        &self,
        k: usize,
        mut stream: DefaultHasher,
        runs: &Runs,
        found: &mut impl FnMut(&[Sub]),
    ) {
        let sep = |at: usize| if at == 0 { "" } else { "/" };
        let mut plus = 0;
        for run in runs {
            let len = usize::from(run.len);
            if k + len > self.levels.len() {
                break;
            }
            while plus < len {
                stream.write(sep(k + plus).as_bytes());
                stream.write(b"+");
                plus += 1;
            }
            if run.other > 0 {
                match self.level(k + len) {
                    Some(next) => {
                        let mut s = stream.clone();
                        s.write(next.as_bytes());
                        let next = next.strip_prefix('/').unwrap_or(next);
                        self.anchor(k, len, Some(next), s.finish(), found);
                    }
                    None if len > 0 => self.anchor(k, len, None, stream.finish(), found),
                    None => {}
                }
            }
            if run.hash > 0 {
                let mut s = stream.clone();
                s.write(sep(k + len).as_bytes());
                s.write(b"#");
                self.anchor(k, len, Some("#"), s.finish(), found);
            }
        }
    }

    /// The filters under the anchor made of the topic's first `k` levels,
    /// `run` times `+`, then `next`.
    fn anchor(
        &self,
        k: usize,
        run: usize,
        next: Option<&str>,
        h: u64,
        found: &mut impl FnMut(&[Sub]),
    ) {
        let prefix_end = k.checked_sub(1).and_then(|i| self.levels.get(i));
        let prefix = prefix_end.map_or("", |&(_, end)| &self.topic[..end]);
        let Some(a) = self
            .anchors
            .find(h, |a| spells(&a.text, prefix, k, run, next))
        else {
            return;
        };
        // A filter that is its whole anchor matches if the topic ends
        // there (`#` and a final run always do); longer ones are compared.
        let ends = next.is_none_or(|n| n == "#") || k + run + 1 == self.levels.len();
        for e in a.entries.as_slice() {
            let whole = e.filter.len() == a.text.len();
            if (whole && ends) || (!whole && topic::matches(&e.filter, self.topic)) {
                found(e.subs.as_slice());
            }
        }
    }
}

/// Whether `text` is the anchor made of `prefix` (the topic's first `k`
/// levels), `run` times `+`, then `next`.
fn spells(text: &str, prefix: &str, k: usize, run: usize, next: Option<&str>) -> bool {
    let Some(mut rest) = text.strip_prefix(prefix) else {
        return false;
    };
    for (i, level) in iter::repeat_n("+", run).chain(next).enumerate() {
        let sep = if k + i == 0 { "" } else { "/" };
        match rest.strip_prefix(sep).and_then(|r| r.strip_prefix(level)) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let cases = [
            ("#", 0, 0, "#"),
            ("+", 0, 1, "+"),
            ("+/tN", 0, 1, "+/tN"),
            ("+/+/x/#", 0, 2, "+/+/x"),
            ("+/#", 0, 1, "+/#"),
            ("a/#", 1, 0, "a/#"),
            ("a/b/+", 2, 1, "a/b/+"),
            ("a/+/t7/#", 1, 1, "a/+/t7"),
            ("a/+/+", 1, 2, "a/+/+"),
            ("/+", 1, 1, "/+"),
            ("a/b/+/d/+/f", 2, 1, "a/b/+/d"),
        ];
        for (filter, depth, run, anchor) in cases {
            let s = shape(filter);
            assert_eq!((s.depth, s.run, s.anchor), (depth, run, anchor), "{filter}");
        }
    }
}
