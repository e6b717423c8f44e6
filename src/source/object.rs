//! One readable object: a local file, standard input, or an S3 object.

use std::fmt;
use std::path::PathBuf;

use super::key_layout::{KeyInfo, key_info};
use super::s3_url::S3Url;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectLocation {
    Path(PathBuf),
    Stdin,
    S3(S3Url),
    /// A CloudWatch Logs stream, read at listing into a spool (see cloudwatch_logs).
    Logs {
        group: String,
        stream: String,
    },
}

impl fmt::Display for ObjectLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectLocation::Path(p) => write!(f, "{}", p.display()),
            ObjectLocation::Stdin => f.write_str("<stdin>"),
            ObjectLocation::S3(url) => write!(f, "{url}"),
            ObjectLocation::Logs { group, stream } => write!(f, "logs://{group}/{stream}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub location: ObjectLocation,
    /// Bytes as stored (compressed size for gzip); 0 for stdin.
    pub size: u64,
    pub key: KeyInfo,
    /// Set when only a line-aligned part of a large plain-text file is to be read (see
    /// text_parts.rs); `None` reads the whole object.
    pub part: Option<TextPart>,
}

/// A byte range of a large plain-text file or object, read by its own partition. The lines
/// before it and the header that governs its first lines are known (or learnt while it is
/// read), so its rows, line numbers and bad lines are those that reading the file whole
/// gives at that point.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TextPart {
    /// This part's number, from 0, of `count`.
    pub index: u32,
    pub count: u32,
    /// Byte offsets: `start` is a line's first byte, `end` one past a newline (or the end);
    /// unless `nominal`.
    pub start: u64,
    pub end: u64,
    /// `start` and `end` were set without looking at the bytes there (an S3 object): the part
    /// holds the lines that start in `start..end` (see part_source.rs).
    #[serde(default)]
    pub nominal: bool,
    /// The version of the S3 object that was cut, when the store names it: every part reads
    /// that version or fails.
    #[serde(default)]
    pub etag: Option<String>,
    /// Lines of the file before `start`.
    pub lines_before: u64,
    /// The last header line before `start` and its line number, when there is one; else
    /// the default format governs the part's first lines.
    pub header: Option<(u64, String)>,
    /// The lines before the part were not counted when the file was cut: `lines_before` is
    /// 0 and `header` is the file's first header, taken to govern the part until the parts
    /// before it have been read and tell otherwise (see part_ledger.rs).
    #[serde(default)]
    pub assumed: bool,
    /// Where the parts of this file, read side by side in this process, tell each other
    /// what they hold. Not sent to other processes: a part sent there is counted.
    #[serde(skip)]
    pub(crate) ledger: Option<super::part_ledger::PartLedger>,
}

impl fmt::Display for TextPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "part {} of {} (bytes {}-{})",
            self.index + 1,
            self.count,
            self.start,
            self.end
        )
    }
}

impl ObjectRef {
    pub fn path(path: PathBuf, size: u64) -> Self {
        let key = key_info(&path.to_string_lossy());
        ObjectRef {
            location: ObjectLocation::Path(path),
            size,
            key,
            part: None,
        }
    }

    pub fn stdin() -> Self {
        ObjectRef {
            location: ObjectLocation::Stdin,
            size: 0,
            key: KeyInfo::default(),
            part: None,
        }
    }

    pub fn s3(bucket: &str, key: &str, size: u64) -> Self {
        ObjectRef {
            location: ObjectLocation::S3(S3Url {
                bucket: bucket.to_string(),
                key: key.to_string(),
            }),
            size,
            key: key_info(key),
            part: None,
        }
    }

    /// The bytes this reads: its part's, or the whole object's.
    pub fn bytes_to_read(&self) -> u64 {
        match &self.part {
            Some(part) => part.end - part.start,
            None => self.size,
        }
    }

    /// AWS-delivered Parquet, told by its name (S3 objects are not peeked at first).
    pub fn is_parquet_name(&self) -> bool {
        match &self.location {
            ObjectLocation::S3(url) => url.key.ends_with(".parquet"),
            ObjectLocation::Path(p) => p.extension().is_some_and(|e| e == "parquet"),
            ObjectLocation::Stdin | ObjectLocation::Logs { .. } => false,
        }
    }
}

/// Names a folder walk or prefix listing takes: flow log text (plain or gzip) and Parquet.
/// An object named explicitly is always taken, whatever its name.
pub(crate) fn flow_log_name(name: &str) -> bool {
    let name = name.rsplit(['/', '\\']).next().unwrap_or(name);
    !name.starts_with('.')
        && [".log", ".gz", ".txt", ".parquet"]
            .iter()
            .any(|ext| name.ends_with(ext))
}
