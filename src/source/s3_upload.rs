//! Putting a finished local file (a result, a Parquet file) at an S3 key.

use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use super::s3_client::s3_error;
use super::s3_url::S3Url;
use crate::error::{Error, Result};

/// Uploads `path` to `url` in one PutObject (objects up to 5 GB).
pub async fn upload_file(client: &Client, url: &S3Url, path: &Path) -> Result<()> {
    let location = url.to_string();
    let body = ByteStream::from_path(path).await.map_err(|e| Error::S3 {
        location: location.clone(),
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    client
        .put_object()
        .bucket(&url.bucket)
        .key(&url.key)
        .body(body)
        .send()
        .await
        .map_err(|e| s3_error(location, &e))?;
    Ok(())
}

/// Deletes the objects directly under `folder` (a key prefix ending in `/`) whose names start
/// with `name_prefix`, except the keys in `keep`: the files a rerun of a job no longer writes.
/// Returns the keys deleted, as `s3://` locations.
pub async fn delete_others(
    client: &Client,
    bucket: &str,
    folder: &str,
    name_prefix: &str,
    keep: &std::collections::BTreeSet<String>,
) -> Result<Vec<String>> {
    let prefix = format!("{folder}{name_prefix}");
    let location = format!("s3://{bucket}/{prefix}");
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&prefix)
        .delimiter("/")
        .into_paginator()
        .send();
    let mut stale = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| s3_error(location.clone(), &e))?;
        stale.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .filter(|k| !keep.contains(*k))
                .map(str::to_string),
        );
    }
    let mut deleted = Vec::new();
    for key in stale {
        let location = format!("s3://{bucket}/{key}");
        client
            .delete_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_error(location.clone(), &e))?;
        deleted.push(location);
    }
    Ok(deleted)
}
