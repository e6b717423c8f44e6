//! `flowlens convert`: a flow log archive to Parquet that Athena, Trino, Spark, DuckDB and
//! DataFusion read directly. AWS's column names and types (the `flows` CONTRACT), zstd,
//! Hive partitions in AWS's layout by the hour records start, files of about 128 MB sorted
//! by interface and start time so row-group statistics prune on both. The same input gives
//! the same files, so a rerun overwrites rather than duplicates.

use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, SchemaRef};
use chrono::{DateTime, Datelike, Timelike};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::decode::BadLines;
use crate::error::{Error, Result};
use crate::format::flows_schema;
use crate::query::FlowsSession;
use crate::source::{S3Options, Store};

#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// A folder or `s3://bucket/prefix`.
    pub out: String,
    /// `--shard i/n`: part of file names, so shards never overwrite each other.
    pub shard: Option<(u32, u32)>,
    /// Start a new file once one reaches this many bytes.
    pub target_file_bytes: usize,
    /// File names start with this (default `part-`, or the shard's).
    pub name_prefix: Option<String>,
    pub s3: S3Options,
}

#[derive(Clone, Debug, Default)]
pub struct ConvertSummary {
    pub objects: u64,
    pub bytes_in: u64,
    pub records: u64,
    pub files: Vec<String>,
    pub bytes_out: u64,
    pub bad_lines: BadLines,
    pub failed_objects: usize,
    /// Rows whose account or region is no AWS account id or region name (`../../x`, say):
    /// written under the partition value `invalid`, never into a path built from them.
    pub bad_partition_values: u64,
}

impl ConvertOptions {
    /// What every file name of this conversion starts with.
    pub fn file_prefix(&self) -> String {
        match (&self.name_prefix, self.shard) {
            (Some(prefix), _) => prefix.clone(),
            (None, Some((i, n))) => format!("shard-{i:04}-of-{n:04}-part-"),
            (None, None) => "part-".to_string(),
        }
    }
}

/// Where one output file goes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Partition {
    account: String,
    region: String,
    hour: i64,
}

impl Partition {
    fn path(&self) -> String {
        let t = DateTime::from_timestamp(self.hour, 0).unwrap_or_default();
        format!(
            "AWSLogs/aws-account-id={}/aws-service=vpcflowlogs/aws-region={}/year={:04}/month={:02}/day={:02}/hour={:02}",
            self.account,
            self.region,
            t.year(),
            t.month(),
            t.day(),
            t.hour()
        )
    }
}

/// The Parquet file being written: its partition, sequence number, writer and staging file.
struct OpenFile {
    partition: Partition,
    seq: usize,
    writer: ArrowWriter<std::fs::File>,
    staging: tempfile::TempPath,
}

struct Output {
    /// The output folder or prefix (`--out`).
    store: Store,
    prefix: String,
    options: ConvertOptions,
    current: Option<OpenFile>,
    /// Files already written per partition: a partition met again continues numbering
    /// instead of overwriting.
    written: std::collections::HashMap<String, usize>,
    schema: SchemaRef,
    summary: ConvertSummary,
}

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_sorting_columns(Some(vec![
            parquet::file::metadata::SortingColumn {
                column_idx: 2, // interface_id
                descending: false,
                nulls_first: false,
            },
            parquet::file::metadata::SortingColumn {
                column_idx: 10, // start
                descending: false,
                nulls_first: false,
            },
        ]))
        .build()
}

impl Output {
    /// The file's name under the output.
    fn name(&self, partition: &Partition, seq: usize) -> String {
        format!("{}/{}{seq:05}.parquet", partition.path(), self.prefix)
    }

