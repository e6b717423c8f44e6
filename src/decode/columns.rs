//! Column builders the decoder appends parsed fields to. Values go straight from the
//! input bytes into Arrow buffers with no per-field allocation, and a row can be taken back
//! (`truncate`) when a later field of its line turns out to be bad.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBufferBuilder, PrimitiveArray, StringArray};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{ArrowPrimitiveType, Int32Type, Int64Type};

use crate::format::FieldKind;

pub(crate) enum ColumnBuilder {
    Int32(IntColumn<Int32Type>),
    Int64(IntColumn<Int64Type>),
    Utf8(Utf8Column),
}

impl ColumnBuilder {
    pub(crate) fn new(kind: FieldKind, capacity: usize) -> Self {
        match kind {
            FieldKind::Int32 => ColumnBuilder::Int32(IntColumn::with_capacity(capacity)),
            FieldKind::Int64 | FieldKind::UnixTime => {
                ColumnBuilder::Int64(IntColumn::with_capacity(capacity))
            }
            FieldKind::Utf8 => ColumnBuilder::Utf8(Utf8Column::with_capacity(capacity)),
        }
    }

    #[inline]
    pub(crate) fn append_null(&mut self) {
        match self {
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
        }
    }

    /// Drops rows past `rows`.
    pub(crate) fn truncate(&mut self, rows: usize) {
        match self {
            ColumnBuilder::Int32(b) => b.truncate(rows),
            ColumnBuilder::Int64(b) => b.truncate(rows),
            ColumnBuilder::Utf8(b) => b.truncate(rows),
        }
    }

    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
        }
    }
}

/// Validity bits, materialised only once a NULL arrives (most columns never see one).
struct Validity {
    bits: Option<BooleanBufferBuilder>,
}

impl Validity {
    #[inline]
    fn null_at(&mut self, index: usize, capacity: usize) {
        let bits = self.bits.get_or_insert_with(|| {
            let mut b = BooleanBufferBuilder::new(capacity.max(index + 1));
            b.append_n(index, true);
            b
        });
        bits.append(false);
    }

    #[inline]
    fn valid(&mut self) {
        if let Some(bits) = &mut self.bits {
            bits.append(true);
        }
    }

    fn truncate(&mut self, len: usize) {
        if let Some(bits) = &mut self.bits {
            bits.truncate(len);
        }
    }

    fn finish(&mut self) -> Option<NullBuffer> {
        self.bits
            .take()
            .map(|mut b| NullBuffer::new(b.finish()))
            .filter(|n| n.null_count() > 0)
    }
}

pub(crate) struct IntColumn<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    validity: Validity,
    capacity: usize,
}

impl<T: ArrowPrimitiveType> IntColumn<T> {
    fn with_capacity(capacity: usize) -> Self {
        IntColumn {
            values: Vec::with_capacity(capacity),
            validity: Validity { bits: None },
            capacity,
        }
    }

    #[inline]
    pub(crate) fn append(&mut self, value: T::Native) {
        self.values.push(value);
        self.validity.valid();
    }

    #[inline]
    pub(crate) fn append_null(&mut self) {
        self.validity.null_at(self.values.len(), self.capacity);
        self.values.push(T::Native::default());
    }

    fn truncate(&mut self, rows: usize) {
        self.values.truncate(rows);
        self.validity.truncate(rows);
    }

    fn finish(&mut self) -> PrimitiveArray<T> {
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(self.capacity));
        PrimitiveArray::new(ScalarBuffer::from(values), self.validity.finish())
    }
}

const WIDE_COPY: usize = 32;

/// A Utf8 column built from byte slices that the decoder has already checked are UTF-8.
pub(crate) struct Utf8Column {
    offsets: Vec<i32>,
    values: Vec<u8>,
    validity: Validity,
    capacity: usize,
}

impl Utf8Column {
    fn with_capacity(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Utf8Column {
            offsets,
            values: Vec::with_capacity(rows * 12),
            validity: Validity { bits: None },
            capacity: rows,
        }
    }

    /// Appends `region[from..to]`. A short field is copied as a fixed 32 bytes and the
    /// excess cut off again: two vector moves instead of a call to `memcpy` for ~10 bytes.
    #[inline(always)]
    pub(crate) fn append_field(&mut self, region: &[u8], from: usize, to: usize) {
        match region.get(from..from + WIDE_COPY) {
            Some(wide) if to - from <= WIDE_COPY => {
                let kept = self.values.len() + (to - from);
                if let Ok(wide) = <&[u8; WIDE_COPY]>::try_from(wide) {
                    self.values.extend_from_slice(wide);
                }
                self.values.truncate(kept);
            }
            _ => self.values.extend_from_slice(&region[from..to]),
        }
        self.offsets.push(self.values.len() as i32);
        self.validity.valid();
    }

    #[inline]
    pub(crate) fn append_null(&mut self) {
        self.validity.null_at(self.offsets.len() - 1, self.capacity);
        self.offsets.push(self.values.len() as i32);
    }

    fn truncate(&mut self, rows: usize) {
        if rows + 1 < self.offsets.len() {
            self.offsets.truncate(rows + 1);
            self.values.truncate(self.offsets[rows] as usize);
            self.validity.truncate(rows);
        }
    }

    fn finish(&mut self) -> StringArray {
        let rows = self.offsets.len() - 1;
        let offsets = std::mem::replace(&mut self.offsets, Vec::with_capacity(rows + 1));
        self.offsets.push(0);
        // The next batch's values take as much room as this one's (interface ids and IPv6
        // addresses are longer than the first guess), plus the wide copy's overhang: no
        // regrowth, no copying the buffer again.
        let room = self.values.len().max(rows * 12) + WIDE_COPY;
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(room));
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        let nulls = self.validity.finish();
        // SAFETY: the decoder appends only fields of lines it has checked are UTF-8, cut at
        // ASCII spaces (so each field is UTF-8 on its own), and the offsets are the running
        // ends of those appends: increasing and within `values`. Checking again here cost
        // ~4% of decoding.
        unsafe { StringArray::new_unchecked(offsets, Buffer::from_vec(values), nulls) }
    }
}
