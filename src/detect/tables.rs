//! Materialising SQL results as in-memory tables the next steps query.

use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::query::{FlowsSession, Spread};
pub use crate::table::{Table, from_parquet, to_parquet};

/// Runs `sql` and returns every row: on the session's cluster when it reads `flows` and
/// there is one, here otherwise (on one partition when it reads only earlier steps' tables).
pub(crate) async fn run(session: &FlowsSession, step: &str, sql: &str) -> Result<Table> {
    run_spread(session, step, sql, Spread::Cores).await
}

/// [`run`], a query that reads `flows` here planned as `spread` says.
pub(crate) async fn run_spread(
    session: &FlowsSession,
    step: &str,
    sql: &str,
    spread: Spread,
) -> Result<Table> {
    let location = format!("detect step {step}");
    let collected = session.collect_spread(&location, sql, spread).await?;
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