    fn open(&mut self, partition: Partition, seq: usize) -> Result<()> {
        let name = self.name(&partition, seq);
        let (file, staging) = self.store.staging(&name)?.into_parts();
        let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(writer_properties()))
            .map_err(|source| Error::Parquet {
                location: self.store.location(&name),
                source,
            })?;
        self.current = Some(OpenFile {
            partition,
            seq,
            writer,
            staging,
        });
        Ok(())
    }

    /// Finishes the open file and puts it in place (a rename, or one upload).
    async fn close(&mut self) -> Result<()> {
        let Some(open) = self.current.take() else {
            return Ok(());
        };
        let name = self.name(&open.partition, open.seq);
        let location = self.store.location(&name);
        open.writer.close().map_err(|source| Error::Parquet {
            location: location.clone(),
            source,
        })?;
        let size = std::fs::metadata(&open.staging)
            .map(|m| m.len())
            .unwrap_or(0);
        self.store.commit(&name, open.staging).await?;
        crate::failpoint::point("parquet");
        self.summary.bytes_out += size;
        self.summary.files.push(location);
        self.written.insert(open.partition.path(), open.seq + 1);
        Ok(())
    }

    /// Writes rows of one partition, starting new files at the target size.
    async fn write(&mut self, partition: &Partition, batch: &RecordBatch) -> Result<()> {
        let same = matches!(&self.current, Some(open) if open.partition == *partition);
        if !same {
            self.close().await?;
            let seq = self.written.get(&partition.path()).copied().unwrap_or(0);
            self.open(partition.clone(), seq)?;
        }
        let full = matches!(&self.current, Some(open)
            if open.writer.bytes_written() + open.writer.in_progress_size()
                >= self.options.target_file_bytes);
        if full {
            let seq = self.current.as_ref().map(|c| c.seq + 1).unwrap_or(0);
            self.close().await?;
            self.open(partition.clone(), seq)?;
        }
        if let Some(open) = &mut self.current {
            let location = format!(
                "{}/{}{:05}.parquet",
                open.partition.path(),
                self.prefix,
                open.seq
            );
            open.writer
                .write(batch)
                .map_err(|source| Error::Parquet { location, source })?;
        }
        self.summary.records += batch.num_rows() as u64;
        Ok(())
    }
}

/// The partition value of rows whose account or region is not one AWS could have written.
const INVALID: &str = "invalid";

/// An account as AWS writes it: 12 digits, or `unknown` for some service-owned interfaces.
fn valid_account(value: &str) -> bool {
    value == "unknown" || (value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()))
}

