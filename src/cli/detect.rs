//! `flowlens baseline`, `detect` and `evaluate`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;

use super::args::{
    BaselineArgs, DetectArgs, DetectionArgs, EvaluateArgs, FindingsFormat, ReportArgs,
    ThresholdArgs,
};
use super::{EXIT_PARTIAL, flows_config, open_session, report, usage};
use flowlens::{
    BaselineStore, DetectCatalog, DetectPlan, S3Options, any_at_or_above, baseline_listing, detect,
    evaluate, format_time, learn_baseline, read_labels, render_findings, render_incidents,
    render_report, write_text,
};

/// Exit code when findings at or above `--fail-on` exist (DESIGN.md).
const EXIT_FINDINGS: u8 = 4;

fn catalog(args: &ThresholdArgs) -> Result<DetectCatalog> {
    let mut catalog = DetectCatalog::builtin()?;
    if let Some(path) = &args.config {
        catalog.load_toml(path).map_err(usage)?;
    }
    for (key, value) in &args.params {
        catalog.set(key, value).map_err(usage)?;
    }
    Ok(catalog)
}

/// How to make a baseline again where one cannot be read.
fn rebuild_hint(location: &str) -> String {
    format!("build it again with `flowlens baseline --source … --out {location}`")
}

pub async fn baseline(args: BaselineArgs, quiet: bool) -> Result<ExitCode> {
    let mut config = flows_config(&args.source)?;
    config.cluster = super::cluster_of(&args.cluster)?;
    let started = Instant::now();
    let s3 = S3Options {
        endpoint_url: args.source.endpoint_url.clone(),
        concurrency: None,
    };
    let (location, update) = match (&args.out, &args.update) {
        (_, Some(dir)) => (dir.clone(), true),
        (Some(dir), None) => (dir.clone(), false),
        (None, None) => return Err(usage("give --out DIR or --update DIR")),
    };
    let store = BaselineStore::open(&location, &s3, &rebuild_hint(&location))
        .await
        .map_err(usage)?;
    let stored = match update {
        true => Some(store.load().await?.ok_or_else(|| {
            anyhow::anyhow!(
                "{location}: no baseline to update (create one with `flowlens baseline --out`)"
            )
        })?),
        false => None,
    };
    let range = config.time_range;
    config.time_range = baseline_listing(range, stored.as_ref());
    let session = open_session(&config).await?;
    report::selected(&session, quiet);
    let before = stored.as_ref().map(|b| b.meta.covered.clone());
    match learn_baseline(&session, range, stored).await? {
        Some(mut baseline) => {
            store.save(&mut baseline).await?;
            if !quiet {
                eprintln!(
                    "baseline of {} interfaces from {} to {} written to {location}",
                    baseline.meta.interfaces,
                    format_time(baseline.meta.since),
                    format_time(baseline.meta.until),
                );
                if before.is_some() {
                    eprintln!("flowlens: covers {}", covered(&baseline.meta.covered));
                }
            }
        }
        None if !quiet => eprintln!("flowlens: nothing new to fold into {location}"),
        None => {}
    }
    Ok(report::finished(&session, started, quiet))
}

