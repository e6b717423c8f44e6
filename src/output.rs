//! Sinks for query results: a table for people, CSV / JSON / JSON lines / Parquet for
//! machines. Results stream to the sink batch by batch; only the table keeps rows, and at
//! most `max_rows` of them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::source::{S3Options, Store};
use datafusion::execution::SendableRecordBatchStream;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Jsonl,
    Parquet,
}

/// Where results go and in what shape.
#[derive(Clone, Debug)]
pub struct OutputOptions {
    pub format: OutputFormat,
    /// A file or `s3://bucket/key`; `None` is standard output.
    pub out: Option<PathBuf>,
    /// Rows a table shows before it stops (the rest are counted).
    pub max_rows: usize,
    /// For `s3://` outputs.
    pub s3: S3Options,
}

impl OutputOptions {
    /// Checks the combination once, before any query runs.
    pub fn validate(&self) -> Result<()> {
        if self.format == OutputFormat::Parquet && self.out.is_none() {
            return Err(Error::invalid(
                "--output parquet",
                "Parquet is a file format: give --out FILE",
            ));
        }
        Ok(())
    }
}

/// Writes a result stream; returns the number of rows. A `--out` file is written to a
/// staging file first and put in place whole once complete (a rename, or one upload to S3):
/// a statement that fails half way leaves an existing file as it was, and readers never see
/// half of one.
pub async fn write_stream(
    mut stream: SendableRecordBatchStream,
    options: &OutputOptions,
) -> Result<u64> {
    let schema = stream.schema();
    let target = match &options.out {
        Some(path) => Some(Store::for_file(&path.to_string_lossy(), "--out", &options.s3).await?),
        None => None,
    };
    let staging = match &target {
        Some((store, name)) => Some(store.staging(name)?),
        None => None,
    };
    let local = OutputOptions {
        out: staging.as_ref().map(|f| f.path().to_path_buf()),
        ..options.clone()
    };
    let location = options
        .out
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<stdout>".to_string());
    let mut sink = Sink::new(schema, &local, &location)?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| Error::query("SQL", e))?;
        rows += batch.num_rows() as u64;
        sink.write(&batch)?;
    }
    sink.finish(rows)?;
    if let (Some((store, name)), Some(file)) = (target, staging) {
        store.commit(&name, file.into_temp_path()).await?;
    }
    Ok(rows)
}

/// Writes finished text (findings, reports) to standard output, a file or `s3://bucket/key`,
/// whole.
pub async fn write_text(text: &str, out: Option<&Path>, s3: &S3Options) -> Result<()> {
    let Some(path) = out else {
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| Error::io("<stdout>", e));
    };
    let (store, name) = Store::for_file(&path.to_string_lossy(), "--out", s3).await?;
    let mut staging = store.staging(&name)?;
    staging
        .write_all(text.as_bytes())
        .map_err(|e| Error::io(store.location(&name), e))?;
    store.commit(&name, staging.into_temp_path()).await
}

/// Writes batches already in memory.
pub fn write_batches(
    batches: &[RecordBatch],
    schema: SchemaRef,
    options: &OutputOptions,
) -> Result<u64> {
    let location = options
        .out
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<stdout>".to_string());
    let mut sink = Sink::new(schema, options, &location)?;
    let mut rows = 0u64;
    for batch in batches {
        rows += batch.num_rows() as u64;
        sink.write(batch)?;
    }
    sink.finish(rows)?;
    Ok(rows)
}

enum Writer {
    Table {
        kept: Vec<RecordBatch>,
        kept_rows: usize,
        max_rows: usize,
        out: Box<dyn Write + Send>,
    },
    Csv(arrow::csv::Writer<Box<dyn Write + Send>>),
    Json(arrow::json::ArrayWriter<Box<dyn Write + Send>>),
    Jsonl(arrow::json::LineDelimitedWriter<Box<dyn Write + Send>>),
    Parquet(ArrowWriter<BufWriter<File>>),
}

struct Sink {
    writer: Writer,
    schema: SchemaRef,
    location: String,
    stdout_closed: Arc<AtomicBool>,
}

/// Standard output that remembers whether its reader went away, because writers such as
/// arrow-csv report that as text rather than as the `io::Error`.
struct Stdout {
    closed: Arc<AtomicBool>,
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = std::io::stdout().write(buf);
        self.note(result)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = std::io::stdout().flush();
        self.note(result)
    }
}

impl Stdout {
    fn note<T>(&self, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &result
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            self.closed.store(true, Ordering::Relaxed);
        }
        result
    }
}

