//! Tables held in memory: a query's result kept for the next steps, and the state kept as
//! whole Parquet objects (baselines, the inventory).

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};

/// A materialised table: its schema and batches.
#[derive(Clone, Debug)]
pub struct Table {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// A table as a Parquet file's bytes (zstd), for state kept as whole objects.
pub fn to_parquet(table: &Table, location: &str) -> Result<Vec<u8>> {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;
    let perr = |source| Error::Parquet {
        location: location.to_string(),
        source,
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer =
        ArrowWriter::try_new(Vec::new(), table.schema.clone(), Some(props)).map_err(perr)?;
    for batch in &table.batches {
        writer.write(batch).map_err(perr)?;
    }
    writer.into_inner().map_err(perr)
}

/// The table a [`to_parquet`] file holds.
pub fn from_parquet(bytes: Vec<u8>, location: &str) -> Result<Table> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let perr = |source| Error::Parquet {
        location: location.to_string(),
        source,
    };
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).map_err(perr)?;
    let schema = builder.schema().clone();
    let batches = builder
        .build()
        .map_err(perr)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|source| Error::Arrow {
            location: location.to_string(),
            source,
        })?;
    Ok(Table { schema, batches })
}
