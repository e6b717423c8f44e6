//! `flowlens run`: the scheduled container task. Each run takes the objects that arrived
//! since the checkpoint, optionally converts them, detects against the stored baseline,
//! writes one findings object, folds the new data into the baseline, and only then
//! advances the checkpoint. Crash-safe and idempotent:
//!
//! - the batch of objects is fixed in `pending.json` before any work, so a run after a
//!   crash redoes exactly that batch, writing the same file names (overwrites, never
//!   duplicates);
//! - the baseline (detect's one format, under `baseline/`) is written as a new version and
//!   switched to by its pointer, which also lists the batches folded in, so a batch is never
//!   folded twice;
//! - the checkpoint is written last, then `pending.json` removed;
//! - a lock object with an expiry keeps two runs off the same state.
//!
//! [`run_once`] reads as the list of steps: claim a batch, convert it, detect, fold,
//! advance the checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::convert::{ConvertOptions, convert};
use crate::detect::{
    Baseline, BaselineStore, DetectCatalog, DetectPlan, Finding, FindingsFormat, Pipeline, detect,
    render_findings, render_report,
};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::format::FlowFormat;
use crate::output::write_text;
use crate::query::{FlowsConfig, FlowsSession};
use crate::source::{Location, ObjectLocation, ObjectRef, S3Options, Store};
use crate::stable_hash::StableHash;
use crate::time_range::TimeRange;

const DAY: i64 = 86_400;
const HOUR: i64 = 3600;

/// What a stored baseline that cannot be read should be replaced with.
const REBUILD: &str = "remove it (baseline/ under the state) and the next run learns a new \
                       one from its batch";

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
    /// Jsonl or Ocsf.
    pub findings_format: FindingsFormat,
    /// Whether each run also writes its HTML report next to its findings.
    pub report: bool,
    /// Context for the findings (inventory, ip-ranges, GeoIP, lists).
    pub context: crate::context::ContextOptions,
    /// Also import each batch's findings into Security Hub.
    pub securityhub: bool,
    /// Alert targets, the least severity that alerts, and the cooldown (seconds) per
    /// interface and kind, kept in the state's `notified.json`.
    pub notify: Vec<crate::source::NotifyTarget>,
    pub notify_min_severity: crate::detect::Severity,
    pub notify_cooldown: i64,
    /// An SQS queue of S3 event notifications: the objects its messages name are taken
    /// (besides any listed), and each message is deleted once the checkpoint holds them.
    pub sqs: Option<String>,
    /// Messages taken from the queue per run at most.
    pub sqs_max_messages: usize,
    pub format: Option<FlowFormat>,
    pub s3: S3Options,
    pub catalog: DetectCatalog,
}

/// The JSON line a run ends with.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunSummary {
    pub status: RunStatus,
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
    /// Findings Security Hub took, and refused (each named in the log).
    pub exported: usize,
    pub export_refused: usize,
    /// Alerts sent, held back by the cooldown, and not delivered (each named in the log).
    pub alerts_sent: usize,
    pub alerts_suppressed: usize,
    pub alert_failures: usize,
    /// Queue messages received, objects they named that were new, objects already
    /// processed (a redelivery), and messages that are no S3 notification (left on the
    /// queue for its dead-letter policy, each named in the log).
    pub queue_messages: usize,
    pub queue_objects: usize,
    pub duplicate_objects: usize,
    pub poison_messages: usize,
    pub seconds: f64,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// A batch was processed.
    #[default]
    Ok,
    /// Nothing new arrived.
    Idle,
    /// Another run holds the state's lock.
    Locked,
}

/// The objects a run keeps in its state location.
#[derive(Clone, Copy, Debug)]
enum StateFile {
    /// Where the task is: the high-water mark, recent and failed objects.
    Checkpoint,
    /// The batch claimed and not yet finished.
    Pending,
    /// Who runs now, until when.
    Lock,
    /// When each interface and kind was last alerted (the alerts' cooldown).
    Notified,
}

