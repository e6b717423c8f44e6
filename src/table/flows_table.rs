//! The `flows` table: a DataFusion TableProvider whose scan streams record batches from the
//! sources, one partition per group of objects, with projection pushed into the decoder and
//! time filters used to skip objects by their key layout.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::flows_scan::{FlowsScanExec, Reporting, S3Link};
use super::time_filters::time_range_of;
use super::value_filters::conditions_of;
use crate::decode::DecoderOptions;
use crate::format::flows_schema;

use crate::source::{
    MIN_PART, ObjectRef, PartStarts, S3Access, S3Options, ScanStats, split_large_files,
};
use crate::time_range::TimeRange;

pub struct FlowsTable {
    pub(crate) objects: Arc<Vec<ObjectRef>>,
    pub(crate) options: DecoderOptions,
    stats: Arc<ScanStats>,
    /// Where scans report what they saw: the stats above, or (a table received from
    /// another process) the scan's metrics.
    pub(crate) reporting: Reporting,
    pub(crate) s3: Option<S3Link>,
}

impl fmt::Debug for FlowsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowsTable")
            .field("objects", &self.objects.len())
            .finish()
    }
}

impl FlowsTable {
    /// A table over `objects`. `options.time_range` (from `--since` / `--until`) both skips
    /// objects and drops rows; `options.projection` is ignored (each scan sets its own).
    pub fn new(objects: Vec<ObjectRef>, options: DecoderOptions, stats: Arc<ScanStats>) -> Self {
        FlowsTable {
            objects: Arc::new(objects),
            options,
            reporting: Reporting::Session(stats.clone()),
            stats,
            s3: None,
        }
    }

    /// Reads S3 objects with `client`, `options.concurrency` objects at a time (None: more
    /// at once the smaller a scan's objects are, [`crate::source::default_concurrency`]).
    pub fn with_s3(mut self, client: S3Access, mut options: S3Options) -> Self {
        options.concurrency = options.concurrency.map(|n| n.max(1));
        self.s3 = Some(S3Link {
            options,
            access: Some(client),
        });
        self
    }

    /// A table rebuilt in a process that received it in a plan (a cluster's scheduler or
    /// executor): scans connect to S3 themselves and report through their metrics.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn received(
        objects: Vec<ObjectRef>,
        options: DecoderOptions,
        s3: Option<S3Options>,
    ) -> Self {
        FlowsTable {
            objects: Arc::new(objects),
            options,
            stats: Arc::new(ScanStats::default()),
            reporting: Reporting::Metrics,
            s3: s3.map(|options| S3Link {
                options,
                access: None,
            }),
        }
    }

    /// Objects a scan over `range` reads: those whose key layout may hold records in it.
    pub fn objects_in(&self, range: &TimeRange) -> Vec<ObjectRef> {
        self.objects
            .iter()
            .filter(|o| match o.key.window {
                Some((lo, hi)) => range.may_overlap(lo, hi),
                None => true,
            })
            .cloned()
            .collect()
    }

    /// The same table with another row window.
    pub fn with_time_range(mut self, range: TimeRange) -> Self {
        self.options.time_range = range;
        self
    }

    pub fn stats(&self) -> Arc<ScanStats> {
        self.stats.clone()
    }

    /// The same table (options, S3 client) over other objects, with stats of its own.
    pub fn with_objects(&self, objects: Vec<ObjectRef>) -> Self {
        let stats = Arc::new(ScanStats::default());
        FlowsTable {
            objects: Arc::new(objects),
            options: self.options.clone(),
            reporting: match self.reporting {
                Reporting::Session(_) => Reporting::Session(stats.clone()),
                Reporting::Metrics => Reporting::Metrics,
            },
            stats,
            s3: self.s3.clone(),
        }
    }
}

