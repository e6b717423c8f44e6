//! Where flow logs come from: listing objects (pruned by the key layout), reading them
//! through decompression into the decoder. The only layer that does I/O, and the only one
//! that talks to S3.

mod aws_config;
mod cloudwatch_logs;
mod ec2_inventory;
mod held_rows;
mod http_cache;
mod key_layout;
mod listing;
mod local_listing;
mod notify;
mod object;
mod object_reader;
mod ocsf_flows;
mod parquet_object;
mod part_ledger;
mod part_reader;
mod part_source;
mod s3_client;
mod s3_reader;
mod s3_upload;
mod s3_url;
mod scan_stats;
mod security_hub;
mod sqs_queue;
mod store;
mod text_parts;

pub use aws_config::{caller_account, configured_region};
pub use ec2_inventory::{
    InterfaceRow, InventoryOptions, InventorySnapshot, NetworkAclRow, SecurityGroupRow, SubnetRow,
    VpcRow, snapshot_inventory,
};
pub use http_cache::fetch_cached;
pub use key_layout::key_info;
#[cfg(fuzzing)]
pub(crate) use key_layout::prefix_info;
pub(crate) use listing::warn_future;
pub use listing::{ListFilter, latest_key_start, list_sources};
pub use notify::{Message, NotifyTarget, send};
// A part of a large file crosses the wire only to a cluster's executors (table/codec.rs).
#[cfg(feature = "cluster")]
pub use object::TextPart;
pub use object::{ObjectLocation, ObjectRef};
pub use object_reader::{ReadContext, scan_objects, spool_stdin};
pub(crate) use s3_client::s3_error as s3_error_for;
pub use s3_client::{
    DEFAULT_CONCURRENCY, S3Access, S3Options, default_concurrency, s3_access, s3_client,
};
pub use s3_upload::upload_file;
pub use s3_url::S3Url;
pub use scan_stats::{ScanReport, ScanStats};
pub use security_hub::{AsffFinding, ImportSummary, import_findings};
pub use sqs_queue::{delete_messages, receive_messages};
pub use store::{Location, Store};
pub(crate) use text_parts::{MIN_PART, PartStarts, split_large_files};
