//! A stored baseline and the one store that keeps it, for `flowlens baseline`,
//! `detect --baseline` and the scheduled task alike.
//!
//! A baseline is the fold of per-period summaries (a day's, or a scheduled batch's): the
//! hourly metrics of every interface, its peers and its services. Those three tables are
//! what is stored; the hour-of-day medians and the history per interface are derived from
//! them when detection needs them. Because a fold only ever adds, a stored baseline can be
//! extended with new days without touching the old ones, and what was folded is recorded
//! so nothing is folded twice.
//!
//! Layout, in a folder or under an `s3://` prefix:
//! `baseline.json` (the pointer: format, version, what is covered) and
//! `v<version>/{history,peers,ports}.parquet`. A save writes the new version's tables first
//! and switches the pointer last, in one atomic write: a crash leaves the old baseline
//! whole, and a reader never sees half of a new one.

use serde::{Deserialize, Serialize};

use super::tables::{Table, from_parquet, to_parquet};
use crate::error::{Error, Result};
use crate::source::{S3Options, Store};

/// The layout of the stored tables. A baseline of another format is refused with the way to
/// rebuild it, never read as if it were this one. Format 1 (flowlens before 0.2) stored
/// derived tables (`base_*.parquet`) that cannot be extended.
pub const BASELINE_FORMAT: u32 = 2;

/// The stored tables, in the order of [`Baseline::tables`].
const TABLES: [&str; 3] = ["history", "peers", "ports"];

const POINTER: &str = "baseline.json";

