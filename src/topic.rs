//! Topic names and topic filters (MQTT 3.1.1 §4.7): validation and matching.
//!
//! Matching compares bytes level by level with no normalisation
//! [MQTT-4.7.3-4]; a filter that starts with a wildcard never matches a topic
//! that starts with `$` [MQTT-4.7.2-1].

/// A topic name as a PUBLISH or a Will carries it: at least one character,
/// no wildcards [MQTT-4.7.1-1], [MQTT-4.7.3-1], [MQTT-3.3.2-2]. (UTF-8 and
/// U+0000 are checked by the protocol decoder.)
pub fn valid_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.bytes().any(|b| b == b'+' || b == b'#')
}

/// A topic filter: `#` alone or after `/` and last [MQTT-4.7.1-2], `+` a whole
/// level [MQTT-4.7.1-3], at least one character [MQTT-4.7.3-1].
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        match level {
            "#" if last => {}
            "+" => {}
            _ if level.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

/// True if `topic` (a name or a filter) has at most `max` levels. Routing
/// and matching cost grows with a topic's depth, and no topic tree needs
/// hundreds of levels: deeper ones are refused (mosquitto refuses more than
/// 200 too, fixed when it is built).
pub fn within_levels(topic: &str, max: usize) -> bool {
    topic.bytes().filter(|&b| b == b'/').count() < max
}

/// A PUBLISH's topic checked in one pass: `Some(levels)` for a valid name
/// ([`valid_name`]), `None` if it is empty or holds a wildcard. The hot
/// path's version of [`valid_name`] and [`within_levels`] together: eight
/// bytes at a time, where the two scans cost about 130 instructions per
/// message (callgrind).
pub fn name_levels(topic: &str) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    /// The high bit of each byte of `x` that equals `b` (exact: no borrow
    /// between bytes).
    fn equal(x: u64, b: u8) -> u64 {
        let t = x ^ (ONES * u64::from(b));
        !(((t & LOW7) + LOW7) | t | LOW7)
    }
    /// The slashes among the eight bytes of `x`; `None` if one is a
    /// wildcard. Counted by a multiply that sums one bit per slash into
    /// the top byte (at most 8, so no byte carries): x86-64's baseline has
    /// no popcnt, and `count_ones` costs about 12 instructions there.
    fn slashes_in(x: u64) -> Option<usize> {
        if equal(x, b'+') | equal(x, b'#') != 0 {
            return None;
        }
        Some(((equal(x, b'/') >> 7).wrapping_mul(ONES) >> 56) as usize)
    }
    if topic.is_empty() {
        return None;
    }
    let bytes = topic.as_bytes();
    let mut slashes = 0usize;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        slashes += slashes_in(u64::from_le_bytes(word))?;
    }
    let rest = chunks.remainder();
    let x = match bytes.len().checked_sub(8) {
        // The last eight bytes, shifted to leave out those the words above
        // saw (zero bytes match nothing): one step, not a byte loop.
        Some(last) if !rest.is_empty() => {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes.get(last..)?);
            u64::from_le_bytes(word) >> (8 * (8 - rest.len()))
        }
        _ => rest.iter().rev().fold(0, |x, &b| (x << 8) | u64::from(b)),
    };
    Some(slashes + slashes_in(x)? + 1)
}

/// True if the filter holds a wildcard (so it cannot be an exact-match key).
pub fn has_wildcard(filter: &str) -> bool {
    filter.bytes().any(|b| b == b'+' || b == b'#')
}

/// Does `filter` match the topic name `topic`?
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_levels_agrees_with_the_two_checks() {
        let topics = [
            "",
            "a",
            "/",
            "//",
            "a/b",
            "a/b/c/d/e/f/g/h/i",
            "+",
            "#",
            "a/+/b",
            "sensors/livingroom/temperature",
            "a#",
            "abcdefgh",
            "abcdefg+",
            "abcdefgh/",
            "/abcdefg",
            "\u{e9}t\u{e9}/\u{e9}",
            "$SYS/broker/x",
            "a/b/c/d/e/f/g/#",
            "////////////////",
            "++++++++",
            "xxxxxxx/xxxxxxx/",
        ];
        for t in topics {
            let expected = if valid_name(t) {
                Some(t.bytes().filter(|&b| b == b'/').count() + 1)
            } else {
                None
            };
            assert_eq!(name_levels(t), expected, "{t:?}");
            // Every byte value in every position of an 8-byte word.
            for b in 0..=255u8 {
                for i in 0..8 {
                    let mut v = b"abcdefgh".to_vec();
                    v[i] = b;
                    if let Ok(t) = std::str::from_utf8(&v) {
                        let expected = (!t.contains(['+', '#']))
                            .then(|| t.bytes().filter(|&b| b == b'/').count() + 1);
                        assert_eq!(name_levels(t), expected, "{t:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn matching_table_from_the_standard() {
        let cases = [
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/#", "sport", true),
            ("#", "a/b/c", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("a//b", "a//b", true),
            ("a/+/b", "a//b", true),
            ("#", "$SYS/broker/uptime", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("$SYS/#", "$SYS/monitor/Clients", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            ("finance", "/finance", false),
            ("Accounts", "ACCOUNTS", false),
            ("café", "cafe\u{301}", false),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
            ("/", "/", true),
        ];
        for (filter, topic, want) in cases {
            assert_eq!(matches(filter, topic), want, "{filter} vs {topic}");
        }
    }

    #[test]
    fn filter_syntax() {
        for ok in [
            "#", "a/#", "+", "+/x/#", "a/+/c", "/", "a//b", "$SYS/#", "+/+",
        ] {
            assert!(valid_filter(ok), "{ok}");
        }
        for bad in ["", "a#", "a/#/b", "a/b+", "+a", "#/a", "a/+b/c", "##"] {
            assert!(!valid_filter(bad), "{bad}");
        }
    }

    #[test]
    fn level_cap() {
        assert!(within_levels("a", 1) && !within_levels("a/b", 1));
        assert!(within_levels("/", 2) && !within_levels("//", 2));
        let deep = vec!["+"; 200].join("/");
        assert!(within_levels(&deep, 200) && !within_levels(&format!("{deep}/#"), 200));
    }

    #[test]
    fn name_syntax() {
        assert!(valid_name("a/b") && valid_name("/") && valid_name("$SYS/x"));
        assert!(!valid_name("") && !valid_name("a/+") && !valid_name("a/#"));
    }
}
