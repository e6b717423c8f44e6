//! The `flows` table DataFusion queries.

#[cfg(feature = "cluster")]
mod codec;
mod flows_scan;
mod flows_table;
mod materialised;
mod time_filters;
mod value_filters;

#[cfg(feature = "cluster")]
pub use codec::{FlowsLogicalCodec, FlowsPhysicalCodec};
#[cfg(feature = "cluster")]
pub(crate) use flows_scan::report_in_metric;
pub use flows_table::FlowsTable;
pub use materialised::{Table, from_parquet, to_parquet};
