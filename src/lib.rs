pub mod decode;
pub mod error;
pub mod format;
pub mod source;
pub mod time_range;
