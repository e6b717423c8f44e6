//! The detection SQL compiled into flowlens: the steps that build the shared tables and
//! baselines, and one file per finding kind. Thresholds are the files' `-- param:` headers;
//! their defaults are the documented defaults, and `--param kind.name=value` or a TOML
//! file overrides them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::query::{NamedQuery, QueryOrigin, QueryParam, literal};

macro_rules! sql {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../queries/detect/", $dir, $name, ".sql")))),*]
    };
}

/// Steps, in the order they run.
static STEPS: &[(&str, &str)] = sql!["steps/":
    "window_records", "rollup", "addr_shares", "local_addrs", "traffic", "hour_metrics", "base_enis", "base_hours", "base_peers",
    "base_ports", "recent", "deviations", "fleet_changes",
];

/// How a baseline takes in a new period's summary.
static FOLDS: &[(&str, &str)] = sql!["fold/": "fold_history", "fold_peers", "fold_ports"];

/// One detector per finding kind (the CONTRACT's kinds).
static DETECTORS: &[(&str, &str)] = sql!["":
    "port_scan", "brute_force", "dos", "exfiltration", "volume_spike", "unusual_port",
    "new_peer", "beaconing", "nacl_return_reject", "reject_spike", "outbound_scan",
    "outbound_brute_force", "outbound_dos", "dns_anomaly",
];

/// Parameters the pipeline sets itself; they are not user thresholds.
pub(crate) const PIPELINE_PARAMS: &[&str] =
    &["since", "until", "window_start", "window_end", "keep_since"];

/// The detection SQL with the user's threshold overrides applied.
#[derive(Clone, Debug)]
pub struct DetectCatalog {
    steps: BTreeMap<&'static str, NamedQuery>,
    detectors: Vec<NamedQuery>,
    /// `detector.param` -> value
    overrides: BTreeMap<String, String>,
}

impl DetectCatalog {
    pub fn builtin() -> Result<Self> {
        let parse = |(name, text): &(&'static str, &str)| -> Result<(&'static str, NamedQuery)> {
            Ok((*name, NamedQuery::parse(text, QueryOrigin::Builtin)?))
        };
        Ok(DetectCatalog {
            steps: STEPS
                .iter()
                .chain(FOLDS)
                .map(parse)
                .collect::<Result<_>>()?,
            detectors: DETECTORS
                .iter()
                .map(|d| parse(d).map(|(_, q)| q))
                .collect::<Result<_>>()?,
            overrides: BTreeMap::new(),
        })
    }

    pub fn detectors(&self) -> &[NamedQuery] {
        &self.detectors
    }

    /// The hourly metric a report charts beside findings of `kind` (its `-- chart:` header).
    pub fn chart_metric(&self, kind: &str) -> Option<&str> {
        self.detectors
            .iter()
            .find(|d| d.name == kind)
            .and_then(|d| d.chart.as_deref())
    }

