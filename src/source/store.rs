//! A folder of small whole objects (state, baselines, findings), local or on S3: the one
//! place outside the object reader that does I/O. Every write replaces a whole object at
//! once (a rename locally, one PutObject on S3), so a crash never leaves half of one.

use std::fmt;
use std::path::PathBuf;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use crate::error::{Error, Result};
use crate::source::{S3Options, S3Url, s3_client};

/// Where a user pointed flowlens: parsed once from the text of a flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3(S3Url),
    /// `-`: standard input or output.
    Std,
}

impl Location {
    /// `what` names the flag in the error for a malformed `s3://` URL.
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        match S3Url::parse(text) {
            Some(Ok(url)) => Ok(Location::S3(url)),
            Some(Err(reason)) => Err(Error::invalid(what, reason)),
            None if text == "-" => Ok(Location::Std),
            None => Ok(Location::Local(PathBuf::from(text))),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3(url) => write!(f, "{url}"),
            Location::Std => write!(f, "-"),
        }
    }
}

/// A folder (local) or prefix (S3) of whole objects, named relative to it.
#[derive(Clone)]
pub enum Store {
    Local(PathBuf),
    S3 { client: Client, url: S3Url },
}

impl Store {
    /// The store at `location` (`what` names the flag in errors). Standard input or output
    /// holds no objects.
    pub async fn open(location: &str, what: &str, s3: &S3Options) -> Result<Self> {
        Ok(match Location::parse(location, what)? {
            Location::S3(url) => Store::S3 {
                client: s3_client(s3).await,
                url,
            },
            Location::Local(path) => Store::Local(path),
            Location::Std => {
                return Err(Error::invalid(
                    what,
                    "`-` is not a folder or an s3:// prefix",
                ));
            }
        })
    }

    /// The store for a folder inside this one.
    pub fn child(&self, name: &str) -> Store {
        match self {
            Store::Local(dir) => Store::Local(dir.join(name)),
            Store::S3 { client, url } => Store::S3 {
                client: client.clone(),
                url: S3Url {
                    bucket: url.bucket.clone(),
                    key: format!("{}/", Self::key(url, name)),
                },
            },
        }
    }

