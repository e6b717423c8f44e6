//! SQL over flow logs: sessions with the `flows` table and flowlens's functions.

#[cfg(feature = "cluster")]
mod cluster;
mod context_functions;
mod functions;
mod held_flows;
mod library;
mod session;

#[cfg(all(feature = "cluster", test))]
pub(crate) use cluster::standalone;
#[cfg(feature = "cluster")]
pub(crate) use cluster::with_codecs;
#[cfg(feature = "cluster")]
pub use cluster::{ClusterAddress, ClusterSession, DEFAULT_SCHEDULER_PORT, flowlens_state};
pub use context_functions::CONTEXT_FUNCTION_DOCS;
pub use datafusion::sql::parser::Statement;
pub(crate) use functions::protocol_name;
pub use functions::{FUNCTION_DOCS, is_private};
pub use library::{NamedQuery, QueryLibrary, QueryOrigin};
pub(crate) use library::{QueryParam, literal};
pub use session::{FlowsConfig, FlowsSession, Spread, default_memory_limit};
