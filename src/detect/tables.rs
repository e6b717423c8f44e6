//! Materialising SQL results as in-memory tables the next steps query.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::query::FlowsSession;

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

/// Runs `sql` and returns every row: on the session's cluster when it reads `flows` and
/// there is one, here otherwise.
pub(crate) async fn run(session: &FlowsSession, step: &str, sql: &str) -> Result<Table> {
    let location = format!("detect step {step}");
    let collected = session.collect(&location, sql).await?;
    // -vvv: where a step's time went, for whoever tunes a detector's SQL.
    if tracing::enabled!(tracing::Level::TRACE) {
        let shown = DisplayableExecutionPlan::with_metrics(collected.plan.as_ref()).indent(true);
        tracing::trace!("{step}: plan with metrics\n{shown}");
    }
    let schema = collected
        .batches
        .first()
        .map(|b| b.schema())
        .unwrap_or(collected.schema);
    Ok(Table {
        schema,
        batches: collected.batches,
    })
}

/// Registers `table` under `name`, replacing any table of that name. Batches are spread
/// over the session's partitions so later steps aggregate on every core.
pub(crate) fn register(ctx: &SessionContext, name: &str, table: &Table) -> Result<()> {
    let location = format!("detect table {name}");
    let n = ctx.state().config().target_partitions().max(1);
    let mut partitions = vec![Vec::new(); n];
    for (i, batch) in table.batches.iter().enumerate() {
        partitions[i % n].push(batch.clone());
    }
    let mem = MemTable::try_new(table.schema.clone(), partitions)
        .map_err(|e| Error::query(&location, e))?;
    ctx.deregister_table(name)
        .map_err(|e| Error::query(&location, e))?;
    ctx.register_table(name, Arc::new(mem))
        .map_err(|e| Error::query(&location, e))?;
    Ok(())
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