#[async_trait]
impl TableProvider for FlowsTable {
    fn schema(&self) -> SchemaRef {
        flows_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Time filters prune objects, and conditions on a field leave rows out as they are
        // decoded; DataFusion still applies every filter to the rows it gets.
        Ok(filters
            .iter()
            .map(
                |f| match time_range_of(f).is_some() || !conditions_of([*f]).is_empty() {
                    true => TableProviderFilterPushDown::Inexact,
                    false => TableProviderFilterPushDown::Unsupported,
                },
            )
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let range = filters
            .iter()
            .filter_map(time_range_of)
            .fold(self.options.time_range, |acc, r| acc.intersect(&r));
        let objects = self.objects_in(&range);
        let full = flows_schema();
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..full.fields().len()).collect(),
        };
        let schema = Arc::new(full.project(&projection)?);
        let options = DecoderOptions {
            projection: Some(projection),
            batch_size: state.config().batch_size(),
            conditions: conditions_of(filters),
            ..self.options.clone()
        };
        // Decoding is CPU-bound: one partition per core. Reading S3 waits on the network:
        // each partition keeps its share of the S3 concurrency in flight ahead of it.
        let partitions = state.config().target_partitions().max(1);
        let set = self.s3.as_ref().and_then(|s3| s3.options.concurrency);
        let concurrency = set.unwrap_or_else(|| {
            let mut sizes: Vec<u64> = objects
                .iter()
                .filter(|o| matches!(o.location, crate::source::ObjectLocation::S3(_)))
                .map(|o| o.size)
                .collect();
            if sizes.is_empty() {
                return crate::source::DEFAULT_CONCURRENCY;
            }
            let middle = sizes.len() / 2;
            crate::source::default_concurrency(*sizes.select_nth_unstable(middle).1)
        });
        let lookahead = concurrency.div_ceil(partitions);
        // A large plain file is cut into parts read side by side, so that one file uses
        // every core (see text_parts.rs). The parts learn their starts from each other as
        // they are read, unless the first bad line must be the error (`--strict`) or the
        // plan goes to other processes: then a pass over the file counts them first.
        let max_line_len = self.options.max_line_len;
        let starts = match (&self.reporting, self.options.strict) {
            (Reporting::Session(_), false) => PartStarts::Assumed,
            _ => PartStarts::Counted,
        };
        // Planning looks at the first bytes of S3 objects large enough to be cut.
        let large_s3 = objects.iter().any(|o| {
            matches!(o.location, crate::source::ObjectLocation::S3(_)) && o.size >= 2 * MIN_PART
        });
        let s3 = match (&self.s3, tokio::runtime::Handle::try_current()) {
            (Some(link), Ok(handle)) if large_s3 && starts == PartStarts::Assumed => {
                Some((link.access().await, handle))
            }
            _ => None,
        };
        let objects = tokio::task::spawn_blocking(move || {
            split_large_files(
                objects,
                partitions,
                max_line_len,
                MIN_PART,
                starts,
                s3.as_ref(),
            )
        })
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let groups = partition_objects(objects, partitions);
        Ok(Arc::new(FlowsScanExec::new(
            schema,
            groups,
            options,
            self.s3.clone(),
            lookahead,
            self.reporting.clone(),
        )?))
    }
}

/// Splits objects into at most `n` groups of similar total size (largest first into the
/// lightest group), keeping each group in key order. Always at least one group.
fn partition_objects(mut objects: Vec<ObjectRef>, n: usize) -> Vec<Vec<ObjectRef>> {
    let n = n.clamp(1, objects.len().max(1));
    let mut groups: Vec<(u64, Vec<(usize, ObjectRef)>)> = vec![(0, Vec::new()); n];
    let mut indexed: Vec<(usize, ObjectRef)> = objects.drain(..).enumerate().collect();
    indexed.sort_by_key(|(_, o)| std::cmp::Reverse(o.bytes_to_read()));
    for (i, object) in indexed {
        if let Some(group) = groups.iter_mut().min_by_key(|(total, _)| *total) {
            group.0 += object.bytes_to_read().max(1);
            group.1.push((i, object));
        }
    }
    groups
        .into_iter()
        .map(|(_, mut members)| {
            members.sort_by_key(|(i, _)| *i);
            members.into_iter().map(|(_, o)| o).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn partitions_balance_by_size_and_keep_order() {
        let objects: Vec<ObjectRef> = [50u64, 10, 40, 30, 20]
            .iter()
            .enumerate()
            .map(|(i, &size)| ObjectRef::path(PathBuf::from(format!("{i}.log")), size))
            .collect();
        let groups = partition_objects(objects.clone(), 2);
        let sizes: Vec<u64> = groups
            .iter()
            .map(|g| g.iter().map(|o| o.size).sum())
            .collect();
        assert_eq!(sizes.iter().sum::<u64>(), 150);
        assert!(sizes.iter().all(|&s| (70..=80).contains(&s)), "{sizes:?}");
        for g in &groups {
            assert!(g.windows(2).all(|w| w[0].location < w[1].location));
        }
        assert_eq!(partition_objects(Vec::new(), 4).len(), 1);
        assert_eq!(partition_objects(objects, 16).len(), 5);
    }
}
