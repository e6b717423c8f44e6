//! What an object's key (or a folder prefix) says before anything is opened: account,
//! region, and the window its records' end times fall in, from AWS's plain and
//! Hive-compatible layouts, Security Lake's `region=…/accountId=…/eventDay=…`, and the file
//! name's `_YYYYMMDDTHHmmZ_` stamp. Used to skip
//! objects, and whole prefixes when listing S3, outside `--since` / `--until`.

use chrono::NaiveDate;

/// Records can arrive late: an object may hold records that ended this long before its slot.
const LATE_DELIVERY: i64 = 3600;
/// And clocks differ a little: allow records to end this long after the slot.
const CLOCK_SLACK: i64 = 600;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyInfo {
    pub account: Option<String>,
    pub region: Option<String>,
    /// `[lo, hi)` of the end times of the records the object (or prefix) can hold.
    pub window: Option<(i64, i64)>,
    /// The path is under `AWSLogs/<acct>/` but in another service's logs (CloudTrail, …).
    pub other_service: bool,
}

/// Reads the layout of an object's path or key (its last segment is the file name).
pub fn key_info(key: &str) -> KeyInfo {
    parse(key, true)
}

/// Reads the layout of a folder prefix (every segment is a folder).
pub fn prefix_info(prefix: &str) -> KeyInfo {
    parse(prefix, false)
}

fn parse(path: &str, has_file_name: bool) -> KeyInfo {
    let segments: Vec<&str> = path.split(['/', '\\']).filter(|s| !s.is_empty()).collect();
    let folders = if has_file_name {
        &segments[..segments.len().saturating_sub(1)]
    } else {
        &segments[..]
    };
    let mut info = KeyInfo::default();
    let mut date = DateParts::default();

    // Plain layout: AWSLogs/<acct>/vpcflowlogs/<region>/YYYY/MM/DD/[HH/]
    if let Some(i) = folders.iter().position(|s| *s == "AWSLogs")
        && let Some(acct) = folders.get(i + 1).filter(|s| !s.contains('='))
    {
        info.account = Some(acct.to_string());
        match folders.get(i + 2) {
            Some(&"vpcflowlogs") => {
                info.region = folders.get(i + 3).map(|s| s.to_string());
                let number = |j: usize, len: usize| {
                    folders
                        .get(j)
                        .filter(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|s| s.parse::<u32>().ok())
                };
                date.year = number(i + 4, 4);
                date.month = number(i + 5, 2);
                date.day = number(i + 6, 2);
                date.hour = number(i + 7, 2);
            }
            Some(_) => info.other_service = true,
            None => {}
        }
    }
    // Hive-compatible: aws-account-id=…/aws-service=vpcflowlogs/aws-region=…/year=…/…
    for s in folders {
        if let Some((k, v)) = s.split_once('=') {
            match k {
                "aws-account-id" => info.account = Some(v.to_string()),
                "aws-service" => info.other_service = v != "vpcflowlogs",
                "aws-region" => info.region = Some(v.to_string()),
                "year" => date.year = v.parse().ok(),
                "month" => date.month = v.parse().ok(),
                "day" => date.day = v.parse().ok(),
                "hour" => date.hour = v.parse().ok(),
                // Security Lake: region=…/accountId=…/eventDay=YYYYMMDD/
                "region" => info.region = Some(v.to_string()),
                "accountId" => info.account = Some(v.to_string()),
                "eventDay" if v.len() == 8 && v.bytes().all(|b| b.is_ascii_digit()) => {
                    date.year = v[..4].parse().ok();
                    date.month = v[4..6].parse().ok();
                    date.day = v[6..].parse().ok();
                }
                _ => {}
            }
        }
    }

    if has_file_name && let Some(stamp) = segments.last().and_then(|name| name_stamp(name)) {
        info.window = Some((stamp - LATE_DELIVERY, stamp + 300 + CLOCK_SLACK));
        return info;
    }
    info.window = date
        .window()
        .map(|(lo, hi)| (lo - LATE_DELIVERY, hi + CLOCK_SLACK));
    info
}

#[derive(Default)]
struct DateParts {
    year: Option<u32>,
    month: Option<u32>,
    day: Option<u32>,
    hour: Option<u32>,
}

impl DateParts {
    /// The span the folders name: a year, a month, a day or an hour.
    fn window(&self) -> Option<(i64, i64)> {
        let midnight = |y: u32, m: u32, d: u32| {
            NaiveDate::from_ymd_opt(y as i32, m, d)
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp())
        };
        let year = self.year?;
        let Some(month) = self.month else {
            return Some((midnight(year, 1, 1)?, midnight(year + 1, 1, 1)?));
        };
        let Some(day) = self.day else {
            let (ny, nm) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            return Some((midnight(year, month, 1)?, midnight(ny, nm, 1)?));
        };
        let start = midnight(year, month, day)?;
        match self.hour {
            Some(h) if h < 24 => {
                let start = start + i64::from(h) * 3600;
                Some((start, start + 3600))
            }
            Some(_) => None,
            None => Some((start, start + 86400)),
        }
    }
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
        assert!(!info.other_service);
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
    fn security_lake_layout() {
        let info = key_info(
            "aws-security-data-lake-eu-west-1-x/aws/VPC_FLOW/2.0/region=eu-west-1/\
             accountId=123456789012/eventDay=20251012/part-0001.parquet",
        );
        assert_eq!(info.account.as_deref(), Some("123456789012"));
        assert_eq!(info.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            info.window,
            Some((DAY - LATE_DELIVERY, DAY + 86_400 + CLOCK_SLACK))
        );
    }

    #[test]
    fn folder_prefixes_name_years_months_days_hours() {
        let month = prefix_info("AWSLogs/1/vpcflowlogs/us-east-1/2025/10/");
        let oct1 = DAY - 11 * 86400;
        let nov1 = oct1 + 31 * 86400;
        assert_eq!(
            month.window,
            Some((oct1 - LATE_DELIVERY, nov1 + CLOCK_SLACK))
        );
        let year =
            prefix_info("AWSLogs/aws-account-id=1/aws-service=vpcflowlogs/aws-region=x/year=2025/");
        assert!(year.window.is_some_and(|(lo, hi)| hi - lo > 365 * 86400));
        let hour = prefix_info("AWSLogs/1/vpcflowlogs/us-east-1/2025/10/12/07/");
        assert_eq!(
            hour.window,
            Some((DAY + 7 * 3600 - LATE_DELIVERY, DAY + 8 * 3600 + CLOCK_SLACK))
        );
        assert_eq!(prefix_info("AWSLogs/1/").account.as_deref(), Some("1"));
        assert!(prefix_info("AWSLogs/1/CloudTrail/").other_service);
        assert!(prefix_info("AWSLogs/aws-account-id=1/aws-service=cloudtrail/").other_service);
        assert!(!prefix_info("AWSLogs/1/vpcflowlogs/").other_service);
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
