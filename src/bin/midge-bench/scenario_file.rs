//! Scenario files: a mix of client groups in one run, for what the flags
//! cannot say. The format is a small subset of TOML, read by hand (no
//! parser dependency for a dozen keys): `key = value` lines at the top and
//! in `[[publishers]]` / `[[subscribers]]` tables; values are strings,
//! numbers, booleans and one-line arrays; `#` starts a comment.
//!
//! ```toml
//! duration = 30
//! [[publishers]]
//! name = "sensors"
//! clients = 1000
//! topic = "sensors/%i/temp"
//! interval_ms = 1000
//! qos = 1
//! size = "32-128"
//! [[subscribers]]
//! name = "dashboard"
//! filters = ["#"]
//! qos = 1
//! ```

use crate::workload::{PubGroup, SubGroup};
use std::collections::HashMap;

pub struct ScenarioFile {
    /// The `name` key; by default (from `load`) the file's name.
    pub name: String,
    pub duration: Option<f64>,
    pub warmup: Option<f64>,
    pub pubs: Vec<PubGroup>,
    pub subs: Vec<SubGroup>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
    List(Vec<Value>),
}

/// One table's keys, each with the line it was set on.
type Table = HashMap<String, (usize, Value)>;

const TOP_KEYS: [&str; 3] = ["name", "duration", "warmup"];
const PUB_KEYS: [&str; 9] = [
    "name",
    "clients",
    "topic",
    "interval_ms",
    "qos",
    "retain",
    "size",
    "clean",
    "client_id",
];
const SUB_KEYS: [&str; 6] = ["name", "clients", "filters", "qos", "clean", "client_id"];

pub fn load(path: &str) -> Result<ScenarioFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut file = parse(&text).map_err(|e| format!("{path}: {e}"))?;
    if file.name.is_empty() {
        let stem = std::path::Path::new(path).file_stem();
        file.name = stem.map_or("scenario file".into(), |s| s.to_string_lossy().into_owned());
    }
    Ok(file)
}

pub fn parse(text: &str) -> Result<ScenarioFile, String> {
    let mut top = Table::new();
    let mut tables: Vec<(bool, usize, Table)> = Vec::new(); // (publishers?, line, keys)
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            match line {
                "[[publishers]]" => tables.push((true, n, Table::new())),
                "[[subscribers]]" => tables.push((false, n, Table::new())),
                _ => {
                    return Err(format!(
                        "line {n}: only [[publishers]] and [[subscribers]] tables exist"
                    ))
                }
            }
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {n}: expected `key = value`"))?;
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("line {n}: '{key}' is not a key"));
        }
        let value = parse_value(value.trim()).map_err(|e| format!("line {n}: {e}"))?;
        let (table, known): (&mut Table, &[&str]) = match tables.last_mut() {
            None => (&mut top, &TOP_KEYS),
            Some((true, _, t)) => (t, &PUB_KEYS),
            Some((false, _, t)) => (t, &SUB_KEYS),
        };
        if !known.contains(&key) {
            return Err(format!(
                "line {n}: unknown key '{key}' (known here: {})",
                known.join(", ")
            ));
        }
        if table.insert(key.to_string(), (n, value)).is_some() {
            return Err(format!("line {n}: '{key}' is set twice"));
        }
    }
    let mut file = ScenarioFile {
        name: str_of(&top, "name")?.unwrap_or_default(),
        duration: num_of(&top, "duration")?,
        warmup: num_of(&top, "warmup")?,
        pubs: Vec::new(),
        subs: Vec::new(),
    };
    for (is_pub, line, t) in &tables {
        let name = str_of(t, "name")?.unwrap_or_else(|| format!("group@{line}"));
        let clients = count_of(t, "clients")?.unwrap_or(1);
        let qos = count_of(t, "qos")?.unwrap_or(0).min(3) as u8;
        let clean = bool_of(t, "clean")?.unwrap_or(true);
        let client_id = str_of(t, "client_id")?;
        if *is_pub {
            let topic = str_of(t, "topic")?
                .ok_or_else(|| format!("line {line}: [[publishers]] '{name}' needs a topic"))?;
            let size = match t.get("size") {
                None => (64, 64),
                Some((n, Value::Num(v))) => {
                    let v = whole(*v, *n)?;
                    (v, v)
                }
                Some((n, Value::Str(s))) => parse_size(s).map_err(|e| format!("line {n}: {e}"))?,
                Some((n, _)) => return Err(format!("line {n}: size is a number or \"MIN-MAX\"")),
            };
            file.pubs.push(PubGroup {
                name,
                clients,
                topic,
                interval_ms: num_of(t, "interval_ms")?.unwrap_or(0.0),
                qos,
                retain: bool_of(t, "retain")?.unwrap_or(false),
                size,
                clean,
                client_id,
            });
        } else {
            let filters = match t.get("filters") {
                Some((n, Value::List(items))) => items
                    .iter()
                    .map(|v| match v {
                        Value::Str(s) => Ok(s.clone()),
                        _ => Err(format!("line {n}: filters are strings")),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some((_, Value::Str(s))) => vec![s.clone()],
                Some((n, _)) => return Err(format!("line {n}: filters is a list of strings")),
                None => {
                    return Err(format!(
                        "line {line}: [[subscribers]] '{name}' needs filters"
                    ))
                }
            };
            file.subs.push(SubGroup {
                name,
                clients,
                filters,
                qos,
                clean,
                client_id,
            });
        }
    }
    Ok(file)
}

/// `64` or `32-128`: payload bytes, inclusive.
pub fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("'{s}' is not a size: BYTES or MIN-MAX");
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let lo: usize = lo.trim().parse().map_err(|_| bad())?;
    let hi: usize = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(format!("'{s}': the low end is above the high end"));
    }
    Ok((lo, hi))
}

