//! Records read once and kept for a second query: the `flows` table, for one query, streams
//! a query's rows while keeping them, then serves the kept rows from memory to one more
//! query, each batch let go as that query reads it. Detection reads the window it examines
//! twice (its rollup, then record by record); this way the window's objects are inflated and
//! decoded once, the rollup still aggregates while they are decoded, and the kept rows are
//! not held beside all of what the second query builds from them.

use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::StreamExt;

/// The rows kept so far, partition by partition, and the memory pool's share for them.
#[derive(Debug)]
pub(crate) struct Kept {
    schema: SchemaRef,
    parts: Vec<Vec<RecordBatch>>,
    /// Partitions read to their end.
    finished: usize,
    /// More than the budget came: nothing is kept, the rows still pass.
    over: bool,
    budget: usize,
    reservation: MemoryReservation,
}

impl Kept {
    pub(crate) fn new(
        schema: SchemaRef,
        partitions: usize,
        budget: usize,
        reservation: MemoryReservation,
    ) -> Self {
        Kept {
            schema,
            parts: vec![Vec::new(); partitions],
            finished: 0,
            over: false,
            budget,
            reservation,
        }
    }

    fn keep(&mut self, partition: usize, batch: &RecordBatch) {
        if self.over {
            return;
        }
        let size = batch.get_array_memory_size();
        let Some(part) = self.parts.get_mut(partition) else {
            return;
        };
        if self.reservation.size().saturating_add(size) > self.budget
            || self.reservation.try_grow(size).is_err()
        {
            self.over = true;
            self.parts.iter_mut().for_each(Vec::clear);
            self.reservation.free();
            return;
        }
        part.push(batch.clone());
    }

    /// The kept rows, partition by partition, when every partition was read to its end
    /// within the budget; None otherwise (and the reservation is given back).
    pub(crate) fn complete(&mut self) -> Option<Vec<Vec<RecordBatch>>> {
        if self.over || self.finished < self.parts.len() {
            self.parts.iter_mut().for_each(Vec::clear);
            self.reservation.free();
            return None;
        }
        Some(std::mem::take(&mut self.parts))
    }

    /// The rows' schema.
    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The bytes kept.
    pub(crate) fn size(&self) -> usize {
        self.reservation.size()
    }
}

/// Locks `mutex`. A panic elsewhere while holding one of these locks leaves nothing
/// half-written that matters here.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A table whose partitions are `plan`'s, each kept in `kept` as it streams by.
pub(crate) fn keeping_table(
    plan: Arc<dyn ExecutionPlan>,
    kept: Arc<Mutex<Kept>>,
) -> datafusion::error::Result<StreamingTable> {
    let schema = plan.schema();
    let partitions = plan.properties().output_partitioning().partition_count();
    let parts = (0..partitions)
        .map(|index| {
            Arc::new(KeptPartition {
                schema: schema.clone(),
                plan: plan.clone(),
                index,
                kept: kept.clone(),
            }) as Arc<dyn PartitionStream>
        })
        .collect();
    StreamingTable::try_new(schema, parts)
}

struct KeptPartition {
    schema: SchemaRef,
    plan: Arc<dyn ExecutionPlan>,
    index: usize,
    kept: Arc<Mutex<Kept>>,
}

impl std::fmt::Debug for KeptPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeptPartition({})", self.index)
    }
}

impl PartitionStream for KeptPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (index, kept, done) = (self.index, self.kept.clone(), self.kept.clone());
        let rows = match self.plan.execute(index, ctx) {
            Ok(rows) => rows,
            Err(e) => {
                return Box::pin(RecordBatchStreamAdapter::new(
                    self.schema.clone(),
                    futures::stream::once(async move { Err(e) }),
                ));
            }
        };
        let passing = rows.map(move |batch| {
            if let Ok(batch) = &batch {
                lock(&kept).keep(index, batch);
            }
            batch
        });
        // Counted once the partition has given its last row.
        let end = futures::stream::once(async move {
            lock(&done).finished += 1;
        })
        .filter_map(|()| async { None });
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            passing.chain(end),
        ))
    }
}

/// A table that gives `parts` (one partition each) to the one scan that reads it, each batch
/// dropped once read; a second scan reads no rows.
pub(crate) fn served_once_table(
    schema: SchemaRef,
    parts: Vec<Vec<RecordBatch>>,
) -> datafusion::error::Result<StreamingTable> {
    let parts = parts
        .into_iter()
        .map(|batches| {
            Arc::new(ServedPartition {
                schema: schema.clone(),
                batches: Mutex::new(Some(batches)),
            }) as Arc<dyn PartitionStream>
        })
        .collect();
    StreamingTable::try_new(schema, parts)
}

