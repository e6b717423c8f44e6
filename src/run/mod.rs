//! The batch job over archives (convert) and the scheduled container task (run).

mod convert;
mod scheduled;
mod state_store;

pub use convert::{ConvertOptions, ConvertSummary, athena_ddl, convert, remove_stale};
pub use scheduled::{RunConfig, run_once};
