//! AWS-delivered Parquet flow logs, read as they are and mapped onto the `flows` schema:
//! columns the file lacks are NULL, others are cast to the contract's types. Local files
//! are read directly; S3 objects with range requests through the same client as the rest.

use std::fs::File;
use std::ops::{ControlFlow, Range};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, RecordBatchOptions};
use arrow::compute::kernels::cmp::{gt_eq, lt};
use arrow::compute::{CastOptions, and_kleene, cast, cast_with_options, filter_record_batch};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::error::ArrowError;
use aws_sdk_s3::Client;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use tokio::runtime::Handle;

use super::s3_client::{s3_error, stall_timeout};
use super::s3_url::S3Url;
use crate::decode::DecoderOptions;
use crate::error::{Error, Result};
use crate::time_range::TimeRange;

/// Maps a Parquet file's batches onto the `flows` columns a scan wants.
struct ParquetMapper {
    out_schema: SchemaRef,
    range: TimeRange,
    location: String,
    /// Security Lake's OCSF columns, flattened back onto flow log fields first.
    ocsf: bool,
}

impl ParquetMapper {
    /// The top-level columns of the file to read.
    fn roots(&self, file_schema: &Schema) -> Vec<usize> {
        if self.ocsf {
            // The mapping reaches into nested columns: read them whole.
            return (0..file_schema.fields().len()).collect();
        }
        let mut wanted: Vec<&str> = self
            .out_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        if !self.range.is_all() {
            wanted.extend(["start", "end"]);
        }
        file_schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| wanted.contains(&f.name().as_str()))
            .map(|(i, _)| i)
            .collect()
    }

    /// Checks a file's columns against the `flows` CONTRACT before any row is read: at least
    /// one flow log field, and each such field of a type that maps onto the contract's
    /// without loss (integers of any width whose values are checked when cast, strings in
    /// any encoding). Other columns are warned about and skipped, as unknown header fields
    /// are in text; a file that is no flow log at all is a bad object, not rows of NULLs.
    fn check(&mut self, file_schema: &Schema) -> Result<()> {
        if super::ocsf_flows::is_ocsf(file_schema) {
            self.ocsf = true;
            return Ok(());
        }
        let contract = crate::format::flows_schema();
        let mut known = 0;
        let mut unknown = Vec::new();
        for field in file_schema.fields() {
            let Ok(wanted) = contract.field_with_name(field.name()) else {
                unknown.push(field.name().as_str());
                continue;
            };
            known += 1;
            if !maps_onto(field.data_type(), wanted.data_type()) {
                return Err(Error::invalid(
                    &self.location,
                    format!(
                        "not a flow log Parquet object: column `{}` is {}, the flows table \
                         has it as {}",
                        field.name(),
                        field.data_type(),
                        wanted.data_type()
                    ),
                ));
            }
        }
        if known == 0 {
            let shown: Vec<&str> = unknown.iter().take(5).copied().collect();
            return Err(Error::invalid(
                &self.location,
                format!(
                    "not a flow log Parquet object: none of its columns ({}) is a flow log \
                     field",
                    shown.join(", ")
                ),
            ));
        }
        if !unknown.is_empty() {
            tracing::warn!(
                "{}: columns that are not flow log fields are skipped: {}",
                self.location,
                unknown.join(", ")
            );
        }
        Ok(())
    }

    fn arrow_error(&self, source: ArrowError) -> Error {
        Error::Arrow {
            location: self.location.clone(),
            source,
        }
    }

    fn map(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut batch = batch;
        if self.ocsf {
            batch = super::ocsf_flows::flatten_ocsf(&batch).map_err(|e| self.arrow_error(e))?;
        }
        if !self.range.is_all() {
            let keep = time_mask(&batch, self.range).map_err(|e| self.arrow_error(e))?;
            batch = filter_record_batch(&batch, &keep).map_err(|e| self.arrow_error(e))?;
        }
        let rows = batch.num_rows();
        let columns = self
            .out_schema
            .fields()
            .iter()
            .map(|field| match batch.column_by_name(field.name()) {
                Some(col) if col.data_type() == field.data_type() => Ok(col.clone()),
                // Checked casts: a value that does not fit is an error, never a NULL.
                Some(col) => cast_with_options(col, field.data_type(), &CHECKED),
                None => Ok(arrow::array::new_null_array(field.data_type(), rows)),
            })
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()
            .map_err(|e| self.arrow_error(e))?;
        let opts = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.out_schema.clone(), columns, &opts)
            .map_err(|e| self.arrow_error(e))
    }
}

const CHECKED: CastOptions<'static> = CastOptions {
    safe: false,
    format_options: arrow::util::display::FormatOptions::new(),
};

