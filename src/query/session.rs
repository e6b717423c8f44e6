//! A DataFusion session over flow logs: the `flows` table, flowlens's functions, and
//! running SQL text that may hold several statements.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{FairSpillPool, MemoryConsumer, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};

use super::context_functions::context_functions;
use super::functions::flowlens_functions;
use super::held_flows::{Kept, keeping_table, lock, served_once_table};
use crate::context::{Context, ContextOptions};
use datafusion::datasource::MemTable;

use crate::decode::DecoderOptions;
use crate::error::{Error, Result};
use crate::format::FlowFormat;
use crate::source::{
    ListFilter, ObjectRef, S3Access, S3Options, S3Url, ScanStats, latest_key_start, list_sources,
    s3_access,
};
use crate::table::FlowsTable;
use crate::time_range::TimeRange;

/// What to read, validated once from flags or a config file.
#[derive(Clone, Debug, Default)]
pub struct FlowsConfig {
    /// Files, folders, globs, `-` for stdin.
    pub sources: Vec<String>,
    /// The format of files without a header (default: version 2).
    pub format: Option<FlowFormat>,
    /// `--since` / `--until`: objects outside are skipped, rows outside dropped.
    pub time_range: TimeRange,
    /// Fail on the first bad line or unreadable object instead of counting it.
    pub strict: bool,
    /// `--account` / `--region`: only these (empty for all), judged from the key layout.
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    /// S3 endpoint and concurrency.
    pub s3: S3Options,
    /// `--shard i/n`: only the objects whose key hashes to shard `i` of `n`.
    pub shard: Option<(u32, u32)>,
    /// Memory for sorts and joins before they spill to disk (default: unlimited).
    pub memory_limit: Option<usize>,
    /// The job reads its sources more than once: standard input (`-`) is copied to a
    /// temporary file first, since a pipe can be read only once.
    pub reads_twice: bool,
    /// `--cluster df://HOST:PORT`: queries that read `flows` run on that Ballista cluster.
    pub cluster: Option<String>,
    /// Context files: the inventory, ip-ranges.json, GeoIP databases, address lists.
    pub context: ContextOptions,
    /// Objects on S3 may be added to the session later (the scheduled task's queue): open
    /// an S3 client even when no source is on S3.
    pub reads_s3: bool,
}

impl FlowsConfig {
    /// Whether any source is on S3 (and so an S3 client is needed).
    pub fn uses_s3(&self) -> bool {
        self.reads_s3 || self.sources.iter().any(|s| S3Url::parse(s).is_some())
    }
}

/// The memory DataFusion's operators may use when no `--memory-mb` is given: half of what
/// the machine, or the container's cgroup limit, allows (2 GiB when neither can be read).
pub fn default_memory_limit() -> usize {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let total = read("/proc/meminfo").and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
            .map(|kb| kb * 1024)
    });
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => t.min(c) / 2,
        (Some(t), None) => t / 2,
        (None, Some(c)) => c / 2,
        (None, None) => 2 << 30,
    }
}

/// The shard (0-based) an object belongs to: a stable hash of its location, so every run
/// and every machine agrees without coordination.
pub fn shard_of(location: &str, count: u32) -> u32 {
    (crate::stable_hash::stable_hash(location).value() % u64::from(count.max(1))) as u32
}

/// Plans a statement in `ctx`: the result's schema as SQL names it, and the plan to run.
async fn physical_plan(
    ctx: &SessionContext,
    statement: Statement,
    location: &str,
) -> Result<(
    arrow::datatypes::SchemaRef,
    Arc<dyn datafusion::physical_plan::ExecutionPlan>,
)> {
    let plan = ctx
        .state()
        .statement_to_plan(statement)
        .await
        .map_err(|e| Error::query(location, e))?;
    let frame = ctx
        .execute_logical_plan(plan)
        .await
        .map_err(|e| Error::query(location, e))?;
    let schema = frame.schema().inner().clone();
    let plan = frame
        .create_physical_plan()
        .await
        .map_err(|e| Error::query(location, e))?;
    Ok((schema, plan))
}

/// A session whose `flows` table reads the configured sources.
pub struct FlowsSession {
    ctx: SessionContext,
    stats: Arc<ScanStats>,
    table: Arc<FlowsTable>,
    listing: ListingSummary,
    memory_limit: Option<usize>,
    /// The context (`--inventory`, `--ip-ranges`, …), loaded once and shared by the
    /// sessions made from this one.
    enrichment: Arc<Context>,
    /// Where queries that read `flows` run when not here (`--cluster`).
    #[cfg(feature = "cluster")]
    cluster: Option<super::ClusterSession>,
    /// Rows kept to be served as `flows` ([`FlowsSession::keep_flows`]), and the memory
    /// pool's share for them; None while `flows` reads the sources.
    held: std::sync::Mutex<Option<Arc<std::sync::Mutex<Kept>>>>,
}

