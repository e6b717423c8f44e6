//! A stored baseline: the per-interface tables `flowlens baseline` learns, as Parquet files
//! in a folder, with a small JSON file saying what period they cover.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::tables::{Table, from_parquet, to_parquet};
use crate::error::{Error, Result};

/// The tables a baseline consists of.
pub const BASELINE_TABLES: &[&str] = &["base_enis", "base_hours", "base_peers", "base_ports"];

/// The layout of the stored tables. A baseline of another format is refused with the way to
/// rebuild it, never read as if it were this one.
pub const BASELINE_FORMAT: u32 = 1;

fn first_format() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineMeta {
    /// [`BASELINE_FORMAT`] when written (baselines from before the field are format 1).
    #[serde(default = "first_format")]
    pub format: u32,
    /// The period learnt from, Unix seconds.
    pub since: i64,
    pub until: i64,
    pub interfaces: usize,
    pub flowlens_version: String,
}

#[derive(Clone, Debug)]
pub struct Baseline {
    pub meta: BaselineMeta,
    /// In `BASELINE_TABLES` order.
    pub tables: Vec<Table>,
}

impl Baseline {
    /// Writes `DIR/<table>.parquet` and `DIR/baseline.json` (last, so a folder with the JSON
    /// file holds a whole baseline).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let location = dir.display().to_string();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(&location, e))?;
        for (name, table) in BASELINE_TABLES.iter().zip(&self.tables) {
            let path = dir.join(format!("{name}.parquet"));
            let at = path.display().to_string();
            let bytes = to_parquet(table, &at)?;
            std::fs::write(&path, bytes).map_err(|e| Error::io(&at, e))?;
        }
        let meta = serde_json::to_string_pretty(&self.meta)
            .map_err(|e| Error::invalid(&location, e.to_string()))?;
        std::fs::write(dir.join("baseline.json"), meta).map_err(|e| Error::io(&location, e))
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let meta_path = dir.join("baseline.json");
        let at = meta_path.display().to_string();
        let text = std::fs::read_to_string(&meta_path).map_err(|e| Error::io(&at, e))?;
        let meta: BaselineMeta = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(&at, format!("not a flowlens baseline: {e}")))?;
        if meta.format != BASELINE_FORMAT {
            return Err(Error::invalid(
                &at,
                format!(
                    "a baseline in format {} (written by flowlens {}), and this flowlens reads \
                     format {BASELINE_FORMAT}: build it again with `flowlens baseline --source … \
                     --out {}`",
                    meta.format,
                    meta.flowlens_version,
                    dir.display()
                ),
            ));
        }
        let mut tables = Vec::new();
        for name in BASELINE_TABLES {
            let path = dir.join(format!("{name}.parquet"));
            let at = path.display().to_string();
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&at, e))?;
            tables.push(from_parquet(bytes, &at)?);
        }
        Ok(Baseline { meta, tables })
    }
}
