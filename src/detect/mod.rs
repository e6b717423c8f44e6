//! Detection: per-interface baselines of normal traffic and findings for what departs from
//! them. The work is SQL (queries/detect/); this module runs it, stores baselines, and
//! turns result rows into findings.

mod baseline;
mod catalog;
mod enrich;
mod evaluate;
mod export;
mod finding;
mod incident;
mod pipeline;
mod report;
mod tables;

pub use baseline::{BASELINE_FORMAT, Baseline, BaselineMeta, BaselineStore};
pub use catalog::DetectCatalog;
pub use evaluate::{evaluate, read_labels};
pub use export::{
    Alert, Cooldown, Delivery, alerts, deliver, export_to_security_hub, to_asff,
    write_security_lake,
};
pub use finding::{Finding, FindingsFormat, Severity, render_findings};
pub use incident::{Incident, assign_incidents, render_incidents};
pub use pipeline::{DAY, DetectReport, Pipeline, any_at_or_above, default_window};
pub use report::render_report;

use std::collections::VecDeque;

use futures::StreamExt;
use futures::stream::FuturesOrdered;

use crate::error::{Error, Result};
use crate::query::{FlowsConfig, FlowsSession, Spread};
use crate::table::Table;
use crate::time_range::TimeRange;

const HOUR: i64 = 3600;

/// What a detection reads, decided before anything is listed from the user's window (if
/// any), whether a stored baseline is given, and where the archive's newest keys are. The
/// CLI and the scheduled task both plan this way.
#[derive(Clone, Debug)]
pub struct DetectPlan {
    /// What to list: the window and, unless a baseline is stored, the days before it.
    pub listing: TimeRange,
    /// The detection window; by default the last 24 hours of data.
    pub window: Option<(i64, i64)>,
    /// Days of history before the window to learn from when no baseline is stored.
    pub baseline_days: i64,
    /// Without a window: records ending before this cannot be the latest, so finding the
    /// latest reads only the newest objects.
    latest_from: Option<i64>,
}

impl DetectPlan {
    /// Plans a detection over `config`'s sources. With no window, the archive's key layout
    /// says where its newest day is, so an archive of years is neither listed nor read to
    /// find it and the days before it.
    pub async fn new(
        config: &FlowsConfig,
        window: Option<(i64, i64)>,
        baseline_days: i64,
        stored: bool,
    ) -> Result<Self> {
        if baseline_days < 1 {
            return Err(Error::invalid(
                "--baseline-days",
                "at least one day is needed to learn from",
            ));
        }
        let learn = if stored { 0 } else { baseline_days * DAY };
        let mut plan = DetectPlan {
            listing: match window {
                Some((start, end)) => TimeRange {
                    since: Some(start - learn),
                    until: Some(end),
                },
                None => TimeRange::ALL,
            },
            window,
            baseline_days,
            latest_from: None,
        };
        if window.is_none()
            && let Some(latest) = config.latest_key_start().await?
        {
            // `latest` is at or before the latest record's end, so the window (that end
            // rounded up to the hour, less a day) starts no earlier than a day before it.
            plan.listing = TimeRange {
                since: Some(latest - DAY - learn),
                until: None,
            };
            // The newest object holds records ending within its key's slot: finding the
            // latest record needs only the newest hour of objects read.
            plan.latest_from = Some(latest - HOUR);
        }
        Ok(plan)
    }

    /// A plan for a session already open: the last day of its data, learning from the
    /// days before (the scheduled task's first batch).
    pub fn latest_day(baseline_days: i64) -> Self {
        DetectPlan {
            listing: TimeRange::ALL,
            window: None,
            baseline_days,
            latest_from: None,
        }
    }
}

