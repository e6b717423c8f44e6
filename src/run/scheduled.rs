//! `flowlens run`: the scheduled container task. Each run takes the objects that arrived
//! since the checkpoint, optionally converts them, detects against the stored baseline,
//! writes one findings object, folds the new data into the baseline, and only then
//! advances the checkpoint. Crash-safe and idempotent:
//!
//! - the batch of objects is fixed in `pending.json` before any work, so a run after a
//!   crash redoes exactly that batch, writing the same file names (overwrites, never
//!   duplicates);
//! - the baseline is written as a new version and switched to by one small pointer object
//!   that also lists the batches folded in, so a batch is never folded twice;
//! - the checkpoint is written last, then `pending.json` removed;
//! - a lock object with an expiry keeps two runs off the same state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::convert::{ConvertOptions, convert};
use super::state_store::StateStore;
use crate::detect::{
    DetectCatalog, DetectReport, Finding, Pipeline, Table, default_window, from_parquet, to_parquet,
};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::format::FlowFormat;
use crate::output::write_text;
use crate::query::{FlowsConfig, FlowsSession};
use crate::source::{ObjectLocation, ObjectRef, S3Options, S3Url};
use crate::stable_hash::StableHash;
use crate::time_range::TimeRange;

const DAY: i64 = 86_400;

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub sources: Vec<String>,
    /// Folder or s3:// prefix for checkpoint, lock, pending batch and baseline.
    pub state: String,
    /// Folder or s3:// prefix for the findings objects.
    pub findings: String,
    /// Folder or s3:// prefix for Parquet, when the task also converts.
    pub convert: Option<String>,
    /// Seconds before the checkpoint to list again, for objects AWS delivers late.
    pub lookback: i64,
    pub baseline_days: i64,
    /// Seconds a lock holds before another run may take it over.
    pub lock_ttl: i64,
    /// Runs that try an object that cannot be read before it is given up on.
    pub max_attempts: u32,
    /// Memory for DataFusion's operators before they spill, in bytes.
    pub memory_limit: usize,
    pub ocsf: bool,
    pub format: Option<FlowFormat>,
    pub s3: S3Options,
    pub catalog: DetectCatalog,
}

/// The JSON line a run ends with.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunSummary {
    /// ok, idle (nothing new), locked (another run holds the state)
    pub status: String,
    pub batch: Option<String>,
    pub objects: u64,
    pub records: u64,
    pub findings: BTreeMap<String, usize>,
    pub parquet_files: usize,
    pub bad_lines: u64,
    /// Objects of this batch that could not be read; later runs retry them.
    pub failed_objects: usize,
    /// Objects that failed in earlier runs, taken again in this batch.
    pub retried_objects: usize,
    /// Objects given up on after `max_attempts` runs failed to read them (named in the log).
    pub abandoned_objects: Vec<String>,
    /// Records that end before the checkpoint less the lookback, in objects that arrived
    /// late: processed like the rest, counted so a late delivery is visible.
    pub late_records: u64,
    /// Objects whose keys say they are later than now plus a day: processed, but they do not
    /// move the checkpoint.
    pub future_objects: Vec<String>,
    pub seconds: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// The latest end (key layout) of the objects processed, Unix seconds.
    high_water: i64,
    /// Objects processed within the lookback, so a relisting does not take them again.
    processed: BTreeSet<String>,
    /// Objects that could not be read, retried by every run until they are read or have
    /// failed `max_attempts` times.
    #[serde(default)]
    failed: BTreeMap<String, FailedObject>,
    runs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct FailedObject {
    size: u64,
    attempts: u32,
    error: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct PendingObject {
    location: String,
    size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    batch: String,
    objects: Vec<PendingObject>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct BaselinePointer {
    version: u64,
    /// Batches folded into this version (the most recent ones).
    folded: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Lock {
    owner: String,
    expires: i64,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8], location: &str) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(location, format!("unreadable state: {e}")))
}

fn stable_id(items: &[String]) -> String {
    items
        .iter()
        .fold(StableHash::default(), |h, item| {
            h.update(item.as_bytes()).update(b"\n")
        })
        .hex()
}

fn object_from(p: &PendingObject) -> ObjectRef {
    match S3Url::parse(&p.location) {
        Some(Ok(url)) => ObjectRef::s3(&url.bucket, &url.key, p.size),
        _ => ObjectRef::path(PathBuf::from(&p.location), p.size),
    }
}

