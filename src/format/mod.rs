//! The flow log format: the field catalog and the layouts files are written in.
//! Knows nothing of Arrow builders, I/O or SQL.

mod catalog;
mod flow_format;

pub use catalog::{FIELDS, FieldKind, column_index, flows_schema};
pub use flow_format::{FlowFormat, FormatProblem, is_header_line};
