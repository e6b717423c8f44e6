//! A half-open window of record times, `[since, until)` in Unix seconds, and the parsing of
//! the `--since` / `--until` values people type.

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::{Error, Result};

/// Records are in the window when `end >= since` and `start < until`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl TimeRange {
    pub const ALL: TimeRange = TimeRange {
        since: None,
        until: None,
    };

    pub fn is_all(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    /// The tighter of two windows.
    pub fn intersect(&self, other: &TimeRange) -> TimeRange {
        let since = match (self.since, other.since) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let until = match (self.until, other.until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        TimeRange { since, until }
    }

    /// Whether a record with these times is in the window (unknown times are not).
    #[inline]
    pub fn contains_record(&self, start: Option<i64>, end: Option<i64>) -> bool {
        let after_since = match self.since {
            None => true,
            Some(since) => end.is_some_and(|e| e >= since),
        };
        let before_until = match self.until {
            None => true,
            Some(until) => start.is_some_and(|s| s < until),
        };
        after_since && before_until
    }

    /// Whether an object whose records end within `[lo, hi)` can hold records in the window.
    /// Records start before they end, so `start < until` needs `lo` below `until` plus the
    /// longest interval a record spans.
    pub fn may_overlap(&self, lo: i64, hi: i64) -> bool {
        const LONGEST_RECORD: i64 = 660; // 600 s aggregation + up to 60 s lag
        self.since.is_none_or(|since| hi > since)
            && self.until.is_none_or(|until| lo < until + LONGEST_RECORD)
    }
}

/// The latest time flowlens accepts anywhere (9999-12-31T23:59:59Z): later values are typos
/// or overflows, and arithmetic on them (a window less some days) must not wrap.
pub const MAX_TIME: i64 = 253_402_300_799;

/// How far past the clock a key or record may say it is before it is taken for a clock
/// error or a misnamed object: such times never set a detection window or a checkpoint.
pub const FUTURE_MARGIN: i64 = 86_400;

/// Now plus [`FUTURE_MARGIN`]: later object keys and record times are suspicious.
pub fn future_horizon() -> i64 {
    Utc::now().timestamp() + FUTURE_MARGIN
}

/// Parses a point in time: RFC 3339 (`2026-10-12T02:10:00Z`), a date (`2026-10-12`, midnight
/// UTC), Unix seconds, or a duration before `now` (`24h`, `7d`, `90m`, `1h 30m`).
pub fn parse_time(flag: &str, text: &str, now: DateTime<Utc>) -> Result<i64> {
    let secs = parse_any_time(flag, text.trim(), now)?;
    if !(0..=MAX_TIME).contains(&secs) {
        return Err(Error::invalid(
            flag,
            format!("`{}` is outside 1970-01-01 .. 9999-12-31", text.trim()),
        ));
    }
    Ok(secs)
}

fn parse_any_time(flag: &str, text: &str, now: DateTime<Utc>) -> Result<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp());
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc().timestamp());
    }
    if !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && let Ok(secs) = text.parse::<i64>()
    {
        return Ok(secs);
    }
    match humantime::parse_duration(text) {
        Ok(d) => Ok(i64::try_from(d.as_secs())
            .ok()
            .and_then(|d| now.timestamp().checked_sub(d))
            .unwrap_or(i64::MIN)),
        Err(_) => Err(Error::invalid(
            flag,
            format!(
                "`{text}` is not a time: use RFC 3339 (2026-10-12T02:10:00Z), a date \
                 (2026-10-12), Unix seconds, or a duration before now (24h, 7d)"
            ),
        )),
    }
}

/// Formats Unix seconds as RFC 3339 UTC.
pub fn format_time(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-10-12T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn parses_the_forms_people_type() {
        let noon = now().timestamp();
        assert_eq!(
            parse_time("--since", "2026-10-12T12:00:00Z", now()).unwrap(),
            noon
        );
        assert_eq!(
            parse_time("--since", "2026-10-12T14:00:00+02:00", now()).unwrap(),
            noon
        );
        assert_eq!(
            parse_time("--since", "2026-10-12", now()).unwrap(),
            noon - 12 * 3600
        );
        assert_eq!(parse_time("--since", "24h", now()).unwrap(), noon - 86400);
        assert_eq!(
            parse_time("--since", "7d", now()).unwrap(),
            noon - 7 * 86400
        );
        assert_eq!(
            parse_time("--since", "1760270400", now()).unwrap(),
            1760270400
        );
        for wild in [
            "9223372036854775807",
            "300000000000",
            "1000000000000h",
            "1969-12-31",
        ] {
            let err = parse_time("--since", wild, now()).unwrap_err().to_string();
            assert!(
                err.contains("outside 1970-01-01 .. 9999-12-31"),
                "{wild}: {err}"
            );
        }
        let err = parse_time("--since", "yesterday-ish", now()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--since: `yesterday-ish` is not a time")
        );
    }

    #[test]
    fn window_logic() {
        let w = TimeRange {
            since: Some(100),
            until: Some(200),
        };
        assert!(w.contains_record(Some(50), Some(100)));
        assert!(!w.contains_record(Some(50), Some(99)));
        assert!(!w.contains_record(Some(200), Some(210)));
        assert!(!w.contains_record(None, None));
        assert!(TimeRange::ALL.contains_record(None, None));
        assert!(w.may_overlap(0, 101));
        assert!(!w.may_overlap(0, 100));
        assert!(w.may_overlap(800, 900));
        assert!(!w.may_overlap(861, 900));
        let tighter = w.intersect(&TimeRange {
            since: Some(150),
            until: None,
        });
        assert_eq!(
            tighter,
            TimeRange {
                since: Some(150),
                until: Some(200)
            }
        );
    }
}