struct ServedPartition {
    schema: SchemaRef,
    /// `None` once read.
    batches: Mutex<Option<Vec<RecordBatch>>>,
}

impl std::fmt::Debug for ServedPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServedPartition")
    }
}

impl PartitionStream for ServedPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// A second read, or a query that reads `flows` twice (a self-join, a UNION of two
    /// filters), finds the rows gone: an error, never a silently partial answer.
    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rows = match lock(&self.batches).take() {
            Some(batches) => batches.into_iter().map(Ok).collect(),
            None => vec![Err(DataFusionError::Execution(
                "the held records of `flows` were already read: a query served them must \
                 read `flows` once"
                    .to_string(),
            ))],
        };
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(rows),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryConsumer, MemoryPool};
    use datafusion::prelude::SessionContext;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    fn kept(budget: usize) -> Arc<Mutex<Kept>> {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 30));
        let reservation = MemoryConsumer::new("test").register(&pool);
        Arc::new(Mutex::new(Kept::new(
            batch(&[]).schema(),
            2,
            budget,
            reservation,
        )))
    }

    async fn sum(ctx: &SessionContext) -> Option<i64> {
        let rows = ctx
            .sql("SELECT sum(n) FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        rows[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .filter(|a| !a.is_null(0))
            .map(|a| a.value(0))
    }

    /// The plan of a scan of `parts`, one partition each.
    async fn scan(ctx: &SessionContext, parts: Vec<Vec<RecordBatch>>) -> Arc<dyn ExecutionPlan> {
        let mem = datafusion::datasource::MemTable::try_new(batch(&[]).schema(), parts).unwrap();
        ctx.register_table("src", Arc::new(mem)).unwrap();
        ctx.sql("SELECT n FROM src")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap()
    }

    /// A source of two partitions: 1, 2, 3 and 10, 20.
    async fn source(ctx: &SessionContext) -> Arc<dyn ExecutionPlan> {
        let plan = scan(
            ctx,
            vec![vec![batch(&[1, 2]), batch(&[3])], vec![batch(&[10, 20])]],
        )
        .await;
        assert_eq!(plan.properties().output_partitioning().partition_count(), 2);
        plan
    }

    #[tokio::test]
    async fn rows_pass_and_are_kept_then_served_once() {
        let ctx = SessionContext::new();
        let kept = kept(usize::MAX);
        let table = keeping_table(source(&ctx).await, kept.clone()).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        assert_eq!(sum(&ctx).await, Some(36));
        let parts = lock(&kept).complete().expect("every partition read");
        assert!(lock(&kept).size() > 0);
        assert_eq!(
            parts
                .iter()
                .flatten()
                .map(RecordBatch::num_rows)
                .sum::<usize>(),
            5
        );
        ctx.deregister_table("t").unwrap();
        let served = served_once_table(lock(&kept).schema(), parts).unwrap();
        ctx.register_table("t", Arc::new(served)).unwrap();
        assert_eq!(sum(&ctx).await, Some(36));
        // Served once: the batches were let go as they were read, and reading again is an
        // error rather than an empty table.
        let again = ctx
            .sql("SELECT sum(n) FROM t")
            .await
            .unwrap()
            .collect()
            .await;
        let message = again.unwrap_err().to_string();
        assert!(message.contains("already read"), "{message}");
    }

    #[tokio::test]
    async fn nothing_is_kept_past_the_budget_or_from_a_partial_read() {
        let ctx = SessionContext::new();
        // Room for one small batch, not all of them: the rows still pass, none are kept.
        let kept = kept(batch(&[1, 2]).get_array_memory_size());
        let table = keeping_table(source(&ctx).await, kept.clone()).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        assert_eq!(sum(&ctx).await, Some(36));
        assert!(lock(&kept).complete().is_none());
        assert_eq!(lock(&kept).size(), 0);

        // A query that stops early leaves rows unread: nothing is served.
        let ctx = SessionContext::new();
        let many: Vec<RecordBatch> = (0..200).map(|i| batch(&[i])).collect();
        let plan = scan(&ctx, vec![many.clone(), many]).await;
        let kept = self::kept(usize::MAX);
        let table = keeping_table(plan, kept.clone()).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        ctx.sql("SELECT n FROM t LIMIT 1")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert!(lock(&kept).complete().is_none());
        assert_eq!(lock(&kept).size(), 0);
    }
}
