//! The detection pipeline: one pass over the flows rolls them up by interface and hour;
//! baselines and hourly metrics come from that rollup in memory; the detection window's
//! records are read once more, on their own; then each detector's SQL runs.

use std::time::Instant;

use datafusion::prelude::SessionContext;
use futures::future::try_join_all;

use super::baseline::{BASELINE_TABLES, Baseline, BaselineMeta};
use super::catalog::DetectCatalog;
use super::finding::{Finding, Severity};
use super::tables::{Table, materialise, register, run};
use crate::error::{Error, Result};
use crate::time_range::TimeRange;

/// Bounds for "no bound" in step SQL: the epoch and the year 3000.
const EARLIEST: i64 = 0;
const LATEST: i64 = 32_503_680_000;
const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;

/// What `detect` found, and over which periods.
#[derive(Clone, Debug)]
pub struct DetectReport {
    pub findings: Vec<Finding>,
    pub window: (i64, i64),
    pub baseline: (i64, i64),
    /// Interfaces seen in the window and the hours of baseline each had.
    pub interfaces: Vec<(String, i64)>,
    /// Things a person should know: thin baselines, an empty window.
    pub warnings: Vec<String>,
}

/// Runs the steps and detectors of `catalog` on a session's `flows` table.
pub struct Pipeline<'a> {
    ctx: &'a SessionContext,
    catalog: &'a DetectCatalog,
}

impl<'a> Pipeline<'a> {
    pub fn new(ctx: &'a SessionContext, catalog: &'a DetectCatalog) -> Self {
        Pipeline { ctx, catalog }
    }

    async fn step(&self, name: &str, values: &[(&str, i64)]) -> Result<Table> {
        let started = Instant::now();
        let sql = self.catalog.step(name, values)?;
        let table = materialise(self.ctx, name, &sql).await?;
        tracing::debug!(
            "step {name}: {} rows in {:.2} s",
            table.rows(),
            started.elapsed().as_secs_f64()
        );
        Ok(table)
    }

    /// The one pass over `flows` in `range`, and the tables derived from it. Returns the
    /// end of the latest record, if there are any.
    pub async fn prepare(&self, range: TimeRange) -> Result<Option<i64>> {
        let since = range.since.unwrap_or(EARLIEST);
        let until = range.until.unwrap_or(LATEST);
        self.step("rollup", &[("since", since), ("until", until)])
            .await?;
        self.step("addr_shares", &[]).await?;
        self.step("local_addrs", &[]).await?;
        self.step("traffic", &[]).await?;
        // The rollup is no longer needed: give its memory back.
        self.ctx
            .deregister_table("rollup")
            .map_err(|e| Error::query("detect", e))?;
        self.step("hour_metrics", &[]).await?;
        // Records that end after now plus a margin come from a wrong clock: they are read and
        // reported like the rest, but never decide where "the last day of data" is.
        let horizon = crate::time_range::future_horizon();
        let future = self
            .scalar(
                "future records",
                &format!(
                    "SELECT CAST(count(*) AS BIGINT) FROM traffic \
                     WHERE log_status = 'OK' AND last_end > {horizon}"
                ),
            )
            .await?
            .unwrap_or(0);
        if future > 0 {
            tracing::warn!(
                "{future} rollup rows end after now plus a day (a clock error?): they do not \
                 set the detection window"
            );
        }
        self.scalar(
            "latest",
            &format!(
                "SELECT max(last_end) FROM traffic \
                 WHERE log_status = 'OK' AND last_end <= {horizon}"
            ),
        )
        .await
    }

    /// The first hour of the prepared data, if there is any.
    pub async fn first_hour(&self) -> Result<Option<i64>> {
        self.scalar("first hour", "SELECT min(hour) FROM hour_metrics")
            .await
    }