/// Takes the lock, or says who holds it. An expired lock is taken over.
async fn lock(store: &StateStore, ttl: i64, owner: &str) -> Result<bool> {
    let body = json(&Lock {
        owner: owner.to_string(),
        expires: now() + ttl,
    });
    if store.create("lock.json", &body).await? {
        return Ok(true);
    }
    let location = store.location("lock.json");
    let held = store.get("lock.json").await?;
    match held.as_deref().map(|bytes| parse::<Lock>(bytes, &location)) {
        Some(Ok(l)) if l.expires > now() => {
            tracing::warn!(
                "{location}: held by {} until {}",
                l.owner,
                crate::time_range::format_time(l.expires)
            );
            Ok(false)
        }
        Some(Err(e)) => {
            // No run writes a lock it cannot read back (locks are created whole), so this
            // is damage from outside or from an older version: it protects nothing.
            tracing::warn!("{e}; taking the lock over");
            store.delete("lock.json").await?;
            store.create("lock.json", &body).await
        }
        _ => {
            tracing::warn!("{location}: taking over an expired lock");
            store.delete("lock.json").await?;
            store.create("lock.json", &body).await
        }
    }
}

/// One run of the scheduled task.
pub async fn run_once(config: &RunConfig) -> Result<RunSummary> {
    let started = Instant::now();
    let store = StateStore::open(&config.state, &config.s3).await?;
    let owner = format!("{}-{}", std::process::id(), now());
    if !lock(&store, config.lock_ttl, &owner).await? {
        return Ok(RunSummary {
            status: "locked".into(),
            seconds: started.elapsed().as_secs_f64(),
            ..RunSummary::default()
        });
    }
    failpoint::point("locked");
    let result = work(config, &store, started).await;
    // On an error the lock is released too; a crash leaves it to expire.
    store.delete("lock.json").await?;
    result
}

