//! The detection pipeline. A period's records (a day, the detection window, a scheduled
//! batch) are rolled up by interface and hour in one pass and reduced to that period's
//! summary; summaries fold into a baseline; the window's records are read once more, on
//! their own; then each detector's SQL runs against the baseline.

use std::time::Instant;

use datafusion::prelude::SessionContext;
use futures::future::try_join_all;

use super::baseline::{Baseline, BaselineMeta};
use super::catalog::DetectCatalog;
use super::finding::{Finding, Severity};
use super::incident::{Incident, assign_incidents};
use super::tables::{Table, register, run, run_spread};
use crate::error::{Error, Result};
use crate::query::{FlowsSession, Spread};

/// Hourly metrics added after baselines were first stored, and the detectors that need them.
const LATER_METRICS: &[(&str, &str)] = &[
    ("out_targets", "outbound_scan"),
    ("top_out_packets", "outbound_dos"),
];

/// Bounds for "no bound" in step SQL: the epoch and the year 3000.
pub(crate) const EARLIEST: i64 = 0;
pub(crate) const LATEST: i64 = 32_503_680_000;
const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;

/// What `detect` found, and over which periods.
#[derive(Clone, Debug)]
pub struct DetectReport {
    pub findings: Vec<Finding>,
    /// The findings grouped by story; each finding's `incident_id` names its incident.
    pub incidents: Vec<Incident>,
    pub window: (i64, i64),
    pub baseline: (i64, i64),
    /// Interfaces seen in the window and the hours of baseline each had.
    pub interfaces: Vec<(String, i64)>,
    /// Things a person should know: thin baselines, an empty window.
    pub warnings: Vec<String>,
}

/// Whether every row of a rollup with an address carries its records' flow-direction
/// field, so `traffic` needs no interface's own addresses to tell its direction (NODATA
/// and SKIPDATA records have neither).
fn every_row_has_a_direction(rollup: &Table) -> bool {
    let [Ok(direction), Ok(src), Ok(dst)] =
        ["flow_direction", "srcaddr", "dstaddr"].map(|name| rollup.schema.index_of(name))
    else {
        return false;
    };
    rollup.batches.iter().all(|batch| {
        let (direction, src, dst) = (
            batch.column(direction),
            batch.column(src),
            batch.column(dst),
        );
        direction.null_count() == 0
            || (0..batch.num_rows())
                .all(|i| direction.is_valid(i) || (src.is_null(i) && dst.is_null(i)))
    })
}

/// An empty `local_addrs` for `rollup`, whose columns its own are taken from: no row of
/// the period needs it.
fn no_local_addrs(rollup: &Table) -> Result<Table> {
    let field = |name: &str| {
        rollup
            .schema
            .field_with_name(name)
            .map(|f| f.clone().with_nullable(true))
            .map_err(|e| Error::query("detect step local_addrs", e.into()))
    };
    let fields = vec![field("interface_id")?, field("srcaddr")?.with_name("addr")];
    Ok(Table {
        schema: std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        batches: Vec::new(),
    })
}

/// The values a window's steps and detectors are rendered with.
fn window_values(start: i64, end: i64) -> [(&'static str, i64); 4] {
    [
        ("since", start),
        ("until", end),
        ("window_start", start),
        ("window_end", end),
    ]
}

/// Runs the steps and detectors of `catalog` on a session's `flows` table.
pub struct Pipeline<'a> {
    session: &'a FlowsSession,
    ctx: &'a SessionContext,
    catalog: &'a DetectCatalog,
}

impl<'a> Pipeline<'a> {
    pub fn new(session: &'a FlowsSession, catalog: &'a DetectCatalog) -> Self {
        Pipeline {
            session,
            ctx: session.context(),
            catalog,
        }
    }

    /// Runs a step and registers its result under the step's name for the next steps.
    async fn step(&self, name: &str, values: &[(&str, i64)]) -> Result<Table> {
        let table = self.step_only(name, values).await?;
        register(self.ctx, name, &table)?;
        Ok(table)
    }