impl StateFile {
    fn name(self) -> &'static str {
        match self {
            StateFile::Checkpoint => "checkpoint.json",
            StateFile::Pending => "pending.json",
            StateFile::Lock => "lock.json",
            StateFile::Notified => "notified.json",
        }
    }
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
    /// Objects a queue named, with when they were processed: a message redelivered after a
    /// crash (or twice by SQS) is not processed again. Kept for SQS's longest retention.
    #[serde(default)]
    from_queue: BTreeMap<String, i64>,
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
    match Location::parse(&p.location, "pending.json") {
        Ok(Location::S3(url)) => ObjectRef::s3(&url.bucket, &url.key, p.size),
        _ => ObjectRef::path(PathBuf::from(&p.location), p.size),
    }
}

/// Takes the lock, or says who holds it. An expired lock is taken over.
async fn lock(store: &Store, ttl: i64, owner: &str) -> Result<bool> {
    let body = json(&Lock {
        owner: owner.to_string(),
        expires: now() + ttl,
    });
    if store.create(StateFile::Lock.name(), &body).await? {
        return Ok(true);
    }
    let location = store.location(StateFile::Lock.name());
    let held = store.get(StateFile::Lock.name()).await?;
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
            store.delete(StateFile::Lock.name()).await?;
            store.create(StateFile::Lock.name(), &body).await
        }
        _ => {
            tracing::warn!("{location}: taking over an expired lock");
            store.delete(StateFile::Lock.name()).await?;
            store.create(StateFile::Lock.name(), &body).await
        }
    }
}

/// One run of the scheduled task.
pub async fn run_once(config: &RunConfig) -> Result<RunSummary> {
    let started = Instant::now();
    let store = Store::open(&config.state, "state", &config.s3).await?;
    let owner = format!("{}-{}", std::process::id(), now());
    if !lock(&store, config.lock_ttl, &owner).await? {
        return Ok(RunSummary {
            status: RunStatus::Locked,
            seconds: started.elapsed().as_secs_f64(),
            ..RunSummary::default()
        });
    }
    failpoint::point("locked");
    let result = work(config, &store).await;
    // On an error the lock is released too; a crash leaves it to expire.
    store.delete(StateFile::Lock.name()).await?;
    result.map(|mut summary| {
        summary.seconds = started.elapsed().as_secs_f64();
        summary
    })
}