/// The detection window `plan` examines in `session`: the given one, or the last day of
/// data (None when there is none).
pub async fn window_of(pipeline: &Pipeline<'_>, plan: &DetectPlan) -> Result<Option<(i64, i64)>> {
    if let Some(window) = plan.window {
        return Ok(Some(window));
    }
    let mut latest = pipeline.latest(plan.latest_from).await?;
    if latest.is_none() && plan.latest_from.is_some() {
        // The newest objects held no record late enough (an odd key layout): look at all.
        latest = pipeline.latest(None).await?;
    }
    Ok(latest.map(default_window))
}

/// Learns a baseline (unless one is given) and runs every detector over the window. A
/// learnt baseline is built a day at a time, so memory is bounded by a day of data.
pub async fn detect(
    session: &FlowsSession,
    plan: &DetectPlan,
    stored: Option<&Baseline>,
    catalog: &DetectCatalog,
) -> Result<DetectReport> {
    let pipeline = Pipeline::new(session, catalog);
    let Some((start, end)) = window_of(&pipeline, plan).await? else {
        return Ok(DetectReport {
            findings: Vec::new(),
            incidents: Vec::new(),
            window: (0, 0),
            baseline: (0, 0),
            interfaces: Vec::new(),
            warnings: vec!["no flow log records in the sources".to_string()],
        });
    };
    let report = examine_window(&pipeline, session, plan, stored, (start, end)).await;
    // Records held for the window go back whatever happened (examining lets them go itself).
    session.release_flows()?;
    report
}

/// [`detect`] once the window is known.
async fn examine_window(
    pipeline: &Pipeline<'_>,
    session: &FlowsSession,
    plan: &DetectPlan,
    stored: Option<&Baseline>,
    (start, end): (i64, i64),
) -> Result<DetectReport> {
    let learnt;
    let mut window_rollup = None;
    let (baseline, period) = match stored {
        Some(stored) => (stored, (stored.meta.since, stored.meta.until)),
        None => {
            let since = start - plan.baseline_days * DAY;
            let (folded, next) = fold_periods_then(
                pipeline,
                session,
                &[(since, start)],
                None,
                Some((start, end)),
            )
            .await?;
            learnt = folded.ok_or_else(|| Error::invalid("detect", "no period to learn from"))?;
            window_rollup = next;
            (&learnt, (since, start))
        }
    };
    // The window last, so its tables are the ones registered when the detectors run.
    let rollup = match window_rollup {
        Some(rollup) => rollup,
        None => pipeline.window_rollup(start, end).await?,
    };
    pipeline
        .examine(&rollup, baseline, period, (start, end))
        .await
}

/// Folds the records ending in each of `periods` into `into`, a day at a time when the
/// objects' keys tell their days (each day then reads only its own objects). Sources whose
/// keys tell no time (a CloudWatch export, standard input) are summarised in one pass per
/// period: reading them once per day would cost more than their memory.
pub(crate) async fn fold_periods(
    pipeline: &Pipeline<'_>,
    session: &FlowsSession,
    periods: &[(i64, i64)],
    into: Option<Baseline>,
) -> Result<Option<Baseline>> {
    Ok(fold_periods_then(pipeline, session, periods, into, None)
        .await?
        .0)
}

/// Rollups read at a time while the chunk before them is summarised. Measured on a week of
/// 50 interfaces: one at a time spread over the cores, 4.0-4.1 s; two on one partition
/// each, 3.7 s and 10% less CPU; three, no faster than two and a rollup more in memory.
const READ_AHEAD: usize = 2;

