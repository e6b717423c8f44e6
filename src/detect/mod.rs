//! Detection: per-interface baselines of normal traffic and findings for what departs from
//! them. The work is SQL (queries/detect/); this module runs it, stores baselines, and
//! turns result rows into findings.

mod baseline;
mod catalog;
mod evaluate;
mod finding;
mod pipeline;
mod tables;

pub use baseline::Baseline;
pub use catalog::DetectCatalog;
pub use evaluate::{evaluate, read_labels};
pub use finding::{Finding, Severity};
pub use pipeline::{DAY, DetectReport, Pipeline, any_at_or_above, default_window};
pub use tables::{Table, from_parquet, to_parquet};

use crate::error::Result;
use crate::query::FlowsSession;
use crate::time_range::TimeRange;

/// What `detect` examines and against what.
#[derive(Clone, Debug)]
pub struct DetectOptions {
    /// The detection window; by default the last 24 hours of data.
    pub window: Option<(i64, i64)>,
    /// Days of history before the window to learn from when no stored baseline is given.
    pub baseline_days: i64,
    pub baseline: Option<Baseline>,
    pub catalog: DetectCatalog,
}

/// The listing window a detection needs: the detection window and, unless a baseline is
/// given, the days before it.
pub fn listing_range(window: Option<(i64, i64)>, baseline_days: i64, stored: bool) -> TimeRange {
    match window {
        Some((start, end)) => TimeRange {
            since: Some(if stored {
                start
            } else {
                start - baseline_days * DAY
            }),
            until: Some(end),
        },
        None => TimeRange::ALL,
    }
}

/// With no window given, detection examines the last day of data and learns from the days
/// before it (none with a stored baseline). Given `latest` (see
/// [`crate::query::FlowsConfig::latest_key_start`]), the listing need only reach back this
/// far, so an archive of years is neither listed nor read to find those days.
pub fn recent_range(latest: i64, baseline_days: i64, stored: bool) -> TimeRange {
    // `latest` is at or before the latest record's end, so the window (that end rounded up to
    // the hour, less a day) starts no earlier than a day before it.
    let lookback = DAY + if stored { 0 } else { baseline_days * DAY };
    TimeRange {
        since: Some(latest - lookback),
        until: None,
    }
}

/// Learns a baseline (if none is given) and runs every detector over the window.
pub async fn detect(session: &FlowsSession, options: &DetectOptions) -> Result<DetectReport> {
    let pipeline = Pipeline::new(session.context(), &options.catalog);
    let stored = options.baseline.is_some();
    let range = listing_range(options.window, options.baseline_days, stored);
    let latest = pipeline.prepare(range).await?;
    let Some((start, end)) = options.window.or(latest.map(default_window)) else {
        return Ok(DetectReport {
            findings: Vec::new(),
            window: (0, 0),
            baseline: (0, 0),
            interfaces: Vec::new(),
            warnings: vec!["no flow log records in the sources".to_string()],
        });
    };
    let baseline_period = match &options.baseline {
        Some(stored) => {
            pipeline.use_baseline(stored)?;
            (stored.meta.since, stored.meta.until)
        }
        None => {
            let since = start - options.baseline_days * DAY;
            pipeline.learn(since, start).await?;
            (since, start)
        }
    };
    pipeline.detect(start, end, baseline_period).await
}

/// Learns a baseline from everything the session reads in `range`.
pub async fn learn_baseline(session: &FlowsSession, range: TimeRange) -> Result<Baseline> {
    let catalog = DetectCatalog::builtin()?;
    let pipeline = Pipeline::new(session.context(), &catalog);
    let latest = pipeline.prepare(range).await?;
    // With no --since the baseline covers the data from its first hour, not from 1970.
    let since = match range.since {
        Some(since) => since,
        None => pipeline.first_hour().await?.unwrap_or(0),
    };
    let until = range.until.or(latest.map(|l| l + 1)).unwrap_or(since);
    pipeline.learn(since, until).await
}