async fn work(config: &RunConfig, store: &StateStore, started: Instant) -> Result<RunSummary> {
    let checkpoint_at = store.location("checkpoint.json");
    let mut checkpoint: Checkpoint = match store.get("checkpoint.json").await? {
        Some(bytes) => parse(&bytes, &checkpoint_at)?,
        None => Checkpoint::default(),
    };
    let horizon = crate::time_range::future_horizon();
    if checkpoint.high_water > horizon {
        // An earlier version believed a key dated in the future. Resume from the newest
        // believable key it processed, or from now: waiting for 2099 would blind the task.
        let believable = checkpoint
            .processed
            .iter()
            .filter_map(|loc| crate::source::key_info(loc).window.map(|(_, hi)| hi))
            .filter(|hi| *hi <= horizon)
            .max()
            .unwrap_or(horizon - crate::time_range::FUTURE_MARGIN);
        tracing::warn!(
            "{checkpoint_at}: the checkpoint is at {}, in the future; resuming from {}",
            crate::time_range::format_time(checkpoint.high_water),
            crate::time_range::format_time(believable)
        );
        checkpoint.high_water = believable;
    }
    let since = (checkpoint.high_water > 0).then(|| checkpoint.high_water - config.lookback);
    let flows = FlowsConfig {
        sources: config.sources.clone(),
        format: config.format.clone(),
        time_range: TimeRange { since, until: None },
        s3: config.s3.clone(),
        memory_limit: Some(config.memory_limit),
        ..FlowsConfig::default()
    };
    let listing = FlowsSession::open(&flows).await?;
    failpoint::point("listed");

    let pending_at = store.location("pending.json");
    let pending: Pending = match store.get("pending.json").await? {
        Some(bytes) => {
            let p: Pending = parse(&bytes, &pending_at)?;
            tracing::info!(
                "resuming batch {} ({} objects) after an interrupted run",
                p.batch,
                p.objects.len()
            );
            p
        }
        None => {
            let mut fresh: Vec<ObjectRef> = listing
                .selected_objects()
                .into_iter()
                .filter(|o| !matches!(o.location, ObjectLocation::Stdin))
                .filter(|o| {
                    let location = o.location.to_string();
                    !checkpoint.processed.contains(&location)
                        && !checkpoint.failed.contains_key(&location)
                })
                .collect();
            // Objects that failed before are taken again, listed or not.
            fresh.extend(checkpoint.failed.iter().map(|(location, f)| {
                object_from(&PendingObject {
                    location: location.clone(),
                    size: f.size,
                })
            }));
            fresh.sort_by(|a, b| a.location.cmp(&b.location));
            if fresh.is_empty() {
                return Ok(RunSummary {
                    status: "idle".into(),
                    seconds: started.elapsed().as_secs_f64(),
                    ..RunSummary::default()
                });
            }
            // The run count makes every batch's name new: a retried object alone must not
            // be taken for the batch that failed to read it and was folded.
            let mut names: Vec<String> = fresh.iter().map(|o| o.location.to_string()).collect();
            names.push(format!("run {}", checkpoint.runs));
            let pending = Pending {
                batch: stable_id(&names),
                objects: fresh
                    .iter()
                    .map(|o| PendingObject {
                        location: o.location.to_string(),
                        size: o.size,
                    })
                    .collect(),
            };
            store.put("pending.json", &json(&pending)).await?;
            pending
        }
    };
    failpoint::point("pending");
    let objects: Vec<ObjectRef> = pending.objects.iter().map(object_from).collect();
    let mut summary = RunSummary {
        status: "ok".into(),
        batch: Some(pending.batch.clone()),
        retried_objects: objects
            .iter()
            .filter(|o| checkpoint.failed.contains_key(&o.location.to_string()))
            .count(),
        ..RunSummary::default()
    };
    // Objects whose names tell no time are read at every run, and the others' rows are not
    // cut to the listing's window: what a batch holds is processed whole.
    let mut failed: BTreeMap<String, String> = BTreeMap::new();

    if let Some(out) = &config.convert {
        let session = listing.subset_all_rows(objects.clone());
        let options = ConvertOptions {
            out: out.clone(),
            shard: None,
            target_file_bytes: 128 << 20,
            name_prefix: Some(format!("batch-{}-part-", pending.batch)),
            s3: config.s3.clone(),
        };
        let converted = convert(&session, &options, &|_| {}).await?;
        summary.parquet_files = converted.files.len();
        failed.extend(failures(&session));
        failpoint::point("converted");
    }

    let session = listing.subset_all_rows(objects.clone());
    let pipeline = Pipeline::new(session.context(), &config.catalog);
    let latest = pipeline.prepare(TimeRange::ALL).await?;
    let records = session.stats().rows();
    let bad_lines = session.stats().bad_lines().total();
    failed.extend(failures(&session));
    if let Some(since) = since {
        summary.late_records = late_records(&session, since).await?;
        if summary.late_records > 0 {
            tracing::warn!(
                "{} records end before the checkpoint less the lookback ({}): objects arrived \
                 late; they are processed with this batch",
                summary.late_records,
                crate::time_range::format_time(since)
            );
        }
    }
    let baseline = load_baseline(store).await?;
    let name = format!(
        "findings-{}.{}",
        pending.batch,
        if config.ocsf { "ocsf.json" } else { "jsonl" }
    );
    let target = format!("{}/{name}", config.findings.trim_end_matches('/'));
    let already_folded = baseline
        .as_ref()
        .is_some_and(|(p, ..)| p.folded.iter().any(|b| b == &pending.batch));
    if already_folded {
        // A run crashed after folding this batch: its findings were written before the
        // fold, against the baseline as it was then. Detecting again against the folded
        // baseline would judge the batch by itself, so the findings stand as written.
        tracing::info!(
            "batch {} was already folded; its findings stand",
            pending.batch
        );
    } else {
        let report = match (&baseline, latest) {
            (_, None) => None,
            (Some((_, history, peers, ports)), Some(latest)) => {
                let window = batch_window(&pipeline, latest).await?;
                let since = window.0 - config.baseline_days * DAY;
                pipeline
                    .learn_from_history(history, since, window.0)
                    .await?;
                pipeline.register("base_peers", peers)?;
                pipeline.register("base_ports", ports)?;
                Some(
                    pipeline
                        .detect(window.0, window.1, (since, window.0))
                        .await?,
                )
            }
            (None, Some(latest)) => {
                // The first run learns from the batch's own days before its last one.
                let (start, end) = default_window(latest);
                let since = start - config.baseline_days * DAY;
                pipeline.learn(since, start).await?;
                Some(pipeline.detect(start, end, (since, start)).await?)
            }
        };
        failpoint::point("detected");
        let findings: Vec<Finding> = report.map(|r: DetectReport| r.findings).unwrap_or_default();
        for f in &findings {
            *summary.findings.entry(f.kind.clone()).or_default() += 1;
        }
        let text: String = findings
            .iter()
            .map(|f| {
                let value = if config.ocsf {
                    f.to_ocsf(f.window_end * 1000)
                } else {
                    f.to_json()
                };
                format!("{value}\n")
            })
            .collect();
        write_text(&text, Some(std::path::Path::new(&target)), &config.s3).await?;
        failpoint::point("findings");
    }

    fold_baseline(config, store, &pipeline, baseline.as_ref(), &pending.batch).await?;
    failpoint::point("folded");

    for o in &objects {
        let location = o.location.to_string();
        if let Some(error) = failed.get(&location) {
            let entry = checkpoint
                .failed
                .entry(location.clone())
                .or_insert(FailedObject {
                    size: o.size,
                    attempts: 0,
                    error: String::new(),
                });
            entry.attempts += 1;
            entry.error = error.clone();
            if entry.attempts < config.max_attempts {
                tracing::warn!(
                    "{location}: could not be read ({} of {} attempts); the next run tries again",
                    entry.attempts,
                    config.max_attempts
                );
                continue;
            }
            tracing::error!(
                "{location}: given up after {} runs could not read it: {error}",
                entry.attempts
            );
            checkpoint.failed.remove(&location);
            summary.abandoned_objects.push(location.clone());
        } else {
            checkpoint.failed.remove(&location);
        }
        checkpoint.processed.insert(location.clone());
        match o.key.window {
            Some((lo, _)) if lo > horizon => {
                crate::source::warn_future(&location, lo);
                summary.future_objects.push(location);
            }
            Some((_, hi)) => checkpoint.high_water = checkpoint.high_water.max(hi),
            None => {}
        }
    }
    // Forget what can no longer be listed again: objects older than the lookback (and a
    // day), and objects whose keys tell no time once they are gone from the sources (they
    // are listed on every run, so only their presence bounds the set).
    let horizon = checkpoint.high_water - config.lookback - DAY;
    let listed: std::collections::HashSet<String> = listing
        .selected_objects()
        .iter()
        .map(|o| o.location.to_string())
        .collect();
    let keep: BTreeSet<String> = checkpoint
        .processed
        .iter()
        .filter(|loc| match crate::source::key_info(loc).window {
            Some((_, hi)) => hi >= horizon,
            None => listed.contains(*loc),
        })
        .cloned()
        .collect();
    checkpoint.processed = keep;
    checkpoint.runs += 1;
    store.put("checkpoint.json", &json(&checkpoint)).await?;
    failpoint::point("checkpointed");
    store.delete("pending.json").await?;
    failpoint::point("done");

    summary.objects = objects.len() as u64;
    summary.records = records;
    summary.bad_lines = bad_lines;
    summary.failed_objects = failed.len();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The objects a session could not read, with their errors.
fn failures(session: &FlowsSession) -> impl Iterator<Item = (String, String)> {
    session
        .stats()
        .failures()
        .into_iter()
        .map(|f| (f.location, f.message))
}

/// Records of the batch that end before `since` (objects are pruned by their keys, so only
/// those that may hold such records are read again).
async fn late_records(session: &FlowsSession, since: i64) -> Result<u64> {
    let batches = session
        .sql(&format!(
            "SELECT CAST(count(*) AS BIGINT) FROM flows WHERE \"end\" < {since}"
        ))
        .await?;
    Ok(batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0).max(0) as u64)
        })
        .unwrap_or(0))
}

