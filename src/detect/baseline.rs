//! A stored baseline: the per-interface tables `flowlens baseline` learns, as Parquet files
//! in a folder, with a small JSON file saying what period they cover.

use std::fs::File;
use std::path::Path;

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use super::tables::Table;
use crate::error::{Error, Result};

/// The tables a baseline consists of.
pub const BASELINE_TABLES: &[&str] = &["base_enis", "base_hours", "base_peers", "base_ports"];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineMeta {
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
            let perr = |source| Error::Parquet {
                location: at.clone(),
                source,
            };
            let file = File::create(&path).map_err(|e| Error::io(&at, e))?;
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build();
            let mut writer =
                ArrowWriter::try_new(file, table.schema.clone(), Some(props)).map_err(perr)?;
            for batch in &table.batches {
                writer.write(batch).map_err(perr)?;
            }
            writer.close().map_err(perr)?;
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
        let mut tables = Vec::new();
        for name in BASELINE_TABLES {
            let path = dir.join(format!("{name}.parquet"));
            let at = path.display().to_string();
            let perr = |source| Error::Parquet {
                location: at.clone(),
                source,
            };
            let file = File::open(&path).map_err(|e| Error::io(&at, e))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
            let schema = builder.schema().clone();
            let batches = builder
                .build()
                .map_err(perr)?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|source| Error::Arrow {
                    location: at.clone(),
                    source,
                })?;
            tables.push(Table { schema, batches });
        }
        Ok(Baseline { meta, tables })
    }
}
