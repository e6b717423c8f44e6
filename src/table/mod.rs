//! The `flows` table DataFusion queries.

mod flows_table;
mod time_filters;

pub use flows_table::FlowsTable;
pub use time_filters::time_range_of;
