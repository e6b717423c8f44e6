//! Where flow logs come from: listing objects (pruned by the key layout), reading them
//! through decompression into the decoder. The only layer that does I/O.

mod key_layout;
mod local_listing;
mod object;
mod object_reader;
mod parquet_object;
mod scan_stats;

pub use key_layout::{KeyInfo, key_info};
pub use local_listing::{LocalListing, list_local};
pub use object::{ObjectLocation, ObjectRef};
pub use object_reader::scan_objects;
pub use scan_stats::{ObjectFailure, ScanStats};