/// A region name: lower-case letters, digits and hyphens, starting with a letter
/// (`us-east-1`, `us-gov-west-1`, `cn-northwest-1`), or `unknown`.
fn valid_region(value: &str) -> bool {
    (1..=32).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The partition of each row: account and region from the object's key (where AWS puts
/// them), else from the record, else `unknown`; the hour from the record's start. A value
/// that is no account id or region name becomes `invalid` (and is counted in `bad`): these
/// values become folder names, and `../../x` must not leave the output. The records
/// themselves are written as they are.
fn partitions_of(
    batch: &RecordBatch,
    key: &(Option<String>, Option<String>),
    bad: &mut Vec<String>,
) -> Vec<Partition> {
    let mut text = |name: &str, from_key: &Option<String>, i: usize, valid: fn(&str) -> bool| {
        let value = from_key.clone().unwrap_or_else(|| {
            batch
                .column_by_name(name)
                .map(|c| c.as_string::<i32>())
                .filter(|c| !c.is_null(i))
                .map(|c| c.value(i).to_string())
                .unwrap_or_else(|| "unknown".to_string())
        });
        if valid(&value) {
            value
        } else {
            bad.push(format!("{name} {:?}", value));
            INVALID.to_string()
        }
    };
    let start = batch
        .column_by_name("start")
        .map(|c| c.as_primitive::<Int64Type>());
    (0..batch.num_rows())
        .map(|i| Partition {
            account: text("account_id", &key.0, i, valid_account),
            region: text("region", &key.1, i, valid_region),
            hour: start
                .filter(|c| !c.is_null(i))
                .map(|c| c.value(i).div_euclid(3600) * 3600)
                .unwrap_or(0),
        })
        .collect()
}

/// Converts everything `session` reads, one group of objects (same account and region in
/// their keys) at a time. Rows arrive sorted by partition, interface and start
/// (DataFusion's sort spills to disk past the session's memory limit), and are written
/// partition by partition.
pub async fn convert(
    session: &FlowsSession,
    options: &ConvertOptions,
    progress: &dyn Fn(&ConvertSummary),
) -> Result<ConvertSummary> {
    let store = Store::open(&options.out, "--out", &options.s3).await?;
    let prefix = options.file_prefix();
    let columns: Vec<String> = flows_schema()
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect();
    // Sorted by exactly what partitions_of() partitions by, then interface and start.
    let sql_for = |key: &(Option<String>, Option<String>)| {
        let part = |column: &str, from_key: &Option<String>| match from_key {
            Some(_) => String::new(),
            None => format!("coalesce({column}, 'unknown'), "),
        };
        format!(
            "SELECT {} FROM flows ORDER BY {}{}\"start\" / 3600, interface_id, \"start\", \"end\", \
             srcaddr, dstaddr, srcport, dstport, protocol, action, log_status, packets, bytes",
            columns.join(", "),
            part("account_id", &key.0),
            part("region", &key.1)
        )
    };
    let mut output = Output {
        store,
        prefix,
        options: options.clone(),
        current: None,
        written: std::collections::HashMap::new(),
        schema: flows_schema(),
        summary: ConvertSummary::default(),
    };
    let mut groups: std::collections::BTreeMap<(Option<String>, Option<String>), Vec<_>> =
        std::collections::BTreeMap::new();
    for object in session.selected_objects() {
        let key = (object.key.account.clone(), object.key.region.clone());
        groups.entry(key).or_default().push(object);
    }
    let mut done = ConvertSummary::default();
    for (key, objects) in groups {
        let group = session.subset(objects).await?;
        let mut stream = None;
        for statement in group.parse(&sql_for(&key))? {
            stream = Some(group.execute(statement).await?);
        }
        let Some(mut stream) = stream else {
            continue;
        };
        let stats = group.stats().clone();
        let mut last_report = Instant::now();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| Error::query("convert", e))?;
            let mut bad = Vec::new();
            let parts = partitions_of(&batch, &key, &mut bad);
            for value in &bad {
                if output.summary.bad_partition_values < 5 {
                    tracing::warn!(
                        "a record's {value} is no AWS value: its rows go to the `{INVALID}` partition"
                    );
                }
                output.summary.bad_partition_values += 1;
            }
            let mut from = 0;
            while from < parts.len() {
                let to = (from..parts.len())
                    .find(|&i| parts[i] != parts[from])
                    .unwrap_or(parts.len());
                output
                    .write(&parts[from], &batch.slice(from, to - from))
                    .await?;
                from = to;
            }
            if last_report.elapsed() > Duration::from_millis(200) {
                output.summary.objects = done.objects + stats.objects();
                output.summary.bytes_in = done.bytes_in + stats.bytes();
                progress(&output.summary);
                last_report = Instant::now();
            }
        }
        done.objects += stats.objects();
        done.bytes_in += stats.bytes();
        done.bad_lines.merge(&stats.bad_lines());
        done.failed_objects += stats.failures().len();
        session.stats().absorb(&stats);
    }
    output.close().await?;
    let mut summary = output.summary;
    summary.objects = done.objects;
    summary.bytes_in = done.bytes_in;
    summary.bad_lines = done.bad_lines;
    summary.failed_objects = done.failed_objects;
    Ok(summary)
}

/// Removes the files of an earlier run into the same output that this one did not write
/// again (a rerun with larger files writes fewer of them): in every partition folder this run
/// wrote, the files of its name prefix it did not write. Without this, a rerun's output
/// would hold some records twice. Returns the files removed.
pub async fn remove_stale(
    summary: &ConvertSummary,
    options: &ConvertOptions,
) -> Result<Vec<String>> {
    let prefix = options.file_prefix();
    let store = Store::open(&options.out, "--out", &options.s3).await?;
    let root = store.location("");
    let written: std::collections::BTreeSet<&str> = summary
        .files
        .iter()
        .filter_map(|f| f.strip_prefix(&root))
        .map(|f| f.trim_start_matches(['/', '\\']))
        .collect();
    let folders: std::collections::BTreeSet<&str> = written
        .iter()
        .filter_map(|f| f.rsplit_once('/').map(|(folder, _)| folder))
        .collect();
    let mut removed = Vec::new();
    for folder in folders {
        for name in store.list(folder).await? {
            let Some(file) = name.strip_prefix(folder).and_then(|n| n.strip_prefix('/')) else {
                continue;
            };
            // Only this job's files directly in the folder: not a deeper partition's.
            if file.starts_with(&prefix)
                && file.ends_with(".parquet")
                && !file.contains('/')
                && !written.contains(name.as_str())
            {
                store.delete(&name).await?;
                removed.push(store.location(&name));
            }
        }
    }
    Ok(removed)
}

