//! The conformance coverage tables, kept honest: `tests/COVERAGE.md` is
//! generated from the `// [MQTT-x.y.z-n]` comments that stand directly above
//! tests, and this test fails when the tables are out of date, a comment
//! names an id that is not a statement of its standard, or a server-side
//! MQTT 5.0 statement is neither covered nor explained.
//!
//! Two standards renumber the same ids (MQTT-3.1.2-24 is keep-alive in
//! 3.1.1 and Maximum Packet Size in 5.0), so the file says which one a
//! comment means: MQTT 5.0 test files (`*_v5.rs`, `*_v5_*.rs`) cite MQTT
//! 5.0 ids, all others MQTT 3.1.1 ids. A test marked `#[ignore]` covers nothing; its
//! ids show as "not yet" with the reason it gives.
//!
//! Regenerate: `MIDGE_WRITE_COVERAGE=1 cargo test --test coverage`.

use std::collections::BTreeMap;
use std::path::Path;

#[path = "coverage/statements.rs"]
mod statements;
use statements::{CLIENT_ONLY, IDS, NOT_APPLICABLE};
#[path = "coverage/statements_v5.rs"]
mod statements_v5;

/// A test that cites an id: "file::function", and the reason it is
/// ignored, if it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Citer {
    name: String,
    ignored: Option<String>,
}

/// id -> the tests whose id comment names it.
type Citations = BTreeMap<String, Vec<Citer>>;

/// The reason in `#[ignore = "..."]` (or "ignored").
fn ignore_reason(attr: &str) -> String {
    attr.split('"').nth(1).unwrap_or("ignored").to_string()
}

/// The citations of the MQTT 3.1.1 tests and of the MQTT 5.0 tests.
fn scan() -> (Citations, Citations) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    let (mut v311, mut v5) = (Citations::new(), Citations::new());
    for file in files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        if stem == "coverage" {
            continue;
        }
        let map = if stem.ends_with("_v5") || stem.contains("_v5_") {
            &mut v5
        } else {
            &mut v311
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.starts_with("// [MQTT-") {
                continue;
            }
            // The comment must stand directly above a test: more comment
            // lines and attributes (one of them #[test]) may follow it,
            // then the function.
            let above: Vec<&&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.starts_with("#[") || l.starts_with("//") || l.starts_with("fn "))
                .collect();
            let Some(at) = above.iter().position(|l| l.starts_with("fn ")) else {
                continue;
            };
            if !above[..at].iter().any(|l| l.starts_with("#[test]")) {
                continue;
            }
            let ignored = above[..at]
                .iter()
                .find(|l| l.starts_with("#[ignore"))
                .map(|l| ignore_reason(l));
            let func = &above[at]["fn ".len()..];
            let name: String = func
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            for id in line.split('[').skip(1).filter_map(|s| s.split(']').next()) {
                map.entry(id.to_string()).or_default().push(Citer {
                    name: format!("{stem}::{name}"),
                    ignored: ignored.clone(),
                });
            }
        }
    }
    for map in [&mut v311, &mut v5] {
        for tests in map.values_mut() {
            tests.sort();
            tests.dedup();
        }
    }
    (v311, v5)
}

/// One table's rows and its count of covered ids. `why` gives the reason
/// an id is not covered; ignored tests citing it say "not yet".
fn rows(
    ids: &[(&str, &str, &str)],
    map: &Citations,
    why: &[(&str, &str)],
    uncovered: &str,
) -> (String, usize) {
    let mut rows = String::new();
    let mut covered = 0;
    for (n, (id, tag, summary)) in ids.iter().enumerate() {
        let citers = map.get(*id).map(Vec::as_slice).unwrap_or_default();
        let (run, ignored): (Vec<&Citer>, Vec<&Citer>) =
            citers.iter().partition(|c| c.ignored.is_none());
        let reason = why.iter().find(|(i, _)| i == id).map(|(_, w)| *w);
        let cell = if !run.is_empty() {
            covered += 1;
            let mut names: Vec<String> = run.iter().map(|c| format!("`{}`", c.name)).collect();
            names.extend(ignored.iter().map(|c| format!("`{}` (ignored)", c.name)));
            names.join(", ")
        } else if let Some(first) = ignored.first() {
            let why = reason.unwrap_or(first.ignored.as_deref().unwrap_or_default());
            let names: Vec<String> = ignored.iter().map(|c| format!("`{}`", c.name)).collect();
            format!("**not yet**: {why} (ignored: {})", names.join(", "))
        } else if let Some(why) = reason {
            format!("{uncovered}{why}")
        } else {
            "**not covered**".to_string()
        };
        rows.push_str(&format!(
            "| {} | {id} | {tag} | {summary} | {cell} |\n",
            n + 1
        ));
    }
    (rows, covered)
}

