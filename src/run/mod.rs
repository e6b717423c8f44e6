//! The batch job over archives (convert) and the scheduled container task (run).

mod convert;
mod notifications;
mod scheduled;

pub use convert::{ConvertOptions, ConvertSummary, athena_ddl, convert, remove_stale};
pub use scheduled::{RunConfig, RunStatus, run_once};