/// The steps of a run, each its own function below.
async fn work(config: &RunConfig, store: &Store) -> Result<RunSummary> {
    let mut checkpoint = read_checkpoint(store).await?;
    let since = (checkpoint.high_water > 0).then(|| checkpoint.high_water - config.lookback);
    let flows = FlowsConfig {
        sources: config.sources.clone(),
        format: config.format.clone(),
        time_range: TimeRange { since, until: None },
        s3: config.s3.clone(),
        memory_limit: Some(config.memory_limit),
        context: config.context.clone(),
        reads_s3: config.sqs.is_some(),
        ..FlowsConfig::default()
    };
    let listing = FlowsSession::open(&flows).await?;
    failpoint::point("listed");
    let mut summary = RunSummary::default();
    let queued = match &config.sqs {
        Some(url) => take_queue(url, config.sqs_max_messages, &checkpoint, &mut summary).await?,
        None => QueueBatch::default(),
    };
    let Some(pending) = claim_batch(store, &listing, &checkpoint, &queued.objects).await? else {
        // Nothing new: what the queue named was processed before.
        queued.delete_done(config, &checkpoint).await;
        return Ok(RunSummary {
            status: RunStatus::Idle,
            ..summary
        });
    };
    failpoint::point("pending");
    let objects: Vec<ObjectRef> = pending.objects.iter().map(object_from).collect();
    summary.status = RunStatus::Ok;
    summary.batch = Some(pending.batch.clone());
    summary.retried_objects = objects
        .iter()
        .filter(|o| checkpoint.failed.contains_key(&o.location.to_string()))
        .count();
    // Objects whose names tell no time are read at every run, and the others' rows are not
    // cut to the listing's window: what a batch holds is processed whole.
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    if let Some(out) = &config.convert {
        let session = listing.subset_all_rows(objects.clone()).await?;
        summary.parquet_files = convert_batch(config, &session, out, &pending.batch).await?;
        failed.extend(failures(&session));
        failpoint::point("converted");
    }

    let session = listing.subset_all_rows(objects.clone()).await?;
    let baselines = BaselineStore::with_store(store.child("baseline"), REBUILD);
    let stored = baselines.load().await?;
    if stored.is_none() && store.get("baseline.json").await?.is_some() {
        // flowlens before day-by-day baselines kept its own format at the state's top level.
        tracing::warn!(
            "{}: a baseline of an earlier flowlens, which this one does not read; this run \
             learns a new one under {} from its batch (the old files can be removed)",
            store.location("baseline.json"),
            baselines.location()
        );
    }
    let pipeline = Pipeline::new(&session, &config.catalog);
    let folded = stored
        .as_ref()
        .is_some_and(|b| b.meta.batches.contains(&pending.batch));
    if folded {
        // A run crashed after folding this batch: its findings were written before the
        // fold, against the baseline as it was then. Detecting again against the folded
        // baseline would judge the batch by itself, so the findings stand as written (the
        // batch is still read, for its counts and the objects that fail).
        tracing::info!(
            "batch {} was already folded; its findings stand",
            pending.batch
        );
    }
    let (batch, findings, reports) =
        detect_batch(config, &session, &pipeline, stored.as_ref(), !folded).await?;
    if !folded {
        failpoint::point("detected");
        for f in &findings {
            *summary.findings.entry(f.kind.clone()).or_default() += 1;
        }
        write_findings(config, &pending.batch, &findings).await?;
        write_reports(config, &pending.batch, &reports).await?;
        failpoint::point("findings");
        deliver_batch(config, store, findings.clone(), &mut summary).await;
    }
    summary.records = session.stats().rows();
    summary.bad_lines = session.stats().bad_lines().total();
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
    if let (false, Some(batch)) = (folded, batch) {
        fold(config, &baselines, &pipeline, stored, batch, &pending.batch).await?;
    }
    failpoint::point("folded");

    if config.sqs.is_some() {
        let at = now();
        for o in &objects {
            checkpoint.from_queue.insert(o.location.to_string(), at);
        }
        checkpoint
            .from_queue
            .retain(|_, when| at.saturating_sub(*when) < QUEUE_MEMORY);
    }
    advance_checkpoint(
        config,
        &mut checkpoint,
        &objects,
        &failed,
        &listing,
        &mut summary,
    );
    store
        .put(StateFile::Checkpoint.name(), &json(&checkpoint))
        .await?;
    failpoint::point("checkpointed");
    store.delete(StateFile::Pending.name()).await?;
    // The batch is recorded; a crash here leaves the queue's messages, which come back and
    // are deleted as duplicates.
    failpoint::point("recorded");
    queued.delete_done(config, &checkpoint).await;
    failpoint::point("done");
    summary.objects = objects.len() as u64;
    summary.failed_objects = failed.len();
    Ok(summary)
}

/// The checkpoint, or a fresh one. One dated in the future (an earlier version believed a
/// mis-dated key) resumes from the newest believable object, or from now: waiting for 2099
/// would blind the task.
async fn read_checkpoint(store: &Store) -> Result<Checkpoint> {
    let at = store.location(StateFile::Checkpoint.name());
    let mut checkpoint: Checkpoint = match store.get(StateFile::Checkpoint.name()).await? {
        Some(bytes) => parse(&bytes, &at)?,
        None => Checkpoint::default(),
    };
    let horizon = crate::time_range::future_horizon();
    if checkpoint.high_water > horizon {
        let believable = checkpoint
            .processed
            .iter()
            .filter_map(|loc| crate::source::key_info(loc).window.map(|(_, hi)| hi))
            .filter(|hi| *hi <= horizon)
            .max()
            .unwrap_or(horizon - crate::time_range::FUTURE_MARGIN);
        tracing::warn!(
            "{at}: the checkpoint is at {}, in the future; resuming from {}",
            crate::time_range::format_time(checkpoint.high_water),
            crate::time_range::format_time(believable)
        );
        checkpoint.high_water = believable;
    }
    Ok(checkpoint)
}