    /// The one Int64 value `sql` returns, unless it is NULL.
    async fn scalar(&self, name: &str, sql: &str) -> Result<Option<i64>> {
        let table = run(self.ctx, name, sql).await?;
        Ok(table
            .batches
            .first()
            .filter(|b| b.num_rows() > 0 && !b.column(0).is_null(0))
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .map(|a| a.value(0))
            }))
    }

    /// Learns the baseline tables from `[since, until)` of the prepared data.
    pub async fn learn(&self, since: i64, until: i64) -> Result<Baseline> {
        // The baseline tables depend only on the prepared tables, not on each other: learning
        // them side by side keeps both cores busy where one small query alone would not.
        let values = [("since", since), ("until", until)];
        let tables =
            try_join_all(BASELINE_TABLES.iter().map(|name| self.step(name, &values))).await?;
        let interfaces = tables.first().map(Table::rows).unwrap_or(0);
        Ok(Baseline {
            meta: BaselineMeta {
                format: super::baseline::BASELINE_FORMAT,
                since,
                until,
                interfaces,
                flowlens_version: env!("CARGO_PKG_VERSION").to_string(),
            },
            tables,
        })
    }

    /// Runs SQL over the registered tables and returns the rows (for jobs folding state).
    pub async fn query(&self, name: &str, sql: &str) -> Result<Table> {
        run(self.ctx, name, sql).await
    }

    /// Registers a table under `name`.
    pub fn register(&self, name: &str, table: &Table) -> Result<()> {
        register(self.ctx, name, table)
    }

    /// Learns the hour-of-day baseline (`base_hours`, `base_enis`) from a stored history of
    /// hourly metrics in `[since, until)`, leaving the prepared `hour_metrics` in place.
    pub async fn learn_from_history(&self, history: &Table, since: i64, until: i64) -> Result<()> {
        let current = run(self.ctx, "hour_metrics", "SELECT * FROM hour_metrics").await?;
        register(self.ctx, "hour_metrics", history)?;
        let values = [("since", since), ("until", until)];
        let learnt = async {
            self.step("base_enis", &values).await?;
            self.step("base_hours", &values).await
        }
        .await;
        register(self.ctx, "hour_metrics", &current)?;
        learnt.map(|_| ())
    }

    /// Uses a stored baseline instead of learning one.
    pub fn use_baseline(&self, baseline: &Baseline) -> Result<()> {
        for (name, table) in BASELINE_TABLES.iter().zip(&baseline.tables) {
            register(self.ctx, name, table)?;
        }
        Ok(())
    }

    /// Runs every detector over `[start, end)` against the registered baseline.
    pub async fn detect(&self, start: i64, end: i64, baseline: (i64, i64)) -> Result<DetectReport> {
        let window = [
            ("since", start),
            ("until", end),
            ("window_start", start),
            ("window_end", end),
        ];
        // Independent queries run side by side, as in `learn`.
        futures::try_join!(
            self.step("recent", &window),
            self.step("deviations", &window)
        )?;
        let found = try_join_all(self.catalog.detectors().iter().map(|detector| async {
            let started = Instant::now();
            let sql = self.catalog.render(detector, &window)?;
            let table = run(self.ctx, &detector.name, &sql).await?;
            let found = Finding::from_batches(&detector.name, &table.batches)?;
            tracing::debug!(
                "detector {}: {} findings in {:.2} s",
                detector.name,
                found.len(),
                started.elapsed().as_secs_f64()
            );
            Ok::<_, Error>(found)
        }))
        .await?;
        let findings = dedupe(found.into_iter().flatten().collect());

        let history = run(
            self.ctx,
            "history",
            "SELECT DISTINCT interface_id, history_hours FROM deviations ORDER BY interface_id",
        )
        .await?;
        let mut interfaces = Vec::new();
        for batch in &history.batches {
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>();
            let hours = batch
                .column(1)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>();
            if let (Some(ids), Some(hours)) = (ids, hours) {
                for i in 0..batch.num_rows() {
                    interfaces.push((ids.value(i).to_string(), hours.value(i)));
                }
            }
        }
        let mut warnings = Vec::new();
        let thin: Vec<String> = interfaces
            .iter()
            .filter(|(_, h)| *h < 24)
            .map(|(id, h)| format!("{id} ({h} h)"))
            .collect();
        if !thin.is_empty() {
            warnings.push(format!(
                "{} interface(s) have less than 24 hours of baseline, so only the detectors \
                 that need none (port_scan, beaconing, nacl_return_reject, brute_force) judged \
                 them: {}",
                thin.len(),
                thin.join(", ")
            ));
        }
        if interfaces.is_empty() {
            warnings.push("no traffic in the detection window".to_string());
        }
        Ok(DetectReport {
            findings,
            window: (start, end),
            baseline,
            interfaces,
            warnings,
        })
    }
}

/// The detection window when none is given: the last day of data, in whole hours.
pub fn default_window(latest: i64) -> (i64, i64) {
    let end = (latest + HOUR - 1).div_euclid(HOUR) * HOUR;
    (end - DAY, end)
}

/// A broad finding that a more specific one explains is dropped: a volume spike during a
/// DoS or an exfiltration, a reject spike during a scan, brute force, DoS or ACL problem.
fn dedupe(findings: Vec<Finding>) -> Vec<Finding> {
    let explained_by = |kind: &str| -> &[&str] {
        match kind {
            "volume_spike" => &["dos", "exfiltration"],
            "reject_spike" => &["port_scan", "brute_force", "dos", "nacl_return_reject"],
            _ => &[],
        }
    };
    let mut kept: Vec<Finding> = findings
        .iter()
        .filter(|f| {
            !findings
                .iter()
                .any(|g| explained_by(&f.kind).contains(&g.kind.as_str()) && g.overlaps(f))
        })
        .cloned()
        .collect();
    kept.sort_by(|a, b| {
        a.window_start
            .cmp(&b.window_start)
            .then(b.severity.cmp(&a.severity))
            .then(a.interface_id.cmp(&b.interface_id))
            .then(a.kind.cmp(&b.kind))
    });
    kept
}

/// Whether any finding is at or above `severity` (for `--fail-on`).
pub fn any_at_or_above(findings: &[Finding], severity: Severity) -> bool {
    findings.iter().any(|f| f.severity >= severity)
}