/// [`fold_periods`], then the rollup of `next`, returned. Rollups (the step that reads the
/// records) are read ahead while the chunk before them is summarised and folded, whose small
/// queries leave cores idle: two at a time, each on one partition, so up to three chunks'
/// rollups are held, never more. The rollup of `next`, which keeps its records for the
/// window's `recent` and so changes what `flows` reads, starts only once no other is being
/// read, and spreads over the cores.
async fn fold_periods_then(
    pipeline: &Pipeline<'_>,
    session: &FlowsSession,
    periods: &[(i64, i64)],
    mut into: Option<Baseline>,
    next: Option<(i64, i64)>,
) -> Result<(Option<Baseline>, Option<Table>)> {
    let days = session.object_days();
    let chunks: Vec<(i64, i64)> = periods
        .iter()
        .flat_map(|&(since, until)| match &days {
            Some(days) => day_chunks(since, until, days),
            None => vec![(since, until)],
        })
        .collect();
    let reads: Vec<(i64, i64)> = chunks.iter().copied().chain(next).collect();
    let (reads, window) = (&reads, chunks.len());
    let read = |i: usize| async move {
        let (since, until) = reads[i];
        if i == window {
            pipeline.window_rollup(since, until).await
        } else {
            pipeline.rollup_spread(since, until, Spread::One).await
        }
    };
    // Rollups being read, in order, and those read before they were needed.
    let mut ahead = FuturesOrdered::new();
    let mut ready: VecDeque<Table> = VecDeque::new();
    let mut queued = 0;
    let fill = |ahead: &mut FuturesOrdered<_>, ready: &VecDeque<Table>, queued: &mut usize| {
        while *queued < reads.len() && ahead.len() + ready.len() < READ_AHEAD {
            if *queued == window && !ahead.is_empty() {
                break;
            }
            ahead.push_back(read(*queued));
            *queued += 1;
        }
    };
    fill(&mut ahead, &ready, &mut queued);
    // Periods with no records before the first that has some: covered by that one's summary.
    let mut empty_before = Vec::new();
    for (i, &(since, until)) in chunks.iter().enumerate() {
        let Some(this) = next_in_order(&mut ready, &mut ahead).await? else {
            break;
        };
        fill(&mut ahead, &ready, &mut queued);
        let last = i + 1 == chunks.len();
        let current = into.take();
        let fold = async {
            // A chunk with no records leaves the baseline as it is (folding nothing changes
            // no row) but covered: running its steps would cost a dozen queries for nothing.
            // Only when no chunk has records is one summarised, for the tables' columns.
            if this.rows() == 0 && !(last && current.is_none()) {
                return Ok(match current {
                    Some(mut baseline) => {
                        baseline.meta.cover(since, until);
                        Some(baseline)
                    }
                    None => {
                        empty_before.push((since, until));
                        None
                    }
                });
            }
            let mut summary = pipeline.summarise_rollup(&this, since, until).await?;
            drop(this);
            for (a, b) in empty_before.drain(..) {
                summary.meta.cover(a, b);
            }
            pipeline.fold(current, summary).await.map(Some)
        };
        let mut fold = std::pin::pin!(fold);
        into = loop {
            tokio::select! {
                folded = &mut fold => break folded?,
                Some(table) = ahead.next(), if !ahead.is_empty() => {
                    ready.push_back(table?);
                    fill(&mut ahead, &ready, &mut queued);
                }
            }
        };
    }
    let next = next_in_order(&mut ready, &mut ahead).await?;
    Ok((into, next))
}

/// The next rollup in reading order: one that finished early, else the first being read.
async fn next_in_order<F: Future<Output = Result<Table>>>(
    ready: &mut VecDeque<Table>,
    ahead: &mut FuturesOrdered<F>,
) -> Result<Option<Table>> {
    match ready.pop_front() {
        Some(table) => Ok(Some(table)),
        None => ahead.next().await.transpose(),
    }
}

/// The days of a session's records, for work that must see every record once (a
/// scheduled batch): unbounded before the first day and after the last.
pub(crate) fn batch_days(session: &FlowsSession) -> Vec<(i64, i64)> {
    match session.object_days() {
        Some(days) => day_chunks(pipeline::EARLIEST, pipeline::LATEST, &days),
        None => vec![(pipeline::EARLIEST, pipeline::LATEST)],
    }
}

