//! The batch job over archives (convert) and, later, the scheduled task.

mod convert;

pub use convert::{ConvertOptions, ConvertSummary, athena_ddl, convert, stale_files};
