//! Bytes to Arrow: the push decoder that turns flow log text into record batches.
//! Knows nothing of files, S3 or SQL.

mod bad_lines;
mod columns;
mod conditions;
mod decoder;
mod number;
mod words;

pub use bad_lines::{BadLineReason, BadLines};
pub use conditions::{FieldCondition, ValueTest};
pub(crate) use decoder::header_text;
pub use decoder::{Decoder, DecoderOptions, UnknownField};