/// How a query that reads `flows` on this machine is planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// A partition per core: the query has the machine to itself.
    Cores,
    /// One partition, its objects still decoded beside its aggregation: for a query that
    /// runs beside another of its kind (two days' rollups). Aggregating in one pass costs
    /// ~10% less CPU than per-partition aggregates merged after a repartition, and two such
    /// queries keep both cores busy. A cluster plans its own partitions.
    One,
}

/// A query run to its end: its schema, rows, and the plan that ran (with its metrics).
pub struct Collected {
    pub schema: arrow::datatypes::SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
}

/// What listing the sources found, before anything was read.
#[derive(Clone, Debug, Default)]
pub struct ListingSummary {
    /// Local files under source folders passed over (not flow log names).
    pub skipped_files: usize,
    /// Local places that could not be walked (link loops, unreadable folders), passed over.
    pub unreadable: usize,
    /// S3 ListObjectsV2 requests.
    pub list_requests: u64,
    /// Objects seen while listing, selected or not.
    pub objects_seen: u64,
}

impl FlowsConfig {
    fn filter(&self) -> ListFilter {
        ListFilter {
            time_range: self.time_range,
            accounts: self.accounts.clone(),
            regions: self.regions.clone(),
            latest_only: false,
        }
    }

    /// Where the newest data of the sources is, from object keys alone: the latest start of
    /// an object's key window (at or before the end of the latest record), with only the
    /// latest dated folders of S3 listed. None when no key tells a time.
    pub async fn latest_key_start(&self) -> Result<Option<i64>> {
        let client = self.client().await;
        latest_key_start(&self.sources, &self.filter(), client.as_ref()).await
    }

    /// An S3 client, when a source is on S3.
    async fn client(&self) -> Option<S3Access> {
        match self.uses_s3() {
            true => Some(s3_access(&self.s3).await),
            false => None,
        }
    }
}

impl FlowsSession {
    /// Lists the sources and registers the `flows` table and functions.
    pub async fn open(config: &FlowsConfig) -> Result<Self> {
        if config.reads_twice && config.sources.iter().any(|s| s == "-") {
            crate::source::spool_stdin()?;
        }
        let client = config.client().await;
        let mut listing = list_sources(&config.sources, &config.filter(), client.as_ref()).await?;
        if let Some((index, count)) = config.shard {
            listing
                .objects
                .retain(|o| shard_of(&o.location.to_string(), count) == index);
        }
        let options = DecoderOptions {
            default_format: config.format.clone().unwrap_or_else(FlowFormat::default_v2),
            strict: config.strict,
            time_range: config.time_range,
            ..DecoderOptions::default()
        };
        let summary = ListingSummary {
            skipped_files: listing.skipped_files,
            unreadable: listing.unreadable,
            list_requests: listing.list_requests,
            objects_seen: listing.objects_seen,
        };
        let mut table = FlowsTable::new(listing.objects, options, Arc::new(ScanStats::default()));
        if let Some(client) = client {
            table = table.with_s3(client, config.s3.clone());
        }
        #[allow(unused_mut)]
        let mut session = Self::with_table(table, summary, config.memory_limit);
        if !config.context.is_empty() {
            session.attach(Context::load(&config.context, &config.s3).await?)?;
        }
        if let Some(url) = &config.cluster {
            session.join_cluster(url).await?;
        }
        Ok(session)
    }

    /// Runs the queries that read `flows` on the cluster at `url` from now on.
    #[cfg(feature = "cluster")]
    async fn join_cluster(&mut self, url: &str) -> Result<()> {
        let address = super::ClusterAddress::parse(url)?;
        address.probe().await?;
        self.cluster = Some(super::ClusterSession::connect(&address, &self.ctx.state()).await?);
        Ok(())
    }

    #[cfg(not(feature = "cluster"))]
    async fn join_cluster(&mut self, url: &str) -> Result<()> {
        Err(Error::invalid(
            "--cluster",
            format!("{url}: this flowlens was built without the `cluster` feature"),
        ))
    }