/// Baselines written before the format field are format 1.
fn first_format() -> u32 {
    1
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineMeta {
    /// [`BASELINE_FORMAT`] when written.
    #[serde(default = "first_format")]
    pub format: u32,
    /// The version whose tables the pointer names; each save writes the next.
    #[serde(default)]
    pub version: u64,
    /// The period learnt from, Unix seconds: the first hour of history and the end of what
    /// is covered.
    #[serde(default)]
    pub since: i64,
    #[serde(default)]
    pub until: i64,
    #[serde(default)]
    pub interfaces: usize,
    /// Periods of records folded in, `[since, until)` by record end, sorted and merged:
    /// `baseline --update` folds only what lies outside them.
    #[serde(default)]
    pub covered: Vec<(i64, i64)>,
    /// Scheduled batches folded in (the most recent thousand): a batch is folded once.
    #[serde(default)]
    pub batches: Vec<String>,
    /// Hourly metrics older than this many days before the newest are dropped at each fold
    /// (the scheduled task's sliding baseline); none keeps them all.
    #[serde(default)]
    pub keep_days: Option<i64>,
    #[serde(default)]
    pub flowlens_version: String,
}

impl BaselineMeta {
    /// Whether `[since, until)` is already folded in whole.
    pub fn covers(&self, since: i64, until: i64) -> bool {
        self.covered.iter().any(|&(a, b)| a <= since && until <= b)
    }

    /// The parts of `[since, until)` not yet folded in.
    pub fn uncovered(&self, since: i64, until: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut at = since;
        for &(a, b) in &self.covered {
            if b <= at || a >= until {
                continue;
            }
            if a > at {
                out.push((at, a.min(until)));
            }
            at = at.max(b);
            if at >= until {
                break;
            }
        }
        if at < until {
            out.push((at, until));
        }
        out
    }

    /// Records `[since, until)` as folded in.
    pub fn cover(&mut self, since: i64, until: i64) {
        if since >= until {
            return;
        }
        self.covered.push((since, until));
        self.covered.sort();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for &(a, b) in &self.covered {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.covered = merged;
    }

    /// Records a scheduled batch as folded in.
    pub fn fold_batch(&mut self, batch: &str) {
        self.batches.push(batch.to_string());
        let excess = self.batches.len().saturating_sub(1000);
        self.batches.drain(..excess);
    }
}

/// Per-interface hourly metrics, peers and services: a period's summary, or the fold of
/// many (a baseline).
#[derive(Clone, Debug)]
pub struct Baseline {
    pub meta: BaselineMeta,
    /// `hour_metrics` rows: interface, hour, metric, value.
    pub history: Table,
    /// `base_peers` rows.
    pub peers: Table,
    /// `base_ports` rows.
    pub ports: Table,
}

impl Baseline {
    pub fn tables(&self) -> [&Table; 3] {
        [&self.history, &self.peers, &self.ports]
    }
}

/// Where a baseline is kept: a folder or an `s3://` prefix.
pub struct BaselineStore {
    store: Store,
    /// What to tell a user whose stored baseline cannot be read.
    rebuild: String,
}

impl BaselineStore {
    /// The baseline at `location`; `rebuild` says how to make a new one there.
    pub async fn open(location: &str, s3: &S3Options, rebuild: &str) -> Result<Self> {
        Ok(BaselineStore {
            store: Store::open(location, "baseline", s3).await?,
            rebuild: rebuild.to_string(),
        })
    }

    pub fn with_store(store: Store, rebuild: &str) -> Self {
        BaselineStore {
            store,
            rebuild: rebuild.to_string(),
        }
    }

    pub fn location(&self) -> String {
        self.store.location("")
    }

    fn refuse(&self, at: &str, why: String) -> Error {
        Error::invalid(at, format!("{why}; {}", self.rebuild))
    }

    /// The stored baseline, or none when there is none yet. One of another format, or
    /// damaged, is an error that says how to rebuild it.
    pub async fn load(&self) -> Result<Option<Baseline>> {
        let at = self.store.location(POINTER);
        let Some(bytes) = self.store.get(POINTER).await? else {
            return Ok(None);
        };
        let meta: BaselineMeta = serde_json::from_slice(&bytes)
            .map_err(|e| self.refuse(&at, format!("not a flowlens baseline ({e})")))?;
        if meta.format != BASELINE_FORMAT {
            let by = match meta.flowlens_version.as_str() {
                "" => String::new(),
                v => format!(" (written by flowlens {v})"),
            };
            return Err(self.refuse(
                &at,
                format!(
                    "a baseline in format {}{by}, and this flowlens reads format \
                     {BASELINE_FORMAT}",
                    meta.format
                ),
            ));
        }
        let mut tables = Vec::new();
        for name in TABLES {
            let file = format!("v{}/{name}.parquet", meta.version);
            let location = self.store.location(&file);
            let bytes = self.store.get(&file).await?.ok_or_else(|| {
                self.refuse(&location, "missing: the baseline is incomplete".into())
            })?;
            let table = from_parquet(bytes, &location)
                .map_err(|e| self.refuse(&location, format!("unreadable ({e})")))?;
            tables.push(table);
        }
        let [history, peers, ports] = <[Table; 3]>::try_from(tables)
            .map_err(|_| Error::invalid(&at, "three baseline tables expected"))?;
        Ok(Some(Baseline {
            meta,
            history,
            peers,
            ports,
        }))
    }

    /// Writes `baseline` as the next version and switches the pointer to it; then removes
    /// the tables of earlier versions (and of format 1) that nothing points at.
    pub async fn save(&self, baseline: &mut Baseline) -> Result<()> {
        let existing = self.store.list("").await?;
        let newest = existing
            .iter()
            .filter_map(|name| {
                name.strip_prefix('v')?
                    .split_once('/')?
                    .0
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        baseline.meta.format = BASELINE_FORMAT;
        baseline.meta.version = newest.max(baseline.meta.version) + 1;
        baseline.meta.flowlens_version = env!("CARGO_PKG_VERSION").to_string();
        for (name, table) in TABLES.iter().zip(baseline.tables()) {
            let file = format!("v{}/{name}.parquet", baseline.meta.version);
            let bytes = to_parquet(table, &self.store.location(&file))?;
            self.store.put(&file, &bytes).await?;
            crate::failpoint::point("baseline_table");
        }
        let pointer = serde_json::to_vec_pretty(&baseline.meta)
            .map_err(|e| Error::invalid(self.store.location(POINTER), e.to_string()))?;
        self.store.put(POINTER, &pointer).await?;
        let current = format!("v{}/", baseline.meta.version);
        for name in existing {
            let ours = (name.starts_with('v') && name.ends_with(".parquet"))
                || (name.starts_with("base_") && name.ends_with(".parquet"));
            if ours && !name.starts_with(&current) {
                // Unreferenced; a failure to remove it costs space, not correctness.
                if let Err(e) = self.store.delete(&name).await {
                    tracing::warn!("{e}");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covered_periods_merge_and_leave_only_gaps() {
        let mut meta = BaselineMeta::default();
        meta.cover(100, 200);
        meta.cover(300, 400);
        assert_eq!(
            meta.uncovered(0, 500),
            vec![(0, 100), (200, 300), (400, 500)]
        );
        assert_eq!(meta.uncovered(120, 180), vec![]);
        assert_eq!(meta.uncovered(150, 350), vec![(200, 300)]);
        meta.cover(200, 300);
        assert_eq!(meta.covered, vec![(100, 400)]);
        assert!(meta.covers(100, 400));
        assert!(!meta.covers(99, 400));
        meta.cover(5, 5);
        assert_eq!(meta.covered, vec![(100, 400)]);
    }

    #[test]
    fn batches_are_remembered_up_to_a_thousand() {
        let mut meta = BaselineMeta::default();
        for i in 0..1005 {
            meta.fold_batch(&i.to_string());
        }
        assert_eq!(meta.batches.len(), 1000);
        assert_eq!(meta.batches[0], "5");
    }
}
