//! Access control lists in mosquitto's `acl_file` format.
//!
//! ```text
//! # rules before the first `user` line apply to anonymous clients
//! topic read public/#
//!
//! user alice
//! topic readwrite alice/#
//! topic deny alice/secret
//!
//! # patterns apply to every client: %c = client id, %u = user name
//! pattern write clients/%c/status
//! pattern read users/%u/#
//! ```
//!
//! `topic [read|write|readwrite|deny] FILTER` (default `readwrite`; a filter
//! with spaces needs the access kind, as in mosquitto) adds a
//! rule to the current section: the anonymous one (clients without a user
//! name) until the first `user NAME` line, then that user's. `pattern ...`
//! adds a rule for all clients, with `%c` and `%u` replaced by the client's
//! id and user name; a pattern with `%u` never matches an anonymous client,
//! and a client whose id or user name holds `+`, `#` or `/` cannot use a
//! pattern that would put it in the filter (it would widen the filter).
//!
//! A client may do something if a rule of its section or a pattern grants it
//! (`write` for a PUBLISH or a Will, `read` for a SUBSCRIBE), and no `deny`
//! rule of its section or pattern matches. A PUBLISH's topic name is matched
//! against the rule filters; a SUBSCRIBE's filter is granted by a rule whose
//! filter matches every topic the subscription can match ([`filter_covers`]),
//! and refused by a `deny` rule that covers it. A `deny` rule that shares
//! only some topics with it ([`filters_overlap`]) makes the subscription
//! [`Verdict::Partial`]: it is made, and the broker checks each message
//! published on those topics before delivering it, as mosquitto does. So
//! `topic read #` with `topic deny secret/#` lets a client subscribe to `#`
//! and never receive `secret/...`.

use crate::host::Access;
use crate::topic;
use std::collections::HashMap;
use std::path::Path;

/// The decision on one access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Refused,
    Granted,
    /// A subscription granted with some of its topics denied: each message
    /// is checked before delivery.
    Partial,
}

/// What a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Permission {
    fn grants(self, access: Access) -> bool {
        matches!(
            (self, access),
            (Permission::ReadWrite, _)
                | (Permission::Read, Access::Subscribe)
                | (Permission::Write, Access::Publish)
        )
    }
}

#[derive(Debug, Clone)]
struct Rule {
    permission: Permission,
    filter: String,
}

/// A parsed ACL file.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

impl Acl {
    /// Reads and parses an ACL file. Errors name the file and the line.
    pub fn load(path: impl AsRef<Path>) -> Result<Acl, String> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("ACL file {}: {e}", path.display()))?;
        Acl::parse(&text).map_err(|e| format!("ACL file {}: {e}", path.display()))
    }

    /// Parses an ACL file's text. Errors start with `line N: `.
    pub fn parse(text: &str) -> Result<Acl, String> {
        let mut acl = Acl::default();
        let mut user: Option<String> = None;
        for (index, line) in text.lines().enumerate() {
            let n = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = split_word(line);
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(format!("line {n}: `user` without a user name"));
                    }
                    acl.users.entry(rest.to_string()).or_default();
                    user = Some(rest.to_string());
                }
                "topic" | "pattern" => {
                    let rule = parse_rule(rest).map_err(|e| format!("line {n}: {e}"))?;
                    if keyword == "pattern" {
                        acl.patterns.push(rule);
                    } else if let Some(u) = &user {
                        acl.users.entry(u.clone()).or_default().push(rule);
                    } else {
                        acl.anonymous.push(rule);
                    }
                }
                other => {
                    return Err(format!(
                        "line {n}: unknown keyword {other:?} (want topic, pattern or user)"
                    ))
                }
            }
        }
        Ok(acl)
    }

    /// May this client publish to the topic name `topic_or_filter`
    /// (`Access::Publish`) or subscribe with the filter `topic_or_filter`
    /// (`Access::Subscribe`) with no message of it denied? (A topic name
    /// passed with `Access::Subscribe` asks whether the client may receive
    /// a message published on it.)
    pub fn allowed(
        &self,
        client_id: &str,
        username: Option<&str>,
        access: Access,
        topic_or_filter: &str,
    ) -> bool {
        self.verdict(client_id, username, access, topic_or_filter) == Verdict::Granted
    }

    /// The decision on an access. For a SUBSCRIBE, `Partial` when a rule
    /// grants the filter and `deny` rules cover only some of its topics:
    /// the subscription is made, and each message is checked before it is
    /// delivered (as mosquitto checks every message it sends).
    pub fn verdict(
        &self,
        client_id: &str,
        username: Option<&str>,
        access: Access,
        topic_or_filter: &str,
    ) -> Verdict {
        let section: &[Rule] = match username {
            None => &self.anonymous,
            Some(u) => self.users.get(u).map_or(&[], Vec::as_slice),
        };
        let mut granted = false;
        let mut partial = false;
        for rule in section {
            if rule.permission == Permission::Deny {
                match deny_applies(&rule.filter, access, topic_or_filter) {
                    Deny::All => return Verdict::Refused,
                    Deny::Some => partial = true,
                    Deny::None => {}
                }
            } else if !granted && rule.permission.grants(access) {
                granted = grant_applies(&rule.filter, access, topic_or_filter);
            }
        }
        for rule in &self.patterns {
            let deny = rule.permission == Permission::Deny;
            if !deny && (granted || !rule.permission.grants(access)) {
                continue;
            }
            match substitute(&rule.filter, client_id, username) {
                Substituted::Filter(filter) => {
                    if deny {
                        match deny_applies(&filter, access, topic_or_filter) {
                            Deny::All => return Verdict::Refused,
                            Deny::Some => partial = true,
                            Deny::None => {}
                        }
                    } else {
                        granted = grant_applies(&filter, access, topic_or_filter);
                    }
                }
                // %u and no user name: the pattern is not for this client.
                Substituted::NotApplicable => {}
                // An id or user name with `+`, `#` or `/` would widen the
                // filter: it grants nothing, and a deny pattern denies all
                // (fail closed; we cannot tell what it was meant to cover).
                Substituted::Unsafe => {
                    if deny {
                        return Verdict::Refused;
                    }
                }
            }
        }
        match (granted, partial) {
            (false, _) => Verdict::Refused,
            (true, false) => Verdict::Granted,
            (true, true) => Verdict::Partial,
        }
    }

    /// True if the file had no rules at all (every request is then refused).
    pub fn is_empty(&self) -> bool {
        self.anonymous.is_empty()
            && self.patterns.is_empty()
            && self.users.values().all(Vec::is_empty)
    }
}