    /// Registers `context`'s tables (the inventory's) and functions in this session.
    fn attach(&mut self, context: Arc<Context>) -> Result<()> {
        if let Some(inventory) = &context.inventory {
            for (name, table) in &inventory.tables {
                let location = format!("inventory table {name}");
                let mem = MemTable::try_new(table.schema.clone(), vec![table.batches.clone()])
                    .map_err(|e| Error::query(&location, e))?;
                self.ctx
                    .register_table(*name, Arc::new(mem))
                    .map_err(|e| Error::query(&location, e))?;
            }
        }
        for function in context_functions(&context) {
            self.ctx.register_udf(function);
        }
        self.enrichment = context;
        Ok(())
    }

    /// The context given to this session (empty when none was).
    pub fn enrichment(&self) -> &Arc<Context> {
        &self.enrichment
    }

    /// The same cluster (and context) for a session over part of this one's objects.
    async fn same_cluster(&self, mut other: FlowsSession) -> Result<FlowsSession> {
        other.attach(self.enrichment.clone())?;
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &self.cluster {
            other.cluster =
                Some(super::ClusterSession::connect(&cluster.address, &other.ctx.state()).await?);
        }
        #[cfg(not(feature = "cluster"))]
        let _ = &mut other;
        Ok(other)
    }

    /// Whether `statement` reads the `flows` table.
    fn reads_flows(&self, statement: &Statement) -> bool {
        self.ctx
            .state()
            .resolve_table_references(statement)
            .is_ok_and(|tables| {
                tables
                    .iter()
                    .any(|t| t.table().eq_ignore_ascii_case("flows"))
            })
    }

    /// Runs one query (SQL of one statement) to its end. One that reads `flows` runs on the
    /// cluster when there is one, and what the cluster's scans saw is added to the stats.
    /// One that reads only small in-memory tables (a detection step's or detector's) is
    /// planned for one partition: spreading a few hundred thousand rows over the cores
    /// costs more in repartitioning than it saves, and detection runs such queries beside
    /// one another and beside the next day's rollup, which keep the other cores busy.
    pub async fn collect(&self, location: &str, sql: &str) -> Result<Collected> {
        self.collect_spread(location, sql, Spread::Cores).await
    }

    /// [`FlowsSession::collect`], planned as `spread` says when it reads `flows` here.
    pub async fn collect_spread(
        &self,
        location: &str,
        sql: &str,
        spread: Spread,
    ) -> Result<Collected> {
        let statement = Self::last_statement(location, sql)?;
        let reads_flows = self.reads_flows(&statement);
        #[cfg(feature = "cluster")]
        let cluster = self.cluster.as_ref().filter(|_| reads_flows);
        #[cfg(feature = "cluster")]
        let ctx = cluster.map_or(&self.ctx, |c| &c.ctx);
        #[cfg(not(feature = "cluster"))]
        let ctx = &self.ctx;
        #[cfg(feature = "cluster")]
        let spread = if cluster.is_some() {
            Spread::Cores
        } else {
            spread
        };
        let narrow;
        let ctx = if reads_flows && spread == Spread::Cores {
            ctx
        } else {
            // The same catalog (tables registered later are seen), functions and memory pool.
            let mut state = self.ctx.state();
            state.config_mut().options_mut().execution.target_partitions = 1;
            narrow = SessionContext::new_with_state(state);
            &narrow
        };
        let started = std::time::Instant::now();
        let (schema, plan) = physical_plan(ctx, statement, location).await?;
        let planned = started.elapsed();
        let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
            .await
            .map_err(|e| Error::query(location, e))?;
        // -vvv: planning apart from running; for a detector, planning can be a quarter of
        // its time. Both are wall times, shared with whatever runs beside the query.
        tracing::trace!(
            "{location}: planned in {:.3} s, ran in {:.3} s",
            planned.as_secs_f64(),
            (started.elapsed() - planned).as_secs_f64()
        );
        #[cfg(feature = "cluster")]
        if let Some(cluster) = cluster {
            cluster.absorb_reports(&plan, &self.stats).await?;
        }
        Ok(Collected {
            schema,
            batches,
            plan,
        })
    }

    /// The UTC days (their starts) the selected objects' keys fall on, when every key tells
    /// its time (so a query bounded to one day reads only that day's objects); None
    /// otherwise.
    pub fn object_days(&self) -> Option<std::collections::BTreeSet<i64>> {
        const DAY: i64 = 86_400;
        let mut days = std::collections::BTreeSet::new();
        for o in self.selected_objects() {
            let (lo, hi) = o.key.window?;
            let (first, last) = (lo.div_euclid(DAY), hi.div_euclid(DAY));
            // A key's window is minutes to a day long: a wider one is not worth cutting by.
            if last - first > 2 {
                return None;
            }
            days.extend((first..=last).map(|d| d * DAY));
        }
        Some(days)
    }

