//! The AWS configuration the non-S3 clients share (EC2, STS, Security Hub, SNS, SQS,
//! CloudWatch Logs): the default credential chain, the region, `AWS_ENDPOINT_URL[_<SERVICE>]`
//! (read by the SDK) and the SDK's standard retries, which also back off on throttling
//! (ThrottlingException, TooManyRequestsException, …). Loaded once per process.

use aws_config::BehaviorVersion;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

use crate::error::Error;

/// The shared configuration.
pub(crate) async fn sdk_config() -> SdkConfig {
    static CONFIG: tokio::sync::OnceCell<SdkConfig> = tokio::sync::OnceCell::const_new();
    CONFIG
        .get_or_init(|| async {
            aws_config::defaults(BehaviorVersion::latest())
                .retry_config(RetryConfig::standard().with_max_attempts(6))
                .load()
                .await
        })
        .await
        .clone()
}

/// An AWS API error as a person can act on it: the call, and the service's code and message
/// (or why the request could not be sent).
pub(crate) fn aws_error<E, R>(location: impl Into<String>, error: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = match error {
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("error"),
            service.err().message().unwrap_or("")
        ),
        other => format!(
            "{other}: {}",
            super::s3_client::root_cause(other as &dyn std::error::Error)
        ),
    };
    Error::Service {
        location: location.into(),
        message,
    }
}

/// The account the credentials belong to (STS GetCallerIdentity).
pub async fn caller_account() -> crate::error::Result<String> {
    let client = aws_sdk_sts::Client::new(&sdk_config().await);
    let identity = client
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| aws_error("sts:GetCallerIdentity", &e))?;
    identity
        .account()
        .map(str::to_string)
        .ok_or_else(|| Error::Service {
            location: "sts:GetCallerIdentity".into(),
            message: "no account in the answer".into(),
        })
}

/// The configured region, if any.
pub async fn configured_region() -> Option<String> {
    sdk_config().await.region().map(|r| r.to_string())
}
