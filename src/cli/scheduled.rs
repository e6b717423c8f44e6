//! `flowlens run`: settings from a TOML file and FLOWLENS_* variables, SIGTERM handling,
//! and the one JSON summary line.

use std::process::ExitCode;

use anyhow::Result;
use serde::Deserialize;

use super::args::RunArgs;
use super::usage;
use flowlens::{DetectCatalog, FlowFormat, RunConfig, S3Options, run_once};

/// The settings, as the file writes them; each also FLOWLENS_<UPPER_NAME>.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    source: Option<Vec<String>>,
    state: Option<String>,
    findings: Option<String>,
    convert: Option<String>,
    lookback: Option<String>,
    baseline_days: Option<i64>,
    lock_ttl: Option<String>,
    max_attempts: Option<u32>,
    memory_mb: Option<usize>,
    findings_format: Option<String>,
    report: Option<bool>,
    inventory: Option<String>,
    ip_ranges: Option<String>,
    geoip: Option<Vec<String>>,
    allow_lists: Option<Vec<String>>,
    threat_lists: Option<Vec<String>>,
    securityhub: Option<bool>,
    notify: Option<Vec<String>>,
    notify_min_severity: Option<String>,
    notify_cooldown: Option<String>,
    sqs: Option<String>,
    sqs_max_messages: Option<usize>,
    format: Option<String>,
    endpoint_url: Option<String>,
    s3_concurrency: Option<usize>,
    thresholds: Option<toml::Table>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(format!("FLOWLENS_{}", name.to_uppercase()))
        .ok()
        .filter(|v| !v.is_empty())
}

/// A comma-separated FLOWLENS_ variable.
fn list(name: &str) -> Option<Vec<String>> {
    env(name).map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
}

fn seconds(setting: &str, text: &str) -> Result<i64> {
    humantime::parse_duration(text)
        .map(|d| d.as_secs() as i64)
        .map_err(|e| {
            usage(format!(
                "{setting}: `{text}` is not a duration (like 2h or 15m): {e}"
            ))
        })
}