    /// The end of the latest record that ends at or after `from`, ignoring records that
    /// end after now plus a margin: those come from a wrong clock and are reported like the
    /// rest, but never decide where "the last day of data" is.
    pub async fn latest(&self, from: Option<i64>) -> Result<Option<i64>> {
        let horizon = crate::time_range::future_horizon();
        let from = from.unwrap_or(EARLIEST);
        let table = run(
            self.session,
            "latest",
            &format!(
                "SELECT max(\"end\") FILTER (WHERE \"end\" <= {horizon}), \
                        CAST(count(*) FILTER (WHERE \"end\" > {horizon}) AS BIGINT) \
                 FROM flows WHERE \"end\" >= {from} AND log_status = 'OK' \
                 AND interface_id IS NOT NULL"
            ),
        )
        .await?;
        let value = |column: usize| {
            table
                .batches
                .first()
                .filter(|b| b.num_rows() > 0 && !b.column(column).is_null(0))
                .and_then(|b| {
                    b.column(column)
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .map(|a| a.value(0))
                })
        };
        let future = value(1).unwrap_or(0);
        if future > 0 {
            tracing::warn!(
                "{future} records end after now plus a day (a clock error?): they do not set \
                 the detection window"
            );
        }
        Ok(value(0))
    }

    /// Rolls up the records that end in `[since, until)`: the one step of a period that
    /// reads `flows`. Nothing is registered, so the next period's rollup can be read while
    /// this one's is summarised.
    pub async fn rollup(&self, since: i64, until: i64) -> Result<Table> {
        self.rollup_spread(since, until, Spread::Cores).await
    }

    /// [`Pipeline::rollup`] planned as `spread` says: [`Spread::One`] for a rollup read
    /// beside another.
    pub async fn rollup_spread(&self, since: i64, until: i64, spread: Spread) -> Result<Table> {
        self.step_spread("rollup", &[("since", since), ("until", until)], spread)
            .await
    }

    /// The rollup of the window `[since, until)` that [`Pipeline::examine`] is given. The
    /// window's records are decoded once: kept while the rollup reads them (when they fit and
    /// detection runs here) and read again from memory by `recent`, which then lets them go.
    pub async fn window_rollup(&self, since: i64, until: i64) -> Result<Table> {
        let location = "detect step window_records";
        let sql = self
            .catalog
            .step("window_records", &[("since", since), ("until", until)])?;
        if !self.session.keep_flows(location, &sql).await? {
            return self.rollup(since, until).await;
        }
        let rollup = self.rollup(since, until).await;
        // Always: `flows` must not stay the stream the rollup used up.
        let held = self.session.serve_kept(location)?;
        if let Some(bytes) = held {
            tracing::debug!("step window_records: {} MB held in memory", bytes >> 20);
        }
        rollup
    }

    /// Rolls up the records that end in `[since, until)` and reduces them to that period's
    /// summary: hourly metrics, peers and services per interface. The period's `traffic` and
    /// `hour_metrics` stay registered (detection examines the last period summarised); its
    /// rollup is dropped.
    pub async fn summarise(&self, since: i64, until: i64) -> Result<Baseline> {
        let rollup = self.rollup(since, until).await?;
        self.summarise_rollup(&rollup, since, until).await
    }

    /// [`Pipeline::summarise`] from a rollup already read.
    pub async fn summarise_rollup(
        &self,
        rollup: &Table,
        since: i64,
        until: i64,
    ) -> Result<Baseline> {
        // `traffic` places by address only the rows whose records lack the flow-direction
        // field: when none does, the two steps that find the addresses are skipped (`examine`
        // always runs them: `recent` also reads records the rollup lacks).
        if every_row_has_a_direction(rollup) {
            register(self.ctx, "rollup", rollup)?;
            register(self.ctx, "local_addrs", &no_local_addrs(rollup)?)?;
        } else {
            self.local_view(rollup).await?;
        }
        let history = self.traffic_view().await?;
        let values = [("since", since), ("until", until)];
        // Peers and services side by side: independent queries keep both cores busy.
        let (peers, ports) = futures::try_join!(
            self.step("base_peers", &values),
            self.step("base_ports", &values)
        )?;
        let mut meta = BaselineMeta::default();
        meta.cover(since, until);
        Ok(Baseline {
            meta,
            history,
            peers,
            ports,
        })
    }

