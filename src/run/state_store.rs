//! Where the scheduled task keeps its state (checkpoint, lock, pending batch, baseline):
//! a local folder or an S3 prefix. Every write replaces a whole object at once (a rename
//! locally, one PutObject on S3), so a crash never leaves half of one.

use std::path::PathBuf;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use crate::error::{Error, Result};
use crate::source::{S3Options, S3Url, s3_client};

pub enum StateStore {
    Local(PathBuf),
    S3 { client: Client, url: S3Url },
}

impl StateStore {
    pub async fn open(location: &str, s3: &S3Options) -> Result<Self> {
        Ok(match S3Url::parse(location) {
            Some(Ok(url)) => StateStore::S3 {
                client: s3_client(s3).await,
                url,
            },
            Some(Err(reason)) => return Err(Error::invalid("state", reason)),
            None => StateStore::Local(PathBuf::from(location)),
        })
    }

    pub fn location(&self, name: &str) -> String {
        match self {
            StateStore::Local(dir) => dir.join(name).display().to_string(),
            StateStore::S3 { url, .. } => {
                format!("{}/{name}", url.to_string().trim_end_matches('/'))
            }
        }
    }

    fn key(url: &S3Url, name: &str) -> String {
        let base = url.key.trim_end_matches('/');
        if base.is_empty() {
            name.to_string()
        } else {
            format!("{base}/{name}")
        }
    }

    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let location = self.location(name);
        match self {
            StateStore::Local(dir) => match std::fs::read(dir.join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(location, e)),
            },
            StateStore::S3 { client, url } => {
                let result = client
                    .get_object()
                    .bucket(&url.bucket)
                    .key(Self::key(url, name))
                    .send()
                    .await;
                match result {
                    Ok(output) => {
                        let body = output.body.collect().await.map_err(|e| Error::S3 {
                            location: location.clone(),
                            message: e.to_string(),
                        })?;
                        Ok(Some(body.into_bytes().to_vec()))
                    }
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                    Err(e) => Err(crate::source::s3_error_for(location, &e)),
                }
            }
        }
    }

    /// Replaces `name` with `bytes`, all at once.
    pub async fn put(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let location = self.location(name);
        match self {
            StateStore::Local(dir) => {
                let path = dir.join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(&location, e))?;
                }
                let staging = staged(path.parent().unwrap_or(dir), bytes, &location)?;
                staging
                    .persist(&path)
                    .map(|_| ())
                    .map_err(|e| Error::io(&location, e.error))
            }
            StateStore::S3 { client, url } => client
                .put_object()
                .bucket(&url.bucket)
                .key(Self::key(url, name))
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| crate::source::s3_error_for(location, &e)),
        }
    }

    /// Creates `name` only if it does not exist; false if it does. On S3 this is a
    /// conditional PutObject (If-None-Match: *).
    pub async fn create(&self, name: &str, bytes: &[u8]) -> Result<bool> {
        let location = self.location(name);
        match self {
            StateStore::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(&location, e))?;
                // Written whole to a temporary file first, then linked into place: the link
                // fails if the name exists, and a failed write (disk full) never leaves an
                // empty or half-written object under the name.
                let staging = staged(dir, bytes, &location)?;
                match std::fs::hard_link(staging.path(), dir.join(name)) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(Error::io(location, e)),
                }
            }
            StateStore::S3 { client, url } => {
                let result = client
                    .put_object()
                    .bucket(&url.bucket)
                    .key(Self::key(url, name))
                    .if_none_match("*")
                    .body(ByteStream::from(bytes.to_vec()))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(true),
                    Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                        Ok(false)
                    }
                    Err(e) => Err(crate::source::s3_error_for(location, &e)),
                }
            }
        }
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let location = self.location(name);
        match self {
            StateStore::Local(dir) => match std::fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(location, e)),
                _ => Ok(()),
            },
            StateStore::S3 { client, url } => client
                .delete_object()
                .bucket(&url.bucket)
                .key(Self::key(url, name))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| crate::source::s3_error_for(location, &e)),
        }
    }
}

/// `bytes` written whole and synced to a temporary file in `folder`, to be renamed or linked
/// into place (a failed write leaves nothing under the real name).
fn staged(
    folder: &std::path::Path,
    bytes: &[u8],
    location: &str,
) -> Result<tempfile::NamedTempFile> {
    use std::io::Write;
    let mut staging =
        tempfile::NamedTempFile::new_in(folder).map_err(|e| Error::io(location, e))?;
    staging
        .write_all(bytes)
        .and_then(|()| staging.as_file().sync_all())
        .map_err(|e| Error::io(location, e))?;
    Ok(staging)
}
