//! AWS-delivered Parquet flow logs, read as they are and mapped onto the `flows` schema:
//! columns the file lacks are NULL, others are cast to the contract's types.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::Path;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, RecordBatchOptions};
use arrow::compute::kernels::cmp::{gt_eq, lt};
use arrow::compute::{and_kleene, cast, filter_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::decode::DecoderOptions;
use crate::error::{Error, Result};

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
    let file = File::open(path).map_err(|e| Error::io(location, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
    let file_schema = builder.schema().clone();
    let range = options.time_range;
    let mut wanted: Vec<&str> = out_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    if !range.is_all() {
        wanted.extend(["start", "end"]);
    }
    let roots: Vec<usize> = file_schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| wanted.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(options.batch_size)
        .build()
        .map_err(perr)?;
    let aerr = |source| Error::Arrow {
        location: location.to_string(),
        source,
    };
    for batch in reader {
        let mut batch = batch.map_err(aerr)?;
        if !range.is_all() {
            let keep = time_mask(&batch, range.since, range.until).map_err(aerr)?;
            batch = filter_record_batch(&batch, &keep).map_err(aerr)?;
        }
        let rows = batch.num_rows();
        let columns = out_schema
            .fields()
            .iter()
            .map(|field| match batch.column_by_name(field.name()) {
                Some(col) if col.data_type() == field.data_type() => Ok(col.clone()),
                Some(col) => cast(col, field.data_type()),
                None => Ok(arrow::array::new_null_array(field.data_type(), rows)),
            })
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()
            .map_err(aerr)?;
        let opts = RecordBatchOptions::new().with_row_count(Some(rows));
        let out =
            RecordBatch::try_new_with_options(out_schema.clone(), columns, &opts).map_err(aerr)?;
        if rows > 0 && emit(out).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

fn time_mask(
    batch: &RecordBatch,
    since: Option<i64>,
    until: Option<i64>,
) -> std::result::Result<BooleanArray, arrow::error::ArrowError> {
    let column = |name: &str| -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
        match batch.column_by_name(name) {
            Some(c) => cast(c, &DataType::Int64),
            None => Ok(arrow::array::new_null_array(
                &DataType::Int64,
                batch.num_rows(),
            )),
        }
    };
    let mut keep = BooleanArray::from(vec![true; batch.num_rows()]);
    if let Some(since) = since {
        let end = column("end")?;
        keep = and_kleene(&keep, &gt_eq(&end, &Int64Array::new_scalar(since))?)?;
    }
    if let Some(until) = until {
        let start = column("start")?;
        keep = and_kleene(&keep, &lt(&start, &Int64Array::new_scalar(until))?)?;
    }
    // NULL (unknown time) is not in the window.
    Ok(BooleanArray::from_iter(
        keep.iter().map(|v| Some(v == Some(true))),
    ))
}