/// The batch to process: the one an interrupted run left in `pending.json`, or the objects
/// listed and not yet processed (with those that failed before), fixed in `pending.json`
/// before any work. None when there is nothing new.
async fn claim_batch(
    store: &Store,
    listing: &FlowsSession,
    checkpoint: &Checkpoint,
    queued: &[ObjectRef],
) -> Result<Option<Pending>> {
    let pending_at = store.location(StateFile::Pending.name());
    if let Some(bytes) = store.get(StateFile::Pending.name()).await? {
        let p: Pending = parse(&bytes, &pending_at)?;
        tracing::info!(
            "resuming batch {} ({} objects) after an interrupted run",
            p.batch,
            p.objects.len()
        );
        return Ok(Some(p));
    }
    let mut candidates = listing.selected_objects();
    candidates.extend(queued.iter().cloned());
    let fresh = fresh_objects(candidates, checkpoint);
    if fresh.is_empty() {
        return Ok(None);
    }
    let pending = Pending {
        batch: batch_id(&fresh, checkpoint.runs),
        objects: fresh
            .iter()
            .map(|o| PendingObject {
                location: o.location.to_string(),
                size: o.size,
            })
            .collect(),
    };
    store
        .put(StateFile::Pending.name(), &json(&pending))
        .await?;
    Ok(Some(pending))
}

/// How long the checkpoint remembers the objects a queue named: SQS keeps a message 14 days
/// at most, so no redelivery comes later.
const QUEUE_MEMORY: i64 = 14 * DAY;

/// What this run took from the queue: the objects its messages named that are new, and
/// each message's receipt with the objects it named (deleted once all are checkpointed).
#[derive(Default)]
struct QueueBatch {
    objects: Vec<ObjectRef>,
    messages: Vec<(String, Vec<String>)>,
}

impl QueueBatch {
    /// Deletes the messages whose objects the checkpoint now holds (processed, or failed
    /// and to be retried by the checkpoint itself). The others come back after the queue's
    /// visibility timeout. A failed deletion is logged: the message comes back and is then
    /// deleted as a duplicate.
    async fn delete_done(&self, config: &RunConfig, checkpoint: &Checkpoint) {
        let Some(url) = &config.sqs else {
            return;
        };
        let done: Vec<String> = self
            .messages
            .iter()
            .filter(|(_, objects)| {
                objects.iter().all(|o| {
                    checkpoint.from_queue.contains_key(o)
                        || checkpoint.processed.contains(o)
                        || checkpoint.failed.contains_key(o)
                })
            })
            .map(|(receipt, _)| receipt.clone())
            .collect();
        if let Err(e) = crate::source::delete_messages(url, &done).await {
            tracing::error!("{e}: the messages come back and are then deleted");
        }
    }
}

/// Receives the queue's messages and reads the objects they name. A message that is no S3
/// notification is named in the log and left on the queue (its redrive policy moves it to
/// the dead-letter queue).
async fn take_queue(
    url: &str,
    max: usize,
    checkpoint: &Checkpoint,
    summary: &mut RunSummary,
) -> Result<QueueBatch> {
    use super::notifications::{Notification, parse_notification};
    let messages = crate::source::receive_messages(url, max).await?;
    summary.queue_messages = messages.len();
    let mut batch = QueueBatch::default();
    let mut seen = BTreeSet::new();
    for message in messages {
        match parse_notification(&message.body) {
            Notification::Poison(why) => {
                summary.poison_messages += 1;
                tracing::error!(
                    "{url}: message {} is not an S3 event notification ({why}); left on the \
                     queue for its dead-letter policy",
                    message.message_id
                );
            }
            Notification::Objects(objects) => {
                let mut names = Vec::new();
                for o in objects {
                    let object = ObjectRef::s3(&o.bucket, &o.key, o.size);
                    let location = object.location.to_string();
                    if checkpoint.from_queue.contains_key(&location)
                        || checkpoint.processed.contains(&location)
                    {
                        summary.duplicate_objects += 1;
                    } else if seen.insert(location.clone()) {
                        summary.queue_objects += 1;
                        batch.objects.push(object);
                    }
                    names.push(location);
                }
                batch.messages.push((message.receipt_handle, names));
            }
        }
    }
    Ok(batch)
}