/// Whether a file column of type `from` maps onto the contract's `to` without loss.
fn maps_onto(from: &DataType, to: &DataType) -> bool {
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    match (from, to) {
        (DataType::Dictionary(_, value), _) => maps_onto(value, to),
        (f, t) if text(t) => text(f),
        (f, DataType::Int32 | DataType::Int64) => f.is_integer(),
        (f, t) => f == t,
    }
}

fn time_mask(
    batch: &RecordBatch,
    range: TimeRange,
) -> std::result::Result<BooleanArray, ArrowError> {
    let column = |name: &str| -> std::result::Result<ArrayRef, ArrowError> {
        match batch.column_by_name(name) {
            Some(c) => cast(c, &DataType::Int64),
            None => Ok(arrow::array::new_null_array(
                &DataType::Int64,
                batch.num_rows(),
            )),
        }
    };
    let mut keep = BooleanArray::from(vec![true; batch.num_rows()]);
    if let Some(since) = range.since {
        keep = and_kleene(
            &keep,
            &gt_eq(&column("end")?, &Int64Array::new_scalar(since))?,
        )?;
    }
    if let Some(until) = range.until {
        keep = and_kleene(
            &keep,
            &lt(&column("start")?, &Int64Array::new_scalar(until))?,
        )?;
    }
    // NULL (unknown time) is not in the window.
    Ok(BooleanArray::from_iter(
        keep.iter().map(|v| Some(v == Some(true))),
    ))
}

pub(crate) fn read_parquet(
    path: &Path,
    location: &str,
    options: &DecoderOptions,
    out_schema: SchemaRef,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let perr = |source| Error::Parquet {
        location: location.to_string(),
        source,
    };
    let mut mapper = ParquetMapper {
        out_schema,
        range: options.time_range,
        location: location.to_string(),
        ocsf: false,
    };
    let file = File::open(path).map_err(|e| Error::io(location, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
    mapper.check(builder.schema())?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), mapper.roots(builder.schema()));
    let reader = builder
        .with_projection(mask)
        .with_batch_size(options.batch_size)
        .build()
        .map_err(perr)?;
    for batch in reader {
        let out = mapper.map(batch.map_err(|e| mapper.arrow_error(e))?)?;
        if out.num_rows() > 0 && emit(out).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// Reads an S3 Parquet object with range requests (footer first, then the column chunks
/// the scan needs), driven from a blocking thread through `handle`.
pub(crate) fn read_s3_parquet(
    client: &Client,
    handle: &Handle,
    url: &S3Url,
    size: u64,
    options: &DecoderOptions,
    out_schema: SchemaRef,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let location = url.to_string();
    let perr = |source| Error::Parquet {
        location: location.clone(),
        source,
    };
    let mut mapper = ParquetMapper {
        out_schema,
        range: options.time_range,
        location: location.clone(),
        ocsf: false,
    };
    let reader = S3RangeReader {
        client: client.clone(),
        url: url.clone(),
        size,
    };
    let builder = handle
        .block_on(ParquetRecordBatchStreamBuilder::new(reader))
        .map_err(perr)?;
    mapper.check(builder.schema())?;
    let roots = mapper.roots(builder.schema());
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let mut stream = builder
        .with_projection(mask)
        .with_batch_size(options.batch_size)
        .build()
        .map_err(perr)?;
    // One batch at a time: `emit` blocks on a channel, which must not happen inside the
    // runtime.
    while let Some(batch) = handle.block_on(stream.next()) {
        let out = mapper.map(batch.map_err(perr)?)?;
        if out.num_rows() > 0 && emit(out).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

struct S3RangeReader {
    client: Client,
    url: S3Url,
    size: u64,
}

impl AsyncFileReader for S3RangeReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let output = self
                .client
                .get_object()
                .bucket(&self.url.bucket)
                .key(&self.url.key)
                .range(format!(
                    "bytes={}-{}",
                    range.start,
                    range.end.saturating_sub(1)
                ))
                .send()
                .await
                .map_err(|e| {
                    ParquetError::External(Box::new(s3_error(self.url.to_string(), &e)))
                })?;
            // A stalled body fails the object rather than the whole scan waiting on it.
            let body = tokio::time::timeout(stall_timeout(), output.body.collect())
                .await
                .map_err(|_| {
                    ParquetError::General(format!(
                        "{}: no data for {} s (FLOWLENS_S3_TIMEOUT)",
                        self.url,
                        stall_timeout().as_secs_f64()
                    ))
                })?
                .map_err(|e| ParquetError::External(Box::new(e)))?;
            Ok(body.into_bytes())
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            // One request usually brings the whole footer.
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
