//! Putting a finished local file (a result, a Parquet file) at an S3 key, and clearing away
//! what a rerun no longer writes.

use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::{StreamExt, TryStreamExt};

use super::s3_client::s3_error;
use super::s3_url::S3Url;
use crate::error::{Error, Result};

/// Files larger than this go up in parts of this size (S3 takes 5 MiB to 5 GiB a part and
/// at most 10,000 parts; one PutObject takes at most 5 GB).
const PART_BYTES: u64 = 16 << 20;
/// Parts in flight at once: one connection alone rarely fills the bandwidth to S3.
const PARTS_AT_ONCE: usize = 4;
const MAX_PARTS: u64 = 10_000;

/// Uploads `path` to `url`: in one PutObject up to [`PART_BYTES`], else as a multipart upload
/// of parts sent side by side (aborted if any part fails, so no orphaned parts are billed).
pub async fn upload_file(client: &Client, url: &S3Url, path: &Path) -> Result<()> {
    let location = url.to_string();
    let read_error = |e: &dyn std::fmt::Display| Error::S3 {
        location: location.clone(),
        message: format!("cannot read {}: {e}", path.display()),
    };
    let size = std::fs::metadata(path).map_err(|e| read_error(&e))?.len();
    if size <= PART_BYTES {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| read_error(&e))?;
        client
            .put_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .set_content_type(super::store::content_type(&url.key).map(str::to_string))
            .body(body)
            .send()
            .await
            .map_err(|e| s3_error(location.clone(), &e))?;
        return Ok(());
    }
    let created = client
        .create_multipart_upload()
        .bucket(&url.bucket)
        .key(&url.key)
        .set_content_type(super::store::content_type(&url.key).map(str::to_string))
        .send()
        .await
        .map_err(|e| s3_error(location.clone(), &e))?;
    let Some(upload_id) = created.upload_id() else {
        return Err(Error::S3 {
            location,
            message: "CreateMultipartUpload returned no upload id".to_string(),
        });
    };
    let sent = send_parts(client, url, path, size, upload_id).await;
    let completed = match sent {
        Ok(parts) => client
            .complete_multipart_upload()
            .bucket(&url.bucket)
            .key(&url.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| s3_error(location.clone(), &e)),
        Err(e) => Err(e),
    };
    if completed.is_err() {
        // Best effort: the error that matters is the one already in hand.
        let _ = client
            .abort_multipart_upload()
            .bucket(&url.bucket)
            .key(&url.key)
            .upload_id(upload_id)
            .send()
            .await;
    }
    completed
}

/// Sends `path` as parts of one multipart upload, [`PARTS_AT_ONCE`] at a time, in order.
async fn send_parts(
    client: &Client,
    url: &S3Url,
    path: &Path,
    size: u64,
    upload_id: &str,
) -> Result<Vec<CompletedPart>> {
    let part_bytes = PART_BYTES.max(size.div_ceil(MAX_PARTS));
    let count = size.div_ceil(part_bytes);
    let location = url.to_string();
    tracing::debug!("{location}: uploading {size} bytes in {count} parts");
    futures::stream::iter(0..count)
        .map(|i| {
            let location = location.clone();
            async move {
                let offset = i * part_bytes;
                let body = ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(Length::Exact(part_bytes.min(size - offset)))
                    .build()
                    .await
                    .map_err(|e| Error::S3 {
                        location: location.clone(),
                        message: format!("cannot read {}: {e}", path.display()),
                    })?;
                let number = i as i32 + 1;
                let sent = client
                    .upload_part()
                    .bucket(&url.bucket)
                    .key(&url.key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| s3_error(format!("{location} (part {number})"), &e))?;
                // The SDK checks each part's CRC where the store supports it; the parts are
                // completed without checksums, as an upload created without an algorithm must be.
                Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(sent.e_tag().map(str::to_string))
                    .build())
            }
        })
        .buffered(PARTS_AT_ONCE)
        .try_collect()
        .await
}
