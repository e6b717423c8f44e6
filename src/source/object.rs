//! One readable object: a local file or standard input (S3 objects join here).

use std::fmt;
use std::path::PathBuf;

use super::key_layout::{KeyInfo, key_info};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectLocation {
    Path(PathBuf),
    Stdin,
}

impl fmt::Display for ObjectLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectLocation::Path(p) => write!(f, "{}", p.display()),
            ObjectLocation::Stdin => f.write_str("<stdin>"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub location: ObjectLocation,
    /// Bytes as stored (compressed size for gzip); 0 for stdin.
    pub size: u64,
    pub key: KeyInfo,
}

impl ObjectRef {
    pub fn path(path: PathBuf, size: u64) -> Self {
        let key = key_info(&path.to_string_lossy());
        ObjectRef {
            location: ObjectLocation::Path(path),
            size,
            key,
        }
    }

    pub fn stdin() -> Self {
        ObjectRef {
            location: ObjectLocation::Stdin,
            size: 0,
            key: KeyInfo::default(),
        }
    }
}