fn open(
    out: &Option<PathBuf>,
    location: &str,
    closed: &Arc<AtomicBool>,
) -> Result<Box<dyn Write + Send>> {
    Ok(match out {
        Some(path) => Box::new(BufWriter::new(create(path, location)?)),
        None => Box::new(BufWriter::new(Stdout {
            closed: closed.clone(),
        })),
    })
}

fn create(path: &Path, location: &str) -> Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(location, e))?;
    }
    File::create(path).map_err(|e| Error::io(location, e))
}

impl Sink {
    fn new(schema: SchemaRef, options: &OutputOptions, location: &str) -> Result<Self> {
        let closed = Arc::new(AtomicBool::new(false));
        let writer = match options.format {
            OutputFormat::Table => Writer::Table {
                kept: Vec::new(),
                kept_rows: 0,
                max_rows: options.max_rows,
                out: open(&options.out, location, &closed)?,
            },
            OutputFormat::Csv => Writer::Csv(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(open(&options.out, location, &closed)?),
            ),
            OutputFormat::Json => Writer::Json(
                arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build(open(&options.out, location, &closed)?),
            ),
            OutputFormat::Jsonl => Writer::Jsonl(
                arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build(open(&options.out, location, &closed)?),
            ),
            OutputFormat::Parquet => {
                let path = options.out.as_ref().ok_or_else(|| {
                    Error::invalid(
                        "--output parquet",
                        "Parquet is a file format: give --out FILE",
                    )
                })?;
                let file = BufWriter::new(create(path, location)?);
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                Writer::Parquet(
                    ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|source| {
                        Error::Parquet {
                            location: location.to_string(),
                            source,
                        }
                    })?,
                )
            }
        };
        Ok(Sink {
            writer,
            schema,
            location: location.to_string(),
            stdout_closed: closed,
        })
    }

    fn arrow_err(&self, source: arrow::error::ArrowError) -> Error {
        if self.stdout_closed.load(Ordering::Relaxed) {
            return Error::io(
                &self.location,
                std::io::Error::from(std::io::ErrorKind::BrokenPipe),
            );
        }
        Error::Arrow {
            location: self.location.clone(),
            source,
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let result = match &mut self.writer {
            Writer::Table {
                kept,
                kept_rows,
                max_rows,
                ..
            } => {
                if *kept_rows < *max_rows {
                    let take = (*max_rows - *kept_rows).min(batch.num_rows());
                    kept.push(batch.slice(0, take));
                    *kept_rows += take;
                }
                Ok(())
            }
            Writer::Csv(w) => w.write(batch),
            Writer::Json(w) => w.write(batch),
            Writer::Jsonl(w) => w.write(batch),
            Writer::Parquet(w) => w
                .write(batch)
                .map_err(|source| arrow::error::ArrowError::ExternalError(Box::new(source))),
        };
        result.map_err(|e| self.arrow_err(e))
    }

    fn finish(self, rows: u64) -> Result<()> {
        let location = self.location.clone();
        let io = |e| Error::io(&location, e);
        match self.writer {
            Writer::Table {
                kept,
                kept_rows,
                mut out,
                ..
            } => {
                // NULL spelled out: flow logs' `-` is not the same as an empty string.
                let format = arrow::util::display::FormatOptions::default().with_null("NULL");
                let empty = [RecordBatch::new_empty(self.schema.clone())];
                let shown: &[RecordBatch] = if kept.is_empty() { &empty } else { &kept };
                let table = arrow::util::pretty::pretty_format_batches_with_options(shown, &format)
                    .map_err(|e| Error::Arrow {
                        location: location.clone(),
                        source: e,
                    })?;
                writeln!(out, "{table}").map_err(io)?;
                if (kept_rows as u64) < rows {
                    writeln!(
                        out,
                        "{rows} rows, {kept_rows} shown (--max-rows N shows more; --output csv shows all)"
                    )
                    .map_err(io)?;
                } else {
                    writeln!(out, "{rows} row{}", if rows == 1 { "" } else { "s" }).map_err(io)?;
                }
                out.flush().map_err(io)
            }
            Writer::Csv(w) => w.into_inner().flush().map_err(io),
            Writer::Json(mut w) => {
                w.finish().map_err(|e| Error::Arrow {
                    location: location.clone(),
                    source: e,
                })?;
                w.into_inner().flush().map_err(io)
            }
            Writer::Jsonl(mut w) => {
                w.finish().map_err(|e| Error::Arrow {
                    location: location.clone(),
                    source: e,
                })?;
                w.into_inner().flush().map_err(io)
            }
            Writer::Parquet(w) => w
                .close()
                .map(|_| ())
                .map_err(|source| Error::Parquet { location, source }),
        }
    }
}

/// A byte count as people read it: 1.2 MB (powers of 1000, as AWS bills them).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