/// The line without its comment (a `#` outside a string).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return &line[..i],
            None => {}
        }
    }
    line
}

fn parse_value(s: &str) -> Result<Value, String> {
    let (v, rest) = value_prefix(s)?;
    if !rest.trim().is_empty() {
        return Err(format!("unexpected '{}' after the value", rest.trim()));
    }
    Ok(v)
}

/// One value from the front of `s`, and what follows it.
fn value_prefix(s: &str) -> Result<(Value, &str), String> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Ok((Value::Str(out), &rest[i + 1..])),
                '\\' => match chars.next().map(|(_, e)| e) {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    _ => return Err("unknown escape in a string".into()),
                },
                c => out.push(c),
            }
        }
        return Err("unterminated string".into());
    }
    if let Some(rest) = s.strip_prefix('\'') {
        let end = rest.find('\'').ok_or("unterminated string")?;
        return Ok((Value::Str(rest[..end].to_string()), &rest[end + 1..]));
    }
    if let Some(mut rest) = s.strip_prefix('[') {
        let mut items = Vec::new();
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix(']') {
                return Ok((Value::List(items), r));
            }
            if rest.is_empty() {
                return Err("an array ends on the line it starts ( ] missing)".into());
            }
            let (v, r) = value_prefix(rest)?;
            items.push(v);
            rest = r.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with(']') {
                return Err("expected ',' or ']' in an array".into());
            }
        }
    }
    let end = s.find([',', ']']).unwrap_or(s.len());
    let (word, rest) = s.split_at(end);
    let word = word.trim();
    let v = match word {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::Num(
            word.replace('_', "")
                .parse::<f64>()
                .map_err(|_| format!("'{word}' is not a value (strings need quotes)"))?,
        ),
    };
    Ok((v, rest))
}

fn str_of(t: &Table, key: &str) -> Result<Option<String>, String> {
    match t.get(key) {
        None => Ok(None),
        Some((_, Value::Str(s))) => Ok(Some(s.clone())),
        Some((n, _)) => Err(format!("line {n}: {key} is a string (in quotes)")),
    }
}

fn num_of(t: &Table, key: &str) -> Result<Option<f64>, String> {
    match t.get(key) {
        None => Ok(None),
        Some((n, Value::Num(v))) if *v >= 0.0 && v.is_finite() => {
            let _ = n;
            Ok(Some(*v))
        }
        Some((n, _)) => Err(format!("line {n}: {key} is a number, 0 or more")),
    }
}

fn whole(v: f64, line: usize) -> Result<usize, String> {
    if v >= 0.0 && v.fract() == 0.0 && v <= 1e12 {
        Ok(v as usize)
    } else {
        Err(format!("line {line}: {v} is not a whole number"))
    }
}

fn count_of(t: &Table, key: &str) -> Result<Option<usize>, String> {
    match t.get(key) {
        None => Ok(None),
        Some((n, Value::Num(v))) => whole(*v, *n).map(Some),
        Some((n, _)) => Err(format!("line {n}: {key} is a whole number")),
    }
}

fn bool_of(t: &Table, key: &str) -> Result<Option<bool>, String> {
    match t.get(key) {
        None => Ok(None),
        Some((_, Value::Bool(b))) => Ok(Some(*b)),
        Some((n, _)) => Err(format!("line {n}: {key} is true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_example() {
        let f = parse(
            "duration = 30 # seconds\n[[publishers]]\nname = \"sensors\"\nclients = 1_000\n\
             topic = \"sensors/%i/temp\"\ninterval_ms = 1000\nqos = 1\nsize = \"32-128\"\n\
             [[subscribers]]\nname = 'dashboard'\nfilters = [\"#\", \"a/+\",]\nqos = 1\n",
        )
        .unwrap();
        assert_eq!(f.duration, Some(30.0));
        assert_eq!(f.pubs[0].clients, 1000);
        assert_eq!(f.pubs[0].size, (32, 128));
        assert_eq!(f.subs[0].filters, ["#", "a/+"]);
        assert_eq!(f.subs[0].name, "dashboard");
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("[[publishers]]\ntopic = \"t\"\nqoss = 1\n")
            .err()
            .unwrap();
        assert!(e.starts_with("line 3: unknown key 'qoss'"), "{e}");
        let e = parse("[[subscribers]]\nfilters = [\"a\"\n").err().unwrap();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse("[[publishers]]\nclients = 2\n").err().unwrap();
        assert!(e.contains("needs a topic"), "{e}");
        assert!(parse("[server]\n").is_err());
    }
}
