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