/// The listed objects not processed yet, and those that failed before (listed or not), in
/// key order.
fn fresh_objects(listed: Vec<ObjectRef>, checkpoint: &Checkpoint) -> Vec<ObjectRef> {
    let mut fresh: Vec<ObjectRef> = listed
        .into_iter()
        // Standard input and log streams are no objects a later run can find again.
        .filter(|o| {
            !matches!(
                o.location,
                ObjectLocation::Stdin | ObjectLocation::Logs { .. }
            )
        })
        .filter(|o| {
            let location = o.location.to_string();
            !checkpoint.processed.contains(&location)
                && !checkpoint.failed.contains_key(&location)
                && !checkpoint.from_queue.contains_key(&location)
        })
        .collect();
    // An object both listed and named by the queue is one object.
    fresh.sort_by(|a, b| a.location.cmp(&b.location));
    fresh.dedup_by(|a, b| a.location == b.location);
    fresh.extend(checkpoint.failed.iter().map(|(location, f)| {
        object_from(&PendingObject {
            location: location.clone(),
            size: f.size,
        })
    }));
    fresh.sort_by(|a, b| a.location.cmp(&b.location));
    fresh
}

/// A batch's name: its objects and the run count. The count makes every batch's name new: a
/// retried object alone must not be taken for the batch that failed to read it and was
/// folded.
fn batch_id(objects: &[ObjectRef], runs: u64) -> String {
    let mut names: Vec<String> = objects.iter().map(|o| o.location.to_string()).collect();
    names.push(format!("run {runs}"));
    stable_id(&names)
}

/// Converts the batch to Parquet under `out`, with names that a rerun writes again.
async fn convert_batch(
    config: &RunConfig,
    session: &FlowsSession,
    out: &str,
    batch: &str,
) -> Result<usize> {
    let options = ConvertOptions {
        out: out.to_string(),
        shard: None,
        target_file_bytes: 128 << 20,
        name_prefix: Some(format!("batch-{batch}-part-")),
        s3: config.s3.clone(),
    };
    let converted = convert(session, &options, &|_| {}).await?;
    Ok(converted.files.len())
}

/// Summarises the batch a day at a time and detects in each day's hours against the stored
/// baseline (the `baseline_days` before those hours). The first run, with no baseline yet,
/// learns one from the batch's own days before its last one, as `flowlens detect` would.
/// Returns the batch's summary, to fold, the findings (none unless `judge`) and, when the
/// task writes reports, one HTML page per day judged (the page reads that day's tables).
async fn detect_batch(
    config: &RunConfig,
    session: &FlowsSession,
    pipeline: &Pipeline<'_>,
    stored: Option<&Baseline>,
    judge: bool,
) -> Result<(Option<Baseline>, Vec<Finding>, Vec<(i64, String)>)> {
    let mut findings = Vec::new();
    let mut reports = Vec::new();
    let mut batch: Option<Baseline> = None;
    let chunks = crate::detect::batch_days(session);
    for (since, until) in chunks {
        let day = pipeline.summarise(since, until).await?;
        let stored = stored.filter(|_| judge);
        if let (Some(stored), Some((first, latest))) = (stored, pipeline.span().await?) {
            let end = latest.div_euclid(HOUR) * HOUR + HOUR;
            let window = (first, end.max(first + HOUR));
            let learnt = window.0 - config.baseline_days * DAY;
            pipeline.use_baseline(stored, learnt, window.0).await?;
            let report = pipeline
                .detect(window.0, window.1, (learnt, window.0))
                .await?;
            if config.report {
                let page = render_report(session, &config.catalog, &report).await?;
                reports.push((window.0, page));
            }
            findings.extend(report.findings);
        }
        batch = Some(pipeline.fold(batch, day).await?);
    }
    if judge && stored.is_none() {
        let plan = DetectPlan::latest_day(config.baseline_days);
        let report = detect(session, &plan, None, &config.catalog).await?;
        if config.report {
            let page = render_report(session, &config.catalog, &report).await?;
            reports = vec![(report.window.0, page)];
        }
        findings = report.findings;
    }
    Ok((batch, findings, reports))
}

