//! Alert delivery: SNS topics and webhooks (a JSON body; Slack's `{"text": …}` for Slack
//! incoming webhooks). A webhook that fails is retried with backoff, then reported: alerts
//! never hold up the work that raised them.

use std::time::Duration;

use super::aws_config::{aws_error, sdk_config};
use crate::error::{Error, Result};

/// Where alerts go, as `--notify` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyTarget {
    Sns(String),
    Webhook(String),
}

impl NotifyTarget {
    /// `sns:ARN` or `webhook:URL`.
    pub fn parse(text: &str) -> Result<Self> {
        if let Some(arn) = text.strip_prefix("sns:") {
            if !arn.starts_with("arn:") {
                return Err(Error::invalid(
                    "--notify",
                    format!(
                        "`{text}`: sns: takes a topic ARN (sns:arn:aws:sns:REGION:ACCOUNT:TOPIC)"
                    ),
                ));
            }
            return Ok(NotifyTarget::Sns(arn.to_string()));
        }
        if let Some(url) = text.strip_prefix("webhook:") {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(Error::invalid(
                    "--notify",
                    format!("`{text}`: webhook: takes an http(s) URL"),
                ));
            }
            return Ok(NotifyTarget::Webhook(url.to_string()));
        }
        Err(Error::invalid(
            "--notify",
            format!("`{text}` is not sns:TOPIC-ARN or webhook:URL"),
        ))
    }

    /// Slack incoming webhooks take `{"text": …}`.
    pub fn is_slack(&self) -> bool {
        matches!(self, NotifyTarget::Webhook(url) if url.contains("hooks.slack.com/"))
    }
}

impl std::fmt::Display for NotifyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotifyTarget::Sns(arn) => write!(f, "sns:{arn}"),
            NotifyTarget::Webhook(url) => write!(f, "webhook:{url}"),
        }
    }
}

/// One message: a subject (SNS, e-mail subscribers) and a body.
#[derive(Clone, Debug)]
pub struct Message {
    pub subject: String,
    pub body: String,
}

/// Attempts and the first pause of a webhook's retries (doubling each time).
const ATTEMPTS: u32 = 4;
fn first_pause() -> Duration {
    // FLOWLENS_NOTIFY_BACKOFF_MS shortens the wait (tests); the default rides out a brief outage.
    let ms = std::env::var("FLOWLENS_NOTIFY_BACKOFF_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    Duration::from_millis(ms)
}

/// Sends one message to `target`.
pub async fn send(target: &NotifyTarget, message: &Message) -> Result<()> {
    match target {
        NotifyTarget::Sns(arn) => {
            let client = aws_sdk_sns::Client::new(&sdk_config().await);
            // SNS subjects: at most 100 printable ASCII characters.
            let subject: String = message
                .subject
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() || c == ' ' {
                        c
                    } else {
                        '?'
                    }
                })
                .take(100)
                .collect();
            client
                .publish()
                .topic_arn(arn)
                .subject(subject)
                .message(&message.body)
                .send()
                .await
                .map_err(|e| aws_error(format!("sns:Publish {arn}"), &e))?;
            Ok(())
        }
        NotifyTarget::Webhook(url) => {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .map_err(|e| webhook_error(url, e.to_string()))?;
            let mut pause = first_pause();
            let mut last = String::new();
            for attempt in 1..=ATTEMPTS {
                let sent = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(message.body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => return Ok(()),
                    // A client error will not go away by asking again.
                    Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                        return Err(webhook_error(
                            url,
                            format!("the server answered {}", r.status()),
                        ));
                    }
                    Ok(r) => last = format!("the server answered {}", r.status()),
                    Err(e) => last = format!("cannot send: {e}"),
                }
                if attempt < ATTEMPTS {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
            Err(webhook_error(url, format!("{last} ({ATTEMPTS} attempts)")))
        }
    }
}

fn webhook_error(url: &str, message: String) -> Error {
    Error::Service {
        location: format!("webhook {url}"),
        message,
    }
}