    /// A session over objects already listed (local objects only).
    pub fn with_objects(objects: Vec<ObjectRef>, options: DecoderOptions) -> Self {
        let table = FlowsTable::new(objects, options, Arc::new(ScanStats::default()));
        Self::with_table(table, ListingSummary::default(), None)
    }

    fn with_table(table: FlowsTable, listing: ListingSummary, memory_limit: Option<usize>) -> Self {
        let stats = table.stats();
        let table = Arc::new(table);
        let config = SessionConfig::new().with_information_schema(true);
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(limit) = memory_limit {
            // Fair shares, so the sorts and aggregations of a plan each spill within their
            // part instead of the first one taking it all and the next failing; the largest
            // consumers are named when a query fails anyway.
            let pool = TrackConsumersPool::new(
                FairSpillPool::new(limit),
                std::num::NonZeroUsize::new(3).unwrap_or(std::num::NonZeroUsize::MIN),
            );
            runtime = runtime.with_memory_pool(Arc::new(pool));
        }
        let ctx = match runtime.build_arc() {
            Ok(runtime) => SessionContext::new_with_config_rt(config, runtime),
            Err(_) => SessionContext::new_with_config(config),
        };
        for function in flowlens_functions() {
            ctx.register_udf(function);
        }
        let enrichment = Arc::new(Context::default());
        for function in context_functions(&enrichment) {
            ctx.register_udf(function);
        }
        // Registering into a fresh context only fails on a name clash, which cannot happen.
        let _ = ctx.register_table("flows", table.clone());
        FlowsSession {
            ctx,
            stats,
            table,
            listing,
            memory_limit,
            enrichment,
            #[cfg(feature = "cluster")]
            cluster: None,
            held: std::sync::Mutex::new(None),
        }
    }

    /// Makes the next query over `flows` read the rows of `sql` (itself a query over
    /// `flows`), which are kept as they stream by; [`FlowsSession::serve_kept`] then serves
    /// them as `flows` from memory. For work that reads the same records twice (detection
    /// reads the examined window for its rollup, then record by record): they are decoded
    /// once, and the first query still runs while they are read. Rows are kept only when the
    /// session runs here (a cluster reads records where they lie) and within a third of the
    /// memory limit, leaving the rest to the queries over them. Returns whether rows are
    /// being kept.
    pub async fn keep_flows(&self, location: &str, sql: &str) -> Result<bool> {
        self.release_flows()?;
        #[cfg(feature = "cluster")]
        if self.cluster.is_some() {
            return Ok(false);
        }
        let statement = Self::last_statement(location, sql)?;
        let (_, plan) = physical_plan(&self.ctx, statement, location).await?;
        let reservation =
            MemoryConsumer::new("held flows").register(&self.ctx.runtime_env().memory_pool);
        let partitions = plan.properties().output_partitioning().partition_count();
        let budget = self.memory_limit.map_or(usize::MAX, |limit| limit / 3);
        let kept = Arc::new(std::sync::Mutex::new(Kept::new(
            plan.schema(),
            partitions,
            budget,
            reservation,
        )));
        let table = keeping_table(plan, kept.clone()).map_err(|e| Error::query(location, e))?;
        self.swap_flows(location, Arc::new(table))?;
        *lock(&self.held) = Some(kept);
        Ok(true)
    }

    /// After the query that read `flows` following [`FlowsSession::keep_flows`]: when that
    /// query read every row within the budget, `flows` serves the kept rows from memory to the
    /// next query that reads it, each batch let go as it is read, and their size is returned;
    /// otherwise `flows` reads the sources again. Either way, [`FlowsSession::release_flows`]
    /// after that query.
    pub fn serve_kept(&self, location: &str) -> Result<Option<usize>> {
        let mut held = lock(&self.held);
        let Some(kept) = held.as_ref() else {
            return Ok(None);
        };
        let (parts, size, schema) = {
            let mut kept = lock(kept);
            (kept.complete(), kept.size(), kept.schema())
        };
        let Some(parts) = parts else {
            *held = None;
            drop(held);
            self.swap_flows(location, self.table.clone())?;
            return Ok(None);
        };
        let table = served_once_table(schema, parts).map_err(|e| Error::query(location, e))?;
        self.swap_flows(location, Arc::new(table))?;
        Ok(Some(size))
    }

    fn swap_flows(
        &self,
        location: &str,
        table: Arc<dyn datafusion::catalog::TableProvider>,
    ) -> Result<()> {
        self.ctx
            .deregister_table("flows")
            .and_then(|_| self.ctx.register_table("flows", table))
            .map(|_| ())
            .map_err(|e| Error::query(location, e))
    }

