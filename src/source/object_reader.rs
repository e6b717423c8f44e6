//! Reads objects into record batches: opens them (files, stdin, S3), detects gzip and
//! Parquet, streams the bytes through decompression into the decoder, and keeps going past
//! an object that fails (it is named in the scan's stats).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::RecordBatch;
use aws_sdk_s3::Client;
use flate2::read::MultiGzDecoder;
use tokio::runtime::Handle;

use super::held_rows::HeldRows;
use super::object::{ObjectLocation, ObjectRef};
use super::parquet_object::{read_parquet, read_s3_parquet};
use super::s3_reader::{PendingGet, read_s3_text, start_get};
use super::scan_stats::{ObjectFailure, ScanStats};
use crate::decode::{Decoder, DecoderOptions};
use crate::error::{Error, Result};

const READ_CHUNK: usize = 256 * 1024;

/// After this many objects in a row fail on S3, the store is taken to be gone and the
/// scan stops with an error instead of trying (and retrying) every remaining object.
const CONSECUTIVE_S3_FAILURES: usize = 5;

/// What reading needs besides the objects: the S3 client and the runtime its requests run
/// on, when any object is on S3.
#[derive(Clone)]
pub struct ReadContext {
    pub s3: Option<(Client, Handle)>,
    /// S3 objects requested ahead of the one being decoded.
    pub lookahead: usize,
}

/// Reads `objects` in order, handing each batch to `emit` (which can stop the scan).
/// Bad lines, unknown fields and failed objects land in `stats`; with `options.strict` the
/// first problem is returned as the error instead.
pub fn scan_objects(
    objects: &[ObjectRef],
    options: &DecoderOptions,
    context: &ReadContext,
    stats: &Arc<ScanStats>,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<()> {
    let mut decoder = Decoder::new(options.clone());
    let mut held = HeldRows::default();
    let mut send = |batch: RecordBatch| {
        stats.rows_out(batch.num_rows() as u64);
        emit(batch)
    };
    // S3 objects ahead of the one being decoded whose bodies are already streaming in.
    let lookahead = context.lookahead.max(1);
    // The front is always the next object's.
    let mut ahead: VecDeque<Option<PendingGet>> = VecDeque::new();
    let mut s3_failures_in_a_row = 0;
    for (i, object) in objects.iter().enumerate() {
        let location = object.location.to_string();
        if crate::failpoint::stop_requested() {
            return Err(Error::invalid(
                location,
                "stopped (SIGTERM) before this object",
            ));
        }
        crate::failpoint::point("read");
        let pending = ahead
            .pop_front()
            .unwrap_or_else(|| prefetch(context, object));
        // Keep the following objects' requests going while this one is decoded.
        while ahead.len() < lookahead
            && let Some(o) = objects.get(i + 1 + ahead.len())
        {
            ahead.push_back(prefetch(context, o));
        }
        decoder.start_input(location.clone());
        // The object's rows are held until it has been read to its end (see HeldRows). Rows
        // of earlier objects still buffered in the decoder (`shared`) are not the object's.
        let shared = decoder.buffered_rows();
        let flushes = decoder.flushes();
        let mut hold_error = None;
        let outcome =
            read_object(
                object,
                pending,
                &mut decoder,
                options,
                context,
                &mut |b| match held.push(b) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        hold_error = Some(e);
                        ControlFlow::Break(())
                    }
                },
            );
        let outcome = match hold_error {
            Some(error) => return Err(error),
            None => outcome,
        };
        let bad_lines = decoder.take_bad_lines();
        stats.add_unknown_fields(decoder.take_unknown_fields());
        match outcome {
            Ok(ControlFlow::Continue(())) => {
                stats.add_bad_lines(&bad_lines);
                stats.object_read(object.size);
                s3_failures_in_a_row = 0;
                if held.release(&mut send)?.is_break() {
                    return Ok(());
                }
            }
            Ok(ControlFlow::Break(())) => return Ok(()),
            Err(error) if options.strict => return Err(error),
            Err(error) => {
                // Only the rows of earlier objects go on; this object's bad lines are not
                // counted either: its failure says more than the garbage it decoded to.
                let first = match decoder.flushes() > flushes {
                    // The decoder handed over batches: the first one led with the shared rows,
                    // and everything it still buffers is this object's.
                    true => {
                        decoder.flush()?;
                        held.discard()
                    }
                    // Nothing handed over: the shared rows lead the decoder's buffer.
                    false => {
                        held.discard();
                        decoder.flush()?
                    }
                };
                if let Some(batch) = first.filter(|_| shared > 0)
                    && send(batch.slice(0, shared)).is_break()
                {
                    return Ok(());
                }
                let message = failure_message(&error);
                if matches!(object.location, ObjectLocation::S3(_)) {
                    s3_failures_in_a_row += 1;
                    if s3_failures_in_a_row >= CONSECUTIVE_S3_FAILURES {
                        return Err(Error::S3 {
                            location,
                            message: format!(
                                "{s3_failures_in_a_row} objects in a row could not be read \
                                 (last: {message}); stopping"
                            ),
                        });
                    }
                }
                stats.add_failure(ObjectFailure { location, message });
            }
        }
    }
    if let Some(batch) = decoder.flush()? {
        let _ = send(batch);
    }
    Ok(())
}

