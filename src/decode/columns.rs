//! Column builders the decoder appends parsed fields to. Values go straight from the
//! input bytes into Arrow buffers: no per-field allocation.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, Int64Builder, NullBufferBuilder, StringArray};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::error::ArrowError;

use crate::format::FieldKind;

pub(crate) enum ColumnBuilder {
    Int32(Int32Builder),
    Int64(Int64Builder),
    Utf8(Utf8Column),
}

impl ColumnBuilder {
    pub(crate) fn new(kind: FieldKind, capacity: usize) -> Self {
        match kind {
            FieldKind::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(capacity)),
            FieldKind::Int64 | FieldKind::UnixTime => {
                ColumnBuilder::Int64(Int64Builder::with_capacity(capacity))
            }
            FieldKind::Utf8 => ColumnBuilder::Utf8(Utf8Column::with_capacity(capacity)),
        }
    }

    pub(crate) fn append_null(&mut self) {
        match self {
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
        }
    }

    /// Appends an already range-checked number.
    #[inline]
    pub(crate) fn append_number(&mut self, value: Option<i64>) {
        match (self, value) {
            (ColumnBuilder::Int32(b), Some(v)) => b.append_value(v as i32),
            (ColumnBuilder::Int64(b), Some(v)) => b.append_value(v),
            (ColumnBuilder::Utf8(b), _) => b.append_null(),
            (builder, None) => builder.append_null(),
        }
    }

    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()?),
        })
    }
}

/// A Utf8 column built from byte slices that the decoder has already checked are UTF-8.
pub(crate) struct Utf8Column {
    offsets: Vec<i32>,
    values: Vec<u8>,
    nulls: NullBufferBuilder,
}

impl Utf8Column {
    fn with_capacity(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Utf8Column {
            offsets,
            values: Vec::with_capacity(rows * 12),
            nulls: NullBufferBuilder::new(rows),
        }
    }

    #[inline]
    pub(crate) fn append_bytes(&mut self, bytes: &[u8]) {
        self.values.extend_from_slice(bytes);
        self.offsets.push(self.values.len() as i32);
        self.nulls.append_non_null();
    }

    #[inline]
    pub(crate) fn append_null(&mut self) {
        self.offsets.push(self.values.len() as i32);
        self.nulls.append_null();
    }

    fn finish(&mut self) -> Result<StringArray, ArrowError> {
        let rows = self.offsets.len() - 1;
        let offsets = std::mem::replace(&mut self.offsets, Vec::with_capacity(rows + 1));
        self.offsets.push(0);
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(rows * 12));
        let nulls = self.nulls.finish();
        // try_new checks UTF-8 again over the whole buffer at once; that is cheap next to
        // per-field checks and keeps this module free of `unsafe`.
        StringArray::try_new(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Buffer::from_vec(values),
            nulls,
        )
    }
}
