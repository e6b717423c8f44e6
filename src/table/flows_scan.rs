//! The `flows` table's scan: one partition per group of objects, each decoded on the
//! blocking pool into a bounded channel. It holds plain data (objects, decoder options, the
//! S3 endpoint), so a cluster's codec can ship it to the process that runs it
//! (`codec.rs`).
//!
//! Which group a partition reads comes from its input: a tiny in-memory table holding one
//! group number per partition. A cluster (Ballista) hands each task a plan cut down to that
//! task's partitions, and it knows how to cut an in-memory table but not a scan of ours; so
//! the cut input tells the scan which of its groups are this task's.

use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};

use crate::decode::DecoderOptions;
use crate::source::{
    ObjectRef, ReadContext, S3Access, S3Options, ScanReport, ScanStats, s3_access, scan_objects,
};

/// Batches in flight per partition: bounds memory whatever the archive's size.
const CHANNEL_CAPACITY: usize = 2;

/// Metric names that carry a partition's [`ScanReport`] (as JSON after this prefix) from a
/// cluster executor back to the client: the only channel Ballista has from a task to the
/// one who asked, and one that only successful tasks write to, so a retried task counts once.
pub(crate) const REPORT_METRIC: &str = "flowlens_scan_report ";

/// The S3 connection a scan reads through: the session's client, or (in a process that
/// received the plan) the endpoint to connect to, with this process's own credentials.
#[derive(Clone, Debug)]
pub(crate) struct S3Link {
    pub options: S3Options,
    pub access: Option<S3Access>,
}

impl S3Link {
    pub(crate) async fn access(&self) -> S3Access {
        match &self.access {
            Some(access) => access.clone(),
            None => s3_access(&self.options).await,
        }
    }
}

/// Where what a scan saw goes.
#[derive(Clone, Debug)]
pub(crate) enum Reporting {
    /// The session's stats, read after the query (exit code, bad-line summary).
    Session(Arc<ScanStats>),
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    /// This plan came from another process (a cluster executor): each partition's report
    /// travels back in the plan's metrics ([`REPORT_METRIC`]).
    Metrics,
}

#[derive(Debug)]
pub(crate) struct FlowsScanExec {
    pub(crate) schema: SchemaRef,
    /// Every group of the scan; `input` says which ones this plan's partitions read.
    pub(crate) groups: Vec<Arc<Vec<ObjectRef>>>,
    input: Arc<dyn ExecutionPlan>,
    /// Decoder options; `projection` is set and matches `schema`.
    pub(crate) options: DecoderOptions,
    pub(crate) s3: Option<S3Link>,
    /// S3 objects each partition keeps requested ahead of the one it decodes.
    pub(crate) lookahead: usize,
    pub(crate) reporting: Reporting,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl FlowsScanExec {
    pub(crate) fn new(
        schema: SchemaRef,
        groups: Vec<Vec<ObjectRef>>,
        options: DecoderOptions,
        s3: Option<S3Link>,
        lookahead: usize,
        reporting: Reporting,
    ) -> DfResult<Self> {
        let groups: Vec<Arc<Vec<ObjectRef>>> = match groups.is_empty() {
            true => vec![Arc::new(Vec::new())],
            false => groups.into_iter().map(Arc::new).collect(),
        };
        let input = group_numbers(groups.len())?;
        Ok(Self::over(
            schema, groups, input, options, s3, lookahead, reporting,
        ))
    }

    /// A scan whose partitions read the groups `input` names (see the module's comment).
    pub(crate) fn over(
        schema: SchemaRef,
        groups: Vec<Arc<Vec<ObjectRef>>>,
        input: Arc<dyn ExecutionPlan>,
        options: DecoderOptions,
        s3: Option<S3Link>,
        lookahead: usize,
        reporting: Reporting,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(
                input.properties().output_partitioning().partition_count(),
            ),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        FlowsScanExec {
            schema,
            groups,
            input,
            options,
            s3,
            lookahead: lookahead.max(1),
            reporting,
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
        }
    }
}

/// The name of the group-number column of a scan's input.
const GROUP_COLUMN: &str = "flows_group";

/// An in-memory table of `count` partitions, partition `i` holding the one number `i`.
fn group_numbers(count: usize) -> DfResult<Arc<dyn ExecutionPlan>> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        GROUP_COLUMN,
        DataType::UInt32,
        false,
    )]));
    let partitions = (0..count)
        .map(|i| {
            let number = UInt32Array::from(vec![i as u32]);
            RecordBatch::try_new(schema.clone(), vec![Arc::new(number)]).map(|b| vec![b])
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MemorySourceConfig::try_new_exec(&partitions, schema, None)?)
}

impl DisplayAs for FlowsScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let all = self.groups.iter().flat_map(|g| g.iter());
        // A file read in parts counts once, by its first part.
        let objects = all
            .clone()
            .filter(|o| o.part.as_ref().is_none_or(|p| p.index == 0))
            .count();
        let parts: Vec<_> = all.filter_map(|o| o.part.as_ref()).collect();
        // How the parts know where they start: counted before reading (`--strict`, a
        // cluster), or learnt from each other as they are read (see part_ledger.rs).
        let parts = match (parts.len(), parts.iter().any(|p| p.assumed)) {
            (0, _) => String::new(),
            (n, true) => format!(" ({n} parts of large files, starts learnt as read)"),
            (n, false) => format!(" ({n} parts of large files, starts counted first)"),
        };
        // The conditions rows are left out by as they are decoded.
        let conditions = match self.options.conditions.as_slice() {
            [] => String::new(),
            all => {
                let shown: Vec<String> = all.iter().map(|c| c.to_string()).collect();
                format!(", conditions=[{}]", shown.join(", "))
            }
        };
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "FlowsScanExec: partitions={}, objects={objects}{parts}, projection=[{}]{conditions}",
                self.groups.len(),
                self.schema
                    .fields()
                    .iter()
                    .map(|c| c.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            DisplayFormatType::TreeRender => write!(f, "objects={objects}"),
        }
    }
}