fn settings(args: &RunArgs) -> Result<RunConfig> {
    let file: Settings = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("{}: {e}", path.display())))?;
            toml::from_str(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?
        }
        None => Settings::default(),
    };
    let sqs = env("sqs").or(file.sqs.clone());
    let sources: Vec<String> = env("source")
        .map(|s| s.split(',').map(str::to_string).collect())
        .or(file.source.clone())
        .unwrap_or_default();
    if sources.is_empty() && sqs.is_none() {
        return Err(usage(
            "no source: set `source` (or FLOWLENS_SOURCE) to list, or `sqs` (FLOWLENS_SQS) for \
             a queue of S3 notifications",
        ));
    }
    let sqs_max_messages = match env("sqs_max_messages") {
        Some(v) => v.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
            usage(format!(
                "FLOWLENS_SQS_MAX_MESSAGES: `{v}` is not a whole number above 0"
            ))
        })?,
        None => file.sqs_max_messages.unwrap_or(1000),
    };
    let state = env("state")
        .or(file.state)
        .ok_or_else(|| usage("no state location: set `state` or FLOWLENS_STATE"))?;
    let findings = env("findings")
        .or(file.findings)
        .ok_or_else(|| usage("no findings location: set `findings` or FLOWLENS_FINDINGS"))?;
    let lookback = seconds(
        "lookback",
        &env("lookback").or(file.lookback).unwrap_or("2h".into()),
    )?;
    let lock_ttl = seconds(
        "lock_ttl",
        &env("lock_ttl").or(file.lock_ttl).unwrap_or("30m".into()),
    )?;
    let baseline_days = match env("baseline_days") {
        Some(v) => v
            .parse()
            .map_err(|_| usage(format!("FLOWLENS_BASELINE_DAYS: `{v}`")))?,
        None => file.baseline_days.unwrap_or(14),
    };
    let max_attempts = match env("max_attempts") {
        Some(v) => v.parse().map_err(|_| {
            usage(format!(
                "FLOWLENS_MAX_ATTEMPTS: `{v}` is not a whole number"
            ))
        })?,
        None => file.max_attempts.unwrap_or(5),
    };
    let memory_limit = match env("memory_mb") {
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| usage(format!("FLOWLENS_MEMORY_MB: `{v}` is not a whole number")))?,
        ),
        None => file.memory_mb,
    }
    .map(|mb| mb << 20)
    .unwrap_or_else(flowlens::default_memory_limit);
    if max_attempts < 1 {
        return Err(usage("max_attempts: at least 1"));
    }
    // A bad value is refused, not taken for "unset" (the default would hide the mistake).
    let s3_concurrency = match env("s3_concurrency") {
        Some(v) => Some(v.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
            usage(format!(
                "FLOWLENS_S3_CONCURRENCY: `{v}` is not a whole number above 0"
            ))
        })?),
        None => file.s3_concurrency,
    };
    if s3_concurrency == Some(0) {
        return Err(usage("s3_concurrency: at least 1"));
    }
    let ocsf = match env("findings_format").or(file.findings_format).as_deref() {
        None | Some("jsonl") => false,
        Some("ocsf") => true,
        Some(other) => {
            return Err(usage(format!(
                "findings_format: `{other}` is not jsonl or ocsf"
            )));
        }
    };
    let report = match env("report").as_deref() {
        Some("1" | "true" | "yes") => true,
        Some("0" | "false" | "no") => false,
        Some(other) => {
            return Err(usage(format!(
                "FLOWLENS_REPORT: `{other}` is not true or false"
            )));
        }
        None => file.report.unwrap_or(false),
    };
    let securityhub = match env("securityhub").as_deref() {
        Some("1" | "true" | "yes") => true,
        Some("0" | "false" | "no") => false,
        Some(other) => {
            return Err(usage(format!(
                "FLOWLENS_SECURITYHUB: `{other}` is not true or false"
            )));
        }
        None => file.securityhub.unwrap_or(false),
    };
    let notify = list("notify")
        .or(file.notify)
        .unwrap_or_default()
        .iter()
        .map(|t| flowlens::NotifyTarget::parse(t).map_err(usage))
        .collect::<Result<Vec<_>>>()?;
    let notify_min_severity = match env("notify_min_severity").or(file.notify_min_severity) {
        Some(text) => flowlens::Severity::parse(&text).ok_or_else(|| {
            usage(format!(
                "notify_min_severity: `{text}` is not low, medium, high or critical"
            ))
        })?,
        None => flowlens::Severity::High,
    };
    let notify_cooldown = seconds(
        "notify_cooldown",
        &env("notify_cooldown")
            .or(file.notify_cooldown)
            .unwrap_or("24h".into()),
    )?;
    let format = match env("format").or(file.format) {
        Some(text) => Some(FlowFormat::parse(&text).map_err(|p| usage(format!("format: {p}")))?),
        None => None,
    };
    let mut catalog = DetectCatalog::builtin()?;
    if let Some(thresholds) = file.thresholds {
        for (detector, params) in thresholds {
            for (param, value) in params.as_table().into_iter().flatten() {
                let value = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string());
                catalog
                    .set(&format!("{detector}.{param}"), &value)
                    .map_err(usage)?;
            }
        }
    }
    Ok(RunConfig {
        sources,
        state,
        findings,
        convert: env("convert").or(file.convert),
        lookback,
        baseline_days,
        lock_ttl,
        max_attempts,
        memory_limit,
        findings_format: match ocsf {
            true => flowlens::FindingsFormat::Ocsf,
            false => flowlens::FindingsFormat::Jsonl,
        },
        report,
        securityhub,
        sqs,
        sqs_max_messages,
        notify,
        notify_min_severity,
        notify_cooldown,
        context: flowlens::ContextOptions {
            inventory: env("inventory").or(file.inventory),
            ip_ranges: env("ip_ranges").or(file.ip_ranges),
            geoip: list("geoip").or(file.geoip).unwrap_or_default(),
            allow_lists: list("allow_lists").or(file.allow_lists).unwrap_or_default(),
            threat_lists: list("threat_lists")
                .or(file.threat_lists)
                .unwrap_or_default(),
        },
        format,
        s3: S3Options {
            endpoint_url: env("endpoint_url").or(file.endpoint_url),
            concurrency: s3_concurrency,
        },
        catalog,
    })
}

pub async fn run(args: RunArgs, _quiet: bool) -> Result<ExitCode> {
    let config = settings(&args)?;
    // SIGTERM (ECS, Kubernetes) stops reading before the next object; the state stays
    // consistent and the next run resumes the same batch.
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::spawn(async move {
            if term.recv().await.is_some() {
                tracing::warn!("SIGTERM: stopping before the next object");
                flowlens::request_stop();
            }
        });
    }
    let summary = run_once(&config).await?;
    outln!("{}", serde_json::to_string(&summary)?)?;
    Ok(
        if summary.failed_objects > 0 || !summary.abandoned_objects.is_empty() {
            ExitCode::from(super::EXIT_PARTIAL)
        } else {
            ExitCode::SUCCESS
        },
    )
}
