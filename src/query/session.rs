//! A DataFusion session over flow logs: the `flows` table, flowlens's functions, and
//! running SQL text that may hold several statements.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};

use super::functions::flowlens_functions;
use crate::decode::DecoderOptions;
use crate::error::{Error, Result};
use crate::format::FlowFormat;
use crate::source::{ObjectRef, ScanStats, list_local};
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
}

/// A session whose `flows` table reads the configured sources.
pub struct FlowsSession {
    ctx: SessionContext,
    stats: Arc<ScanStats>,
    table: Arc<FlowsTable>,
    skipped_files: usize,
}

impl FlowsSession {
    /// Lists the sources and registers the `flows` table and functions.
    pub fn open(config: &FlowsConfig) -> Result<Self> {
        let listing = list_local(&config.sources)?;
        let options = DecoderOptions {
            default_format: config.format.clone().unwrap_or_else(FlowFormat::default_v2),
            strict: config.strict,
            time_range: config.time_range,
            ..DecoderOptions::default()
        };
        Ok(Self::with_objects(
            listing.objects,
            options,
            listing.skipped.len(),
        ))
    }

    /// A session over objects already listed.
    pub fn with_objects(objects: Vec<ObjectRef>, options: DecoderOptions, skipped: usize) -> Self {
        let stats = Arc::new(ScanStats::default());
        let table = Arc::new(FlowsTable::new(objects, options, stats.clone()));
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        for function in flowlens_functions() {
            ctx.register_udf(function);
        }
        // Registering into a fresh context only fails on a name clash, which cannot happen.
        let _ = ctx.register_table("flows", table.clone());
        FlowsSession {
            ctx,
            stats,
            table,
            skipped_files: skipped,
        }
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

    /// Files under source folders that were passed over (not flow log names).
    pub fn skipped_files(&self) -> usize {
        self.skipped_files
    }

    /// Splits SQL text into statements; a syntax error names the problem plainly.
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        let statements = DFParser::parse_sql(sql).map_err(|e| Error::query("SQL", e))?;
        Ok(statements.into_iter().collect())
    }

    /// Plans and starts one statement; batches stream as they are computed.
    pub async fn execute(&self, statement: Statement) -> Result<SendableRecordBatchStream> {
        let location = "SQL";
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