    /// Registers a period's rollup and the addresses each interface owns (`local_addrs`):
    /// what `traffic` and `recent` place rows without a direction by.
    async fn local_view(&self, rollup: &Table) -> Result<()> {
        register(self.ctx, "rollup", rollup)?;
        self.step("addr_shares", &[]).await?;
        self.step("local_addrs", &[]).await?;
        Ok(())
    }

    /// The period's `traffic` and `hour_metrics` from its registered rollup, which is then
    /// dropped; returns the hourly metrics.
    async fn traffic_view(&self) -> Result<Table> {
        self.step("traffic", &[]).await?;
        // The rollup is no longer needed: give its memory back.
        for name in ["rollup", "addr_shares"] {
            self.ctx
                .deregister_table(name)
                .map_err(|e| Error::query("detect", e))?;
        }
        self.step("hour_metrics", &[]).await
    }

    /// Folds a period's summary into a baseline (or starts one): hourly metrics added, peers
    /// and services merged, what was covered recorded.
    pub async fn fold(&self, into: Option<Baseline>, new: Baseline) -> Result<Baseline> {
        let keep_days = into
            .as_ref()
            .map_or(new.meta.keep_days, |b| b.meta.keep_days);
        let Some(old) = into else {
            let mut first = new;
            if let Some(days) = keep_days {
                let keep_since =
                    hour_range(&first.history)?.map_or(EARLIEST, |(_, n)| n - days * DAY);
                first.history = hours_from(&first.history, keep_since)?;
            }
            return Ok(first);
        };
        let (old_hours, new_hours) = (hour_range(&old.history)?, hour_range(&new.history)?);
        let newest = old_hours
            .into_iter()
            .chain(new_hours)
            .map(|(_, last)| last)
            .max();
        let keep_since = match (keep_days, newest) {
            (Some(days), Some(newest)) => newest - days * DAY,
            _ => EARLIEST,
        };
        // A day folded after the days before it shares none of their hours: its metrics are
        // appended, so folding costs a day's rows, not the whole history's (and no copy of
        // the history is held while it runs). An hour met twice (a batch that ended
        // mid-hour, a period folded out of order) is added up in SQL.
        let after = match (old_hours, new_hours) {
            (Some((_, old_last)), Some((new_first, _))) => new_first > old_last,
            _ => true,
        } && same_columns(&old.history, &new.history);
        let mut tables = vec![
            ("peers", &old.peers, &new.peers),
            ("ports", &old.ports, &new.ports),
        ];
        if !after {
            tables.push(("history", &old.history, &new.history));
        }
        for (name, old, new) in &tables {
            register(self.ctx, &format!("old_{name}"), old)?;
            register(self.ctx, &format!("new_{name}"), new)?;
        }
        let keep = [("keep_since", keep_since)];
        let folded_history = async {
            if after {
                appended(&old.history, &new.history, keep_since)
            } else {
                self.step_only("fold_history", &keep).await
            }
        };
        let (history, peers, ports) = futures::try_join!(
            folded_history,
            self.step_only("fold_peers", &[]),
            self.step_only("fold_ports", &[])
        )?;
        for (name, _, _) in &tables {
            for side in ["old", "new"] {
                self.ctx
                    .deregister_table(format!("{side}_{name}").as_str())
                    .map_err(|e| Error::query("detect", e))?;
            }
        }
        let mut meta = old.meta;
        for &(since, until) in &new.meta.covered {
            meta.cover(since, until);
        }
        for batch in &new.meta.batches {
            meta.fold_batch(batch);
        }
        Ok(Baseline {
            meta,
            history,
            peers,
            ports,
        })
    }

