//! Log line time stamps: a strftime subset over UTC, for
//! `log_timestamp_format`. Written here rather than taken from a date
//! crate: the one that formatted local time (jiff) made the binary 430 KB
//! larger, a third of it, for one line of each log record.
//!
//! Stamps are in UTC (`%z` is `+0000`, `%Z` is `UTC`). Supported: `%Y %y
//! %m %d %e %j %H %I %M %S %p %s %a %A %b %B %h %F %T %D %R %z %Z %n %t
//! %%`; anything else is an error, found when the config is read.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A moment broken down (UTC).
struct Civil {
    secs: i64,
    year: i64,
    month: u32, // 1..=12
    day: u32,   // 1..=31
    yday: u32,  // 1..=366
    hour: u32,
    minute: u32,
    second: u32,
    weekday: usize, // 0 = Thursday (1970-01-01)
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

impl Civil {
    fn at(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let rest = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let extra = u32::from(month > 2 && leap(year));
        Civil {
            secs,
            year,
            month,
            day,
            yday: BEFORE[month as usize - 1] + day + extra,
            hour: rest / 3600,
            minute: rest / 60 % 60,
            second: rest % 60,
            weekday: days.rem_euclid(7) as usize,
        }
    }
}

/// `format` at `secs` since the Unix epoch (UTC); an error names the
/// first conversion it does not support.
pub fn format_at(format: &str, secs: i64) -> Result<String, String> {
    let t = Civil::at(secs);
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            return Err("a '%' at the end".into());
        };
        let _ = match spec {
            'Y' => write!(out, "{}", t.year),
            'y' => write!(out, "{:02}", t.year.rem_euclid(100)),
            'm' => write!(out, "{:02}", t.month),
            'd' => write!(out, "{:02}", t.day),
            'e' => write!(out, "{:2}", t.day),
            'j' => write!(out, "{:03}", t.yday),
            'H' => write!(out, "{:02}", t.hour),
            'I' => write!(out, "{:02}", (t.hour + 11) % 12 + 1),
            'M' => write!(out, "{:02}", t.minute),
            'S' => write!(out, "{:02}", t.second),
            'p' => write!(out, "{}", if t.hour < 12 { "AM" } else { "PM" }),
            's' => write!(out, "{}", t.secs),
            'a' => write!(out, "{}", &DAYS[t.weekday][..3]),
            'A' => write!(out, "{}", DAYS[t.weekday]),
            'b' | 'h' => write!(out, "{}", &MONTHS[t.month as usize - 1][..3]),
            'B' => write!(out, "{}", MONTHS[t.month as usize - 1]),
            'F' => write!(out, "{}-{:02}-{:02}", t.year, t.month, t.day),
            'T' => write!(out, "{:02}:{:02}:{:02}", t.hour, t.minute, t.second),
            'R' => write!(out, "{:02}:{:02}", t.hour, t.minute),
            'D' => write!(
                out,
                "{:02}/{:02}/{:02}",
                t.month,
                t.day,
                t.year.rem_euclid(100)
            ),
            'z' => out.write_str("+0000"),
            'Z' => out.write_str("UTC"),
            'n' => out.write_char('\n'),
            't' => out.write_char('\t'),
            '%' => out.write_char('%'),
            other => return Err(format!("'%{other}' is not supported (stamps are UTC)")),
        };
    }
    Ok(out)
}

/// `format` now.
pub fn format_now(format: &str) -> Result<String, String> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    let secs = since.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    format_at(format, secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_moments_format_as_strftime_would_in_utc() {
        // 2025-12-01T02:31:32Z, a Monday, day 335 of the year.
        let t = 1_764_556_292;
        assert_eq!(
            format_at("%Y-%m-%dT%H:%M:%SZ", t).unwrap(),
            "2025-12-01T02:31:32Z"
        );
        assert_eq!(format_at("%a %j", t).unwrap(), "Mon 335");
        assert_eq!(
            format_at("%F %T %z %Z", 0).unwrap(),
            "1970-01-01 00:00:00 +0000 UTC"
        );
        assert_eq!(
            format_at("%a %A %b %B %j %e", 0).unwrap(),
            "Thu Thursday Jan January 001  1"
        );
        assert_eq!(
            format_at("%s|%y|%D|%R|%I%p|%%", 951_782_400).unwrap(),
            "951782400|00|02/29/00|00:00|12AM|%"
        );
        assert_eq!(
            format_at("%j", 951_868_800).unwrap(),
            "061",
            "2000-03-01: a leap year"
        );
        assert_eq!(format_at("%Y/%m/%d", 4_102_444_800).unwrap(), "2100/01/01");
        assert!(format_at("%Y %", 0).is_err());
        assert!(format_at("%Q", 0).is_err());
    }
}