fn prefetch(context: &ReadContext, object: &ObjectRef) -> Option<PendingGet> {
    match (&object.location, &context.s3) {
        (ObjectLocation::S3(url), Some((client, handle))) if !object.is_parquet_name() => {
            Some(start_get(client, handle, url))
        }
        _ => None,
    }
}

/// The error without its location prefix (the failure carries the location already).
fn failure_message(error: &Error) -> String {
    match error {
        Error::Io { source, .. } => source.to_string(),
        Error::S3 { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn read_object(
    object: &ObjectRef,
    pending: Option<PendingGet>,
    decoder: &mut Decoder,
    options: &DecoderOptions,
    context: &ReadContext,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let location = object.location.to_string();
    match &object.location {
        ObjectLocation::Stdin => match STDIN_SPOOL.get() {
            Some(spool) => {
                let file = File::open(spool).map_err(|e| Error::io(&location, e))?;
                read_text(
                    BufReader::with_capacity(READ_CHUNK, file),
                    &location,
                    decoder,
                    emit,
                )
            }
            None => {
                let stdin = std::io::stdin();
                read_text(stdin.lock(), &location, decoder, emit)
            }
        },
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
        ObjectLocation::S3(url) => {
            let Some((client, handle)) = &context.s3 else {
                return Err(Error::invalid(location, "no S3 client configured"));
            };
            if object.is_parquet_name() {
                return read_s3_parquet(
                    client,
                    handle,
                    url,
                    object.size,
                    options,
                    decoder.schema(),
                    emit,
                );
            }
            let pending = pending.unwrap_or_else(|| start_get(client, handle, url));
            read_s3_text(pending, url, decoder, emit)
        }
    }
}

/// Standard input copied to a temporary file, for jobs that read their sources more than
/// once (detection learns from the data, then reads the examined day again): a pipe can be
/// read only once. Standard input belongs to the process, and so does its copy.
static STDIN_SPOOL: std::sync::OnceLock<tempfile::TempPath> = std::sync::OnceLock::new();

/// Copies standard input to a temporary file once; every later read of `-` reads the copy.
pub fn spool_stdin() -> Result<()> {
    if STDIN_SPOOL.get().is_some() {
        return Ok(());
    }
    let (mut file, path) = tempfile::NamedTempFile::new()
        .map_err(|e| Error::io("<stdin>", e))?
        .into_parts();
    std::io::copy(&mut std::io::stdin().lock(), &mut file).map_err(|e| Error::io("<stdin>", e))?;
    let _ = STDIN_SPOOL.set(path);
    Ok(())
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