    /// The one Int64 value `sql` returns, unless it is NULL.
    async fn scalar(&self, name: &str, sql: &str) -> Result<Option<i64>> {
        let table = run(self.session, name, sql).await?;
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

    /// Runs a step without registering its result.
    async fn step_only(&self, name: &str, values: &[(&str, i64)]) -> Result<Table> {
        self.step_spread(name, values, Spread::Cores).await
    }

    /// [`Pipeline::step_only`], planned as `spread` says if it reads `flows`.
    async fn step_spread(
        &self,
        name: &str,
        values: &[(&str, i64)],
        spread: Spread,
    ) -> Result<Table> {
        let started = Instant::now();
        let sql = self.catalog.step(name, values)?;
        let table = run_spread(self.session, name, &sql, spread).await?;
        tracing::debug!(
            "step {name}: {} rows in {:.2} s",
            table.rows(),
            started.elapsed().as_secs_f64()
        );
        Ok(table)
    }

    /// The first hour and the latest record's end of the period last summarised (records
    /// after now plus a margin aside), if it has any.
    pub async fn span(&self) -> Result<Option<(i64, i64)>> {
        let horizon = crate::time_range::future_horizon();
        let first = self
            .scalar("first hour", "SELECT min(hour) FROM hour_metrics")
            .await?;
        let latest = self
            .scalar(
                "latest",
                &format!(
                    "SELECT max(last_end) FROM traffic \
                     WHERE log_status = 'OK' AND last_end <= {horizon}"
                ),
            )
            .await?;
        Ok(first.zip(latest))
    }

    /// Completes a baseline's description from its tables: the first hour of history and
    /// the interfaces it knows.
    pub async fn describe(&self, baseline: &mut Baseline) -> Result<()> {
        register(self.ctx, "history", &baseline.history)?;
        let first = self
            .scalar("first hour", "SELECT min(hour) FROM history")
            .await?;
        let interfaces = self
            .scalar(
                "interfaces",
                "SELECT CAST(count(DISTINCT interface_id) AS BIGINT) FROM history",
            )
            .await?;
        let newest = self
            .scalar("newest hour", "SELECT max(hour) FROM history")
            .await?;
        let meta = &mut baseline.meta;
        // A scheduled task's baseline covers batches, not periods: it reaches its newest hour.
        meta.until = match meta.covered.last() {
            Some(&(_, until)) => until,
            None => newest.map_or(0, |n| n + HOUR),
        };
        meta.since = first.unwrap_or(meta.until);
        meta.interfaces = interfaces.unwrap_or(0).max(0) as usize;
        Ok(())
    }

    /// Makes `baseline` the one detection compares with, learning its hour-of-day
    /// medians and history per interface from the hourly metrics in `[since, until)`.
    pub async fn use_baseline(&self, baseline: &Baseline, since: i64, until: i64) -> Result<()> {
        register(self.ctx, "history", &baseline.history)?;
        register(self.ctx, "base_peers", &baseline.peers)?;
        register(self.ctx, "base_ports", &baseline.ports)?;
        let values = [("since", since), ("until", until)];
        futures::try_join!(
            self.step("base_enis", &values),
            self.step("base_hours", &values)
        )?;
        Ok(())
    }

    /// Runs every detector over `[start, end)` against the registered baseline, the window
    /// having been summarised last.
    pub async fn detect(&self, start: i64, end: i64, baseline: (i64, i64)) -> Result<DetectReport> {
        let window = window_values(start, end);
        // Independent queries run side by side, as in `summarise`.
        futures::try_join!(
            self.step("recent", &window),
            self.step("deviations", &window),
            self.step("fleet_changes", &window)
        )?;
        self.judge(start, end, baseline).await
    }

    /// Summarises the window `[start, end)` from its rollup, compares it with `baseline`
    /// (learnt over `period`) and runs every detector. The window's records are read one by
    /// one (`recent`) while its traffic is summarised and compared: both need only the
    /// addresses each interface owns, and side by side they keep both cores busy.
    pub async fn examine(
        &self,
        rollup: &Table,
        baseline: &Baseline,
        period: (i64, i64),
        (start, end): (i64, i64),
    ) -> Result<DetectReport> {
        self.local_view(rollup).await?;
        let window = window_values(start, end);
        // The window's own peers and services are not summarised: detection compares with
        // the baseline's.
        let compare = async {
            self.traffic_view().await?;
            self.use_baseline(baseline, period.0, period.1).await?;
            futures::try_join!(
                self.step("deviations", &window),
                self.step("fleet_changes", &window)
            )?;
            Ok::<_, Error>(())
        };
        let recent = async {
            let recent = self.step("recent", &window).await;
            // The window's records, if held for its rollup and for `recent`, are not needed
            // again.
            self.session.release_flows()?;
            recent
        };
        futures::try_join!(recent, compare)?;
        self.judge(start, end, period).await
    }

    /// Runs every detector over `[start, end)` once the window's tables are registered.
    async fn judge(&self, start: i64, end: i64, baseline: (i64, i64)) -> Result<DetectReport> {
        let window = window_values(start, end);
        let found = try_join_all(self.catalog.detectors().iter().map(|detector| async {
            let started = Instant::now();
            let sql = self.catalog.render(detector, &window)?;
            let table = run(self.session, &detector.name, &sql).await?;
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
        let (mut findings, context_notes) = super::enrich::enrich(
            dedupe(found.into_iter().flatten().collect()),
            self.session.enrichment(),
        );
        let incidents = assign_incidents(&mut findings);

        let history = run(
            self.session,
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
                 that need none (port_scan, nacl_return_reject, brute_force) judged them: {}",
                thin.len(),
                thin.join(", ")
            ));
        }
        if interfaces.is_empty() {
            warnings.push("no traffic in the detection window".to_string());
        }
        warnings.extend(context_notes);
        warnings.extend(self.fleet_warnings().await?);
        warnings.extend(self.older_baseline_warning().await?);
        Ok(DetectReport {
            findings,
            incidents,
            window: (start, end),
            baseline,
            interfaces,
            warnings,
        })
    }
}

impl Pipeline<'_> {
    /// A baseline stored by an earlier flowlens has no history of the metrics that came
    /// later: the detectors that compare them stay silent until it has some, and a person
    /// should know why.
    async fn older_baseline_warning(&self) -> Result<Option<String>> {
        let missing = self
            .scalar(
                "baseline metrics",
                &format!(
                    "SELECT CAST(count(*) AS BIGINT) FROM (SELECT DISTINCT metric FROM history) m \
                     RIGHT JOIN (SELECT unnest(make_array({})) AS metric) w ON w.metric = m.metric \
                     WHERE m.metric IS NULL",
                    LATER_METRICS
                        .iter()
                        .map(|(m, _)| format!("'{m}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .await?;
        let empty = self
            .scalar(
                "baseline hours",
                "SELECT CAST(count(*) AS BIGINT) FROM history",
            )
            .await?;
        Ok(match (missing, empty) {
            (Some(n), Some(rows)) if n > 0 && rows > 0 => Some(format!(
                "the baseline has no history of {}: it was stored by an earlier flowlens, so {} \
                 stay silent until `flowlens baseline --update` has folded in days with them \
                 (or the baseline is built again)",
                LATER_METRICS
                    .iter()
                    .map(|(m, _)| *m)
                    .collect::<Vec<_>>()
                    .join(" and "),
                LATER_METRICS
                    .iter()
                    .map(|(_, d)| *d)
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
            _ => None,
        })
    }

    /// One line per network the fleet started on together (`fleet_changes`): not flagged,
    /// but a person should know.
    async fn fleet_warnings(&self) -> Result<Vec<String>> {
        let table = run(
            self.session,
            "fleet changes",
            "SELECT remote_net, CAST(first_hour AS BIGINT) AS hour, CAST(max(interfaces) AS BIGINT) AS n \
             FROM fleet_changes GROUP BY remote_net, first_hour ORDER BY first_hour, remote_net",
        )
        .await?;
        let mut warnings = Vec::new();
        for batch in &table.batches {
            let nets = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>();
            let hours = batch
                .column(1)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>();
            let counts = batch
                .column(2)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>();
            if let (Some(nets), Some(hours), Some(counts)) = (nets, hours, counts) {
                for i in 0..batch.num_rows() {
                    warnings.push(format!(
                        "{} interfaces started talking to {} in the hour from {}: a change across \
                         the fleet (a deployment?), not flagged as new peers, ports or beacons",
                        counts.value(i),
                        nets.value(i),
                        crate::time_range::format_time(hours.value(i))
                    ));
                }
            }
        }
        Ok(warnings)
    }
}

/// The first and last hour of a history table, if it has rows.
fn hour_range(history: &Table) -> Result<Option<(i64, i64)>> {
    let mut range: Option<(i64, i64)> = None;
    for batch in &history.batches {
        let hours = hour_column(batch)?;
        if let (Some(first), Some(last)) = (arrow::compute::min(hours), arrow::compute::max(hours))
        {
            range = Some(match range {
                Some((a, b)) => (a.min(first), b.max(last)),
                None => (first, last),
            });
        }
    }
    Ok(range)
}

fn hour_column(batch: &arrow::array::RecordBatch) -> Result<&arrow::array::Int64Array> {
    batch
        .column_by_name("hour")
        .and_then(|c| c.as_any().downcast_ref::<arrow::array::Int64Array>())
        .ok_or_else(|| Error::invalid("baseline history", "no Int64 column `hour`"))
}

fn history_error(source: arrow::error::ArrowError) -> Error {
    Error::Arrow {
        location: "baseline history".to_string(),
        source,
    }
}

/// The rows of a history table from `keep_since` on.
fn hours_from(history: &Table, keep_since: i64) -> Result<Table> {
    let mut batches = Vec::with_capacity(history.batches.len());
    for batch in &history.batches {
        let hours = hour_column(batch)?;
        if arrow::compute::min(hours).is_some_and(|first| first >= keep_since) {
            batches.push(batch.clone());
            continue;
        }
        let keep = arrow::compute::kernels::cmp::gt_eq(
            hours,
            &arrow::array::Int64Array::new_scalar(keep_since),
        )
        .map_err(history_error)?;
        let kept = arrow::compute::filter_record_batch(batch, &keep).map_err(history_error)?;
        if kept.num_rows() > 0 {
            batches.push(kept);
        }
    }
    Ok(Table {
        schema: history.schema.clone(),
        batches,
    })
}

/// Whether two tables have the same columns (names and types; nullability aside).
fn same_columns(a: &Table, b: &Table) -> bool {
    a.schema.fields().len() == b.schema.fields().len()
        && a.schema
            .fields()
            .iter()
            .zip(b.schema.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
}

/// `new`'s hourly metrics after `old`'s, both from `keep_since` on. The new rows are
/// copied into one tight batch, so the history holds no buffers of the queries that made
/// them; columns are nullable where either side's are (a stored and a computed table can
/// differ there). The two have the same columns ([`same_columns`]).
fn appended(old: &Table, new: &Table, keep_since: i64) -> Result<Table> {
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(
        old.schema
            .fields()
            .iter()
            .zip(new.schema.fields())
            .map(|(a, b)| {
                a.as_ref()
                    .clone()
                    .with_nullable(a.is_nullable() || b.is_nullable())
            })
            .collect::<Vec<_>>(),
    ));
    let recast = |batch: &arrow::array::RecordBatch| {
        arrow::array::RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
            .map_err(history_error)
    };
    let mut batches = Vec::new();
    for batch in &hours_from(old, keep_since)?.batches {
        batches.push(recast(batch)?);
    }
    let fresh = hours_from(new, keep_since)?;
    if fresh.rows() > 0 {
        let tight =
            arrow::compute::concat_batches(&fresh.schema, &fresh.batches).map_err(history_error)?;
        batches.push(recast(&tight)?);
    }
    Ok(Table { schema, batches })
}

/// The detection window when none is given: the last day of data, in whole hours.
pub fn default_window(latest: i64) -> (i64, i64) {
    let end = (latest + HOUR - 1).div_euclid(HOUR) * HOUR;
    (end - DAY, end)
}

/// A broad finding that a more specific one explains is dropped: a volume spike during an
/// attack that moves traffic (a DoS, an exfiltration, a scan, a flood, DNS tunnelling, an
/// ACL dropping replies), a reject spike during a scan, brute force, DoS or ACL problem.
fn dedupe(findings: Vec<Finding>) -> Vec<Finding> {
    let explained_by = |kind: &str| -> &[&str] {
        match kind {
            "volume_spike" => &[
                "dos",
                "exfiltration",
                "outbound_dos",
                "outbound_scan",
                "outbound_brute_force",
                "dns_anomaly",
                "nacl_return_reject",
                "brute_force",
            ],
            "reject_spike" => &["port_scan", "brute_force", "dos", "nacl_return_reject"],
            _ => &[],
        }
    };
    // The same traffic seen two ways: a flood to a new address is also bytes to a new network.
    // outbound_dos leaves bulk TCP transfers to exfiltration, so where both name one remote
    // it is the flood.
    let explained_by_same_remote = |kind: &str| -> &[&str] {
        match kind {
            "exfiltration" => &["outbound_dos"],
            _ => &[],
        }
    };
    let shares_remote = |f: &Finding, g: &Finding| {
        let remotes = |x: &Finding| {
            x.evidence
                .get("remote_addrs")
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let theirs = remotes(g);
        remotes(f).iter().any(|r| theirs.contains(r))
    };
    let mut kept: Vec<Finding> = findings
        .iter()
        .filter(|f| {
            !findings.iter().any(|g| {
                g.overlaps(f)
                    && (explained_by(&f.kind).contains(&g.kind.as_str())
                        || (explained_by_same_remote(&f.kind).contains(&g.kind.as_str())
                            && shares_remote(f, g)))
            })
        })
        .cloned()
        .collect();
    kept.sort_by(|a, b| {
        a.window_start
            .cmp(&b.window_start)
            .then(b.severity.cmp(&a.severity))
            .then(a.interface_id.cmp(&b.interface_id))
            .then(a.kind.cmp(&b.kind))
            // Findings of one kind in one window (brute force from several addresses) in a
            // stable order, whatever order the query returned them in.
            .then(a.finding_id.cmp(&b.finding_id))
    });
    kept
}

/// Whether any finding is at or above `severity` (for `--fail-on`).
pub fn any_at_or_above(findings: &[Finding], severity: Severity) -> bool {
    findings.iter().any(|f| f.severity >= severity)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{RecordBatch, StringArray};

    use super::*;

    fn rollup(rows: &[[Option<&str>; 3]]) -> Table {
        let column = |i: usize| Arc::new(StringArray::from_iter(rows.iter().map(|r| r[i]))) as _;
        let batch = RecordBatch::try_from_iter([
            ("flow_direction", column(0)),
            ("srcaddr", column(1)),
            ("dstaddr", column(2)),
        ])
        .unwrap();
        Table {
            schema: batch.schema(),
            batches: vec![batch],
        }
    }

    #[test]
    fn only_rows_with_an_address_and_no_direction_need_the_interfaces_addresses() {
        let directed = [Some("ingress"), Some("10.0.0.1"), Some("10.0.0.2")];
        let nodata = [None, None, None];
        let undirected = [None, Some("10.0.0.1"), Some("10.0.0.2")];
        let half = [None, None, Some("10.0.0.2")];
        assert!(every_row_has_a_direction(&rollup(&[directed, directed])));
        // NODATA and SKIPDATA records carry no field at all: no address to place them by.
        assert!(every_row_has_a_direction(&rollup(&[directed, nodata])));
        assert!(!every_row_has_a_direction(&rollup(&[directed, undirected])));
        assert!(!every_row_has_a_direction(&rollup(&[nodata, half])));
        assert!(every_row_has_a_direction(&rollup(&[])));
        // A table without the columns (never a rollup) is not taken for a directed one.
        let other = Table {
            schema: Arc::new(arrow::datatypes::Schema::empty()),
            batches: Vec::new(),
        };
        assert!(!every_row_has_a_direction(&other));
    }
}
