//! Measurement bookkeeping: a log-linear latency histogram and per
//! (subscriber, stream) sequence tracking.

use std::hash::{BuildHasherDefault, Hasher};

/// Latency histogram in nanoseconds, log-linear buckets: exact below 128 ns,
/// then 64 buckets per power of two (at most 1.6% relative error). Fixed
/// size (about 30 KB), recording is a few instructions.
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

const BUCKETS: usize = 3776;

fn index(v: u64) -> usize {
    if v < 128 {
        v as usize
    } else {
        let msb = 63 - v.leading_zeros();
        let shift = msb - 6;
        ((shift as usize) << 6) + (v >> shift) as usize
    }
}

/// Highest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    if i < 128 {
        i as u64
    } else {
        let shift = (i >> 6) - 1;
        let m = (i - (shift << 6)) as u64;
        ((m + 1) << shift).wrapping_sub(1)
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            sum: 0,
        }
    }

    pub fn record(&mut self, ns: u64) {
        self.counts[index(ns)] += 1;
        self.total += 1;
        self.sum += ns as u128;
        self.max = self.max.max(ns);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Adds another histogram's samples (another thread's).
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// The non-empty buckets, as (bucket, count): a second's worth of
    /// samples in a few hundred bytes.
    pub fn sparse(&self) -> Vec<(u16, u64)> {
        let it = self.counts.iter().enumerate().filter(|(_, &c)| c > 0);
        it.map(|(i, &c)| (i as u16, c)).collect()
    }

    /// Adds samples given as by [`Histogram::sparse`] (the sum and maximum
    /// taken from the buckets' upper bounds).
    pub fn add_sparse(&mut self, buckets: &[(u16, u64)]) {
        for &(i, c) in buckets {
            let i = (i as usize).min(BUCKETS - 1);
            self.counts[i] += c;
            self.total += c;
            self.sum += upper(i) as u128 * c as u128;
            self.max = self.max.max(upper(i));
        }
    }

    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.max = 0;
        self.sum = 0;
    }

    /// Non-empty buckets as (highest value in the bucket, count), ascending.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let max = self.max;
        let it = self.counts.iter().enumerate().filter(|(_, &c)| c > 0);
        it.map(move |(i, &c)| (upper(i).min(max), c))
    }

    /// Standard deviation in ns, from the bucket bounds.
    pub fn stddev(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let mean = self.mean() as f64;
        let var: f64 = self
            .buckets()
            .map(|(v, c)| (v as f64 - mean).powi(2) * c as f64)
            .sum::<f64>()
            / self.total as f64;
        var.sqrt()
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / self.total as u128) as u64
        }
    }

    /// The value at quantile `q` (0..=1), as the upper bound of its bucket
    /// (never above the true maximum).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }
}

/// What one subscriber saw of one stream (one publisher's messages on one
/// topic, numbered from 0).
#[derive(Default)]
pub struct Track {
    /// One past the highest sequence number received.
    pub next: u64,
    /// Ranges `[start, end)` skipped over and not (yet) filled, ascending.
    pub gaps: Vec<(u64, u64)>,
    pub received: u64,
    /// Arrivals of messages already received.
    pub dups: u64,
}

pub enum Seen {
    /// The next one, or a jump ahead over `skipped` messages.
    InOrder {
        skipped: u64,
    },
    /// Filled an earlier gap.
    OutOfOrder,
    Duplicate,
}

impl Track {
    pub fn see(&mut self, seq: u64) -> Seen {
        if seq >= self.next {
            let skipped = seq - self.next;
            if skipped > 0 {
                self.gaps.push((self.next, seq));
            }
            self.next = seq + 1;
            self.received += 1;
            return Seen::InOrder { skipped };
        }
        // Behind: either fills a gap or was seen already.
        let i = self.gaps.partition_point(|&(_, end)| end <= seq);
        match self.gaps.get(i) {
            Some(&(start, end)) if start <= seq => {
                self.received += 1;
                if start + 1 == end {
                    self.gaps.remove(i);
                } else if seq == start {
                    self.gaps[i].0 += 1;
                } else if seq + 1 == end {
                    self.gaps[i].1 -= 1;
                } else {
                    self.gaps[i].1 = seq;
                    self.gaps.insert(i + 1, (seq + 1, end));
                }
                Seen::OutOfOrder
            }
            _ => {
                self.dups += 1;
                Seen::Duplicate
            }
        }
    }

    /// Messages skipped over (a later one arrived) and never filled in.
    pub fn in_gaps(&self) -> u64 {
        self.gaps.iter().map(|(s, e)| e - s).sum()
    }

    /// Messages out of the first `sent` after the last one received.
    pub fn tail(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.next)
    }

    /// Whether `seq` was skipped over and never filled in.
    pub fn in_gap(&self, seq: u64) -> bool {
        let i = self.gaps.partition_point(|&(_, end)| end <= seq);
        matches!(self.gaps.get(i), Some(&(start, _)) if start <= seq)
    }
}

/// A cheap hasher for small integer keys (stream ids).
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub type IdBuild = BuildHasherDefault<IdHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        let mut last = 0;
        for v in [
            0u64,
            1,
            127,
            128,
            129,
            255,
            256,
            1000,
            1 << 20,
            u64::MAX / 2,
            u64::MAX,
        ] {
            let i = index(v);
            assert!(i < BUCKETS);
            assert!(i >= last);
            assert!(upper(i) >= v, "{v}");
            last = i;
        }
        for i in 0..BUCKETS - 1 {
            assert_eq!(index(upper(i)), i);
            assert_eq!(index(upper(i) + 1), i + 1);
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5);
        assert!((490_000..=510_000).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), 1_000_000);
    }

    #[test]
    fn track_counts_gaps_dups_and_reordering() {
        let mut t = Track::default();
        assert!(matches!(t.see(0), Seen::InOrder { skipped: 0 }));
        assert!(matches!(t.see(3), Seen::InOrder { skipped: 2 }));
        assert!(matches!(t.see(3), Seen::Duplicate));
        assert!(t.in_gap(1) && t.in_gap(2) && !t.in_gap(3) && !t.in_gap(0));
        assert!(matches!(t.see(2), Seen::OutOfOrder));
        assert_eq!((t.in_gaps(), t.tail(6)), (1, 2));
        assert!(matches!(t.see(1), Seen::OutOfOrder));
        assert!(matches!(t.see(1), Seen::Duplicate));
        assert_eq!((t.in_gaps(), t.tail(4)), (0, 0));
        assert_eq!(t.received, 4);
    }
}