impl ExecutionPlan for FlowsScanExec {
    fn name(&self) -> &str {
        "FlowsScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        // One group number per partition: spreading them out gains nothing.
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (Some(input), true) = (children.pop(), children.is_empty()) else {
            return Err(DataFusionError::Internal(
                "FlowsScanExec takes one input".to_string(),
            ));
        };
        Ok(Arc::new(Self::over(
            self.schema.clone(),
            self.groups.clone(),
            input,
            self.options.clone(),
            self.s3.clone(),
            self.lookahead,
            self.reporting.clone(),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let memory = context.memory_pool().clone();
        let numbers = self.input.execute(partition, context)?;
        let groups = self.groups.clone();
        let mut builder =
            RecordBatchReceiverStreamBuilder::new(self.schema.clone(), CHANNEL_CAPACITY);
        let tx = builder.tx();
        let options = self.options.clone();
        let lookahead = self.lookahead;
        let s3 = self.s3.clone();
        let (stats, report_to) = match &self.reporting {
            Reporting::Session(stats) => (stats.clone(), None),
            Reporting::Metrics => (
                Arc::new(ScanStats::for_report()),
                Some((self.metrics.clone(), partition)),
            ),
        };
        builder.spawn(async move {
            let objects = objects_of(numbers, &groups).await?;
            let uses_s3 = objects
                .iter()
                .any(|o| matches!(o.location, crate::source::ObjectLocation::S3(_)));
            let s3 = match (s3, uses_s3) {
                (Some(link), true) => Some(link.access().await),
                _ => None,
            };
            // S3 requests run on the runtime executing this plan.
            let consumer = tx.clone();
            let context = ReadContext {
                s3: s3.zip(tokio::runtime::Handle::try_current().ok()),
                lookahead,
                memory: Some(memory),
                wanted: Some(Arc::new(move || !consumer.is_closed())),
            };
            let scan_stats = stats.clone();
            // Decoding is CPU work: it runs on the blocking pool and hands batches over a
            // bounded channel, so a slow consumer holds back the reader instead of piling up.
            let scanned = tokio::task::spawn_blocking(move || {
                let mut emit = |batch| match tx.blocking_send(Ok(batch)) {
                    Ok(()) => ControlFlow::Continue(()),
                    // The consumer hung up (a LIMIT was reached): stop reading.
                    Err(_) => ControlFlow::Break(()),
                };
                scan_objects(&objects, &options, &context, &scan_stats, &mut emit)
                    .map_err(|e| DataFusionError::External(Box::new(e)))
            })
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
            // Recorded before the stream ends, so the task's metrics hold it.
            if let Some((metrics, partition)) = report_to {
                record_report(&metrics, partition, &stats.report());
            }
            scanned
        });
        Ok(builder.build())
    }
}

/// The objects of the groups whose numbers `numbers` yields, in group order.
async fn objects_of(
    mut numbers: SendableRecordBatchStream,
    groups: &[Arc<Vec<ObjectRef>>],
) -> DfResult<Vec<ObjectRef>> {
    use futures::StreamExt;
    let mut objects = Vec::new();
    while let Some(batch) = numbers.next().await {
        let batch = batch?;
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<UInt32Array>()
            .ok_or_else(|| DataFusionError::Internal("flows group numbers".to_string()))?;
        for number in column.values() {
            let group = groups.get(*number as usize).ok_or_else(|| {
                DataFusionError::Internal(format!("flows scan has no group {number}"))
            })?;
            objects.extend(group.iter().cloned());
        }
    }
    Ok(objects)
}

/// Stores a partition's report in the plan's metrics, as a counter named after it.
fn record_report(metrics: &ExecutionPlanMetricsSet, partition: usize, report: &ScanReport) {
    #[derive(serde::Serialize)]
    struct Tagged<'a> {
        partition: usize,
        // Two partitions with equal reports must not be merged into one by name.
        nonce: u64,
        report: &'a ScanReport,
    }
    let tagged = Tagged {
        partition,
        nonce: fastrand::u64(..),
        report,
    };
    match serde_json::to_string(&tagged) {
        Ok(json) => MetricBuilder::new(metrics)
            .counter(format!("{REPORT_METRIC}{json}"), partition)
            .add(1),
        Err(e) => tracing::error!("scan report of partition {partition}: {e}"),
    }
}

/// The scan reports in a metric's name (see [`REPORT_METRIC`]), if it is one.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) fn report_in_metric(name: &str) -> Option<ScanReport> {
    #[derive(serde::Deserialize)]
    struct Tagged {
        report: ScanReport,
    }
    let json = name.strip_prefix(REPORT_METRIC)?;
    serde_json::from_str::<Tagged>(json).ok().map(|t| t.report)
}
