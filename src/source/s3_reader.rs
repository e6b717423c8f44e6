//! Streaming S3 objects into the decoder: GetObject bodies flow through decompression a
//! buffer at a time (memory stays bounded whatever the object's size), and the next
//! object's request is already on its way while one is decoded.

use std::io::BufReader;
use std::ops::ControlFlow;

use arrow::array::RecordBatch;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::types::ServerSideEncryption;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::io::SyncIoBridge;

use super::object_reader::read_text;
use super::s3_client::{access_denied_message, s3_error};
use super::s3_url::S3Url;
use crate::decode::Decoder;
use crate::error::{Error, Result};

/// A GetObject whose response (headers; the body streams later) is on its way.
pub(crate) type PendingGet = JoinHandle<Result<GetObjectOutput>>;

pub(crate) fn start_get(client: &Client, handle: &Handle, url: &S3Url) -> PendingGet {
    let client = client.clone();
    let url = url.clone();
    handle.spawn(async move {
        match client
            .get_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .send()
            .await
        {
            Ok(output) => Ok(output),
            Err(SdkError::ServiceError(e)) if e.err().code() == Some("AccessDenied") => {
                let text = e.err().message().unwrap_or("").to_string();
                Err(denied(&client, &url, &text).await)
            }
            Err(e) => Err(s3_error(url.to_string(), &e)),
        }
    })
}

/// Access was denied: ask (HEAD needs no decryption) whether the object is SSE-KMS
/// encrypted, the usual cause being a role without kms:Decrypt on its key.
async fn denied(client: &Client, url: &S3Url, text: &str) -> Error {
    let head = client
        .head_object()
        .bucket(&url.bucket)
        .key(&url.key)
        .send()
        .await;
    let kms_key = match &head {
        Ok(h) if h.server_side_encryption() == Some(&ServerSideEncryption::AwsKms) => {
            Some(h.ssekms_key_id().unwrap_or("unknown").to_string())
        }
        _ => None,
    };
    // Real S3 words KMS denials in the message even when HEAD is denied too.
    let kms_in_text = text.contains("KMS") || text.contains("ciphertext");
    let key = kms_key.or_else(|| kms_in_text.then(|| "unknown".to_string()));
    Error::S3 {
        location: url.to_string(),
        message: access_denied_message(key.as_deref(), text),
    }
}

/// Waits for a pending GetObject and decodes its body as flow log text.
pub(crate) fn read_s3_text(
    handle: &Handle,
    pending: PendingGet,
    url: &S3Url,
    decoder: &mut Decoder,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let location = url.to_string();
    let output = handle.block_on(pending).map_err(|e| Error::S3 {
        location: location.clone(),
        message: format!("request task failed: {e}"),
    })??;
    let body = SyncIoBridge::new_with_handle(output.body.into_async_read(), handle.clone());
    read_text(
        BufReader::with_capacity(256 * 1024, body),
        &location,
        decoder,
        emit,
    )
}
