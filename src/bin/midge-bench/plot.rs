//! `--plot FILE.svg`: throughput and latency percentiles second by second,
//! drawn as plain SVG (no plotting library): people compare runs by
//! looking. The measured phase is shaded; latency is on a log scale,
//! since its tail spans orders of magnitude.

use crate::engine::Tick;
use std::fmt::Write;

const W: f64 = 900.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 160.0;
const PANEL: f64 = 220.0;
const TOP: f64 = 50.0;
const GAP: f64 = 60.0;

pub fn write(path: &str, title: &str, ticks: &[Tick], window: (f64, f64)) -> Result<(), String> {
    std::fs::write(path, svg(title, ticks, window))
        .map_err(|e| format!("--plot: cannot write {path}: {e}"))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round step giving about five ticks up to `max`.
fn nice_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

struct Panel {
    y0: f64,
    x_max: f64,
}

impl Panel {
    fn x(&self, secs: f64) -> f64 {
        LEFT + (W - LEFT - RIGHT) * secs / self.x_max
    }
}

/// A line through `points`; `dash` draws it dashed (for a line that often
/// lies on top of another, as published/s on delivered/s).
fn polyline(out: &mut String, points: &[(f64, f64)], color: &str, dash: bool) {
    let pts: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let dash = if dash {
        r#" stroke-dasharray="6 4""#
    } else {
        ""
    };
    let _ = writeln!(
        out,
        r#"<polyline fill="none" stroke="{color}" stroke-width="1.8"{dash} points="{}"/>"#,
        pts.join(" ")
    );
}

fn legend(out: &mut String, y0: f64, items: &[(&str, &str)]) {
    for (i, (name, color)) in items.iter().enumerate() {
        let (x, y) = (W - RIGHT + 20.0, y0 + 20.0 + 22.0 * i as f64);
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{}" width="14" height="4" fill="{color}"/>"#,
            y - 4.0
        );
        let _ = writeln!(out, r#"<text x="{}" y="{y}">{name}</text>"#, x + 20.0);
    }
}

/// Frame, shaded measured phase and x axis of a panel.
fn frame(out: &mut String, p: &Panel, window: (f64, f64), label: &str) {
    let (x0, x1) = (LEFT, W - RIGHT);
    if window.1 > window.0 {
        let (xa, xb) = (p.x(window.0), p.x(window.1.min(p.x_max)));
        let _ = writeln!(
            out,
            r##"<rect x="{xa:.1}" y="{}" width="{:.1}" height="{PANEL}" fill="#eef3fb"/>"##,
            p.y0,
            xb - xa
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{x0}" y="{}" width="{}" height="{PANEL}" fill="none" stroke="#888"/>"##,
        p.y0,
        x1 - x0
    );
    let step = nice_step(p.x_max).max(1.0);
    let mut s = 0.0;
    while s <= p.x_max + 1e-9 {
        let x = p.x(s);
        let y = p.y0 + PANEL;
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{y}" x2="{x:.1}" y2="{}" stroke="#888"/>"##,
            y + 5.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{s}</text>"#,
            y + 18.0
        );
        s += step;
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds ({label})</text>"#,
        (x0 + x1) / 2.0,
        p.y0 + PANEL + 34.0
    );
}

/// `window`: the measured phase, in seconds since the run started.
pub fn svg(title: &str, ticks: &[Tick], window: (f64, f64)) -> String {
    let h = TOP + 2.0 * PANEL + GAP + 60.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="24" font-size="15">{}</text>"#,
        esc(title)
    );
    let x_max = ticks.last().map_or(1.0, |t| t.secs as f64).max(1.0);
    // Throughput.
    let top = Panel { y0: TOP, x_max };
    let peak = ticks
        .iter()
        .map(|t| t.counts.sent.max(t.counts.delivered))
        .max()
        .unwrap_or(0) as f64;
    let step = nice_step(peak.max(1.0));
    let y_max = (peak / step).ceil().max(1.0) * step;
    let y = |v: f64| top.y0 + PANEL - PANEL * v / y_max;
    frame(&mut out, &top, window, "since the start; shaded: measured");
    let mut v = 0.0;
    while v <= y_max + 1e-9 {
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y(v) + 4.0,
            short(v)
        );
        v += step;
    }
    let _ = writeln!(
        out,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">messages/s</text>"#,
        top.y0 + PANEL / 2.0,
        top.y0 + PANEL / 2.0
    );
    let sent: Vec<(f64, f64)> = ticks
        .iter()
        .map(|t| (top.x(t.secs as f64), y(t.counts.sent as f64)))
        .collect();
    let got: Vec<(f64, f64)> = ticks
        .iter()
        .map(|t| (top.x(t.secs as f64), y(t.counts.delivered as f64)))
        .collect();
    polyline(&mut out, &sent, "#1f77b4", true);
    polyline(&mut out, &got, "#2ca02c", false);
    legend(
        &mut out,
        top.y0,
        &[("published/s", "#1f77b4"), ("delivered/s", "#2ca02c")],
    );
    // Latency, log scale in microseconds.
    let low = Panel {
        y0: TOP + PANEL + GAP,
        x_max,
    };
    let with: Vec<&Tick> = ticks.iter().filter(|t| t.samples > 0).collect();
    let us = |ns: u64| (ns as f64 / 1000.0).max(1.0);
    let hi = with.iter().map(|t| us(t.max)).fold(10.0, f64::max);
    let lo = with.iter().map(|t| us(t.p50)).fold(hi, f64::min);
    let (d0, d1) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let ly = |v: f64| low.y0 + PANEL - PANEL * (v.log10() - d0) / (d1 - d0);
    frame(&mut out, &low, window, "since the start; shaded: measured");
    for d in d0 as i32..=d1 as i32 {
        let v = 10f64.powi(d);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#ddd"/>"##,
            ly(v),
            W - RIGHT,
            ly(v)
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            ly(v) + 4.0,
            short(v)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">latency (µs)</text>"#,
        low.y0 + PANEL / 2.0,
        low.y0 + PANEL / 2.0
    );
    let series = [("p50", "#2ca02c"), ("p99", "#ff7f0e"), ("max", "#d62728")];
    for (name, color) in series {
        let pts: Vec<(f64, f64)> = with
            .iter()
            .map(|t| {
                let v = match name {
                    "p50" => t.p50,
                    "p99" => t.p99,
                    _ => t.max,
                };
                (low.x(t.secs as f64), ly(us(v)))
            })
            .collect();
        polyline(&mut out, &pts, color, false);
    }
    legend(&mut out, low.y0, &series);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Counters;

    #[test]
    fn draws_both_panels() {
        let ticks: Vec<Tick> = (1..=5)
            .map(|i| Tick {
                secs: i,
                counts: Counters {
                    sent: 1000 * i as u64,
                    acked: 0,
                    delivered: 990,
                },
                p50: 50_000,
                p99: 400_000,
                max: 2_000_000,
                samples: 990,
            })
            .collect();
        let s = svg("a <run>", &ticks, (1.0, 5.0));
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert_eq!(s.matches("<polyline").count(), 5);
        assert!(s.contains("a &lt;run&gt;"));
    }
}