    /// Makes `flows` read the sources again after [`FlowsSession::keep_flows`], giving the
    /// kept rows' memory back; nothing when none are kept.
    pub fn release_flows(&self) -> Result<()> {
        let held = lock(&self.held).take();
        if held.is_some() {
            self.swap_flows("flows", self.table.clone())?;
        }
        Ok(())
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// What scans have read so far (objects, rows, bad lines, failures).
    pub fn stats(&self) -> &Arc<ScanStats> {
        &self.stats
    }

    /// Objects a full scan within the configured window would read.
    pub fn selected_objects(&self) -> Vec<ObjectRef> {
        self.table.objects_in(&TimeRange::ALL)
    }

    /// A session like this one over some of its objects (a job working group by group).
    pub async fn subset(&self, objects: Vec<ObjectRef>) -> Result<FlowsSession> {
        self.same_cluster(Self::with_table(
            self.table.with_objects(objects),
            ListingSummary::default(),
            self.memory_limit,
        ))
        .await
    }

    /// Like [`FlowsSession::subset`], but reading every row of the objects whatever the
    /// window they were listed with: a scheduled batch processes a late object's older
    /// records instead of dropping them.
    pub async fn subset_all_rows(&self, objects: Vec<ObjectRef>) -> Result<FlowsSession> {
        self.same_cluster(Self::with_table(
            self.table
                .with_objects(objects)
                .with_time_range(TimeRange::ALL),
            ListingSummary::default(),
            self.memory_limit,
        ))
        .await
    }

    /// What listing found.
    pub fn listing(&self) -> &ListingSummary {
        &self.listing
    }

    /// Splits SQL text into statements; a syntax error names the problem plainly.
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        Self::split(sql)
    }

    /// The last statement of SQL text (a step's or detector's query is one).
    fn last_statement(location: &str, sql: &str) -> Result<Statement> {
        Self::split(sql)?
            .pop()
            .ok_or_else(|| Error::invalid(location, "no SQL statement"))
    }

    /// Splits SQL text into statements without a session.
    pub fn split(sql: &str) -> Result<Vec<Statement>> {
        let statements = DFParser::parse_sql(sql).map_err(|e| Error::query("SQL", e))?;
        Ok(statements.into_iter().collect())
    }

    /// Whether a statement returns rows (a query or EXPLAIN), not only changes the session
    /// (CREATE VIEW, SET).
    pub fn returns_rows(statement: &Statement) -> bool {
        use datafusion::sql::sqlparser::ast::Statement as Ast;
        match statement {
            Statement::Statement(s) => matches!(**s, Ast::Query(_) | Ast::Explain { .. }),
            Statement::Explain(_) => true,
            _ => false,
        }
    }

    /// Plans and starts one statement; batches stream as they are computed.
    pub async fn execute(&self, statement: Statement) -> Result<SendableRecordBatchStream> {
        let location = "SQL";
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &self.cluster {
            return self.execute_on(cluster, statement).await;
        }
        let state = self.ctx.state();
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| Error::query(location, e))?;
        let frame = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| Error::query(location, e))?;
        frame
            .execute_stream()
            .await
            .map_err(|e| Error::query(location, e))
    }

    /// [`FlowsSession::execute`] on the cluster: every statement goes there (tables and
    /// views are shared), and when the rows have all come, what its scans saw is added to
    /// the stats before the stream ends.
    #[cfg(feature = "cluster")]
    async fn execute_on(
        &self,
        cluster: &super::ClusterSession,
        statement: Statement,
    ) -> Result<SendableRecordBatchStream> {
        use futures::StreamExt;
        let location = "SQL";
        let ctx = &cluster.ctx;
        let (_, plan) = physical_plan(ctx, statement, location).await?;
        let schema = plan.schema();
        let rows = datafusion::physical_plan::execute_stream(plan.clone(), ctx.task_ctx())
            .map_err(|e| Error::query(location, e))?;
        let (cluster, stats) = (cluster.clone(), self.stats.clone());
        let reports = futures::stream::once(async move {
            cluster
                .absorb_reports(&plan, &stats)
                .await
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
        })
        .filter_map(|done| async move { done.err().map(Err) });
        Ok(Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                schema,
                rows.chain(reports),
            ),
        ))
    }

    /// Runs SQL (one or more statements) and collects the last statement's result.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let mut result = Vec::new();
        for statement in self.parse(sql)? {
            let stream = self.execute(statement).await?;
            result = datafusion::physical_plan::common::collect(stream)
                .await
                .map_err(|e| Error::query("SQL", e))?;
        }
        Ok(result)
    }
}
