//! Reads objects into record batches: opens, detects gzip and Parquet by their magic bytes,
//! streams the bytes through decompression into the decoder, and keeps going past an object
//! that fails (it is named in the scan's stats).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::RecordBatch;
use flate2::read::MultiGzDecoder;

use super::object::{ObjectLocation, ObjectRef};
use super::parquet_object::read_parquet;
use super::scan_stats::{ObjectFailure, ScanStats};
use crate::decode::{Decoder, DecoderOptions};
use crate::error::{Error, Result};

const READ_CHUNK: usize = 256 * 1024;

/// Reads `objects` in order, handing each batch to `emit` (which can stop the scan).
/// Bad lines, unknown fields and failed objects land in `stats`; with `options.strict` the
/// first problem is returned as the error instead.
pub fn scan_objects(
    objects: &[ObjectRef],
    options: &DecoderOptions,
    stats: &Arc<ScanStats>,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<()> {
    let mut decoder = Decoder::new(options.clone());
    let mut send = |batch: RecordBatch| {
        stats.rows_out(batch.num_rows() as u64);
        emit(batch)
    };
    for object in objects {
        let location = object.location.to_string();
        decoder.start_input(location.clone());
        let outcome = read_object(object, &mut decoder, options, &mut send);
        stats.add_bad_lines(&decoder.take_bad_lines());
        stats.add_unknown_fields(decoder.take_unknown_fields());
        match outcome {
            Ok(ControlFlow::Continue(())) => stats.object_read(object.size),
            Ok(ControlFlow::Break(())) => return Ok(()),
            Err(error) if options.strict => return Err(error),
            Err(error) => stats.add_failure(ObjectFailure {
                location,
                message: failure_message(&error),
            }),
        }
    }
    if let Some(batch) = decoder.flush()? {
        let _ = send(batch);
    }
    Ok(())
}

/// The error without its location prefix (the failure carries the location already).
fn failure_message(error: &Error) -> String {
    match error {
        Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

fn read_object(
    object: &ObjectRef,
    decoder: &mut Decoder,
    options: &DecoderOptions,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let location = object.location.to_string();
    match &object.location {
        ObjectLocation::Stdin => {
            let stdin = std::io::stdin();
            read_text(stdin.lock(), &location, decoder, emit)
        }
        ObjectLocation::Path(path) => {
            let file = File::open(path).map_err(|e| Error::io(&location, e))?;
            let mut reader = BufReader::with_capacity(READ_CHUNK, file);
            let head = reader.fill_buf().map_err(|e| Error::io(&location, e))?;
            if head.starts_with(b"PAR1") {
                drop(reader);
                read_parquet(path, &location, options, decoder.schema(), emit)
            } else {
                read_text(reader, &location, decoder, emit)
            }
        }
    }
}

/// Feeds a text stream (gzip or plain, told apart by the magic bytes) to the decoder.
pub(crate) fn read_text<R: BufRead>(
    mut reader: R,
    location: &str,
    decoder: &mut Decoder,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let head = reader.fill_buf().map_err(|e| Error::io(location, e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        // Multi-member: concatenated gzip objects are one stream of lines.
        feed(MultiGzDecoder::new(reader), location, decoder, emit)
    } else {
        feed(reader, location, decoder, emit)
    }
}

fn feed<R: Read>(
    mut reader: R,
    location: &str,
    decoder: &mut Decoder,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(location, e)),
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            let used = decoder.decode(chunk)?;
            chunk = &chunk[used..];
            if decoder.is_full()
                && let Some(batch) = decoder.flush()?
                && emit(batch).is_break()
            {
                return Ok(ControlFlow::Break(()));
            }
        }
    }
    decoder.finish()?;
    if decoder.is_full()
        && let Some(batch) = decoder.flush()?
    {
        return Ok(emit(batch));
    }
    Ok(ControlFlow::Continue(()))
}
