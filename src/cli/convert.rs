//! `flowlens convert`, with a progress bar on a terminal and a summary at the end.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use super::args::ConvertArgs;
use super::{flows_config, open_session, report, usage};
use flowlens::{ConvertOptions, S3Options, athena_ddl, convert, remove_stale};

pub async fn run(args: ConvertArgs, quiet: bool) -> Result<ExitCode> {
    if args.athena_ddl {
        outln!("{}", athena_ddl(&args.out))?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.file_mb == 0 {
        return Err(usage("--file-mb must be at least 1"));
    }
    let mut config = flows_config(&args.source)?;
    config.shard = args.shard;
    let started = Instant::now();
    let session = open_session(&config).await?;
    report::selected(&session, quiet);
    let total: u64 = session.selected_objects().iter().map(|o| o.size).sum();
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} read  {bytes_per_sec}  ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |s: &flowlens::ConvertSummary| {
        if let Some(bar) = &bar {
            bar.set_position(s.bytes_in);
            bar.set_message(format!(
                "{} objects, {} records written",
                s.objects, s.records
            ));
        }
    };
    let options = ConvertOptions {
        out: args.out.clone(),
        shard: args.shard,
        target_file_bytes: args.file_mb << 20,
        name_prefix: None,
        s3: S3Options {
            endpoint_url: args.source.endpoint_url.clone(),
            concurrency: None,
        },
    };
    let summary = convert(&session, &options, &progress).await?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    // A rerun that writes fewer files must not leave the old ones behind.
    for removed in remove_stale(&summary, &options).await? {
        tracing::info!("removed {removed}: an earlier run's file this one did not write again");
    }
    if !quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "converted {} objects ({}), {} records into {} Parquet files ({}) in {:.1} s ({}/s)",
            summary.objects,
            report::human_bytes(summary.bytes_in),
            summary.records,
            summary.files.len(),
            report::human_bytes(summary.bytes_out),
            secs,
            report::human_bytes((summary.bytes_in as f64 / secs.max(0.001)) as u64)
        );
        if summary.bad_partition_values > 0 {
            eprintln!(
                "{} account or region values were no AWS value: their rows are under \
                 aws-account-id=invalid / aws-region=invalid",
                summary.bad_partition_values
            );
        }
    }
    Ok(report::finished(&session, started, quiet))
}
