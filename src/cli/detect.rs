//! `flowlens baseline`, `detect` and `evaluate`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;

use super::args::{BaselineArgs, DetectArgs, EvaluateArgs, FindingsFormat, ThresholdArgs};
use super::{EXIT_PARTIAL, flows_config, open_session, report, usage};
use flowlens::{
    Baseline, DetectCatalog, DetectOptions, Finding, S3Options, any_at_or_above, detect, evaluate,
    format_time, learn_baseline, listing_range, read_labels, recent_range, write_text,
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

pub async fn baseline(args: BaselineArgs, quiet: bool) -> Result<ExitCode> {
    let config = flows_config(&args.source)?;
    let started = Instant::now();
    let session = open_session(&config).await?;
    report::selected(&session, quiet);
    let baseline = learn_baseline(&session, config.time_range).await?;
    baseline.save(&args.out)?;
    if !quiet {
        eprintln!(
            "baseline of {} interfaces from {} to {} written to {}",
            baseline.meta.interfaces,
            format_time(baseline.meta.since),
            format_time(baseline.meta.until),
            args.out.display()
        );
    }
    Ok(report::finished(&session, started, quiet))
}

pub async fn run_detect(args: DetectArgs, quiet: bool) -> Result<ExitCode> {
    let catalog = catalog(&args.thresholds)?;
    if args.list_params {
        for (key, value, doc) in catalog.describe() {
            outln!("{key} = {value}\n    {doc}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = flows_config(&args.source)?;
    // Detection learns from the data, then reads the examined day again.
    config.reads_twice = true;
    let window = match (config.time_range.since, config.time_range.until) {
        (Some(since), Some(until)) => Some((since, until)),
        (Some(since), None) => Some((since, since + flowlens::DAY)),
        (None, Some(until)) => Some((until - flowlens::DAY, until)),
        (None, None) => None,
    };
    let baseline = match &args.baseline {
        Some(dir) => Some(Baseline::load(dir).map_err(usage)?),
        None => None,
    };
    let days = args.thresholds.baseline_days;
    if days < 1 {
        return Err(usage("--baseline-days must be at least 1"));
    }
    let started = Instant::now();
    // The listing covers the baseline's days too; rows are not cut to the window here.
    config.time_range = listing_range(window, days, baseline.is_some());
    if window.is_none()
        && let Some(latest) = config.latest_key_start().await?
    {
        config.time_range = recent_range(latest, days, baseline.is_some());
    }
    let session = open_session(&config).await?;
    report::selected(&session, quiet);
    let options = DetectOptions {
        window,
        baseline_days: days,
        baseline,
        catalog,
    };
    let report = detect(&session, &options).await?;
    if !quiet {
        for warning in &report.warnings {
            eprintln!("flowlens: {warning}");
        }
        eprintln!(
            "flowlens: {} findings for {} interfaces, {} to {} (baseline {} to {})",
            report.findings.len(),
            report.interfaces.len(),
            format_time(report.window.0),
            format_time(report.window.1),
            format_time(report.baseline.0),
            format_time(report.baseline.1)
        );
    }
    let format = args.output.unwrap_or(
        match args.out.is_none() && std::io::stdout().is_terminal() {
            true => FindingsFormat::Table,
            false => FindingsFormat::Jsonl,
        },
    );
    let text = render(&report.findings, format);
    let s3 = S3Options {
        endpoint_url: args.source.endpoint_url.clone(),
        concurrency: None,
    };
    write_text(&text, args.out.as_deref(), &s3).await?;
    let code = report::finished(&session, started, quiet);
    if let Some(level) = args.fail_on
        && any_at_or_above(&report.findings, level)
    {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(code)
}

fn render(findings: &[Finding], format: FindingsFormat) -> String {
    match format {
        FindingsFormat::Jsonl => findings
            .iter()
            .map(|f| format!("{}\n", f.to_json()))
            .collect(),
        FindingsFormat::Ocsf => {
            let now = chrono::Utc::now().timestamp_millis();
            findings
                .iter()
                .map(|f| format!("{}\n", f.to_ocsf(now)))
                .collect()
        }
        FindingsFormat::Table => {
            if findings.is_empty() {
                return "no findings\n".to_string();
            }
            let mut out = String::new();
            for f in findings {
                out.push_str(&format!(
                    "{:<8} {:<18} {} {}  {}\n         {}\n",
                    f.severity.as_str().to_uppercase(),
                    f.kind,
                    format_time(f.window_start),
                    f.interface_id,
                    f.finding_id,
                    f.summary
                ));
            }
            out
        }
    }
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
        "\nrecall {found}/{labelled}; {} findings; {} false alarms over {:.0} interface-days = {:.2} per 50 interface-days",
        eval.findings,
        eval.false_alarms.len(),
        eval.eni_days,
        eval.false_alarms_per_50_eni_days()
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
