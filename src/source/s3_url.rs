//! `s3://bucket/prefix` as people write it.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct S3Url {
    pub bucket: String,
    /// Key or key prefix; empty for the whole bucket.
    pub key: String,
}

impl S3Url {
    /// `None` when `text` is not an `s3://` URL; `Err` when it is one but malformed.
    pub fn parse(text: &str) -> Option<Result<Self, String>> {
        let rest = text.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Some(Err(format!(
                "`{text}` names no bucket (s3://bucket/prefix)"
            )));
        }
        Some(Ok(S3Url {
            bucket: bucket.to_string(),
            key: key.to_string(),
        }))
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let url = S3Url::parse("s3://logs/AWSLogs/1/").unwrap().unwrap();
        assert_eq!(
            (url.bucket.as_str(), url.key.as_str()),
            ("logs", "AWSLogs/1/")
        );
        assert_eq!(url.to_string(), "s3://logs/AWSLogs/1/");
        let bare = S3Url::parse("s3://logs").unwrap().unwrap();
        assert_eq!(bare.key, "");
        assert!(S3Url::parse("s3:///x").unwrap().is_err());
        assert!(S3Url::parse("/tmp/x").is_none());
    }
}