    /// The store holding the file `location` names, and the file's name in it (for outputs
    /// given as one file: `--out results.parquet`, `--out s3://bucket/findings.jsonl`).
    pub async fn for_file(location: &str, what: &str, s3: &S3Options) -> Result<(Self, String)> {
        match Location::parse(location, what)? {
            Location::S3(url) => {
                let (folder, name) = url.key.rsplit_once('/').unwrap_or(("", &url.key));
                if name.is_empty() {
                    return Err(Error::invalid(
                        what,
                        format!("`{location}` names no object"),
                    ));
                }
                let store = Store::S3 {
                    client: s3_client(s3).await,
                    url: S3Url {
                        bucket: url.bucket.clone(),
                        key: folder.to_string(),
                    },
                };
                Ok((store, name.to_string()))
            }
            Location::Local(path) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .ok_or_else(|| Error::invalid(what, format!("`{location}` names no file")))?;
                let folder = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("."));
                Ok((Store::Local(folder), name))
            }
            Location::Std => Err(Error::invalid(what, "`-` is not a file")),
        }
    }

    /// The names of the objects in `folder` and below (relative to the store,
    /// `/`-separated), sorted; none when the folder does not exist.
    pub async fn list(&self, folder: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        match self {
            Store::Local(dir) => {
                let mut stack = vec![dir.join(folder)];
                while let Some(folder) = stack.pop() {
                    let entries = match std::fs::read_dir(&folder) {
                        Ok(entries) => entries,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(Error::io(folder.display().to_string(), e)),
                    };
                    for entry in entries {
                        let entry =
                            entry.map_err(|e| Error::io(folder.display().to_string(), e))?;
                        let path = entry.path();
                        if path.is_dir() {
                            stack.push(path);
                        } else if let Ok(rel) = path.strip_prefix(dir) {
                            names.push(rel.to_string_lossy().replace('\\', "/"));
                        }
                    }
                }
            }
            Store::S3 { client, url } => {
                let base = Self::key(url, "");
                let prefix = match folder.trim_end_matches('/') {
                    "" => base.clone(),
                    f => Self::key(url, &format!("{f}/")),
                };
                let mut pages = client
                    .list_objects_v2()
                    .bucket(&url.bucket)
                    .prefix(prefix)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page =
                        page.map_err(|e| crate::source::s3_error_for(self.location(folder), &e))?;
                    for object in page.contents() {
                        if let Some(key) = object.key() {
                            names.push(key.strip_prefix(&base).unwrap_or(key).to_string());
                        }
                    }
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// A temporary file to write `name` into before [`Store::commit`]: beside it locally (so
    /// the commit is a rename on one file system; the leading dot keeps Athena, Spark and
    /// flowlens from reading it), in the system's temporary folder for S3.
    pub fn staging(&self, name: &str) -> Result<tempfile::NamedTempFile> {
        let location = self.location(name);
        match self {
            Store::Local(dir) => {
                let path = dir.join(name);
                let parent = path.parent().unwrap_or(dir);
                std::fs::create_dir_all(parent).map_err(|e| Error::io(&location, e))?;
                tempfile::Builder::new()
                    .prefix(".flowlens-")
                    .tempfile_in(parent)
                    .map_err(|e| Error::io(location, e))
            }
            Store::S3 { .. } => tempfile::NamedTempFile::new().map_err(|e| Error::io(location, e)),
        }
    }

    /// Puts a finished staging file in place as `name`, whole: a rename, or one upload (in
    /// parts when large). Readers see the old object or the new one, never half of one.
    pub async fn commit(&self, name: &str, staged: tempfile::TempPath) -> Result<()> {
        let location = self.location(name);
        match self {
            Store::Local(dir) => staged
                .persist(dir.join(name))
                .map_err(|e| Error::io(location, e.error)),
            Store::S3 { client, url } => {
                let target = S3Url {
                    bucket: url.bucket.clone(),
                    key: Self::key(url, name),
                };
                crate::source::upload_file(client, &target, &staged).await
            }
        }
    }

    pub fn location(&self, name: &str) -> String {
        match self {
            Store::Local(dir) => dir.join(name).display().to_string(),
            Store::S3 { url, .. } => {
                format!("{}/{name}", url.to_string().trim_end_matches('/'))
            }
        }
    }

    fn key(url: &S3Url, name: &str) -> String {
        let base = url.key.trim_end_matches('/');
        match (base.is_empty(), name.is_empty()) {
            (true, _) => name.to_string(),
            (false, true) => format!("{base}/"),
            (false, false) => format!("{base}/{name}"),
        }
    }

    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let location = self.location(name);
        match self {
            Store::Local(dir) => match std::fs::read(dir.join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(location, e)),
            },
            Store::S3 { client, url } => {
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
            Store::Local(dir) => {
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
            Store::S3 { client, url } => client
                .put_object()
                .bucket(&url.bucket)
                .key(Self::key(url, name))
                .set_content_type(content_type(name).map(str::to_string))
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
            Store::Local(dir) => {
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
            Store::S3 { client, url } => {
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
            Store::Local(dir) => match std::fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(location, e)),
                _ => {
                    // As on S3, a folder goes with the last file in it (a baseline's old
                    // version, a partition convert emptied); the store's own folder stays.
                    let mut folder = dir.join(name);
                    while folder.pop() && folder.starts_with(dir) && folder != *dir {
                        if std::fs::remove_dir(&folder).is_err() {
                            break;
                        }
                    }
                    Ok(())
                }
            },
            Store::S3 { client, url } => client
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

/// The Content-Type an object is stored with, from its name: a report opened from S3 (or
/// through CloudFront) must be served as a page, not downloaded.
pub(crate) fn content_type(name: &str) -> Option<&'static str> {
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    Some(match extension.as_str() {
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "jsonl" => "application/x-ndjson",
        "csv" => "text/csv; charset=utf-8",
        "parquet" => "application/vnd.apache.parquet",
        "txt" | "log" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_delete_takes_the_folders_it_empties_but_not_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = Store::Local(root.clone());
        store.put("v1/a/one.parquet", b"1").await.unwrap();
        store.put("v1/two.parquet", b"2").await.unwrap();
        store.delete("v1/a/one.parquet").await.unwrap();
        assert!(!root.join("v1/a").exists());
        assert!(root.join("v1/two.parquet").exists());
        store.delete("v1/two.parquet").await.unwrap();
        assert!(!root.join("v1").exists());
        assert!(root.is_dir());
        // Deleting what is not there is fine.
        store.delete("v9/none.parquet").await.unwrap();
    }
}
