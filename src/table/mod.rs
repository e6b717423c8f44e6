//! The `flows` table DataFusion queries.

mod flows_table;
mod time_filters;

pub use flows_table::FlowsTable;