/// The Athena table over a converted archive (partition projection, no crawler needed).
pub fn athena_ddl(location: &str) -> String {
    let columns: Vec<String> = flows_schema()
        .fields()
        .iter()
        .map(|f| {
            let ty = match f.data_type() {
                arrow::datatypes::DataType::Int32 => "int",
                arrow::datatypes::DataType::Int64 => "bigint",
                _ => "string",
            };
            format!("  `{}` {ty}", f.name())
        })
        .collect();
    format!(
        "CREATE EXTERNAL TABLE vpc_flow_logs (\n{}\n)\nPARTITIONED BY (\n  `aws-account-id` string, `aws-service` string, `aws-region` string,\n  `year` string, `month` string, `day` string, `hour` string\n)\nSTORED AS PARQUET\nLOCATION '{}/AWSLogs/'\nTBLPROPERTIES (\n  'projection.enabled' = 'true',\n  'projection.aws-account-id.type' = 'injected',\n  'projection.aws-service.type' = 'enum', 'projection.aws-service.values' = 'vpcflowlogs',\n  'projection.aws-region.type' = 'injected',\n  'projection.year.type' = 'integer', 'projection.year.range' = '2015,2100',\n  'projection.month.type' = 'integer', 'projection.month.range' = '1,12', 'projection.month.digits' = '2',\n  'projection.day.type' = 'integer', 'projection.day.range' = '1,31', 'projection.day.digits' = '2',\n  'projection.hour.type' = 'integer', 'projection.hour.range' = '0,23', 'projection.hour.digits' = '2'\n);\n",
        columns.join(",\n"),
        location.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_aws_layout_and_hostile_values_go_to_invalid() {
        assert!(valid_account("123456789012") && valid_account("unknown"));
        assert!(!valid_account("../../x") && !valid_account("12345678901"));
        assert!(valid_region("us-gov-west-1") && !valid_region("US-EAST-1"));
        assert!(!valid_region("../etc") && !valid_region(""));
        let p = Partition {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            hour: 1_791_036_000,
        };
        assert_eq!(
            p.path(),
            "AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=eu-west-1/\
             year=2026/month=10/day=03/hour=14"
        );
    }

    #[tokio::test]
    async fn a_rerun_removes_only_its_own_files_it_did_not_write_again() {
        let out = tempfile::tempdir().unwrap();
        let files = [
            "p1/batch-x-part-00000.parquet",        // written again by this run
            "p1/batch-x-part-00001.parquet",        // an earlier run's, not written again: stale
            "p1/part-00000.parquet",                // another job's
            "p1/deeper/batch-x-part-00000.parquet", // another partition's
            "p2/batch-x-part-00000.parquet",        // a partition this run did not write
            "p1/batch-x-part-00002.txt",            // not Parquet
        ];
        for f in files {
            let path = out.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
        let options = ConvertOptions {
            out: out.path().display().to_string(),
            shard: None,
            target_file_bytes: 1 << 20,
            name_prefix: Some("batch-x-part-".into()),
            s3: S3Options::default(),
        };
        let summary = ConvertSummary {
            files: vec![out.path().join(files[0]).display().to_string()],
            ..ConvertSummary::default()
        };
        let removed = remove_stale(&summary, &options).await.unwrap();
        assert_eq!(
            removed,
            vec![out.path().join(files[1]).display().to_string()]
        );
        for f in files.iter().filter(|f| **f != files[1]) {
            assert!(out.path().join(f).exists(), "{f} was removed");
        }
        // Again: nothing more to remove.
        assert!(remove_stale(&summary, &options).await.unwrap().is_empty());
    }
}
