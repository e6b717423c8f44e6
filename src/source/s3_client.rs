//! The S3 client, configured the way the AWS CLI is: the default credential chain
//! (environment, profile, SSO, web identity, ECS task role, instance metadata),
//! `AWS_REGION` / `AWS_PROFILE`, `AWS_ENDPOINT_URL[_S3]` or `--endpoint-url` for
//! S3-compatible stores (path-style addressing then). Nothing here logs a credential.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::error::Error;

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct S3Options {
    /// `--endpoint-url`; `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` are read by the SDK.
    pub endpoint_url: Option<String>,
    /// Objects read at once (default: [`default_concurrency`] of the objects a scan reads).
    pub concurrency: Option<usize>,
}

/// Objects in flight when `--s3-concurrency` is not given, for objects of 512 KB and more.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// Bytes the default keeps in flight. A small object costs a round trip more than a
/// transfer (a quiet flow log writes a few KB every 5 minutes), so the smaller a scan's
/// objects, the more of them are asked for at once, up to [`MAX_DEFAULT_CONCURRENCY`].
const IN_FLIGHT_BYTES: u64 = 32 << 20;
const MAX_DEFAULT_CONCURRENCY: usize = 512;

/// The S3 concurrency for objects whose median size is `median_bytes`, when the user set
/// none: [`DEFAULT_CONCURRENCY`] for objects of 512 KB and more, up to
/// [`MAX_DEFAULT_CONCURRENCY`] for tiny ones.
pub fn default_concurrency(median_bytes: u64) -> usize {
    let wanted = IN_FLIGHT_BYTES / median_bytes.max(1);
    wanted.clamp(DEFAULT_CONCURRENCY as u64, MAX_DEFAULT_CONCURRENCY as u64) as usize
}

/// How long an S3 response may go without a byte before the connection is taken for stalled:
/// `FLOWLENS_S3_TIMEOUT` (seconds, default 60). It bounds the wait for a response's first
/// byte and every wait for more of a body.
pub(crate) fn stall_timeout() -> Duration {
    static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        let secs = std::env::var("FLOWLENS_S3_TIMEOUT")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(60.0);
        Duration::from_secs_f64(secs)
    })
}

/// The S3 connection that objects are listed and read through: what the layers above hold
/// and pass back to `source`, which alone uses the SDK.
#[derive(Clone, Debug)]
pub struct S3Access(pub(crate) Client);

/// The process's S3 connection for `options` (see [`s3_client`]).
pub async fn s3_access(options: &S3Options) -> S3Access {
    S3Access(s3_client(options).await)
}

/// The process's client for `options.endpoint_url`: built on first use (only when a source
/// or output is on S3), then shared, so credentials are resolved and connections pooled once.
pub async fn s3_client(options: &S3Options) -> Client {
    type Clients = std::sync::Mutex<Vec<(Option<String>, Client)>>;
    static CLIENTS: std::sync::OnceLock<Clients> = std::sync::OnceLock::new();
    let clients = CLIENTS.get_or_init(Default::default);
    let cached = |clients: &Clients| {
        let held = clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        held.iter()
            .find(|(endpoint, _)| *endpoint == options.endpoint_url)
            .map(|(_, client)| client.clone())
    };
    if let Some(client) = cached(clients) {
        return client;
    }
    let client = build_client(options).await;
    let mut held = clients
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, first)) = held.iter().find(|(e, _)| *e == options.endpoint_url) {
        // Another task built one meanwhile: keep the first.
        return first.clone();
    }
    held.push((options.endpoint_url.clone(), client.clone()));
    client
}

async fn build_client(options: &S3Options) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        // Throttling (503 SlowDown) and transient errors: the SDK's standard retries (the
        // object reader retries GetObject on top, see s3_reader). Adaptive mode's client-side
        // rate limit slowed a throttled burst of small objects to a crawl.
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(stall_timeout())
                .build(),
        );
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let shared = loader.load().await;
    let custom_endpoint = options.endpoint_url.is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let mut config = aws_sdk_s3::config::Builder::from(&shared);
    if custom_endpoint {
        // S3-compatible stores (MinIO, Ceph, s3s, …) rarely serve virtual-hosted buckets.
        config = config.force_path_style(true);
        if shared.region().is_none() {
            config = config.region(aws_sdk_s3::config::Region::new("us-east-1"));
        }
        // The SDK's default since early 2025 adds CRC checksums to every upload (as
        // aws-chunked trailers on streamed bodies) and checks them on downloads. Many
        // S3-compatible stores (older MinIO and Ceph, B2, GCS's XML API, …) reject those
        // uploads, so unless the user chose otherwise, checksums go only where an operation
        // requires them, as before. Gzip's CRC and Parquet's checks still guard what is read.
        if std::env::var_os("AWS_REQUEST_CHECKSUM_CALCULATION").is_none() {
            config = config.request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            );
        }
        if std::env::var_os("AWS_RESPONSE_CHECKSUM_VALIDATION").is_none() {
            config = config.response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            );
        }
    }
    Client::from_conf(config.build())
}

