//! Materialising SQL results as in-memory tables the next steps query.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

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

/// Runs `sql` and returns every row.
pub(crate) async fn run(ctx: &SessionContext, step: &str, sql: &str) -> Result<Table> {
    let location = format!("detect step {step}");
    let frame = ctx.sql(sql).await.map_err(|e| Error::query(&location, e))?;
    let schema = frame.schema().inner().clone();
    let batches = frame
        .collect()
        .await
        .map_err(|e| Error::query(&location, e))?;
    let schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
    Ok(Table { schema, batches })
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

/// Runs `sql` and registers its result as `name`.
pub(crate) async fn materialise(ctx: &SessionContext, name: &str, sql: &str) -> Result<Table> {
    let table = run(ctx, name, sql).await?;
    register(ctx, name, &table)?;
    Ok(table)
}
