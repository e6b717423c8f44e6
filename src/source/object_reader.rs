//! Reads objects into record batches: opens them (files, stdin, S3), detects gzip and
//! Parquet, streams the bytes through decompression into the decoder, and keeps going past
//! an object that fails (it is named in the scan's stats).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::RecordBatch;
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
    pub s3: Option<(super::S3Access, Handle)>,
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
    let mut send = |batch: RecordBatch| emit(batch);
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
        let decoded = decoder.rows_decoded();
        let mut pushed = 0u64;
        let mut hold_error = None;
        let outcome = read_object(object, pending, &mut decoder, options, context, &mut |b| {
            pushed += b.num_rows() as u64;
            match held.push(b) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    hold_error = Some(e);
                    ControlFlow::Break(())
                }
            }
        });
        let outcome = match hold_error {
            Some(error) => return Err(error),
            None => outcome,
        };
        let bad_lines = decoder.take_bad_lines();
        stats.add_unknown_fields(decoder.take_unknown_fields());
        match outcome {
            Ok(ControlFlow::Continue(())) => {
                // A Parquet object's batches come straight from its reader, not the decoder.
                let rows = match (
                    decoder.rows_decoded() - decoded,
                    decoder.flushes() == flushes,
                ) {
                    (0, true) => pushed,
                    (text, _) => text,
                };
                stats.object_read(&location, object.size, rows, &bad_lines);
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
            Some(start_get(&client.0, handle, url))
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
            Some(spool) => read_file_text(spool, &location, decoder, emit),
            None => {
                let stdin = std::io::stdin();
                read_text(stdin.lock(), &location, decoder, emit)
            }
        },
        ObjectLocation::Logs { .. } => {
            let spool = super::cloudwatch_logs::spool_of(&object.location).ok_or_else(|| {
                Error::invalid(&location, "this log stream was not listed in this process")
            })?;
            read_file_text(&spool, &location, decoder, emit)
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
        ObjectLocation::S3(url) => {
            let Some((client, handle)) = &context.s3 else {
                return Err(Error::invalid(location, "no S3 client configured"));
            };
            if object.is_parquet_name() {
                return read_s3_parquet(
                    &client.0,
                    handle,
                    url,
                    object.size,
                    options,
                    decoder.schema(),
                    emit,
                );
            }
            let pending = pending.unwrap_or_else(|| start_get(&client.0, handle, url));
            read_s3_text(pending, url, decoder, emit)
        }
    }
}

/// A spooled copy (standard input, a log stream) read as the text it holds.
fn read_file_text(
    path: &std::path::Path,
    location: &str,
    decoder: &mut Decoder,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let file = File::open(path).map_err(|e| Error::io(location, e))?;
    read_text(
        BufReader::with_capacity(READ_CHUNK, file),
        location,
        decoder,
        emit,
    )
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
        return feed(MultiGzDecoder::new(reader), location, decoder, emit);
    }
    if let Some(kind) = other_compression(head) {
        return Err(Error::invalid(
            location,
            format!(
                "this is {kind} data, which flowlens does not read: AWS delivers flow logs as \
                 gzip or Parquet; decompress it first"
            ),
        ));
    }
    feed(reader, location, decoder, emit)
}

/// Whether the first line end in `bytes` is a CR not followed by LF; None until one is seen
/// whole (a CR at the very end may be the first half of a CRLF).
fn ends_lines_with_bare_cr(bytes: &[u8]) -> Option<bool> {
    let i = memchr::memchr2(b'\r', b'\n', bytes)?;
    match bytes[i] {
        b'\n' => Some(false),
        _ => bytes.get(i + 1).map(|&next| next != b'\n'),
    }
}

/// Compressed or archive formats told by their magic bytes, so that such an object is named
/// once instead of being taken for thousands of bad lines.
fn other_compression(head: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 6] = [
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (b"BZh", "bzip2"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz"),
        (&[0x04, 0x22, 0x4d, 0x18], "LZ4"),
        (b"PK\x03\x04", "zip"),
        (b"7z\xbc\xaf\x27\x1c", "7-Zip"),
    ];
    MAGIC
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, kind)| *kind)
}

fn feed<R: Read>(
    mut reader: R,
    location: &str,
    decoder: &mut Decoder,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let mut buf = vec![0u8; READ_CHUNK];
    // Lines ended by a bare CR (classic Mac line ends, some exports): told by the first line
    // end; such an object's CRs are read as line ends.
    let mut cr_only = None;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(location, e)),
        };
        let bytes = &mut buf[..n];
        if cr_only.is_none() {
            cr_only = ends_lines_with_bare_cr(bytes);
        }
        if cr_only == Some(true) {
            for b in bytes.iter_mut().filter(|b| **b == b'\r') {
                *b = b'\n';
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DecoderOptions;

    /// Reads `bytes` as one text object; the rows' interface ids, or the error.
    fn read(bytes: &[u8]) -> Result<Vec<String>> {
        let options = DecoderOptions {
            projection: Some(vec![
                crate::format::column_index("interface_id").unwrap_or(2),
            ]),
            ..DecoderOptions::default()
        };
        let mut decoder = Decoder::new(options);
        decoder.start_input("test.log");
        let mut batches = Vec::new();
        let flow = read_text(bytes, "test.log", &mut decoder, &mut |b| {
            batches.push(b);
            ControlFlow::Continue(())
        })?;
        assert!(flow.is_continue());
        batches.extend(decoder.flush()?);
        Ok(batches
            .iter()
            .flat_map(|b| {
                let c = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>();
                c.into_iter()
                    .flatten()
                    .flatten()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    const LINES: [&str; 3] = [
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status",
        "2 1 eni-a 10.0.0.1 10.0.0.2 1 2 6 1 1 100 160 ACCEPT OK",
        "2 1 eni-b 10.0.0.1 10.0.0.2 1 2 6 1 1 100 160 ACCEPT OK",
    ];

    #[test]
    fn lines_ended_by_cr_lf_or_a_bare_cr_read_alike() {
        for end in ["\n", "\r\n", "\r"] {
            let text = LINES.join(end) + end;
            assert_eq!(
                read(text.as_bytes()).unwrap(),
                ["eni-a", "eni-b"],
                "{end:?}"
            );
        }
        assert_eq!(ends_lines_with_bare_cr(b"abc"), None);
        assert_eq!(ends_lines_with_bare_cr(b"abc\r"), None);
        assert_eq!(ends_lines_with_bare_cr(b"abc\r\nx\ry"), Some(false));
        assert_eq!(ends_lines_with_bare_cr(b"abc\rx"), Some(true));
    }

    #[test]
    fn other_compressions_are_named_not_decoded() {
        for (magic, kind) in [
            (&[0x28u8, 0xb5, 0x2f, 0xfd, 0, 0][..], "zstd"),
            (b"BZh91AY&SY", "bzip2"),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0, 0][..], "xz"),
        ] {
            let err = read(magic).unwrap_err().to_string();
            assert!(
                err.starts_with("test.log: this is ") && err.contains(kind),
                "{err}"
            );
        }
    }
}
