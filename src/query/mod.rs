//! SQL over flow logs: sessions with the `flows` table and flowlens's functions.

mod functions;
mod library;
mod session;

pub use datafusion::sql::parser::Statement;
pub use functions::{FUNCTION_DOCS, is_private};
pub use library::{NamedQuery, QueryLibrary, QueryOrigin};
pub(crate) use library::{QueryParam, literal};
pub use session::{FlowsConfig, FlowsSession, default_memory_limit};