fn render(v311: &Citations, v5: &Citations) -> String {
    let (rows311, covered) = rows(IDS, v311, NOT_APPLICABLE, "not applicable: ");
    let ids5 = statements_v5::IDS;
    let (rows5, covered5) = rows(ids5, v5, statements_v5::NOT_COVERED, "not covered: ");
    let not_yet = ids5
        .iter()
        .filter(|(id, _, _)| {
            let citers = v5.get(*id).map(Vec::as_slice).unwrap_or_default();
            !citers.is_empty() && citers.iter().all(|c| c.ignored.is_some())
        })
        .count();
    format!(
        "# Conformance coverage\n\n\
         Generated by `tests/coverage.rs` from the `// [MQTT-…]` comments above \
         the tests; do not edit by hand \
         (`MIDGE_WRITE_COVERAGE=1 cargo test --test coverage`).\n\n\
         ## MQTT 3.1.1\n\n\
         The 131 server-side MUST statements of MQTT 3.1.1 plus Errata 01 \
         (tags: S server obligation, V client rule the server enforces, S/V both).\n\n\
         | # | id | tag | statement (summary) | tests |\n|---|---|---|---|---|\n{rows311}\n\
         Covered: {covered} of {} server-side MUST statements ({} not applicable).\n\n\
         ## MQTT 5.0\n\n\
         The 240 server-side statements of MQTT 5.0 (`tests/conformance_v5_*.rs`; \
         tags as above). An id no test covers says why in one line; \
         \"not yet\" marks a test written but ignored until the feature exists.\n\n\
         | # | id | tag | statement (summary) | tests |\n|---|---|---|---|---|\n{rows5}\n\
         Covered: {covered5} of {} server-side statements ({not_yet} not yet, {} explained).\n",
        IDS.len(),
        NOT_APPLICABLE.len(),
        ids5.len(),
        ids5.len() - covered5 - not_yet,
    )
}

#[test]
fn coverage_table_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/COVERAGE.md");
    let (v311, v5) = scan();
    let want = render(&v311, &v5);
    if std::env::var_os("MIDGE_WRITE_COVERAGE").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "tests/COVERAGE.md is out of date: run MIDGE_WRITE_COVERAGE=1 cargo test --test coverage"
    );
}

#[test]
fn every_cited_id_is_a_statement_of_the_standard() {
    assert_eq!(IDS.len(), 131);
    assert_eq!(statements_v5::IDS.len(), 240);
    let (v311, v5) = scan();
    for (id, tests) in v311 {
        let known = IDS.iter().any(|(i, _, _)| *i == id) || CLIENT_ONLY.contains(&id.as_str());
        assert!(
            known,
            "{id} (cited by {tests:?}) is not a MQTT 3.1.1 statement id"
        );
    }
    for (id, tests) in v5 {
        let known = statements_v5::IDS.iter().any(|(i, _, _)| *i == id)
            || statements_v5::CLIENT_ONLY.contains(&id.as_str());
        assert!(
            known,
            "{id} (cited by {tests:?}) is not a MQTT 5.0 statement id"
        );
    }
}

/// Every server-side MQTT 5.0 statement is covered by a test, or waits
/// for a feature (an ignored test), or says why it is not covered; and no
/// reason stands beside an id a test covers.
#[test]
fn every_mqtt5_statement_is_covered_or_explained() {
    let (_, v5) = scan();
    let mut missing = Vec::new();
    for (id, _, _) in statements_v5::IDS {
        let cited = v5.get(*id).is_some_and(|c| !c.is_empty());
        let covered = v5
            .get(*id)
            .is_some_and(|c| c.iter().any(|c| c.ignored.is_none()));
        let explained = statements_v5::NOT_COVERED.iter().any(|(i, _)| i == id);
        assert!(!(covered && explained), "{id} is covered: drop its reason");
        if !cited && !explained {
            missing.push(*id);
        }
    }
    assert!(
        missing.is_empty(),
        "neither covered nor explained: {missing:?}"
    );
    for (id, _) in statements_v5::NOT_COVERED {
        let known = statements_v5::IDS.iter().any(|(i, _, _)| i == id);
        assert!(known, "{id} in NOT_COVERED is not a server-side statement");
    }
}