/// Writes the batch's findings object (named after the batch, so a rerun overwrites it).
async fn write_findings(config: &RunConfig, batch: &str, findings: &[Finding]) -> Result<()> {
    let extension = match config.findings_format {
        FindingsFormat::Ocsf => "ocsf.json",
        _ => "jsonl",
    };
    let target = format!(
        "{}/findings-{batch}.{extension}",
        config.findings.trim_end_matches('/')
    );
    let text = render_findings(findings, config.findings_format, None);
    write_text(&text, Some(std::path::Path::new(&target)), &config.s3).await
}

/// Security Hub and alerts for the batch's findings. Whatever a service refuses or a target
/// fails is logged and counted in the summary; none of it stops the batch from being
/// checkpointed. The cooldown is saved before the checkpoint, so a run that redoes the
/// batch after a crash does not page again.
async fn deliver_batch(
    config: &RunConfig,
    store: &Store,
    mut findings: Vec<Finding>,
    summary: &mut RunSummary,
) {
    if config.securityhub {
        match crate::detect::export_to_security_hub(&findings).await {
            Ok(import) => {
                summary.exported = import.imported;
                summary.export_refused = import.refused.len();
                for (id, code, message) in &import.refused {
                    tracing::error!("Security Hub refused {id}: {code} {message}");
                }
            }
            Err(e) => {
                summary.export_refused = findings.len();
                tracing::error!("Security Hub: {e}");
            }
        }
    }
    if config.notify.is_empty() {
        return;
    }
    let incidents = crate::detect::assign_incidents(&mut findings);
    let alerts = crate::detect::alerts(&findings, &incidents, config.notify_min_severity);
    if alerts.is_empty() {
        return;
    }
    let mut cooldown: crate::detect::Cooldown = match store.get(StateFile::Notified.name()).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(
                "{}: unreadable ({e}); starting the cooldown afresh",
                store.location(StateFile::Notified.name())
            );
            Default::default()
        }),
        Ok(None) => Default::default(),
        Err(e) => {
            tracing::warn!("{e}; starting the cooldown afresh");
            Default::default()
        }
    };
    let now = chrono::Utc::now().timestamp();
    // Keys older than the cooldown say nothing any more.
    cooldown
        .last
        .retain(|_, at| now.saturating_sub(*at) < config.notify_cooldown);
    let delivery = crate::detect::deliver(
        &alerts,
        &config.notify,
        Some((&mut cooldown, config.notify_cooldown)),
        now,
    )
    .await;
    for failure in &delivery.failures {
        tracing::error!("alert not delivered: {failure}");
    }
    summary.alerts_sent = delivery.sent;
    summary.alerts_suppressed = delivery.suppressed;
    summary.alert_failures = delivery.failures.len();
    if let Err(e) = store
        .put(StateFile::Notified.name(), &json(&cooldown))
        .await
    {
        tracing::error!("{e}: the cooldown was not saved");
    }
}

/// Writes the batch's HTML report beside its findings object: `report-BATCH.html`, or one
/// per day (`report-BATCH-YYYY-MM-DD.html`) when the batch spans several.
async fn write_reports(config: &RunConfig, batch: &str, pages: &[(i64, String)]) -> Result<()> {
    let folder = config.findings.trim_end_matches('/');
    for (start, page) in pages {
        let target = match pages.len() {
            1 => format!("{folder}/report-{batch}.html"),
            _ => format!(
                "{folder}/report-{batch}-{}.html",
                crate::time_range::format_time(*start)
                    .get(..10)
                    .unwrap_or("day")
            ),
        };
        write_text(page, Some(std::path::Path::new(&target)), &config.s3).await?;
    }
    Ok(())
}

