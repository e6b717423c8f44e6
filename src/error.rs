//! The one error type of the library. Every variant says where it happened: a file or
//! `s3://bucket/key` and a line where there is one, a flag, or the query.

use std::io;

use crate::decode::BadLineReason;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A line that is not a flow log record (only raised with `--strict`; otherwise counted).
    #[error("{location}:{line}: {reason}: {detail}")]
    BadLine {
        location: String,
        line: u64,
        reason: BadLineReason,
        detail: String,
    },

    /// A header that names transit gateway fields: a different record type.
    #[error(
        "{location}:{line}: this is a transit gateway flow log (its header names `{field}`); \
         flowlens reads VPC flow logs only"
    )]
    TransitGateway {
        location: String,
        line: u64,
        field: String,
    },

    /// A `--format` string or header that cannot describe a flow log record.
    #[error("{location}: invalid flow log format: {reason}")]
    Format { location: String, reason: String },

    /// Reading, decompressing or listing failed (a truncated gzip object lands here).
    #[error("{location}: {source}")]
    Io {
        location: String,
        #[source]
        source: io::Error,
    },

    /// An S3 request failed; `location` is `s3://bucket/key` (or the prefix being listed).
    #[error("{location}: {message}")]
    S3 { location: String, message: String },

    /// A Parquet object that could not be read.
    #[error("{location}: {source}")]
    Parquet {
        location: String,
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// Building Arrow data failed.
    #[error("{location}: {source}")]
    Arrow {
        location: String,
        #[source]
        source: arrow::error::ArrowError,
    },

    /// Planning or running SQL failed; `location` names the query or statement.
    #[error("{location}: {source}")]
    Query {
        location: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },

    /// A query needed more memory than the limit and could not spill its way around it.
    #[error(
        "{location}: the query needs more memory than the limit allows (raise --memory-mb or \
         FLOWLENS_MEMORY_MB): {message}"
    )]
    MemoryLimit { location: String, message: String },

    /// The cluster (`--cluster`, `flowlens scheduler`, `flowlens executor`) could not be
    /// reached or run; `address` is the scheduler's.
    #[error("cluster {address}: {message}")]
    Cluster { address: String, message: String },

    /// A call to an AWS API other than S3's (EC2, Security Hub, SNS, …) or to a webhook
    /// failed; `location` names the call (and region, account or URL).
    #[error("{location}: {message}")]
    Service { location: String, message: String },

    /// A context file (inventory table, ip-ranges.json, GeoIP database, address list) that
    /// cannot be read as what it claims to be; `location` is the file and line or offset.
    #[error("{location}: {reason}")]
    BadFile { location: String, reason: String },

    /// A user-supplied value that does not make sense, e.g. `--since yesterday-ish`.
    #[error("{location}: {reason}")]
    Invalid { location: String, reason: String },
}

impl Error {
    pub(crate) fn io(location: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            location: location.into(),
            source,
        }
    }

    pub(crate) fn bad_file(location: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::BadFile {
            location: location.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(location: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            location: location.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn query(
        location: impl Into<String>,
        source: datafusion::error::DataFusionError,
    ) -> Self {
        let location = location.into();
        if let datafusion::error::DataFusionError::ResourcesExhausted(message) = source.find_root()
        {
            return Error::MemoryLimit {
                location,
                message: message.clone(),
            };
        }
        Error::Query { location, source }
    }
}