/// The hours the batch covers.
async fn batch_window(pipeline: &Pipeline<'_>, latest: i64) -> Result<(i64, i64)> {
    let first = pipeline
        .query("first", "SELECT min(hour) AS first FROM hour_metrics")
        .await?;
    let start = first
        .batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(latest - DAY);
    let end = (latest + 3599).div_euclid(3600) * 3600;
    Ok((start, end.max(start + 3600)))
}

type StoredBaseline = (BaselinePointer, Table, Table, Table);

async fn load_baseline(store: &StateStore) -> Result<Option<StoredBaseline>> {
    let at = store.location("baseline.json");
    let Some(bytes) = store.get("baseline.json").await? else {
        return Ok(None);
    };
    let pointer: BaselinePointer = parse(&bytes, &at)?;
    let read = |name: &'static str| async move {
        let file = format!("baseline/v{}/{name}.parquet", pointer.version);
        let location = store.location(&file);
        let bytes = store
            .get(&file)
            .await?
            .ok_or_else(|| Error::invalid(&location, "missing: the baseline is incomplete"))?;
        from_parquet(bytes, &location)
    };
    let history = read("history").await?;
    let peers = read("peers").await?;
    let ports = read("ports").await?;
    Ok(Some((pointer, history, peers, ports)))
}

