//! The rows of the object being read, held back until it has been read to its end. A gzip
//! object proves its bytes only at its end (the CRC), and an object that breaks off has
//! lost its tail: either way the rows already decoded from it must not reach a query mixed
//! with good data. Rows are kept in memory up to a limit and spilled to a temporary Arrow
//! IPC file past it, so a large object costs disk, not memory.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::ops::ControlFlow;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use crate::error::{Error, Result};

/// Rows held in memory per reading thread before the rest goes to a temporary file.
const MEMORY_LIMIT: usize = 64 << 20;

#[derive(Default)]
pub(crate) struct HeldRows {
    memory: Vec<RecordBatch>,
    memory_bytes: usize,
    spill: Option<Spill>,
}

struct Spill {
    writer: StreamWriter<BufWriter<File>>,
    path: tempfile::TempPath,
}

impl HeldRows {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.memory.is_empty()
    }

    /// Holds a batch of the current object.
    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        let size = batch.get_array_memory_size();
        if (self.spill.is_none() && self.memory_bytes + size <= MEMORY_LIMIT)
            || self.memory.is_empty()
        {
            self.memory_bytes += size;
            self.memory.push(batch);
            return Ok(());
        }
        let spill = match &mut self.spill {
            Some(spill) => spill,
            None => {
                let (file, path) = tempfile::NamedTempFile::new()
                    .map_err(|e| Error::io("temporary file for held rows", e))?
                    .into_parts();
                let writer = StreamWriter::try_new(BufWriter::new(file), &batch.schema())
                    .map_err(|source| arrow_error(&path, source))?;
                self.spill.insert(Spill { writer, path })
            }
        };
        spill
            .writer
            .write(&batch)
            .map_err(|source| arrow_error(&spill.path, source))
    }

    /// The object was read whole: hands every held batch on, in order.
    pub fn release(
        &mut self,
        emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>> {
        let memory = std::mem::take(&mut self.memory);
        self.memory_bytes = 0;
        for batch in memory {
            if emit(batch).is_break() {
                self.spill = None;
                return Ok(ControlFlow::Break(()));
            }
        }
        let Some(mut spill) = self.spill.take() else {
            return Ok(ControlFlow::Continue(()));
        };
        spill
            .writer
            .finish()
            .map_err(|source| arrow_error(&spill.path, source))?;
        let file =
            File::open(&spill.path).map_err(|e| Error::io(spill.path.display().to_string(), e))?;
        let reader = StreamReader::try_new(BufReader::new(file), None)
            .map_err(|source| arrow_error(&spill.path, source))?;
        for batch in reader {
            let batch = batch.map_err(|source| arrow_error(&spill.path, source))?;
            if emit(batch).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The object failed: its rows are dropped. Returns the first held batch, whose leading
    /// rows may belong to earlier objects that shared it.
    pub fn discard(&mut self) -> Option<RecordBatch> {
        self.spill = None;
        self.memory_bytes = 0;
        let first = (!self.memory.is_empty()).then(|| self.memory.remove(0));
        self.memory.clear();
        first
    }
}

fn arrow_error(path: &std::path::Path, source: arrow::error::ArrowError) -> Error {
    Error::Arrow {
        location: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use std::sync::Arc;

    fn batch(from: i64, rows: i64) -> RecordBatch {
        let values: Int64Array = (from..from + rows).collect();
        RecordBatch::try_from_iter([("v", Arc::new(values) as _)]).unwrap()
    }

    fn values(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                a.values().to_vec()
            })
            .collect()
    }

    #[test]
    fn held_rows_come_back_in_order_from_memory_and_spill() {
        let mut held = HeldRows::default();
        // 20 batches of 1 M rows (8 MB each) pass the memory limit: the rest spills.
        for i in 0..20 {
            held.push(batch(i * 1_000_000, 1_000_000)).unwrap();
        }
        assert!(held.spill.is_some());
        let mut out = Vec::new();
        let flow = held
            .release(&mut |b| {
                out.push(b);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(flow, ControlFlow::Continue(()));
        assert_eq!(values(&out), (0..20_000_000).collect::<Vec<_>>());
        assert!(held.is_empty() && held.spill.is_none());
    }

    #[test]
    fn discarded_rows_are_gone_but_the_first_batch_is_returned() {
        let mut held = HeldRows::default();
        held.push(batch(0, 3)).unwrap();
        held.push(batch(3, 3)).unwrap();
        let first = held.discard().unwrap();
        assert_eq!(values(&[first]), vec![0, 1, 2]);
        assert!(held.is_empty());
        let mut out = Vec::new();
        let flow = held
            .release(&mut |b| {
                out.push(b);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert!(out.is_empty() && flow.is_continue());
    }
}
