//! Flow logs delivered to CloudWatch Logs, as a source: `logs://LOG-GROUP[/STREAM-PREFIX]`.
//! FilterLogEvents reads the group's events (the time window pushed down, with an hour of
//! margin each side for records whose event time is not their end; pages followed;
//! throttling retried by the SDK), and each log stream becomes one object: its events'
//! messages, one record per line, spooled to a temporary file for the process's life so a
//! job can read them twice. Errors and bad lines name `logs://GROUP/STREAM` and the line
//! (the event's position in the stream).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use aws_sdk_cloudwatchlogs::Client;

use super::aws_config::{aws_error, sdk_config};
use super::key_layout::KeyInfo;
use super::object::{ObjectLocation, ObjectRef};
use crate::error::{Error, Result};
use crate::time_range::TimeRange;

/// A `logs://` source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogsSource {
    /// Everything after `logs://`: the group, maybe followed by `/STREAM-PREFIX`.
    pub path: String,
}

impl LogsSource {
    /// `logs://…`, or None for any other source.
    pub fn parse(text: &str) -> Option<std::result::Result<Self, String>> {
        let path = text.strip_prefix("logs://")?;
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Some(Err(format!(
                "`{text}` names no log group (logs://LOG-GROUP[/STREAM-PREFIX])"
            )));
        }
        Some(Ok(LogsSource {
            path: path.to_string(),
        }))
    }
}

/// Spooled streams: location text -> file.
static SPOOLS: Mutex<BTreeMap<String, std::sync::Arc<tempfile::TempPath>>> =
    Mutex::new(BTreeMap::new());

/// The spooled file of a stream listed earlier in this process.
pub(crate) fn spool_of(location: &ObjectLocation) -> Option<PathBuf> {
    let spools = SPOOLS.lock().unwrap_or_else(|p| p.into_inner());
    spools.get(&location.to_string()).map(|p| p.to_path_buf())
}

/// How `path` splits into a log group and a stream prefix: the longest leading part that is
/// an existing group (group names often hold `/`: /aws/vpc/flow-logs).
async fn resolve(client: &Client, source: &LogsSource) -> Result<(String, Option<String>)> {
    let parts: Vec<&str> = source.path.split('/').collect();
    for cut in (1..=parts.len()).rev() {
        let group = parts[..cut].join("/");
        if group.is_empty() {
            continue;
        }
        let answer = client
            .describe_log_groups()
            .log_group_name_prefix(&group)
            .send()
            .await
            .map_err(|e| aws_error(format!("logs://{} logs:DescribeLogGroups", source.path), &e))?;
        if answer
            .log_groups()
            .iter()
            .any(|g| g.log_group_name() == Some(group.as_str()))
        {
            let prefix = parts[cut..].join("/");
            return Ok((group, (!prefix.is_empty()).then_some(prefix)));
        }
    }
    Err(Error::invalid(
        format!("logs://{}", source.path),
        "no such log group",
    ))
}

/// Reads the events of `source` within `range` into one object per stream.
pub async fn list_logs(source: &LogsSource, range: &TimeRange) -> Result<Vec<ObjectRef>> {
    let client = Client::new(&sdk_config().await);
    let (group, prefix) = resolve(&client, source).await?;
    const MARGIN_MS: i64 = 3_600_000;
    let mut request = client
        .filter_log_events()
        .log_group_name(&group)
        .set_log_stream_name_prefix(prefix.clone());
    if let Some(since) = range.since {
        request = request.start_time((since * 1000 - MARGIN_MS).max(0));
    }
    if let Some(until) = range.until {
        request = request.end_time(until.saturating_mul(1000).saturating_add(MARGIN_MS));
    }
    let mut pages = request.into_paginator().send();
    // Stream -> its spool, in the order events arrive (by time within a stream).
    let mut streams: BTreeMap<String, (tempfile::NamedTempFile, u64)> = BTreeMap::new();
    let mut events = 0u64;
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| aws_error(format!("logs://{group} logs:FilterLogEvents"), &e))?;
        for event in page.events() {
            let (Some(stream), Some(message)) = (event.log_stream_name(), event.message()) else {
                continue;
            };
            // The prefix is also asked of the service; an implementation that ignores it
            // (some emulators do) must not widen the source.
            if prefix.as_deref().is_some_and(|p| !stream.starts_with(p)) {
                continue;
            }
            let location = format!("logs://{group}/{stream}");
            let entry = match streams.get_mut(stream) {
                Some(entry) => entry,
                None => {
                    let file =
                        tempfile::NamedTempFile::new().map_err(|e| Error::io(&location, e))?;
                    streams.entry(stream.to_string()).or_insert((file, 0))
                }
            };
            // One event is one record; a message with its own line breaks keeps them, and
            // the decoder then counts its lines as it reads them.
            entry
                .0
                .write_all(message.trim_end_matches(['\r', '\n']).as_bytes())
                .and_then(|_| entry.0.write_all(b"\n"))
                .map_err(|e| Error::io(&location, e))?;
            entry.1 += message.len() as u64 + 1;
            events += 1;
        }
    }
    tracing::info!(
        "logs://{group}: {events} events in {} streams{}",
        streams.len(),
        prefix
            .as_deref()
            .map(|p| format!(" starting {p}"))
            .unwrap_or_default()
    );
    let mut objects = Vec::with_capacity(streams.len());
    let mut spools = SPOOLS.lock().unwrap_or_else(|p| p.into_inner());
    for (stream, (mut file, size)) in streams {
        let location = ObjectLocation::Logs {
            group: group.clone(),
            stream,
        };
        file.flush()
            .map_err(|e| Error::io(location.to_string(), e))?;
        spools.insert(
            location.to_string(),
            std::sync::Arc::new(file.into_temp_path()),
        );
        objects.push(ObjectRef {
            location,
            size,
            key: KeyInfo::default(),
            part: None,
        });
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_by_their_scheme() {
        assert_eq!(
            LogsSource::parse("logs:///aws/vpc/flows/eni-1"),
            Some(Ok(LogsSource {
                path: "/aws/vpc/flows/eni-1".into()
            }))
        );
        assert!(matches!(LogsSource::parse("logs://"), Some(Err(_))));
        assert_eq!(LogsSource::parse("s3://b/k"), None);
    }
}