/// `[since, until)` cut at the UTC midnights that begin or end a day the objects' keys
/// fall on (`days`, day starts). Where no object is, nothing is cut: a key dated decades
/// away (a wrong clock) adds a chunk, not one per day in between.
fn day_chunks(since: i64, until: i64, days: &std::collections::BTreeSet<i64>) -> Vec<(i64, i64)> {
    let mut cuts: std::collections::BTreeSet<i64> = days
        .iter()
        .flat_map(|&day| [day, day + DAY])
        .filter(|&cut| cut > since && cut < until)
        .collect();
    cuts.insert(since);
    cuts.insert(until);
    let cuts: Vec<i64> = cuts.into_iter().collect();
    cuts.windows(2).map(|w| (w[0], w[1])).collect()
}

/// What `flowlens baseline` needs listed: the period asked for, or, extending a stored
/// baseline, what comes after the period it covers.
pub fn baseline_listing(range: TimeRange, stored: Option<&Baseline>) -> TimeRange {
    TimeRange {
        since: range
            .since
            .or(stored.and_then(|b| b.meta.covered.last().map(|&(_, until)| until))),
        until: range.until,
    }
}

/// Learns a baseline from the records that end in `range`, a day at a time, or extends
/// `stored` with the parts of `range` it does not cover yet (none is folded twice). Without
/// an end, the baseline stops at the start of the latest record's hour: that hour may still
/// be filling, and is left whole for the next `--update`. None when there is nothing new.
pub async fn learn_baseline(
    session: &FlowsSession,
    range: TimeRange,
    stored: Option<Baseline>,
) -> Result<Option<Baseline>> {
    let catalog = DetectCatalog::builtin()?;
    let pipeline = Pipeline::new(session, &catalog);
    let range = baseline_listing(range, stored.as_ref());
    let until = match range.until {
        Some(until) => until,
        None => {
            let horizon = crate::time_range::future_horizon();
            let newest_key = session
                .selected_objects()
                .iter()
                .filter_map(|o| o.key.window.map(|(lo, _)| lo))
                .filter(|lo| *lo <= horizon)
                .max();
            let mut latest = pipeline.latest(newest_key.map(|k| k - HOUR)).await?;
            if latest.is_none() && newest_key.is_some() {
                latest = pipeline.latest(None).await?;
            }
            match latest {
                Some(latest) => latest.div_euclid(HOUR) * HOUR,
                None => return Ok(None),
            }
        }
    };
    let since = range.since.unwrap_or(0);
    let periods = match &stored {
        Some(b) => b.meta.uncovered(since, until),
        None if since < until => vec![(since, until)],
        None => Vec::new(),
    };
    if periods.is_empty() {
        return Ok(None);
    }
    let Some(mut baseline) = fold_periods(&pipeline, session, &periods, stored).await? else {
        return Ok(None);
    };
    pipeline.describe(&mut baseline).await?;
    Ok(Some(baseline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_cut_at_midnight_only_where_objects_are() {
        let d = |n: i64| n * DAY;
        let days = |list: &[i64]| list.iter().map(|&n| d(n)).collect();
        // Objects on days 10..12: a period from the epoch is one chunk up to day 10.
        assert_eq!(
            day_chunks(0, d(14), &days(&[10, 11, 12])),
            vec![
                (0, d(10)),
                (d(10), d(11)),
                (d(11), d(12)),
                (d(12), d(13)),
                (d(13), d(14))
            ]
        );
        // A period not on midnights keeps its own ends.
        assert_eq!(
            day_chunks(d(10) + 7200, d(11) + 3600, &days(&[10, 11])),
            vec![(d(10) + 7200, d(11)), (d(11), d(11) + 3600)]
        );
        // Within one day: one chunk.
        assert_eq!(
            day_chunks(d(3), d(3) + 60, &days(&[3])),
            vec![(d(3), d(3) + 60)]
        );
        // A key decades away adds two cuts, not one per day between.
        assert_eq!(day_chunks(0, d(100_000), &days(&[10, 40_000])).len(), 5);
    }

    /// Every row of a table, rendered and sorted: folds may order rows differently.
    fn rows(table: &Table) -> Vec<String> {
        let text = arrow::util::pretty::pretty_format_batches(&table.batches)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn days_without_records_are_covered_and_change_nothing_else() {
        use crate::generate::{GenerateOptions, KeyLayout, generate};
        let d = |n: i64| n * DAY;
        let dir = std::env::temp_dir().join(format!("flowlens-empty-days-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Days 20, 21 and 22 of 2025-01 (Unix day 20_110 is 2025-01-22): the middle day's
        // objects are then removed, so its chunk has no records.
        let end = d(20_111);
        generate(&GenerateOptions {
            out: dir.clone(),
            end,
            days: 3,
            enis: 3,
            seed: 7,
            rate: 0.2,
            object_minutes: 60,
            gzip: false,
            layout: KeyLayout::Plain,
            mixed_formats: false,
            incidents: false,
        })
        .unwrap();
        let day_dirs: Vec<_> = walk(&dir.join("AWSLogs"))
            .into_iter()
            .filter(|p| p.ends_with("2025/01/21"))
            .collect();
        assert_eq!(day_dirs.len(), 1, "{day_dirs:?}");
        std::fs::remove_dir_all(&day_dirs[0]).unwrap();

        let config = FlowsConfig {
            sources: vec![dir.display().to_string()],
            ..FlowsConfig::default()
        };
        let session = FlowsSession::open(&config).await.unwrap();
        let catalog = DetectCatalog::builtin().unwrap();
        let pipeline = Pipeline::new(&session, &catalog);
        // Empty days before the data and one inside it: what the fold skips.
        let period = (end - d(5), end);
        let chunks = day_chunks(period.0, period.1, &session.object_days().unwrap());
        // Which chunks have records: the fold must meet empty ones both before its first
        // summary and after it.
        let mut has_records = Vec::new();
        for &(since, until) in &chunks {
            has_records.push(pipeline.rollup(since, until).await.unwrap().rows() > 0);
        }
        let first = has_records.iter().position(|&r| r).unwrap();
        assert!(first > 0, "{has_records:?}");
        assert!(has_records[first..].contains(&false), "{has_records:?}");
        let skipped = fold_periods(&pipeline, &session, &[period], None)
            .await
            .unwrap()
            .unwrap();
        // Every chunk summarised and folded, empty or not.
        let mut each = None;
        for (since, until) in chunks {
            let summary = pipeline.summarise(since, until).await.unwrap();
            each = Some(pipeline.fold(each, summary).await.unwrap());
        }
        let each = each.unwrap();
        // Read ahead, the window's rollup comes last, as read on its own.
        let window = (end - d(1), end);
        let (_, window_rollup) = fold_periods_then(
            &pipeline,
            &session,
            &[(period.0, window.0)],
            None,
            Some(window),
        )
        .await
        .unwrap();
        session.release_flows().unwrap();
        let alone = pipeline.rollup(window.0, window.1).await.unwrap();
        assert!(alone.rows() > 0);
        assert_eq!(rows(&window_rollup.unwrap()), rows(&alone));
        assert_eq!(skipped.meta.covered, vec![period]);
        assert_eq!(each.meta.covered, skipped.meta.covered);
        for (a, b) in each.tables().into_iter().zip(skipped.tables()) {
            assert!(a.rows() > 0);
            assert_eq!(rows(a), rows(b));
        }

        // A period with no records at all still gives a baseline (empty, with its columns)
        // that covers it.
        let before = (end - d(10), end - d(8));
        let empty = fold_periods(&pipeline, &session, &[before], None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(empty.meta.covered, vec![before]);
        for (table, full) in empty.tables().into_iter().zip(each.tables()) {
            assert_eq!(table.rows(), 0);
            assert_eq!(table.schema.fields().len(), full.schema.fields().len());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut found = vec![dir.to_path_buf()];
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(walk(&path));
            }
        }
        found
    }
}
