//! SQL over flow logs: sessions with the `flows` table and flowlens's functions.

mod functions;
mod library;
mod session;

pub use functions::{FUNCTION_DOCS, flowlens_functions, is_private, protocol_name, tcp_flag_names};
pub use library::{NamedQuery, ParamKind, QueryLibrary, QueryOrigin, QueryParam};
pub use session::{FlowsConfig, FlowsSession, ListingSummary, shard_of};
