//! Turns every `--source` into objects: local files, folders, globs and stdin, and S3
//! prefixes listed folder by folder so only the accounts, regions and days asked for are
//! ever listed.

use std::collections::VecDeque;

use aws_sdk_s3::Client;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::key_layout::{KeyInfo, prefix_info};
use super::local_listing::list_local;
use super::object::{ObjectRef, flow_log_name};
use super::s3_client::s3_error;
use super::s3_url::S3Url;
use crate::error::{Error, Result};
use crate::time_range::{TimeRange, future_horizon};

/// Prefix listings in flight at once.
const LIST_CONCURRENCY: usize = 16;

/// Which objects a run wants, judged from keys alone.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub time_range: TimeRange,
    /// `--account`: empty for all.
    pub accounts: Vec<String>,
    /// `--region`: empty for all.
    pub regions: Vec<String>,
    /// Of sibling S3 folders that tell a time (years, months, days, hours), descend only into
    /// the latest: a probe for where the newest data is, not a listing of all of it.
    pub latest_only: bool,
}

impl ListFilter {
    /// Whether an object or prefix with this key layout can hold wanted records.
    pub fn admits(&self, info: &KeyInfo) -> bool {
        let wanted = |filter: &[String], value: &Option<String>| match value {
            Some(v) if !filter.is_empty() => filter.iter().any(|f| f == v),
            _ => true,
        };
        !info.other_service
            && wanted(&self.accounts, &info.account)
            && wanted(&self.regions, &info.region)
            && info
                .window
                .is_none_or(|(lo, hi)| self.time_range.may_overlap(lo, hi))
    }
}

#[derive(Debug, Default)]
pub struct Listing {
    /// Selected objects, sorted, without repeats.
    pub objects: Vec<ObjectRef>,
    /// Local files passed over because their names are not flow logs.
    pub skipped_files: usize,
    /// Local places that could not be walked (link loops, unreadable folders), passed over.
    pub unreadable: usize,
    /// S3 ListObjectsV2 requests made.
    pub list_requests: u64,
    /// Objects seen while listing (selected or not).
    pub objects_seen: u64,
}

/// Lists every source. `client` is needed only when a source is on S3.
pub async fn list_sources(
    sources: &[String],
    filter: &ListFilter,
    client: Option<&super::S3Access>,
) -> Result<Listing> {
    let mut listing = Listing::default();
    let mut local = Vec::new();
    for source in sources {
        if let Some(logs) = super::cloudwatch_logs::LogsSource::parse(source) {
            let logs = logs.map_err(|reason| Error::invalid("--source", reason))?;
            // Streams tell no time by name: the newest-data probe learns nothing from them.
            if !filter.latest_only {
                let objects = super::cloudwatch_logs::list_logs(&logs, &filter.time_range).await?;
                listing.objects_seen += objects.len() as u64;
                listing.objects.extend(objects);
            }
            continue;
        }
        match S3Url::parse(source) {
            None => local.push(source.clone()),
            Some(Err(reason)) => return Err(Error::invalid("--source", reason)),
            Some(Ok(url)) => {
                let client = client.ok_or_else(|| {
                    Error::invalid(source.as_str(), "S3 sources need an S3 client")
                })?;
                list_s3(&client.0, &url, filter, &mut listing).await?;
            }
        }
    }
    if !local.is_empty() {
        let found = list_local(&local)?;
        listing.objects_seen += found.objects.len() as u64;
        listing.skipped_files += found.skipped.len();
        listing.unreadable += found.unreadable.len();
        listing
            .objects
            .extend(found.objects.into_iter().filter(|o| filter.admits(&o.key)));
    }
    listing.objects.sort_by(|a, b| a.location.cmp(&b.location));
    listing.objects.dedup_by(|a, b| a.location == b.location);
    Ok(listing)
}

/// The latest start of an object's key window in the sources, if any object's key tells a
/// time. Every record of an object ends at or after its window's start, so this is at or
/// before the end of the latest record. On S3 only the latest dated folder of each level is
/// listed, a handful of requests however many years the prefix holds.
pub async fn latest_key_start(
    sources: &[String],
    filter: &ListFilter,
    client: Option<&super::S3Access>,
) -> Result<Option<i64>> {
    let probe = ListFilter {
        latest_only: true,
        ..filter.clone()
    };
    let listing = list_sources(sources, &probe, client).await?;
    tracing::debug!(
        "newest data probed with {} S3 list requests",
        listing.list_requests
    );
    let horizon = future_horizon();
    let mut latest = None;
    for object in &listing.objects {
        match object.key.window {
            Some((lo, _)) if lo > horizon => warn_future(&object.location.to_string(), lo),
            Some((lo, _)) => latest = latest.max(Some(lo)),
            None => {}
        }
    }
    Ok(latest)
}

