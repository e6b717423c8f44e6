//! flowlens: SQL, per-interface baselines and findings over AWS VPC flow logs.
//!
//! The layers follow the data (DESIGN.md): `source` lists and reads objects, `decode` turns
//! their text into Arrow batches (`format` knows the fields), `table` serves those batches to
//! DataFusion as `flows`, and `query`, `detect` and `run` are the jobs built on it. The
//! modules are private; what the binary, the tests and the benches use is re-exported here.

#[cfg(feature = "cluster")]
mod cluster;
mod context;
mod decode;
mod detect;
mod error;
mod failpoint;
mod format;
mod generate;
mod output;
mod query;
mod run;
mod source;
mod stable_hash;
mod table;
mod time_range;

#[cfg(feature = "cluster")]
pub use cluster::{ExecutorSettings, SchedulerSettings, run_executor, run_scheduler};
pub use context::{Context, ContextOptions, write_inventory};
pub use decode::{Decoder, DecoderOptions, FieldCondition, ValueTest};
pub use detect::{
    Alert, BASELINE_FORMAT, Baseline, BaselineMeta, BaselineStore, Cooldown, DAY, Delivery,
    DetectCatalog, DetectPlan, DetectReport, Finding, FindingsFormat, Incident, Severity, alerts,
    any_at_or_above, assign_incidents, baseline_listing, deliver, detect, evaluate,
    export_to_security_hub, learn_baseline, read_labels, render_findings, render_incidents,
    render_report, to_asff, write_security_lake,
};
pub use error::{Error, Result};
pub use failpoint::request_stop;
pub use format::{FIELDS, FlowFormat, column_index, flows_schema};
pub use generate::{GenerateOptions, KeyLayout, generate};
pub use output::{
    OutputFormat, OutputOptions, human_bytes, write_batches, write_stream, write_text,
};
pub use query::{
    CONTEXT_FUNCTION_DOCS, FUNCTION_DOCS, FlowsConfig, FlowsSession, QueryLibrary, QueryOrigin,
    Statement, default_memory_limit, is_private,
};
#[cfg(feature = "cluster")]
pub use query::{ClusterAddress, DEFAULT_SCHEDULER_PORT};
pub use run::{
    ConvertOptions, ConvertSummary, RunConfig, RunStatus, athena_ddl, convert, remove_stale,
    run_once,
};
pub use source::{
    AsffFinding, ImportSummary, InventoryOptions, InventorySnapshot, NotifyTarget, S3Options,
    snapshot_inventory,
};
pub use time_range::{TimeRange, format_time, parse_time};

/// Entry points for the fuzz targets under `tests/fuzz/` (built with `--cfg fuzzing` by
/// cargo-fuzz): internals worth fuzzing that are not part of the public API.
#[cfg(fuzzing)]
pub mod fuzzing {
    pub use crate::source::key_info;
    pub use crate::time_range::MAX_TIME;

    /// The key layout of a folder prefix, as S3 listing reads it.
    pub fn prefix_window(prefix: &str) -> Option<(i64, i64)> {
        crate::source::prefix_info(prefix).window
    }

    /// Renders named-query text with parameter values, as `flowlens query` does.
    pub fn render_query(text: &str, values: &[(String, String)]) -> crate::Result<String> {
        crate::query::NamedQuery::parse(text, crate::query::QueryOrigin::Builtin)?.render(values)
    }
}