fn split_word(s: &str) -> (&str, &str) {
    match s.split_once([' ', '\t']) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (s, ""),
    }
}

fn parse_rule(rest: &str) -> Result<Rule, String> {
    let (first, after) = split_word(rest);
    // One word: the filter, readwrite. More: an access kind, then the
    // filter (the rest of the line, so it may contain spaces).
    let (permission, filter) = if after.is_empty() {
        (Permission::ReadWrite, first)
    } else {
        let permission = match first {
            "read" => Permission::Read,
            "write" => Permission::Write,
            "readwrite" => Permission::ReadWrite,
            "deny" => Permission::Deny,
            other => {
                return Err(format!(
                    "invalid access {other:?} (want read, write, readwrite or deny)"
                ))
            }
        };
        (permission, after)
    };
    if filter.is_empty() {
        return Err("missing topic filter".into());
    }
    if !topic::valid_filter(filter) {
        return Err(format!("invalid topic filter {filter:?}"));
    }
    Ok(Rule {
        permission,
        filter: filter.to_string(),
    })
}

enum Substituted {
    Filter(String),
    NotApplicable,
    Unsafe,
}

fn substitute(pattern: &str, client_id: &str, username: Option<&str>) -> Substituted {
    let unsafe_value = |v: &str| v.contains(['+', '#', '/']);
    let mut out = String::with_capacity(pattern.len() + client_id.len());
    let mut rest = pattern;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("%c") {
            if unsafe_value(client_id) {
                return Substituted::Unsafe;
            }
            out.push_str(client_id);
            rest = t;
        } else if let Some(t) = tail.strip_prefix("%u") {
            let Some(u) = username else {
                return Substituted::NotApplicable;
            };
            if unsafe_value(u) {
                return Substituted::Unsafe;
            }
            out.push_str(u);
            rest = t;
        } else {
            out.push('%');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Substituted::Filter(out)
}

fn grant_applies(rule: &str, access: Access, topic_or_filter: &str) -> bool {
    match access {
        Access::Publish => topic::matches(rule, topic_or_filter),
        Access::Subscribe => filter_covers(rule, topic_or_filter),
    }
}

/// How much of an access a deny rule takes away.
enum Deny {
    None,
    /// Some of a subscription's topics.
    Some,
    All,
}

fn deny_applies(rule: &str, access: Access, topic_or_filter: &str) -> Deny {
    match access {
        Access::Publish if topic::matches(rule, topic_or_filter) => Deny::All,
        Access::Subscribe if filter_covers(rule, topic_or_filter) => Deny::All,
        Access::Subscribe if filters_overlap(rule, topic_or_filter) => Deny::Some,
        _ => Deny::None,
    }
}

fn wildcard_first(filter: &str) -> bool {
    filter.starts_with(['+', '#'])
}

/// Does the filter `rule` match every topic name that the filter `sub`
/// matches? (Both valid filters; same rules as [`topic::matches`], so a rule
/// starting with a wildcard does not cover `$` topics.)
///
/// `filter_covers("a/#", "a/#")`, `filter_covers("a/+", "a/b")` and
/// `filter_covers("#", "a/+/c")` are true; `filter_covers("a/b", "a/#")`,
/// `filter_covers("a/+", "a/#")` and `filter_covers("#", "$SYS/#")` are false.
pub fn filter_covers(rule: &str, sub: &str) -> bool {
    // Topics of a sub that starts with a literal `$...` level all start with
    // `$`, which a rule starting with a wildcard never matches.
    if sub.starts_with('$') && wildcard_first(rule) {
        return false;
    }
    // `#` alone matches every topic of one level or more, as `+/#` does.
    if sub == "#" {
        return rule == "#" || rule == "+/#";
    }
    let mut r = rule.split('/');
    let mut s = sub.split('/');
    loop {
        match (r.next(), s.next()) {
            // `#` matches whatever remains, including nothing.
            (Some("#"), _) => return true,
            // The sub matches any number of further levels; only `#` does.
            (_, Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(_), Some("+")) => return false,
            (Some(rl), Some(sl)) if rl == sl => {}
            (Some(_), Some(_)) => return false,
            (None, None) => return true,
            // `a/#` matches `a` too.
            (Some(rl), None) => return rl == "#",
            (None, Some(_)) => return false,
        }
    }
}

/// Is there a topic name that both filters match? (Same rules as
/// [`topic::matches`].)
pub fn filters_overlap(a: &str, b: &str) -> bool {
    if (a.starts_with('$') && wildcard_first(b)) || (b.starts_with('$') && wildcard_first(a)) {
        return false;
    }
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(l), Some(m)) if l == m => {}
            (Some(_), Some(_)) => return false,
            (None, None) => return true,
            (Some(l), None) | (None, Some(l)) => return l == "#",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deny_inside_a_grant_makes_a_subscription_partial() {
        let acl =
            Acl::parse("user u\ntopic read #\ntopic deny secret/#\npattern deny home/%c/private\n")
                .unwrap();
        let v = |filter: &str| acl.verdict("cam", Some("u"), Access::Subscribe, filter);
        assert_eq!(v("#"), Verdict::Partial);
        assert_eq!(v("+/+"), Verdict::Partial);
        assert_eq!(v("home/cam/+"), Verdict::Partial, "the pattern, with %c");
        assert_eq!(v("secret/#"), Verdict::Refused);
        assert_eq!(v("secret/a"), Verdict::Refused);
        assert_eq!(v("public/#"), Verdict::Granted);
        assert_eq!(v("home/other/+"), Verdict::Granted);
        // A topic name asks about one message.
        assert!(acl.allowed("cam", Some("u"), Access::Subscribe, "public/a"));
        assert!(!acl.allowed("cam", Some("u"), Access::Subscribe, "secret/a/b"));
        assert!(!acl.allowed("cam", Some("u"), Access::Subscribe, "home/cam/private"));
        // `allowed` is a full grant only.
        assert!(!acl.allowed("cam", Some("u"), Access::Subscribe, "#"));
    }

    /// Checks filter_covers against topic::matches over a small universe of
    /// topics: covers(r, s) must equal "every sample topic s matches, r
    /// matches too" whenever the samples are rich enough to tell.
    #[test]
    fn covers_and_overlap_agree_with_matching() {
        let filters = [
            "#", "+", "a", "a/#", "a/+", "a/b", "+/b", "a/+/c", "a/b/#", "+/+", "$SYS/#", "$SYS/+",
            "+/#", "a/b/c", "/", "/#", "b/#", "+/+/#", "a/+/#", "+/b/#", "a/b/+", "$SYS",
            "$SYS/a/#", "+/+/+", "//#",
        ];
        let levels = ["a", "b", "c", "", "$SYS", "x"];
        let mut topics = Vec::new();
        for l1 in levels {
            topics.push(l1.to_string());
            for l2 in levels {
                topics.push(format!("{l1}/{l2}"));
                for l3 in levels {
                    topics.push(format!("{l1}/{l2}/{l3}"));
                    for l4 in levels {
                        topics.push(format!("{l1}/{l2}/{l3}/{l4}"));
                    }
                }
            }
        }
        for r in filters {
            for s in filters {
                let covered = topics
                    .iter()
                    .filter(|t| topic::matches(s, t))
                    .all(|t| topic::matches(r, t));
                assert_eq!(filter_covers(r, s), covered, "covers({r}, {s})");
                let overlap = topics
                    .iter()
                    .any(|t| topic::matches(s, t) && topic::matches(r, t));
                assert_eq!(filters_overlap(r, s), overlap, "overlap({r}, {s})");
            }
        }
    }
}