/// Names an object or folder whose key says it is later than the clock allows. It is still
/// listed and read when a window takes it in, but never sets a window or a checkpoint.
pub(crate) fn warn_future(location: &str, start: i64) {
    tracing::warn!(
        "{location}: its key dates its records after {}, later than now plus a day: taken for \
         a misnamed object or a clock error, it does not set the detection window or checkpoint",
        crate::time_range::format_time(start)
    );
}

struct Level {
    prefixes: Vec<String>,
    objects: Vec<(String, u64)>,
    requests: u64,
}

/// One folder: its subfolders and objects, every page of them.
async fn list_level(client: Client, bucket: String, prefix: String) -> Result<Level> {
    let mut pages = client
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(&prefix)
        .delimiter("/")
        .into_paginator()
        .send();
    let mut level = Level {
        prefixes: Vec::new(),
        objects: Vec::new(),
        requests: 0,
    };
    while let Some(page) = pages.next().await {
        level.requests += 1;
        let page = page.map_err(|e| s3_error(format!("s3://{bucket}/{prefix}"), &e))?;
        level.prefixes.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string)),
        );
        level.objects.extend(page.contents().iter().filter_map(|o| {
            let key = o.key()?;
            Some((key.to_string(), o.size().unwrap_or(0).max(0) as u64))
        }));
    }
    Ok(level)
}

/// Walks `url` folder by folder, descending only into folders the filter admits
/// (`AWSLogs/<acct>/vpcflowlogs/<region>/YYYY/MM/DD/[HH/]` and its Hive twin).
async fn list_s3(
    client: &Client,
    url: &S3Url,
    filter: &ListFilter,
    listing: &mut Listing,
) -> Result<()> {
    let mut queue = VecDeque::from([url.key.clone()]);
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < LIST_CONCURRENCY {
            let Some(prefix) = queue.pop_front() else {
                break;
            };
            in_flight.push(list_level(client.clone(), url.bucket.clone(), prefix));
        }
        let Some(level) = in_flight.next().await else {
            break;
        };
        let level = level?;
        listing.list_requests += level.requests;
        let mut prefixes: Vec<String> = level
            .prefixes
            .into_iter()
            .filter(|p| filter.admits(&prefix_info(p)))
            .collect();
        if filter.latest_only {
            // The latest folder whose date is not in the future: a folder dated 2099 beside
            // the real archive must not hide it.
            let horizon = future_horizon();
            let start = |p: &String| prefix_info(p).window.map(|(lo, _)| lo);
            for p in &prefixes {
                if let Some(lo) = start(p).filter(|lo| *lo > horizon) {
                    warn_future(&format!("s3://{}/{p}", url.bucket), lo);
                }
            }
            prefixes.retain(|p| start(p).is_none_or(|lo| lo <= horizon));
            if let Some(latest) = prefixes.iter().filter_map(start).max() {
                prefixes.retain(|p| start(p).is_none_or(|lo| lo == latest));
            }
        }
        queue.extend(prefixes);
        for (key, size) in level.objects {
            listing.objects_seen += 1;
            let object = ObjectRef::s3(&url.bucket, &key, size);
            // The exact key asked for is always taken; otherwise flow log names only.
            let named = key == url.key;
            if named || (!key.ends_with('/') && flow_log_name(&key) && filter.admits(&object.key)) {
                listing.objects.push(object);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::key_info;

    #[test]
    fn filter_by_account_region_and_time() {
        let filter = ListFilter {
            time_range: TimeRange {
                since: Some(1_760_227_200), // 2025-10-12
                until: Some(1_760_313_600),
            },
            accounts: vec!["111".into()],
            regions: vec![],
            latest_only: false,
        };
        let day = |d: &str| prefix_info(&format!("AWSLogs/111/vpcflowlogs/eu-west-1/2025/10/{d}/"));
        assert!(filter.admits(&day("12")));
        assert!(!filter.admits(&day("10")));
        assert!(filter.admits(&prefix_info("AWSLogs/111/vpcflowlogs/eu-west-1/2025/10/")));
        assert!(!filter.admits(&prefix_info("AWSLogs/111/vpcflowlogs/eu-west-1/2024/")));
        assert!(!filter.admits(&prefix_info("AWSLogs/222/")));
        assert!(!filter.admits(&prefix_info("AWSLogs/111/CloudTrail/")));
        assert!(filter.admits(&prefix_info("some/prefix/")));
        assert!(filter.admits(&key_info("flat/file.log.gz")));
    }
}