/// Periods as people read them.
fn covered(periods: &[(i64, i64)]) -> String {
    periods
        .iter()
        .map(|&(a, b)| match a {
            // A baseline learnt without --since covers everything before its end.
            0 => format!("everything before {}", format_time(b)),
            _ => format!("{} to {}", format_time(a), format_time(b)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A detection as `detect` and `report` run it: its session (whose tables the report
/// reads), what it found, and the catalog and S3 settings it used.
struct Detection {
    session: flowlens::FlowsSession,
    report: flowlens::DetectReport,
    catalog: DetectCatalog,
    s3: S3Options,
    started: Instant,
}

async fn run_detection(args: &DetectionArgs, quiet: bool) -> Result<Detection> {
    let DetectionArgs {
        source,
        cluster,
        baseline,
        thresholds,
    } = args;
    let catalog = catalog(thresholds)?;
    let mut config = flows_config(source)?;
    config.cluster = super::cluster_of(cluster)?;
    // Detection learns from the data, then reads the examined day again.
    config.reads_twice = true;
    let window = match (config.time_range.since, config.time_range.until) {
        (Some(since), Some(until)) => Some((since, until)),
        (Some(since), None) => Some((since, since + flowlens::DAY)),
        (None, Some(until)) => Some((until - flowlens::DAY, until)),
        (None, None) => None,
    };
    let s3 = S3Options {
        endpoint_url: source.endpoint_url.clone(),
        concurrency: None,
    };
    let baseline = match baseline.as_deref() {
        Some(location) => {
            let store = BaselineStore::open(location, &s3, &rebuild_hint(location))
                .await
                .map_err(usage)?;
            Some(store.load().await?.ok_or_else(|| {
                usage(format!(
                    "{location}: no baseline there (make one with `flowlens baseline --out`)"
                ))
            })?)
        }
        None => None,
    };
    let started = Instant::now();
    let days = thresholds.baseline_days;
    let plan = DetectPlan::new(&config, window, days, baseline.is_some())
        .await
        .map_err(usage)?;
    // The listing covers the baseline's days too; rows are not cut to the window here.
    config.time_range = plan.listing;
    let session = open_session(&config).await?;
    report::selected(&session, quiet);
    let report = detect(&session, &plan, baseline.as_ref(), &catalog).await?;
    if !quiet {
        for warning in &report.warnings {
            eprintln!("flowlens: {warning}");
        }
        eprintln!(
            "flowlens: {} findings in {} incidents for {} interfaces, {} to {} (baseline {} to {})",
            report.findings.len(),
            report.incidents.len(),
            report.interfaces.len(),
            format_time(report.window.0),
            format_time(report.window.1),
            format_time(report.baseline.0),
            format_time(report.baseline.1)
        );
    }
    Ok(Detection {
        session,
        report,
        catalog,
        s3,
        started,
    })
}

impl Detection {
    /// Writes the HTML report to `out` (a file or s3://bucket/key).
    async fn write_report(&self, out: &std::path::Path, quiet: bool) -> Result<()> {
        let html = render_report(&self.session, &self.catalog, &self.report).await?;
        write_text(&html, Some(out), &self.s3).await?;
        if !quiet {
            eprintln!("flowlens: report written to {}", out.display());
        }
        Ok(())
    }
}

/// Security Hub and alerts, after the findings are written: what a service refuses is
/// reported, and the run's exit code stays the findings'.
async fn deliver(
    args: &super::args::DeliverArgs,
    report: &flowlens::DetectReport,
    quiet: bool,
) -> Result<()> {
    let targets = args
        .notify
        .iter()
        .map(|t| flowlens::NotifyTarget::parse(t).map_err(usage))
        .collect::<Result<Vec<_>>>()?;
    if args
        .export
        .contains(&super::args::ExportTarget::Securityhub)
    {
        let summary = flowlens::export_to_security_hub(&report.findings).await?;
        for (id, code, message) in &summary.refused {
            eprintln!("flowlens: Security Hub refused {id}: {code} {message}");
        }
        if !quiet {
            eprintln!(
                "flowlens: {} findings imported into Security Hub, {} refused",
                summary.imported,
                summary.refused.len()
            );
        }
    }
    if !targets.is_empty() {
        let alerts = flowlens::alerts(
            &report.findings,
            &report.incidents,
            args.notify_min_severity,
        );
        let now = chrono::Utc::now().timestamp();
        let delivery = flowlens::deliver(&alerts, &targets, None, now).await;
        for failure in &delivery.failures {
            eprintln!("flowlens: alert not delivered: {failure}");
        }
        if !quiet {
            eprintln!(
                "flowlens: {} alerts sent ({} incidents at or above {})",
                delivery.sent,
                alerts.len(),
                args.notify_min_severity.as_str()
            );
        }
    }
    Ok(())
}

pub async fn run_report(args: ReportArgs, quiet: bool) -> Result<ExitCode> {
    let detection = run_detection(&args.detection, quiet).await?;
    detection.write_report(&args.out, quiet).await?;
    Ok(report::finished(
        &detection.session,
        detection.started,
        quiet,
    ))
}

pub async fn run_detect(args: DetectArgs, quiet: bool) -> Result<ExitCode> {
    if args.list_params {
        for (key, value, doc) in catalog(&args.detection.thresholds)?.describe() {
            outln!("{key} = {value}\n    {doc}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    // A mistyped target is a usage error before anything is read.
    for target in &args.deliver.notify {
        flowlens::NotifyTarget::parse(target).map_err(usage)?;
    }
    let detection = run_detection(&args.detection, quiet).await?;
    let Detection {
        session,
        report,
        s3,
        started,
        ..
    } = &detection;
    let format = args.output.unwrap_or(
        match args.out.is_none() && std::io::stdout().is_terminal() {
            true => FindingsFormat::Table,
            false => FindingsFormat::Jsonl,
        },
    );
    let now = chrono::Utc::now().timestamp_millis();
    let text = match (format, args.group) {
        (FindingsFormat::Incidents, _) | (FindingsFormat::Jsonl, true) => {
            render_incidents(&report.incidents, &report.findings, true)
        }
        (FindingsFormat::Table, true) => {
            render_incidents(&report.incidents, &report.findings, false)
        }
        (FindingsFormat::Ocsf, true) => {
            return Err(usage(
                "--group prints incidents as a table or JSON lines, not OCSF",
            ));
        }
        (FindingsFormat::Table, false) => {
            render_findings(&report.findings, flowlens::FindingsFormat::Table, Some(now))
        }
        (FindingsFormat::Jsonl, false) => {
            render_findings(&report.findings, flowlens::FindingsFormat::Jsonl, Some(now))
        }
        (FindingsFormat::Ocsf, false) => {
            render_findings(&report.findings, flowlens::FindingsFormat::Ocsf, Some(now))
        }
    };
    // OCSF to a folder (a trailing /): a Security Lake custom source's Parquet layout.
    let lake = args
        .out
        .as_ref()
        .map(|o| o.to_string_lossy().to_string())
        .filter(|o| o.ends_with('/') && format == FindingsFormat::Ocsf && !args.group);
    match lake {
        Some(folder) => {
            let written = flowlens::write_security_lake(&report.findings, &folder, s3).await?;
            if !quiet {
                eprintln!(
                    "flowlens: {} OCSF Parquet objects written under {folder} (Security Lake layout)",
                    written.len()
                );
            }
        }
        None => write_text(&text, args.out.as_deref(), s3).await?,
    }
    if let Some(out) = &args.report {
        detection.write_report(out, quiet).await?;
    }
    deliver(&args.deliver, report, quiet).await?;
    let code = report::finished(session, *started, quiet);
    if let Some(level) = args.fail_on
        && any_at_or_above(&report.findings, level)
    {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(code)
}

pub async fn run_evaluate(args: EvaluateArgs, quiet: bool) -> Result<ExitCode> {
    let catalog = catalog(&args.thresholds)?;
    let labels_path = match &args.labels {
        Some(p) => p.clone(),
        None => std::path::PathBuf::from(args.source.sources.first().cloned().unwrap_or_default())
            .join("labels.jsonl"),
    };
    let labels = read_labels(&labels_path).map_err(usage)?;
    let mut config = flows_config(&args.source)?;
    config.reads_twice = true;
    let started = Instant::now();
    let session = open_session(&config).await?;
    report::selected(&session, quiet);
    let eval = evaluate(
        &session,
        &catalog,
        &labels,
        args.days,
        args.thresholds.baseline_days,
    )
    .await?;
    outln!("| kind | labelled | found | false alarms |")?;
    outln!("|---|---|---|---|")?;
    for k in &eval.per_kind {
        outln!(
            "| {} | {} | {} | {} |",
            k.kind,
            k.labelled,
            k.found,
            k.false_alarms
        )?;
    }
    let labelled: usize = eval.per_kind.iter().map(|k| k.labelled).sum();
    let found: usize = eval.per_kind.iter().map(|k| k.found).sum();
    outln!(
        "\nrecall {found}/{labelled}; {} findings; {} false alarms over {:.0} interface-days = {:.2} per 100 interface-days",
        eval.findings,
        eval.false_alarms.len(),
        eval.eni_days,
        eval.false_alarms_per_100_eni_days()
    )?;
    outln!(
        "{} incidents for {} labelled attacks found = {:.2} per attack",
        eval.attack_incidents,
        eval.attacks_found,
        eval.incidents_per_attack()
    )?;
    for l in &eval.missed {
        outln!(
            "missed: {} on {} {} .. {}",
            l.kind,
            l.interface_id,
            format_time(l.start),
            format_time(l.end)
        )?;
    }
    for f in &eval.false_alarms {
        outln!(
            "false alarm: {} {} {}: {}",
            f.kind,
            f.interface_id,
            format_time(f.window_start),
            f.summary
        )?;
    }
    let code = report::finished(&session, started, quiet);
    if code == ExitCode::from(EXIT_PARTIAL) {
        return Ok(code);
    }
    Ok(ExitCode::SUCCESS)
}
