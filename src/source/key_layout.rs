//! What an object's key says before it is opened: account, region, and the window its
//! records' end times fall in (AWS's plain and Hive-compatible layouts, and the file name's
//! `_YYYYMMDDTHHmmZ_` stamp). Used to skip objects outside `--since` / `--until`.

use chrono::NaiveDate;

/// Records can arrive late: an object may hold records that ended this long before its slot.
const LATE_DELIVERY: i64 = 3600;
/// And clocks differ a little: allow records to end this long after the slot.
const CLOCK_SLACK: i64 = 600;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyInfo {
    pub account: Option<String>,
    pub region: Option<String>,
    /// `[lo, hi)` of the end times of the records the object can hold.
    pub window: Option<(i64, i64)>,
}

/// Reads the key layout of a path or S3 key.
pub fn key_info(key: &str) -> KeyInfo {
    let segments: Vec<&str> = key.split(['/', '\\']).filter(|s| !s.is_empty()).collect();
    let mut info = KeyInfo::default();
    let (mut year, mut month, mut day, mut hour) = (None, None, None, None);

    // Plain layout: AWSLogs/<acct>/vpcflowlogs/<region>/YYYY/MM/DD/[HH/]
    if let Some(i) = segments.iter().position(|s| *s == "vpcflowlogs") {
        if i >= 1 && segments[i - 1].bytes().all(|b| b.is_ascii_digit()) {
            info.account = Some(segments[i - 1].to_string());
        }
        if let Some(region) = segments.get(i + 1) {
            info.region = Some(region.to_string());
        }
        let number = |j: usize, len: usize| {
            segments
                .get(j)
                .filter(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u32>().ok())
        };
        year = number(i + 2, 4);
        month = number(i + 3, 2);
        day = number(i + 4, 2);
        // An hour folder is two digits followed by more path (the file name).
        if i + 6 < segments.len() {
            hour = number(i + 5, 2);
        }
    }
    // Hive-compatible: aws-account-id=…/aws-service=vpcflowlogs/aws-region=…/year=…/…
    for s in &segments {
        if let Some((k, v)) = s.split_once('=') {
            match k {
                "aws-account-id" => info.account = Some(v.to_string()),
                "aws-region" => info.region = Some(v.to_string()),
                "year" => year = v.parse().ok(),
                "month" => month = v.parse().ok(),
                "day" => day = v.parse().ok(),
                "hour" => hour = v.parse().ok(),
                _ => {}
            }
        }
    }

    let file_name = segments.last().copied().unwrap_or("");
    if let Some(stamp) = name_stamp(file_name) {
        info.window = Some((stamp - LATE_DELIVERY, stamp + 300 + CLOCK_SLACK));
        return info;
    }
    if let (Some(y), Some(m), Some(d)) = (year, month, day)
        && let Some(midnight) = NaiveDate::from_ymd_opt(y as i32, m, d)
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp())
    {
        info.window = Some(match hour.filter(|h| *h < 24) {
            Some(h) => {
                let start = midnight + i64::from(h) * 3600;
                (start - LATE_DELIVERY, start + 3600 + CLOCK_SLACK)
            }
            None => (midnight - LATE_DELIVERY, midnight + 86400 + CLOCK_SLACK),
        });
    }
    info
}

/// The `_YYYYMMDDTHHmmZ_` stamp in an AWS flow log object name, as Unix seconds.
fn name_stamp(name: &str) -> Option<i64> {
    let bytes = name.as_bytes();
    // `_` 8 digits `T` 4 digits `Z` `_`
    (0..bytes.len().saturating_sub(15)).find_map(|i| {
        let w = &bytes[i..i + 16];
        let digits = |r: std::ops::Range<usize>| w[r].iter().all(u8::is_ascii_digit);
        if w[0] == b'_'
            && w[9] == b'T'
            && w[14] == b'Z'
            && w[15] == b'_'
            && digits(1..9)
            && digits(10..14)
        {
            let text = std::str::from_utf8(&w[1..14]).ok()?;
            chrono::NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M")
                .ok()
                .map(|t| t.and_utc().timestamp())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 1_760_227_200; // 2025-10-12T00:00:00Z

    #[test]
    fn plain_daily_layout() {
        let info =
            key_info("logs/AWSLogs/012345678901/vpcflowlogs/eu-west-1/2025/10/12/part.log.gz");
        assert_eq!(info.account.as_deref(), Some("012345678901"));
        assert_eq!(info.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            info.window,
            Some((DAY - LATE_DELIVERY, DAY + 86400 + CLOCK_SLACK))
        );
    }

    #[test]
    fn plain_hourly_layout_and_stamp() {
        let hourly = key_info("AWSLogs/1/vpcflowlogs/us-east-1/2025/10/12/07/x.log.gz");
        let start = DAY + 7 * 3600;
        assert_eq!(
            hourly.window,
            Some((start - LATE_DELIVERY, start + 3600 + CLOCK_SLACK))
        );
        let stamped = key_info(
            "AWSLogs/123456789012/vpcflowlogs/us-east-1/2025/10/12/\
             123456789012_vpcflowlogs_us-east-1_fl-1234abcd_20251012T0735Z_hash.log.gz",
        );
        let slot = DAY + 7 * 3600 + 35 * 60;
        assert_eq!(
            stamped.window,
            Some((slot - LATE_DELIVERY, slot + 300 + CLOCK_SLACK))
        );
    }

    #[test]
    fn hive_layout() {
        let info = key_info(
            "p/AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/\
             year=2025/month=10/day=12/hour=07/obj.log.gz",
        );
        assert_eq!(info.account.as_deref(), Some("123456789012"));
        assert_eq!(info.region.as_deref(), Some("us-east-1"));
        let start = DAY + 7 * 3600;
        assert_eq!(
            info.window,
            Some((start - LATE_DELIVERY, start + 3600 + CLOCK_SLACK))
        );
    }

    #[test]
    fn unknown_layouts_have_no_window() {
        assert_eq!(key_info("/tmp/flows.log").window, None);
        assert_eq!(
            key_info("AWSLogs/1/vpcflowlogs/us-east-1/2025/13/40/x").window,
            None
        );
    }
}
