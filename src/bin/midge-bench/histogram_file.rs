//! The full latency histogram as a file: HdrHistogram's percentile
//! distribution format (what its plotter and wrk2 read; values in
//! milliseconds), or CSV of the buckets when the name ends in `.csv`.

use crate::stats::Histogram;
use std::fmt::Write;

/// Percentile ticks per halving of the distance to 100%, as
/// HdrHistogram's `outputPercentileDistribution` uses by default.
const TICKS_PER_HALF: u32 = 5;

pub fn write(path: &str, h: &Histogram) -> Result<(), String> {
    let text = if path.ends_with(".csv") {
        csv(h)
    } else {
        hgrm(h)
    };
    std::fs::write(path, text).map_err(|e| format!("--histogram: cannot write {path}: {e}"))
}

/// Bucket by bucket: the highest latency in the bucket, its count and the
/// fraction of samples at or below it.
pub fn csv(h: &Histogram) -> String {
    let mut out = String::from("latency_us,count,cumulative_fraction\n");
    let mut seen = 0;
    for (v, c) in h.buckets() {
        seen += c;
        let _ = writeln!(
            out,
            "{:.3},{c},{:.9}",
            v as f64 / 1000.0,
            seen as f64 / h.count() as f64
        );
    }
    out
}

pub fn hgrm(h: &Histogram) -> String {
    let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    let total = h.count();
    let ms = |ns: u64| ns as f64 / 1e6;
    let line = |q: f64, out: &mut String| {
        let v = h.quantile(q);
        let count = ((q * total as f64).ceil() as u64).clamp(1, total.max(1));
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{:12.3} {q:14.12} {count:10} {:14.2}",
                ms(v),
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{:12.3} {q:14.12} {count:10}", ms(v));
        }
    };
    if total > 0 {
        // Halve the distance to 100% again and again, five steps per half,
        // until the step is finer than one sample.
        let mut half = 0;
        'levels: loop {
            let base = 1.0 - 0.5f64.powi(half);
            let step = 0.5f64.powi(half + 1) / TICKS_PER_HALF as f64;
            for j in 0..TICKS_PER_HALF {
                let q = base + step * j as f64;
                line(q, &mut out);
                if (1.0 - q) * (total as f64) < 1.0 || half > 60 {
                    break 'levels;
                }
            }
            half += 1;
        }
        line(1.0, &mut out);
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        ms(h.mean()),
        h.stddev() / 1e6
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {total:12}]",
        ms(h.max())
    );
    let buckets = h.buckets().count();
    let _ = writeln!(out, "#[Buckets = {buckets:12}, SubBuckets     = {:12}]", 64);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_lines_rise_to_the_maximum() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let text = hgrm(&h);
        let values: Vec<f64> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.contains("Value"))
            .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        assert!(values.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*values.last().unwrap(), 10.0);
        assert!(text.contains("Total count    =        10000"));
        assert_eq!(
            csv(&h).lines().last().unwrap().split(',').nth(2),
            Some("1.000000000")
        );
    }
}