/// Folds the batch's summary into the stored baseline (hourly metrics kept for the
/// baseline's days, peers and services merged) and saves it as a new version.
async fn fold(
    config: &RunConfig,
    baselines: &BaselineStore,
    pipeline: &Pipeline<'_>,
    stored: Option<Baseline>,
    mut batch: Baseline,
    name: &str,
) -> Result<()> {
    batch.meta.covered.clear();
    batch.meta.fold_batch(name);
    batch.meta.keep_days = Some(config.baseline_days);
    let stored = stored.map(|mut b| {
        b.meta.keep_days = Some(config.baseline_days);
        b
    });
    let mut folded = pipeline.fold(stored, batch).await?;
    pipeline.describe(&mut folded).await?;
    baselines.save(&mut folded).await
}

/// Records what the batch did to the checkpoint: objects read are processed; those that
/// failed are retried by later runs until `max_attempts`; the high-water mark moves to the
/// newest believable key; objects too old to be listed again are forgotten.
fn advance_checkpoint(
    config: &RunConfig,
    checkpoint: &mut Checkpoint,
    objects: &[ObjectRef],
    failed: &BTreeMap<String, String>,
    listing: &FlowsSession,
    summary: &mut RunSummary,
) {
    let horizon = crate::time_range::future_horizon();
    for o in objects {
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
    let oldest = checkpoint.high_water - config.lookback - DAY;
    let listed: std::collections::HashSet<String> = listing
        .selected_objects()
        .iter()
        .map(|o| o.location.to_string())
        .collect();
    checkpoint.processed = checkpoint
        .processed
        .iter()
        .filter(|loc| match crate::source::key_info(loc).window {
            Some((_, hi)) => hi >= oldest,
            None => listed.contains(*loc),
        })
        .cloned()
        .collect::<BTreeSet<String>>();
    checkpoint.runs += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_attempts: u32) -> RunConfig {
        RunConfig {
            sources: Vec::new(),
            state: String::new(),
            findings: String::new(),
            convert: None,
            lookback: 7200,
            baseline_days: 14,
            lock_ttl: 60,
            max_attempts,
            memory_limit: 1 << 30,
            findings_format: FindingsFormat::Jsonl,
            report: false,
            context: Default::default(),
            securityhub: false,
            notify: Vec::new(),
            notify_min_severity: crate::detect::Severity::High,
            notify_cooldown: DAY,
            sqs: None,
            sqs_max_messages: 1000,
            format: None,
            s3: S3Options::default(),
            catalog: DetectCatalog::builtin().unwrap(),
        }
    }

    /// An object of AWS's layout whose key's 5-minute slot starts at `slot`.
    fn object(slot: i64) -> ObjectRef {
        let t = chrono::DateTime::from_timestamp(slot, 0).unwrap();
        let key = format!(
            "AWSLogs/1/vpcflowlogs/us-east-1/{}/1_vpcflowlogs_us-east-1_fl-1_{}_x.log.gz",
            t.format("%Y/%m/%d"),
            t.format("%Y%m%dT%H%MZ")
        );
        ObjectRef::s3("logs", &key, 10)
    }

    fn empty_listing() -> FlowsSession {
        FlowsSession::with_objects(Vec::new(), crate::decode::DecoderOptions::default())
    }

    #[test]
    fn a_batch_takes_what_is_new_and_what_failed_before() {
        let (a, b) = (object(1_791_000_000), object(1_791_000_300));
        let mut checkpoint = Checkpoint::default();
        checkpoint.processed.insert(a.location.to_string());
        checkpoint.failed.insert(
            "s3://logs/old.log.gz".into(),
            FailedObject {
                size: 5,
                attempts: 1,
                error: "reset".into(),
            },
        );
        let fresh = fresh_objects(vec![a.clone(), b.clone()], &checkpoint);
        let names: Vec<String> = fresh.iter().map(|o| o.location.to_string()).collect();
        assert_eq!(
            names,
            vec![b.location.to_string(), "s3://logs/old.log.gz".into()]
        );
        // The same objects in another run are another batch: a retried object alone is
        // never taken for the batch that failed to read it and was folded.
        assert_eq!(batch_id(&fresh, 3), batch_id(&fresh, 3));
        assert_ne!(batch_id(&fresh, 3), batch_id(&fresh, 4));
    }

    #[test]
    fn an_object_that_keeps_failing_is_retried_then_given_up() {
        let config = config(2);
        let bad = object(1_791_000_000);
        let failed: BTreeMap<String, String> =
            [(bad.location.to_string(), "connection reset".to_string())].into();
        let mut checkpoint = Checkpoint::default();
        let mut summary = RunSummary::default();
        let listing = empty_listing();
        advance_checkpoint(
            &config,
            &mut checkpoint,
            std::slice::from_ref(&bad),
            &failed,
            &listing,
            &mut summary,
        );
        assert_eq!(checkpoint.failed[&bad.location.to_string()].attempts, 1);
        assert!(checkpoint.processed.is_empty() && checkpoint.high_water == 0);
        advance_checkpoint(
            &config,
            &mut checkpoint,
            std::slice::from_ref(&bad),
            &failed,
            &listing,
            &mut summary,
        );
        assert!(checkpoint.failed.is_empty());
        assert_eq!(summary.abandoned_objects, vec![bad.location.to_string()]);
        assert!(checkpoint.processed.contains(&bad.location.to_string()));
        assert_eq!(checkpoint.runs, 2);
    }

    #[test]
    fn the_checkpoint_follows_believable_keys_and_forgets_what_cannot_be_listed_again() {
        let config = config(5);
        let (old, new) = (object(1_791_000_000), object(1_791_000_000 + 10 * DAY));
        let future = object(crate::time_range::future_horizon() + 400 * DAY);
        let mut checkpoint = Checkpoint::default();
        let mut summary = RunSummary::default();
        let listing = empty_listing();
        advance_checkpoint(
            &config,
            &mut checkpoint,
            &[old.clone(), new.clone(), future.clone()],
            &BTreeMap::new(),
            &listing,
            &mut summary,
        );
        // The future key is processed but does not move the high-water mark.
        assert_eq!(summary.future_objects, vec![future.location.to_string()]);
        let (_, hi) = new.key.window.unwrap();
        assert_eq!(checkpoint.high_water, hi);
        // Ten days before the high-water mark is past the lookback: forgotten.
        assert!(!checkpoint.processed.contains(&old.location.to_string()));
        assert!(checkpoint.processed.contains(&new.location.to_string()));
    }

    #[tokio::test]
    async fn a_run_after_a_crash_takes_up_the_batch_it_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Local(dir.path().to_path_buf());
        let listing = empty_listing();
        let checkpoint = Checkpoint::default();
        // Nothing listed, nothing pending: nothing to do.
        assert!(
            claim_batch(&store, &listing, &checkpoint, &[])
                .await
                .unwrap()
                .is_none()
        );
        let left = Pending {
            batch: "b1".into(),
            objects: vec![PendingObject {
                location: "s3://logs/a.log.gz".into(),
                size: 3,
            }],
        };
        store
            .put(StateFile::Pending.name(), &json(&left))
            .await
            .unwrap();
        let taken = claim_batch(&store, &listing, &checkpoint, &[])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(taken.batch, "b1");
        assert_eq!(
            object_from(&taken.objects[0]).location.to_string(),
            "s3://logs/a.log.gz"
        );
        // A damaged pending batch is an error naming it, not a silent restart.
        store.put(StateFile::Pending.name(), b"{").await.unwrap();
        let err = claim_batch(&store, &listing, &checkpoint, &[])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("pending.json"), "{err}");
    }

    #[tokio::test]
    async fn a_lock_is_held_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Local(dir.path().to_path_buf());
        assert!(lock(&store, 600, "one").await.unwrap());
        assert!(!lock(&store, 600, "two").await.unwrap());
        store.delete(StateFile::Lock.name()).await.unwrap();
        assert!(lock(&store, -1, "three").await.unwrap());
        // Expired: taken over.
        assert!(lock(&store, 600, "four").await.unwrap());
    }
}