/// An S3 error as a person can act on it, naming the object or prefix.
pub(crate) fn s3_error<E, R>(location: impl Into<String>, error: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let location = location.into();
    let message = match error {
        SdkError::ServiceError(service) => {
            service_message(service.err().code(), service.err().message())
        }
        SdkError::TimeoutError(_) => "timed out talking to S3".to_string(),
        SdkError::DispatchFailure(failure) => {
            let why = if failure.is_io() {
                "cannot reach the S3 endpoint"
            } else if failure.is_timeout() {
                "timed out connecting to the S3 endpoint"
            } else {
                "the request could not be sent"
            };
            format!("{why}: {}", root_cause(error))
        }
        other => aws_sdk_s3::error::DisplayErrorContext(other).to_string(),
    };
    Error::S3 { location, message }
}

/// The innermost cause of an error ("Connection refused (os error 111)"), without the
/// layers of wrapping the HTTP stack adds around it.
pub(crate) fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// A service error's code and message, said plainly.
fn service_message(code: Option<&str>, text: Option<&str>) -> String {
    let code = code.unwrap_or("error");
    let text = text.unwrap_or("");
    match code {
        "NoSuchBucket" => "no such bucket".to_string(),
        "NoSuchKey" => "no such object".to_string(),
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" => format!(
            "the credentials were refused ({code}): check AWS_ACCESS_KEY_ID / \
             AWS_SECRET_ACCESS_KEY, the profile or the role"
        ),
        "AccessDenied" => format!("access denied{}", suffix(text)),
        // A GET pinned to the ETag seen before (a part of a large object, a resumed body).
        "PreconditionFailed" => {
            "the object changed while it was read (its ETag no longer matches)".to_string()
        }
        _ => format!("{code}{}", suffix(text)),
    }
}

fn suffix(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// The message for an object that could not be read because S3 denied it: when the object
/// is encrypted with SSE-KMS the usual cause is a missing kms:Decrypt on its key.
pub(crate) fn access_denied_message(kms_key: Option<&str>, text: &str) -> String {
    match kms_key {
        Some(key) => format!(
            "access denied reading an SSE-KMS encrypted object (key {key}): the role may be \
             missing kms:Decrypt on that key{}",
            suffix(text)
        ),
        None => format!("access denied{}", suffix(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_cause() {
        let refused = service_message(Some("SignatureDoesNotMatch"), Some("The signature…"));
        assert!(
            refused.starts_with("the credentials were refused"),
            "{refused}"
        );
        assert_eq!(
            service_message(Some("NoSuchBucket"), None),
            "no such bucket"
        );
        assert_eq!(
            service_message(Some("AccessDenied"), Some("Access Denied")),
            "access denied: Access Denied"
        );
        assert_eq!(service_message(Some("SlowDown"), None), "SlowDown");
        let changed = service_message(Some("PreconditionFailed"), None);
        assert!(
            changed.starts_with("the object changed while it was read"),
            "{changed}"
        );
    }

    #[test]
    fn kms_denials_point_at_kms_decrypt() {
        let msg = access_denied_message(Some("arn:aws:kms:us-east-1:1:key/abc"), "Access Denied");
        assert!(msg.contains("missing kms:Decrypt on that key"), "{msg}");
        assert_eq!(access_denied_message(None, ""), "access denied");
    }
}

#[cfg(test)]
mod concurrency_tests {
    use super::*;

    #[test]
    fn the_default_concurrency_grows_as_objects_shrink() {
        assert_eq!(default_concurrency(100 << 20), DEFAULT_CONCURRENCY);
        assert_eq!(default_concurrency(512 << 10), DEFAULT_CONCURRENCY);
        assert_eq!(default_concurrency(128 << 10), 256);
        assert_eq!(default_concurrency(1_500), MAX_DEFAULT_CONCURRENCY);
        assert_eq!(default_concurrency(0), MAX_DEFAULT_CONCURRENCY);
    }
}