    /// Sets `detector.param` (or `step.param`) to `value`, checking that it exists.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let (query, param) = key.split_once('.').ok_or_else(|| {
            Error::invalid(format!("--param {key}"), "write it as DETECTOR.PARAM=VALUE")
        })?;
        let found = self
            .detectors
            .iter()
            .chain(self.steps.values())
            .find(|q| q.name == query)
            .ok_or_else(|| {
                Error::invalid(format!("--param {key}"), format!("no detector `{query}`"))
            })?;
        if PIPELINE_PARAMS.contains(&param) || !found.params.iter().any(|p| p.name == param) {
            let names: Vec<&str> = found
                .params
                .iter()
                .map(|p| p.name.as_str())
                .filter(|n| !PIPELINE_PARAMS.contains(n))
                .collect();
            return Err(Error::invalid(
                format!("--param {key}"),
                format!(
                    "`{query}` has no threshold `{param}`; it has: {}",
                    names.join(", ")
                ),
            ));
        }
        // Checked now, so a bad value is a usage error before any data is read. Thresholds
        // count and measure: none is negative, whatever its header says.
        if let Some(declared) = found.params.iter().find(|p| p.name == param) {
            let checked = QueryParam {
                min: declared.min.or(Some(0)),
                ..declared.clone()
            };
            literal(&checked, value)
                .map_err(|reason| Error::invalid(format!("--param {key}"), reason))?;
        }
        self.overrides.insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// Reads overrides from a TOML file: `[port_scan]` then `min_ports = 20`.
    pub fn load_toml(&mut self, path: &Path) -> Result<()> {
        let location = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(&location, e))?;
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| Error::invalid(&location, e.to_string()))?;
        for (query, params) in &table {
            let params = params.as_table().ok_or_else(|| {
                Error::invalid(
                    &location,
                    format!("`{query}` must be a [table] of thresholds"),
                )
            })?;
            for (param, value) in params {
                let text = match value {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Array(items) => items
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                self.set(&format!("{query}.{param}"), &text)
                    .map_err(|e| Error::invalid(&location, e.to_string()))?;
            }
        }
        Ok(())
    }

    /// A step's SQL with pipeline values and overrides.
    pub(crate) fn step(&self, name: &str, values: &[(&str, i64)]) -> Result<String> {
        let query = self
            .steps
            .get(name)
            .ok_or_else(|| Error::invalid("detect", format!("no step `{name}`")))?;
        self.render(query, values)
    }

    pub(crate) fn render(&self, query: &NamedQuery, values: &[(&str, i64)]) -> Result<String> {
        let mut params: Vec<(String, String)> = values
            .iter()
            .filter(|(name, _)| query.params.iter().any(|p| p.name == *name))
            .map(|(name, v)| (name.to_string(), v.to_string()))
            .collect();
        let prefix = format!("{}.", query.name);
        for (key, value) in &self.overrides {
            if let Some(param) = key.strip_prefix(&prefix) {
                params.push((param.to_string(), value.clone()));
            }
        }
        query.render(&params)
    }

    /// `detector.param = default: description` for every user threshold.
    pub fn describe(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for query in self.detectors.iter().chain(self.steps.values()) {
            for p in &query.params {
                if PIPELINE_PARAMS.contains(&p.name.as_str()) {
                    continue;
                }
                let key = format!("{}.{}", query.name, p.name);
                let value = self
                    .overrides
                    .get(&key)
                    .cloned()
                    .or_else(|| p.default.clone())
                    .unwrap_or_default();
                out.push((key, value, p.doc.clone()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_checked_when_set() {
        let mut catalog = DetectCatalog::builtin().unwrap();
        let zero = catalog
            .set("port_scan.bucket_seconds", "0")
            .unwrap_err()
            .to_string();
        assert!(zero.contains("below its least value, 1"), "{zero}");
        let negative = catalog
            .set("port_scan.min_ports", "-3")
            .unwrap_err()
            .to_string();
        assert!(negative.contains("below its least value, 0"), "{negative}");
        let text = catalog
            .set("port_scan.min_ports", "many")
            .unwrap_err()
            .to_string();
        assert!(text.contains("is not a whole number"), "{text}");
        catalog.set("port_scan.min_ports", "20").unwrap();
    }

    #[test]
    fn every_detect_file_is_compiled_in() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/detect");
        let names = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .filter_map(|e| {
                    let p = e.unwrap().path();
                    (p.extension()? == "sql")
                        .then(|| p.file_stem().unwrap().to_string_lossy().into())
                })
                .collect();
            v.sort();
            v
        };
        let mut detectors: Vec<String> = DETECTORS.iter().map(|(n, _)| n.to_string()).collect();
        detectors.sort();
        assert_eq!(names(&dir), detectors);
        let mut steps: Vec<String> = STEPS.iter().map(|(n, _)| n.to_string()).collect();
        steps.sort();
        assert_eq!(names(&dir.join("steps")), steps);
        let mut folds: Vec<String> = FOLDS.iter().map(|(n, _)| n.to_string()).collect();
        folds.sort();
        assert_eq!(names(&dir.join("fold")), folds);
        let catalog = DetectCatalog::builtin().unwrap();
        assert_eq!(catalog.detectors().len(), 14);
    }

    #[test]
    fn overrides_are_checked() {
        let mut catalog = DetectCatalog::builtin().unwrap();
        catalog.set("port_scan.min_ports", "20").unwrap();
        assert!(catalog.describe().contains(&(
            "port_scan.min_ports".to_string(),
            "20".to_string(),
            "distinct ports of one interface in one window".to_string()
        )));
        let err = catalog.set("port_scan.nope", "1").unwrap_err().to_string();
        assert!(
            err.contains("has no threshold `nope`; it has: bucket_seconds, min_ports"),
            "{err}"
        );
        assert!(catalog.set("nope.x", "1").is_err());
        assert!(catalog.set("port_scan.window_start", "1").is_err());
    }
}
