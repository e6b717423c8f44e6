//! Streaming S3 objects into the decoder. Each object's GetObject runs as a task that pulls
//! the body into buffers of about `BUFFER` bytes and hands them over a bounded channel, so
//! several objects stream at once while one is decoded, memory stays bounded whatever the
//! object's size (at most `BUFFERS_AHEAD` buffers wait per object), and the decoding thread
//! crosses into the runtime once per buffer rather than once per network read.

use std::io::{BufRead, Read};
use std::ops::ControlFlow;

use arrow::array::RecordBatch;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::types::ServerSideEncryption;
use bytes::{Buf, Bytes, BytesMut};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::object_reader::read_text;
use super::part_source::{ByteStream, RangedObject};
use super::s3_client::{access_denied_message, s3_error, stall_timeout};
use super::s3_url::S3Url;
use crate::decode::Decoder;
use crate::error::{Error, Result};

/// Body bytes gathered before they are handed to the decoding thread.
const BUFFER: usize = 256 * 1024;
/// Room left in a buffer for the network piece that fills it past `BUFFER`.
const PIECE: usize = 64 * 1024;
/// Buffers that may wait, per object, for the decoder.
const BUFFERS_AHEAD: usize = 4;
/// Times one object's body is resumed after breaking off or stalling before it fails.
const MAX_RESUMES: usize = 3;
/// Times flowlens sends an object's GetObject again after a retryable failure, on top of the
/// SDK's own retries (which share one retry quota per client: a burst of throttling on
/// hundreds of objects drains it, and the objects after that would fail at once).
const OBJECT_RETRIES: u32 = 6;

/// An object whose request is on its way and whose body is arriving in buffers.
pub(crate) struct PendingGet {
    /// The body's buffers, then an empty one: the end. A channel that closes before it
    /// (the request's task dropped: the runtime is stopping) is an error, never a short
    /// object.
    rx: mpsc::Receiver<Result<Bytes>>,
    url: S3Url,
    ended: bool,
}

impl PendingGet {
    /// The body's next buffer; `None` at its end.
    fn recv(&mut self) -> Result<Option<Bytes>> {
        match self.rx.blocking_recv() {
            Some(Ok(bytes)) if bytes.is_empty() => {
                self.ended = true;
                Ok(None)
            }
            Some(Ok(bytes)) => Ok(Some(bytes)),
            Some(Err(error)) => Err(error),
            None if self.ended => Ok(None),
            None => Err(Error::S3 {
                location: self.url.to_string(),
                message: "the request stopped before the body ended".to_string(),
            }),
        }
    }
}

pub(crate) fn start_get(client: &Client, handle: &Handle, url: &S3Url) -> PendingGet {
    start_get_from(client, handle, url, (0, None), None)
}

