//! Measuring detection on an archive with labelled incidents (`flowlens generate
//! --incidents`): which incidents were found, and how many findings had no incident behind
//! them, per kind and per interface-day of traffic examined.

use std::path::Path;

use chrono::DateTime;
use serde::Deserialize;

use super::catalog::DetectCatalog;
use super::finding::Finding;
use super::pipeline::{DAY, Pipeline, default_window};
use crate::error::{Error, Result};
use crate::query::FlowsSession;

/// A labelled incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub kind: String,
    pub interface_id: String,
    pub start: i64,
    pub end: i64,
}

#[derive(Deserialize)]
struct LabelLine {
    kind: String,
    interface_id: String,
    window_start: String,
    window_end: String,
}

/// Reads a labels file: one JSON object per line with kind, interface_id, window_start and
/// window_end (RFC 3339).
pub fn read_labels(path: &Path) -> Result<Vec<Label>> {
    let location = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(&location, e))?;
    let time = |s: &str, line: usize| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp())
            .map_err(|e| Error::invalid(format!("{location}:{line}"), format!("`{s}`: {e}")))
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let parsed: LabelLine = serde_json::from_str(line)
                .map_err(|e| Error::invalid(format!("{location}:{}", i + 1), e.to_string()))?;
            Ok(Label {
                start: time(&parsed.window_start, i + 1)?,
                end: time(&parsed.window_end, i + 1)?,
                kind: parsed.kind,
                interface_id: parsed.interface_id,
            })
        })
        .collect()
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindScore {
    pub kind: String,
    pub labelled: usize,
    pub found: usize,
    pub false_alarms: usize,
}

#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    pub per_kind: Vec<KindScore>,
    /// Interface-days of traffic examined.
    pub eni_days: f64,
    pub missed: Vec<Label>,
    pub false_alarms: Vec<Finding>,
    pub findings: usize,
    /// Incidents with a labelled attack behind them, and labels with a finding behind
    /// them: their ratio is how many incidents a person sees per attack.
    pub attack_incidents: usize,
    pub attacks_found: usize,
    pub windows: Vec<(i64, i64)>,
}

impl Evaluation {
    pub fn false_alarms_per_100_eni_days(&self) -> f64 {
        if self.eni_days == 0.0 {
            0.0
        } else {
            self.false_alarms.len() as f64 * 100.0 / self.eni_days
        }
    }

    /// Incidents a person sees per labelled attack found (1.0 is one each).
    pub fn incidents_per_attack(&self) -> f64 {
        if self.attacks_found == 0 {
            0.0
        } else {
            self.attack_incidents as f64 / self.attacks_found as f64
        }
    }
}

/// Findings and labels are matched with an hour's slack either side.
const SLACK: i64 = 3600;

fn matches(f: &Finding, l: &Label) -> bool {
    f.interface_id == l.interface_id
        && f.window_start < l.end + SLACK
        && l.start - SLACK < f.window_end
}

/// Runs detection over each of the last `days` days of the archive (each against the
/// `baseline_days` before it) and scores the findings against `labels`. A finding that
/// overlaps a labelled incident on the same interface is not a false alarm whatever its
/// kind (a beacon is also a new peer); an incident is found only by a finding of its kind.
pub async fn evaluate(
    session: &FlowsSession,
    catalog: &DetectCatalog,
    labels: &[Label],
    days: i64,
    baseline_days: i64,
) -> Result<Evaluation> {
    let pipeline = Pipeline::new(session, catalog);
    let Some(latest) = pipeline.latest(None).await? else {
        return Err(Error::invalid(
            "evaluate",
            "no flow log records in the sources",
        ));
    };
    let (_, last_end) = default_window(latest);
    let days = days.max(1);
    // Each day on the windows' grid is summarised once; every window's baseline is the fold
    // of the summaries of the days before it.
    let first = last_end - (days + baseline_days) * DAY;
    let mut summaries = Vec::new();
    for k in 0..days + baseline_days - 1 {
        let since = first + k * DAY;
        summaries.push(pipeline.summarise(since, since + DAY).await?);
    }
    let mut evaluation = Evaluation::default();
    let mut findings: Vec<Finding> = Vec::new();
    for d in 0..days {
        let start = first + (baseline_days + d) * DAY;
        let end = start + DAY;
        let mut baseline = None;
        for summary in &summaries[d as usize..(d + baseline_days) as usize] {
            baseline = Some(pipeline.fold(baseline, summary.clone()).await?);
        }
        let Some(baseline) = baseline else { continue };
        let rollup = pipeline.window_rollup(start, end).await?;
        let report = pipeline
            .examine(
                &rollup,
                &baseline,
                (start - baseline_days * DAY, start),
                (start, end),
            )
            .await;
        // The window's records, if held for its rollup, go back whatever happened, as in
        // `detect`: an error before `recent` read them must not leave `flows` serving them to
        // whatever the caller runs next on this session.
        session.release_flows()?;
        let report = report?;
        for warning in &report.warnings {
            tracing::warn!("{} .. {}: {warning}", start, end);
        }
        evaluation.eni_days += report.interfaces.len() as f64;
        evaluation.windows.push((start, end));
        findings.extend(report.findings);
    }
    let mut kinds: Vec<String> = catalog.detectors().iter().map(|d| d.name.clone()).collect();
    kinds.sort();
    for kind in kinds {
        let labelled: Vec<&Label> = labels.iter().filter(|l| l.kind == kind).collect();
        let found = labelled
            .iter()
            .filter(|l| findings.iter().any(|f| f.kind == kind && matches(f, l)))
            .count();
        let false_alarms = findings
            .iter()
            .filter(|f| f.kind == kind && !labels.iter().any(|l| matches(f, l)))
            .count();
        evaluation.per_kind.push(KindScore {
            kind,
            labelled: labelled.len(),
            found,
            false_alarms,
        });
    }
    evaluation.missed = labels
        .iter()
        .filter(|l| !findings.iter().any(|f| f.kind == l.kind && matches(f, l)))
        .cloned()
        .collect();
    evaluation.false_alarms = findings
        .iter()
        .filter(|f| !labels.iter().any(|l| matches(f, l)))
        .cloned()
        .collect();
    evaluation.findings = findings.len();
    // Incidents were numbered per window; a finding's incident with any label behind it.
    let mut incidents = std::collections::BTreeSet::new();
    for f in &findings {
        if labels.iter().any(|l| matches(f, l))
            && let Some(id) = &f.incident_id
        {
            incidents.insert(id.clone());
        }
    }
    evaluation.attack_incidents = incidents.len();
    evaluation.attacks_found = labels
        .iter()
        .filter(|l| findings.iter().any(|f| matches(f, l)))
        .count();
    Ok(evaluation)
}