/// Folds the batch into the stored baseline: hourly metrics added to the history (kept
/// for the baseline's days), peers and ports merged. Written as a new version, then the
/// pointer switched; a batch already folded is not folded again.
async fn fold_baseline(
    config: &RunConfig,
    store: &StateStore,
    pipeline: &Pipeline<'_>,
    stored: Option<&StoredBaseline>,
    batch: &str,
) -> Result<()> {
    if stored.is_some_and(|(p, ..)| p.folded.iter().any(|b| b == batch)) {
        return Ok(());
    }
    // The batch's own peers and ports, over all its hours.
    pipeline.learn(0, i64::MAX / 2).await?;
    let new_metrics = pipeline
        .query("hour_metrics", "SELECT * FROM hour_metrics")
        .await?;
    let new_peers = pipeline
        .query("base_peers", "SELECT * FROM base_peers")
        .await?;
    let new_ports = pipeline
        .query("base_ports", "SELECT * FROM base_ports")
        .await?;
    let (history, peers, ports, mut pointer) = match stored {
        Some((pointer, history, peers, ports)) => {
            pipeline.register("old_history", history)?;
            pipeline.register("old_peers", peers)?;
            pipeline.register("old_ports", ports)?;
            pipeline.register("new_history", &new_metrics)?;
            pipeline.register("new_peers", &new_peers)?;
            pipeline.register("new_ports", &new_ports)?;
            let history = pipeline
                .query(
                    "fold history",
                    "WITH h AS (SELECT * FROM old_history UNION ALL SELECT * FROM new_history), \
                     latest AS (SELECT max(hour) AS m FROM h) \
                     SELECT interface_id, max(account_id) AS account_id, max(vpc_id) AS vpc_id, hour, \
                            max(hod) AS hod, bool_or(weekend) AS weekend, metric, \
                            CASE WHEN metric = 'in_sources' THEN max(value) ELSE sum(value) END AS value \
                     FROM h, latest WHERE hour >= latest.m - BASELINE_SECONDS \
                     GROUP BY interface_id, hour, metric ORDER BY interface_id, hour, metric"
                        .replace("BASELINE_SECONDS", &(config.baseline_days * DAY).to_string())
                        .as_str(),
                )
                .await?;
            let peers = pipeline
                .query(
                    "fold peers",
                    "SELECT interface_id, remote, remote_net, service_side, sum(flows) AS flows, \
                            sum(bytes) AS bytes, sum(hours_seen) AS hours_seen, \
                            min(first_seen) AS first_seen, max(last_seen) AS last_seen \
                     FROM (SELECT * FROM old_peers UNION ALL SELECT * FROM new_peers) p \
                     GROUP BY interface_id, remote, remote_net, service_side \
                     ORDER BY interface_id, remote, service_side",
                )
                .await?;
            let ports = pipeline
                .query(
                    "fold ports",
                    "SELECT interface_id, protocol, service_side, service_port, sum(flows) AS flows, \
                            sum(hours_seen) AS hours_seen, max(max_remote_hour_flows) AS max_remote_hour_flows \
                     FROM (SELECT * FROM old_ports UNION ALL SELECT * FROM new_ports) p \
                     GROUP BY interface_id, protocol, service_side, service_port \
                     ORDER BY interface_id, protocol, service_side, service_port",
                )
                .await?;
            (history, peers, ports, pointer.clone())
        }
        None => (
            new_metrics,
            new_peers,
            new_ports,
            BaselinePointer::default(),
        ),
    };
    pointer.version += 1;
    for (name, table) in [("history", &history), ("peers", &peers), ("ports", &ports)] {
        let file = format!("baseline/v{}/{name}.parquet", pointer.version);
        let bytes = to_parquet(table, &store.location(&file))?;
        store.put(&file, &bytes).await?;
        failpoint::point("baseline_table");
    }
    pointer.folded.push(batch.to_string());
    let excess = pointer.folded.len().saturating_sub(1000);
    pointer.folded.drain(..excess);
    store.put("baseline.json", &json(&pointer)).await?;
    // The previous version is no longer pointed at.
    if pointer.version > 1 {
        for name in ["history", "peers", "ports"] {
            let _ = store
                .delete(&format!("baseline/v{}/{name}.parquet", pointer.version - 1))
                .await;
        }
    }
    Ok(())
}