/// [`start_get`] of the object's bytes `from..until` (`None`: to its end), of version
/// `etag` when given (a changed object then fails with 412 rather than mixing two versions'
/// bytes).
fn start_get_from(
    client: &Client,
    handle: &Handle,
    url: &S3Url,
    (from, until): (u64, Option<u64>),
    etag: Option<String>,
) -> PendingGet {
    // The HTTP range of the bytes from `at` on.
    let range = move |at: u64| match until {
        Some(until) => format!("bytes={at}-{}", until.saturating_sub(1)),
        None => format!("bytes={at}-"),
    };
    // The whole object is asked for without a range.
    let ranged = from > 0 || until.is_some();
    let (tx, rx) = mpsc::channel(BUFFERS_AHEAD);
    let pending = PendingGet {
        rx,
        url: url.clone(),
        ended: false,
    };
    let client = client.clone();
    let url = url.clone();
    handle.spawn(async move {
        let mut attempt = 0;
        let output = loop {
            let sent = client
                .get_object()
                .bucket(&url.bucket)
                .key(&url.key)
                .set_range(ranged.then(|| range(from)))
                .set_if_match(etag.clone())
                .send()
                .await;
            match sent {
                Err(e) if attempt < OBJECT_RETRIES && retryable(&e) => {
                    attempt += 1;
                    tracing::debug!(
                        "{url}: {} (try {attempt}); trying again",
                        s3_error(url.to_string(), &e)
                    );
                    tokio::time::sleep(backoff(attempt)).await;
                }
                other => break other,
            }
        };
        let output = match output {
            Ok(output) => output,
            Err(SdkError::ServiceError(e)) if e.err().code() == Some("AccessDenied") => {
                let text = e.err().message().unwrap_or("").to_string();
                let _ = tx.send(Err(denied(&client, &url, &text).await)).await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(s3_error(url.to_string(), &e))).await;
                return;
            }
        };
        if ranged && !starts_at(output.content_range(), from) {
            let _ = tx.send(Err(range_ignored(&url, from))).await;
            return;
        }
        // Each buffer is allocated once at its final size (network pieces are a few KB:
        // growing a buffer piece by piece would copy it over and over).
        let mut left = output
            .content_length()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(BUFFER);
        let room = |left: usize| left.clamp(1, BUFFER + PIECE);
        // A body that breaks off or stalls is resumed where it stopped, with a range request
        // for the same version of the object (If-Match on its ETag).
        let etag = output.e_tag().map(str::to_string).or(etag);
        let mut received: u64 = 0;
        let mut resumes = 0;
        let mut body = output.body;
        let mut buffer = BytesMut::with_capacity(room(left));
        loop {
            let next = match tokio::time::timeout(stall_timeout(), body.next()).await {
                Ok(next) => next.map(|piece| piece.map_err(|e| super::s3_client::root_cause(&e))),
                Err(_) => Some(Err(format!(
                    "no data for {} s (FLOWLENS_S3_TIMEOUT)",
                    stall_timeout().as_secs_f64()
                ))),
            };
            match next {
                Some(Ok(piece)) => {
                    received += piece.len() as u64;
                    buffer.extend_from_slice(&piece);
                    if buffer.len() >= BUFFER {
                        let full = buffer.split().freeze();
                        left = left.saturating_sub(full.len());
                        buffer.reserve(room(left));
                        if tx.send(Ok(full)).await.is_err() {
                            // The reader is gone (the scan stopped): stop downloading.
                            return;
                        }
                    }
                }
                Some(Err(why)) if resumes < MAX_RESUMES => {
                    resumes += 1;
                    tracing::debug!(
                        "{url}: the body broke off after {received} bytes ({why}); resuming"
                    );
                    let resumed = client
                        .get_object()
                        .bucket(&url.bucket)
                        .key(&url.key)
                        .range(range(from + received))
                        .set_if_match(etag.clone())
                        .send()
                        .await;
                    match resumed {
                        Ok(rest) if starts_at(rest.content_range(), from + received) => {
                            body = rest.body
                        }
                        Ok(_) => {
                            let _ = tx.send(Err(range_ignored(&url, from + received))).await;
                            return;
                        }
                        Err(e) => {
                            let error = s3_error(url.to_string(), &e);
                            let _ = tx
                                .send(Err(Error::S3 {
                                    location: url.to_string(),
                                    message: format!(
                                        "the body broke off after {received} bytes ({why}) and \
                                         could not be resumed: {}",
                                        failure_text(&error)
                                    ),
                                }))
                                .await;
                            return;
                        }
                    }
                }
                Some(Err(why)) => {
                    let _ = tx
                        .send(Err(Error::S3 {
                            location: url.to_string(),
                            message: format!(
                                "the body broke off after {received} bytes, {resumes} times \
                                 resumed: {why}"
                            ),
                        }))
                        .await;
                    return;
                }
                None => break,
            }
        }
        if !buffer.is_empty() && tx.send(Ok(buffer.freeze())).await.is_err() {
            return;
        }
        // The end: a buffer is never empty otherwise.
        let _ = tx.send(Ok(Bytes::new())).await;
    });
    pending
}

/// Whether a ranged GET's answer (its Content-Range, `bytes FIRST-LAST/SIZE`) starts at
/// `first`. A server that ignores Range answers with the whole object and none.
fn starts_at(content_range: Option<&str>, first: u64) -> bool {
    content_range
        .and_then(|r| r.strip_prefix("bytes "))
        .and_then(|r| r.split_once('-'))
        .is_some_and(|(start, _)| start.trim().parse() == Ok(first))
}

fn range_ignored(url: &S3Url, from: u64) -> Error {
    Error::S3 {
        location: url.to_string(),
        message: format!(
            "asked for the bytes from {from} on, the server answered without a matching \
             Content-Range: it does not serve byte ranges"
        ),
    }
}

impl ByteStream for PendingGet {
    fn next_bytes(&mut self) -> Result<Option<Bytes>> {
        self.recv()
    }
}

/// One version of an S3 object, read from any offset (the parts of a large object).
pub(crate) struct S3Ranges {
    client: Client,
    handle: Handle,
    url: S3Url,
    etag: Option<String>,
}

