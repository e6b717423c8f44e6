//! `flowlens generate`: a realistic synthetic archive in AWS's S3 key layout, for the
//! bundled sample, tests and benchmarks. Deterministic for a given seed and options.

mod estate;
mod incidents;
mod traffic;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Timelike};
use flate2::Compression;
use flate2::write::GzEncoder;
use rayon::prelude::*;

pub use estate::{ACCOUNT, Estate, REGION};
use traffic::{Record, TrafficGen, WINDOW, write_line};

use crate::error::{Error, Result};

/// How object keys are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyLayout {
    /// `AWSLogs/<acct>/vpcflowlogs/<region>/YYYY/MM/DD/…`
    Plain,
    /// `AWSLogs/aws-account-id=…/aws-service=vpcflowlogs/aws-region=…/year=…/…/hour=…/…`
    Hive,
}

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub out: PathBuf,
    /// Unix seconds, rounded down to a whole day: the archive ends here.
    pub end: i64,
    pub days: u32,
    pub enis: usize,
    pub seed: u64,
    /// Multiplies every interface's traffic.
    pub rate: f64,
    /// Minutes of records per object (AWS delivers every 5).
    pub object_minutes: u32,
    pub gzip: bool,
    pub layout: KeyLayout,
    /// Three flow logs in three formats; otherwise one in the default format.
    pub mixed_formats: bool,
    /// Lay labelled incidents of every finding kind over the last day, and write their
    /// labels to `labels.jsonl` beside `AWSLogs/`.
    pub incidents: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenerateSummary {
    pub objects: u64,
    pub records: u64,
    pub bytes: u64,
}

pub fn generate(options: &GenerateOptions) -> Result<GenerateSummary> {
    if options.enis == 0 || options.days == 0 {
        return Err(Error::invalid(
            "generate",
            "--enis and --days must be at least 1",
        ));
    }
    if options.object_minutes == 0 || 1440 % options.object_minutes != 0 {
        return Err(Error::invalid(
            "--object-minutes",
            "must divide a day evenly (5, 10, 15, 30, 60, …)",
        ));
    }
    let estate = Estate::new(options.enis, options.seed, options.mixed_formats);
    let end_day = options.end.div_euclid(86400) * 86400;
    let days: Vec<i64> = (0..i64::from(options.days))
        .map(|d| end_day - (i64::from(options.days) - d) * 86400)
        .collect();
    let last_day = days.last().copied().unwrap_or(end_day);
    let plan = if options.incidents {
        incidents::plan(&estate, last_day)
    } else {
        Vec::new()
    };
    let summaries = days
        .par_iter()
        .map(|&day| generate_day(&estate, options, day, &plan))
        .collect::<Result<Vec<_>>>()?;
    if options.incidents {
        let path = options.out.join("labels.jsonl");
        std::fs::create_dir_all(&options.out)
            .and_then(|()| std::fs::write(&path, incidents::labels_jsonl(&estate, &plan)))
            .map_err(|e| Error::io(path.display().to_string(), e))?;
    }
    Ok(summaries
        .into_iter()
        .fold(GenerateSummary::default(), |acc, s| GenerateSummary {
            objects: acc.objects + s.objects,
            records: acc.records + s.records,
            bytes: acc.bytes + s.bytes,
        }))
}

/// One day of every interface. Records end inside their window, so days never share an
/// object and can be generated in parallel.
fn generate_day(
    estate: &Estate,
    options: &GenerateOptions,
    day: i64,
    plan: &[incidents::Incident],
) -> Result<GenerateSummary> {
    let last_day = options.end.div_euclid(86400) * 86400 - 86400;
    let traffic = TrafficGen {
        estate,
        rate: options.rate,
        day,
        last_day,
        seed: options.seed,
    };
    let slot = i64::from(options.object_minutes) * 60;
    // (flow log, slot start) -> lines
    let mut objects: BTreeMap<(usize, i64), String> = BTreeMap::new();
    let mut records: Vec<Record> = Vec::new();
    let mut summary = GenerateSummary::default();
    for eni in &estate.enis {
        let mut rng = fastrand::Rng::with_seed(
            options.seed
                ^ (day as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)
                ^ (eni.index as u64) << 48,
        );
        let format = &estate.flow_logs[eni.flow_log].format;
        for w in 0..(86400 / WINDOW) {
            records.clear();
            let window = day + w * WINDOW;
            traffic.window(eni, window, &mut rng, &mut records);
            for incident in plan {
                incidents::records(incident, estate, eni, window, &mut rng, &mut records);
            }
            for record in &records {
                let key = (eni.flow_log, record.end.div_euclid(slot) * slot);
                let text = objects
                    .entry(key)
                    .or_insert_with(|| format!("{}\n", format.header()));
                write_line(text, record, eni, format);
            }
            summary.records += records.len() as u64;
        }
    }
    for ((flow_log, stamp), text) in objects {
        let key = object_key(estate, options, flow_log, stamp);
        let path = options.out.join(&key);
        summary.bytes += write_object(&path, text.as_bytes(), options.gzip)?;
        summary.objects += 1;
    }
    Ok(summary)
}

fn object_key(estate: &Estate, options: &GenerateOptions, flow_log: usize, stamp: i64) -> String {
    let t = DateTime::from_timestamp(stamp, 0).unwrap_or_default();
    let fl = &estate.flow_logs[flow_log].id;
    let hash = format!(
        "{:08x}",
        (stamp as u64 ^ options.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
    );
    let name = format!(
        "{ACCOUNT}_vpcflowlogs_{REGION}_{fl}_{}_{hash}.log{}",
        t.format("%Y%m%dT%H%MZ"),
        if options.gzip { ".gz" } else { "" }
    );
    match options.layout {
        KeyLayout::Plain => format!(
            "AWSLogs/{ACCOUNT}/vpcflowlogs/{REGION}/{:04}/{:02}/{:02}/{name}",
            t.year(),
            t.month(),
            t.day()
        ),
        KeyLayout::Hive => format!(
            "AWSLogs/aws-account-id={ACCOUNT}/aws-service=vpcflowlogs/aws-region={REGION}/\
             year={:04}/month={:02}/day={:02}/hour={:02}/{name}",
            t.year(),
            t.month(),
            t.day(),
            t.hour()
        ),
    }
}

fn write_object(path: &Path, text: &[u8], gzip: bool) -> Result<u64> {
    let location = path.display().to_string();
    let io = |e| Error::io(&location, e);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let bytes = if gzip {
        let mut encoder =
            GzEncoder::new(Vec::with_capacity(text.len() / 6), Compression::default());
        encoder.write_all(text).map_err(io)?;
        encoder.finish().map_err(io)?
    } else {
        text.to_vec()
    };
    std::fs::write(path, &bytes).map_err(io)?;
    Ok(bytes.len() as u64)
}
