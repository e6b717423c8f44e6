//! A finding (CONTRACT in DESIGN.md): what was seen, where, when, how far from normal, and
//! the numbers that say why. Serialised as JSON lines, or as OCSF Detection Findings.

use std::fmt;

use arrow::array::RecordBatch;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::time_range::format_time;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// OCSF severity_id: 2 low, 3 medium, 4 high, 5 critical.
    fn ocsf_id(self) -> u8 {
        self as u8 + 2
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub finding_id: String,
    /// The incident it belongs to (findings of one interface that tell one story).
    pub incident_id: Option<String>,
    pub kind: String,
    pub severity: Severity,
    pub interface_id: String,
    pub account_id: Option<String>,
    pub vpc_id: Option<String>,
    /// Unix seconds.
    pub window_start: i64,
    pub window_end: i64,
    pub score: f64,
    pub summary: String,
    /// observed, baseline, remote_addrs, ports, and what else the detector measured.
    pub evidence: Map<String, Value>,
}

/// The columns every detector returns; the rest are evidence.
const TOP_LEVEL: &[&str] = &[
    "kind",
    "interface_id",
    "account_id",
    "vpc_id",
    "window_start",
    "window_end",
    "score",
    "severity",
    "summary",
];

fn stable_hash(text: &str) -> String {
    crate::stable_hash::stable_hash(text).hex()
}

impl Finding {
    /// Reads a detector's result rows.
    pub(crate) fn from_batches(detector: &str, batches: &[RecordBatch]) -> Result<Vec<Finding>> {
        let location = format!("detector {detector}");
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        writer
            .write_batches(&refs)
            .and_then(|_| writer.finish())
            .map_err(|source| Error::Arrow {
                location: location.clone(),
                source,
            })?;
        let bytes = writer.into_inner();
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<Map<String, Value>> = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(&location, format!("unreadable result: {e}")))?;
        rows.into_iter()
            .map(|mut row| {
                let text = |row: &Map<String, Value>, key: &str| {
                    row.get(key).and_then(Value::as_str).map(str::to_string)
                };
                let int = |row: &Map<String, Value>, key: &str| {
                    row.get(key).and_then(Value::as_f64).map(|v| v as i64)
                };
                let missing = |what: &str| Error::invalid(&location, format!("row without {what}"));
                let kind = text(&row, "kind").ok_or_else(|| missing("kind"))?;
                let interface_id =
                    text(&row, "interface_id").ok_or_else(|| missing("interface_id"))?;
                let window_start =
                    int(&row, "window_start").ok_or_else(|| missing("window_start"))?;
                let window_end = int(&row, "window_end").unwrap_or(window_start);
                let severity = text(&row, "severity")
                    .and_then(|s| Severity::parse(&s))
                    .ok_or_else(|| missing("a severity of low, medium, high or critical"))?;
                let first_remote = row
                    .get("remote_addrs")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let finding = Finding {
                    finding_id: stable_hash(&format!(
                        "{kind}|{interface_id}|{window_start}|{first_remote}"
                    )),
                    incident_id: None,
                    severity,
                    account_id: text(&row, "account_id"),
                    vpc_id: text(&row, "vpc_id"),
                    window_start,
                    window_end,
                    score: row.get("score").and_then(Value::as_f64).unwrap_or(0.0),
                    summary: text(&row, "summary").unwrap_or_default(),
                    evidence: Map::new(),
                    kind,
                    interface_id,
                };
                for key in TOP_LEVEL {
                    row.remove(*key);
                }
                Ok(Finding {
                    evidence: row,
                    ..finding
                })
            })
            .collect()
    }

    pub fn overlaps(&self, other: &Finding) -> bool {
        self.interface_id == other.interface_id
            && self.window_start < other.window_end
            && other.window_start < self.window_end
    }

    /// The CONTRACT's JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "finding_id": self.finding_id,
            "kind": self.kind,
            "severity": self.severity.as_str(),
            "interface_id": self.interface_id,
            "account_id": self.account_id,
            "vpc_id": self.vpc_id,
            "window_start": format_time(self.window_start),
            "window_end": format_time(self.window_end),
            "score": (self.score * 100.0).round() / 100.0,
            "summary": self.summary,
            "incident_id": self.incident_id,
            "evidence": self.evidence,
        })
    }

    /// An OCSF 1.x Detection Finding (class 2004) for Security Lake and SIEMs.
    pub fn to_ocsf(&self, now_ms: i64) -> Value {
        let title = format!("{} on {}", self.kind.replace('_', " "), self.interface_id);
        let mut resource = json!({
            "uid": self.interface_id,
            "type": "AWS::EC2::NetworkInterface",
        });
        if let Some(vpc) = &self.vpc_id {
            resource["group"] = json!({ "uid": vpc, "type": "AWS::EC2::VPC" });
        }
        json!({
            "class_uid": 2004,
            "class_name": "Detection Finding",
            "category_uid": 2,
            "category_name": "Findings",
            "activity_id": 1,
            "activity_name": "Create",
            "type_uid": 200401,
            "type_name": "Detection Finding: Create",
            "time": self.window_end.saturating_mul(1000),
            "start_time": self.window_start.saturating_mul(1000),
            "end_time": self.window_end.saturating_mul(1000),
            "severity_id": self.severity.ocsf_id(),
            "severity": capitalise(self.severity.as_str()),
            "status_id": 1,
            "status": "New",
            "confidence_score": self.score.round().clamp(0.0, 100.0) as i64,
            "message": self.summary,
            "finding_info": {
                "uid": self.finding_id,
                "title": title,
                "desc": self.summary,
                "types": [self.kind],
                "created_time": now_ms,
                "analytic": { "name": self.kind, "type_id": 1, "type": "Rule" },
            },
            "metadata": {
                "version": "1.3.0",
                "product": {
                    "name": "flowlens",
                    "vendor_name": "flowlens",
                    "version": env!("CARGO_PKG_VERSION"),
                },
            },
            "cloud": {
                "provider": "AWS",
                "account": { "uid": self.account_id, "type": "AWS Account", "type_id": 10 },
            },
            "resources": [resource],
            "unmapped": { "evidence": self.evidence, "incident_id": self.incident_id },
        })
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// How findings are written: for people, or one JSON object per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingsFormat {
    /// Two lines per finding, for a terminal.
    Table,
    /// One CONTRACT finding per line.
    Jsonl,
    /// OCSF 1.3 Detection Findings (class 2004), one per line.
    Ocsf,
}

