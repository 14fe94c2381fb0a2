//! `--compare A.json B.json`: two runs side by side, with the ratio B/A.
//! A file may hold the whole output of a run (table and all): its last
//! line that is a JSON object is used.

use std::collections::HashMap;
use std::fmt::Write;

/// (JSON key, row title, whether higher is better).
const ROWS: [(&str, &str, bool); 19] = [
    ("delivery_rate", "deliveries/s", true),
    ("pub_rate", "published/s", true),
    ("ack_rate", "acknowledged/s", true),
    ("lat_p50_us", "latency p50 (us)", false),
    ("lat_p90_us", "latency p90 (us)", false),
    ("lat_p99_us", "latency p99 (us)", false),
    ("lat_p999_us", "latency p99.9 (us)", false),
    ("lat_max_us", "latency max (us)", false),
    ("lost", "lost", false),
    ("lost_acked", "acknowledged and lost", false),
    ("dup", "duplicates", false),
    ("ooo", "out of order", false),
    ("disconnects", "disconnects", false),
    ("connect_rate", "connections/s", true),
    ("rss_per_client_b", "broker RSS per client (B)", false),
    ("hwm_kb", "broker peak RSS (KiB)", false),
    ("broker_cpu_s", "broker CPU (s)", false),
    ("gen_cpu_s", "generator CPU (s)", false),
    ("clients", "clients", true),
];

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

impl Json {
    fn text(&self) -> String {
        match self {
            Json::Str(s) => s.clone(),
            Json::Num(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
            Json::Num(v) => format!("{v:.1}"),
            Json::Bool(b) => b.to_string(),
            Json::Null => "-".into(),
        }
    }
}

/// A flat JSON object (string, number, boolean and null values), as
/// midge-bench writes it.
pub fn parse_flat(line: &str) -> Result<HashMap<String, Json>, String> {
    let body = line
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or("not a JSON object")?;
    let mut out = HashMap::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (key, r) = string(rest)?;
        let r = r
            .trim_start()
            .strip_prefix(':')
            .ok_or("expected ':'")?
            .trim_start();
        let (value, r) = if r.starts_with('"') {
            let (s, r) = string(r)?;
            (Json::Str(s), r)
        } else {
            let end = r.find(',').unwrap_or(r.len());
            let word = r[..end].trim();
            let v = match word {
                "true" => Json::Bool(true),
                "false" => Json::Bool(false),
                "null" => Json::Null,
                _ => Json::Num(word.parse().map_err(|_| format!("bad value '{word}'"))?),
            };
            (v, &r[end..])
        };
        out.insert(key, value);
        rest = r.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(out)
}

/// A JSON string at the front of `s`, and what follows.
fn string(s: &str) -> Result<(String, &str), String> {
    let s = s.strip_prefix('"').ok_or("expected a string")?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next().map(|(_, e)| e) {
                Some('u') => {
                    let hex: String = (0..4)
                        .filter_map(|_| chars.next().map(|(_, h)| h))
                        .collect();
                    let code = u32::from_str_radix(&hex, 16).map_err(|_| "bad \\u escape")?;
                    out.push(char::from_u32(code).unwrap_or('?'));
                }
                Some('n') => out.push('\n'),
                Some(e) => out.push(e),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

fn load(path: &str) -> Result<HashMap<String, Json>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| {
            format!("{path}: no JSON line (run midge-bench with --json or --json-file)")
        })?;
    parse_flat(line).map_err(|e| format!("{path}: {e}"))
}

fn name(run: &HashMap<String, Json>, path: &str) -> String {
    match run.get("label") {
        Some(Json::Str(l)) if !l.is_empty() => l.clone(),
        _ => path.rsplit('/').next().unwrap_or(path).to_string(),
    }
}

pub fn compare(a_path: &str, b_path: &str) -> Result<String, String> {
    let (a, b) = (load(a_path)?, load(b_path)?);
    let (na, nb) = (name(&a, a_path), name(&b, b_path));
    let mut t = String::new();
    for (n, run) in [(&na, &a), (&nb, &b)] {
        let get = |k: &str| run.get(k).map_or("-".to_string(), Json::text);
        let _ = writeln!(
            t,
            "{n}: {} against {}, QoS {}, {} clients, {} s measured, result {}",
            get("scenario"),
            get("target"),
            get("qos"),
            get("clients"),
            get("duration_s"),
            if run.get("ok") == Some(&Json::Bool(true)) {
                "OK".into()
            } else {
                format!("FAILED ({})", get("failure"))
            }
        );
    }
    let _ = writeln!(
        t,
        "\n{:<28}{:>16}{:>16}{:>10}",
        "",
        clip(&na),
        clip(&nb),
        "B/A"
    );
    for (key, title, higher_better) in ROWS {
        let (va, vb) = (a.get(key), b.get(key));
        let number = |v: Option<&Json>| matches!(v, Some(Json::Num(_)));
        if !number(va) && !number(vb) {
            continue;
        }
        let text = |v: Option<&Json>| v.map_or("-".to_string(), Json::text);
        let ratio = match (va, vb) {
            (Some(Json::Num(x)), Some(Json::Num(y))) if *x != 0.0 => {
                let r = y / x;
                let better = if higher_better { r > 1.0 } else { r < 1.0 };
                let mark = match ((r - 1.0).abs() >= 0.05, better) {
                    (false, _) => "  ",
                    (true, true) => " +",
                    (true, false) => " -",
                };
                format!("{r:.2}{mark}")
            }
            _ => "n/a".into(),
        };
        let _ = writeln!(t, "{title:<28}{:>16}{:>16}{ratio:>10}", text(va), text(vb));
    }
    let _ = writeln!(
        t,
        "\n(+: B is at least 5% better than A; -: at least 5% worse)"
    );
    let lines: Vec<&str> = t.lines().map(str::trim_end).collect();
    Ok(lines.join("\n") + "\n")
}

fn clip(s: &str) -> String {
    s.chars().take(15).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_report_writes() {
        let m = parse_flat(r#"{"label":"a \"b\"","qos":1,"ok":true,"x":null,"r":2.5}"#).unwrap();
        assert_eq!(m["label"], Json::Str("a \"b\"".into()));
        assert_eq!(m["qos"], Json::Num(1.0));
        assert_eq!(m["ok"], Json::Bool(true));
        assert_eq!(m["x"], Json::Null);
        assert_eq!(m["r"], Json::Num(2.5));
    }
}