impl S3Ranges {
    pub fn new(client: &Client, handle: &Handle, url: &S3Url, etag: Option<String>) -> Self {
        S3Ranges {
            client: client.clone(),
            handle: handle.clone(),
            url: url.clone(),
            etag,
        }
    }

    /// The bytes `offset..until` (`None`: to the end).
    pub fn get_from(&self, offset: u64, until: Option<u64>) -> PendingGet {
        start_get_from(
            &self.client,
            &self.handle,
            &self.url,
            (offset, until),
            self.etag.clone(),
        )
    }
}

impl RangedObject for S3Ranges {
    fn bytes_from(&self, offset: u64, until: Option<u64>) -> Box<dyn ByteStream> {
        Box::new(self.get_from(offset, until))
    }
}

/// The first `len` bytes of an object (fewer when it is smaller) and its ETag: what
/// planning looks at before it cuts a large object into parts. A server that does not serve
/// byte ranges is an error (its parts could not be read). Blocks on `handle`: called off
/// the runtime.
pub(crate) fn peek(
    client: &Client,
    handle: &Handle,
    url: &S3Url,
    len: u64,
) -> Result<(Bytes, Option<String>)> {
    handle.block_on(async {
        let output = client
            .get_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .range(format!("bytes=0-{}", len.saturating_sub(1)))
            .send()
            .await
            .map_err(|e| s3_error(url.to_string(), &e))?;
        if !starts_at(output.content_range(), 0) {
            return Err(range_ignored(url, 0));
        }
        let etag = output.e_tag().map(str::to_string);
        let mut head = BytesMut::new();
        let mut body = output.body;
        // Never more than asked for, whatever the server sends.
        while (head.len() as u64) < len
            && let Some(piece) = body.next().await
        {
            let piece = piece.map_err(|e| Error::S3 {
                location: url.to_string(),
                message: super::s3_client::root_cause(&e),
            })?;
            head.extend_from_slice(&piece);
        }
        head.truncate(len as usize);
        Ok((head.freeze(), etag))
    })
}

/// Whether a failed request may succeed when sent again: throttling (503 SlowDown), a
/// server error, a timeout, a connection that failed or broke.
fn retryable(error: &SdkError<GetObjectError, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => {
            matches!(
                e.err().code(),
                Some("SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout")
            ) || matches!(e.raw().status().as_u16(), 500 | 502 | 503 | 504)
        }
        _ => false,
    }
}

/// Exponential backoff with full jitter: up to 0.2 s, 0.4 s, … capped at 5 s.
fn backoff(attempt: u32) -> std::time::Duration {
    let cap = (0.2 * f64::from(1u32 << attempt.min(5))).min(5.0);
    std::time::Duration::from_secs_f64(cap * (0.5 + fastrand::f64() / 2.0))
}

/// An error's message without its location (the caller names the object).
fn failure_text(error: &Error) -> String {
    match error {
        Error::S3 { message, .. } => message.clone(),
        other => other.to_string(),
    }
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

/// Decodes a pending object's body as flow log text, as its buffers arrive.
pub(crate) fn read_s3_text(
    pending: PendingGet,
    url: &S3Url,
    size: u64,
    decoder: &mut Decoder,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let location = url.to_string();
    let mut body = BodyReader {
        pending,
        current: Bytes::new(),
        failed: None,
    };
    let outcome = read_text(&mut body, size, &location, decoder, emit);
    // A failed request or a broken-off body fails the object with its S3 error itself.
    match body.failed.take() {
        Some(error) => Err(error),
        None => outcome,
    }
}

/// The buffers of one object's body as a `Read` (for gzip and the decoder). A broken-off
/// body is kept as its S3 error, and reads as an I/O error meanwhile.
struct BodyReader {
    pending: PendingGet,
    current: Bytes,
    failed: Option<Error>,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = out.len().min(available.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for BodyReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.current.is_empty() {
            match self.pending.recv() {
                Ok(Some(next)) => self.current = next,
                Err(error) => {
                    let text = error.to_string();
                    self.failed = Some(error);
                    return Err(std::io::Error::other(text));
                }
                Ok(None) => break,
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, n: usize) {
        self.current.advance(n);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_content_range_names_its_first_byte() {
        assert!(super::starts_at(Some("bytes 100-199/1000"), 100));
        assert!(super::starts_at(Some("bytes 0-65535/222295403"), 0));
        assert!(!super::starts_at(Some("bytes 0-999/1000"), 100));
        assert!(!super::starts_at(None, 100));
        assert!(!super::starts_at(Some("items 100-199/1000"), 100));
    }
}