/// The text of `findings` in `format`, for `detect` and the scheduled task alike. `now_ms`
/// is the OCSF finding's `time`; the scheduled task passes the window's end so a batch
/// written again is written the same.
pub fn render_findings(
    findings: &[Finding],
    format: FindingsFormat,
    now_ms: Option<i64>,
) -> String {
    match format {
        FindingsFormat::Jsonl => findings
            .iter()
            .map(|f| format!("{}\n", f.to_json()))
            .collect(),
        FindingsFormat::Ocsf => findings
            .iter()
            .map(|f| {
                let time = now_ms.unwrap_or(f.window_end.saturating_mul(1000));
                format!("{}\n", f.to_ocsf(time))
            })
            .collect(),
        FindingsFormat::Table => {
            if findings.is_empty() {
                return "no findings\n".to_string();
            }
            let mut out = String::new();
            for f in findings {
                out.push_str(&format!(
                    "{:<8} {:<18} {} {}  {}\n         {}\n",
                    f.severity.as_str().to_uppercase(),
                    f.kind,
                    format_time(f.window_start),
                    f.interface_id,
                    f.finding_id,
                    f.summary
                ));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_values_still_give_one_line_of_json() {
        // Found by reasoning about the findings fuzz target: times past i64::MAX / 1000
        // overflowed the OCSF milliseconds.
        let f = Finding {
            finding_id: "0".into(),
            incident_id: None,
            kind: "dos\n\"x".into(),
            severity: Severity::High,
            interface_id: "eni-\u{1b}[2J".into(),
            account_id: None,
            vpc_id: None,
            window_start: i64::MIN,
            window_end: i64::MAX,
            score: f64::NAN,
            summary: String::new(),
            evidence: Map::new(),
        };
        for line in [f.to_json().to_string(), f.to_ocsf(i64::MAX).to_string()] {
            assert!(!line.contains('\n'));
            let back: Value = serde_json::from_str(&line).unwrap();
            assert!(back.is_object());
        }
        assert_eq!(f.to_ocsf(0)["time"], i64::MAX);
    }

    #[test]
    fn ids_are_stable_and_severities_ordered() {
        assert_eq!(
            stable_hash("port_scan|eni-1|100|"),
            stable_hash("port_scan|eni-1|100|")
        );
        assert_ne!(
            stable_hash("port_scan|eni-1|100|"),
            stable_hash("port_scan|eni-1|160|")
        );
        assert_eq!(stable_hash(""), "cbf29ce484222325");
        assert!(Severity::Critical > Severity::High && Severity::Medium > Severity::Low);
        assert_eq!(Severity::High.ocsf_id(), 4);
    }
}
