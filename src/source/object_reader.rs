//! Reads objects into record batches: opens them (files, stdin, S3), detects gzip and
//! Parquet, streams the bytes through decompression into the decoder, and keeps going past
//! an object that fails (it is named in the scan's stats).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::execution::memory_pool::MemoryPool;
use flate2::read::MultiGzDecoder;
use tokio::runtime::Handle;

use super::held_rows::HeldRows;
use super::object::{ObjectLocation, ObjectRef, TextPart};
use super::parquet_object::{read_parquet, read_s3_parquet};
use super::part_reader::{read_assumed_part, read_part};
use super::part_source::{ByteStream, FileRanges, PartSource, first_byte, first_request_end};
use super::s3_reader::{PendingGet, S3Ranges, read_s3_text, start_get};
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
    /// The query's memory pool, when there is one: rows that a part of a large file holds
    /// back until it knows where it starts are charged to it (see part_reader.rs).
    pub memory: Option<Arc<dyn MemoryPool>>,
    /// Whether the scan's consumer still takes batches (no LIMIT reached yet): a part that
    /// holds its rows back sends nothing for a while, so it asks. `None`: always.
    pub wanted: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
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
        // A part whose start is not known yet is read with a decoder of its own, which holds
        // its rows until the parts before it confirm that start (see part_reader.rs).
        if let Some(part) = object.part.as_ref().filter(|p| p.assumed) {
            let outcome = part_source(object, part, context, &location).and_then(|source| {
                read_assumed_part(
                    &source,
                    part,
                    pending.map(|p| Box::new(p) as Box<dyn ByteStream>),
                    options,
                    context,
                    stats,
                    &mut send,
                )
            });
            match outcome {
                Ok(ControlFlow::Continue(())) => continue,
                Ok(ControlFlow::Break(())) => return Ok(()),
                Err(error) => return Err(part_failed(location, part, &error)),
            }
        }
        decoder.start_input(location.clone());
        // The object's rows are held until it has been read to its end (see HeldRows). Rows
        // of earlier objects still buffered in the decoder (`shared`) are not the object's.
        let shared = decoder.buffered_rows();
        let flushes = decoder.flushes();
        let decoded = decoder.rows_decoded();
        let mut pushed = 0u64;
        let mut hold_error = None;
        // A part of a file goes straight on: if it fails, the whole query does (its other
        // parts are read elsewhere), so holding its rows back would protect nothing.
        let is_part = object.part.is_some();
        let outcome = read_object(object, pending, &mut decoder, options, context, &mut |b| {
            pushed += b.num_rows() as u64;
            if is_part {
                return send(b);
            }
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
                let (part, bytes) = match &object.part {
                    Some(part) => (Some(part.index), part.end - part.start),
                    None => (None, object.size),
                };
                stats.object_read(&location, part, bytes, rows, &bad_lines);
                s3_failures_in_a_row = 0;
                if held.release(&mut send)?.is_break() {
                    return Ok(());
                }
            }
            Ok(ControlFlow::Break(())) => return Ok(()),
            Err(error) if options.strict => return Err(error),
            // The other parts of this file are read by other partitions, and their rows
            // may be in the answer already: going on would mix part of a failed file in.
            Err(error) if let Some(part) = &object.part => {
                return Err(part_failed(location, part, &error));
            }
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

/// What a part of `object` is cut from: a local file, standard input when it is one, or an
/// S3 object (the version it had when it was cut, when the store names versions).
fn part_source(
    object: &ObjectRef,
    part: &TextPart,
    context: &ReadContext,
    location: &str,
) -> Result<PartSource> {
    let mapped = |file| PartSource::mapped(location, file, object.size);
    match &object.location {
        ObjectLocation::Path(path) if part.nominal => Ok(PartSource::streamed(
            location,
            Arc::new(FileRanges {
                path: path.clone(),
                size: object.size,
            }),
            object.size,
        )),
        ObjectLocation::Path(path) => File::open(path)
            .map(mapped)
            .map_err(|e| Error::io(location, e)),
        ObjectLocation::Stdin => stdin_as_file()
            .map(|(file, _)| mapped(file))
            .ok_or_else(|| {
                Error::invalid(
                    location,
                    "standard input is no longer a file to read parts of",
                )
            }),
        ObjectLocation::S3(url) => {
            let Some((client, handle)) = &context.s3 else {
                return Err(Error::invalid(location, "no S3 client configured"));
            };
            let ranges = S3Ranges::new(&client.0, handle, url, part.etag.clone());
            Ok(PartSource::streamed(
                location,
                Arc::new(ranges),
                object.size,
            ))
        }
        ObjectLocation::Logs { .. } => Err(Error::invalid(
            location,
            "a log stream is not read in parts",
        )),
    }
}

/// Why a scan stops when a part of a file fails.
fn part_failed(location: String, part: &TextPart, error: &Error) -> Error {
    let message = failure_message(error);
    Error::invalid(
        location,
        format!("{message}; {part} of this file failed: stopping"),
    )
}

fn prefetch(context: &ReadContext, object: &ObjectRef) -> Option<PendingGet> {
    match (&object.location, &context.s3) {
        (ObjectLocation::S3(url), Some((client, handle))) if !object.is_parquet_name() => {
            Some(match &object.part {
                // A part's bytes from where its reading begins (see part_source.rs).
                Some(part) => {
                    let ranges = S3Ranges::new(&client.0, handle, url, part.etag.clone());
                    let until = first_request_end(part.end, object.size);
                    ranges.get_from(first_byte(part.start, false), until)
                }
                None => start_get(&client.0, handle, url),
            })
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
        _ if let Some(part) = &object.part => {
            let source = part_source(object, part, context, &location)?;
            let stream = pending.map(|p| Box::new(p) as Box<dyn ByteStream>);
            read_part(&source, part, stream, decoder, emit)
        }
        ObjectLocation::Stdin => match STDIN_SPOOL.get() {
            Some(spool) => read_file_text(spool, &location, decoder, emit),
            None => {
                let stdin = BufReader::with_capacity(READ_CHUNK, std::io::stdin());
                read_text(stdin, 0, &location, decoder, emit)
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
                read_text(reader, object.size, &location, decoder, emit)
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
            read_s3_text(pending, url, object.size, decoder, emit)
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
    let size = file.metadata().map_or(0, |m| m.len());
    read_text(
        BufReader::with_capacity(READ_CHUNK, file),
        size,
        location,
        decoder,
        emit,
    )
}

/// Standard input copied to a temporary file, for jobs that read their sources more than
/// once (detection learns from the data, then reads the examined day again): a pipe can be
/// read only once. Standard input belongs to the process, and so does its copy.
static STDIN_SPOOL: std::sync::OnceLock<tempfile::TempPath> = std::sync::OnceLock::new();

/// Standard input as a file to map, with the offset it stands at: its copy (see
/// `spool_stdin`), or standard input itself when it is a regular file (`-s - < file`).
/// None for a pipe or a terminal.
pub(crate) fn stdin_as_file() -> Option<(File, u64)> {
    if let Some(spool) = STDIN_SPOOL.get() {
        return File::open(spool).ok().map(|file| (file, 0));
    }
    #[cfg(unix)]
    {
        use std::io::Seek;
        use std::os::fd::AsFd;
        let mut file = File::from(std::io::stdin().as_fd().try_clone_to_owned().ok()?);
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        // Bytes before the offset were read by whoever handed the file over.
        let offset = file.stream_position().ok()?;
        Some((file, offset))
    }
    #[cfg(not(unix))]
    None
}

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

/// Gzip objects at least this large (as stored, or of unknown size) are inflated on a
/// thread of their own while the decoder reads what it inflated: one large stream then
/// takes the time of its inflate, not of inflate and decode one after the other. Smaller
/// objects come many at a time, one partition per core, and gain nothing from it.
const INFLATE_ASIDE_MIN: u64 = 1 << 20;

/// Inflated chunks waiting for the decoder: bounds the memory of inflating aside.
const CHUNKS_AHEAD: usize = 4;

/// Feeds a text stream (gzip or plain, told apart by the magic bytes) to the decoder.
/// `size` is the stream's stored size, 0 when unknown.
pub(crate) fn read_text<R: BufRead + Send>(
    mut reader: R,
    size: u64,
    location: &str,
    decoder: &mut Decoder,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let head = reader.fill_buf().map_err(|e| Error::io(location, e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        // Multi-member: concatenated gzip objects are one stream of lines.
        let inflated = MultiGzDecoder::new(reader);
        return match size == 0 || size >= INFLATE_ASIDE_MIN {
            true => feed_inflated_aside(inflated, location, decoder, emit),
            false => feed(inflated, location, decoder, emit),
        };
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
pub(super) fn ends_lines_with_bare_cr(bytes: &[u8]) -> Option<bool> {
    let i = memchr::memchr2(b'\r', b'\n', bytes)?;
    match bytes[i] {
        b'\n' => Some(false),
        _ => bytes.get(i + 1).map(|&next| next != b'\n'),
    }
}

/// Compressed or archive formats told by their magic bytes, so that such an object is named
/// once instead of being taken for thousands of bad lines.
pub(super) fn other_compression(head: &[u8]) -> Option<&'static str> {
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
    let mut lines = LineFeed::default();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(location, e)),
        };
        if lines.chunk(&mut buf[..n], decoder, emit)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    lines.end(decoder, emit)
}

/// [`feed`] with the reading (inflating) on a second thread: chunks go to the decoder over
/// a bounded channel and their buffers come back to be filled again.
fn feed_inflated_aside<R: Read + Send>(
    mut reader: R,
    location: &str,
    decoder: &mut Decoder,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    type Chunk = std::io::Result<(Vec<u8>, usize)>;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Chunk>(CHUNKS_AHEAD);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..CHUNKS_AHEAD + 2 {
        let _ = empty_tx.send(vec![0u8; READ_CHUNK]);
    }
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while let Ok(mut buf) = empty_rx.recv() {
                let chunk = read_full(&mut reader, &mut buf).map(|n| (buf, n));
                let last = !matches!(chunk, Ok((_, n)) if n > 0);
                // The decoder hung up (it stopped early): stop inflating.
                if full_tx.send(chunk).is_err() || last {
                    return;
                }
            }
        });
        let mut lines = LineFeed::default();
        let outcome = loop {
            let (mut buf, n) = match full_rx.recv() {
                Ok(Ok(chunk)) => chunk,
                Ok(Err(e)) => break Err(Error::io(location, e)),
                Err(_) => break Err(Error::invalid(location, "the inflating thread stopped")),
            };
            if n == 0 {
                break lines.end(decoder, emit);
            }
            match lines.chunk(&mut buf[..n], decoder, emit) {
                Ok(ControlFlow::Continue(())) => {}
                other => break other,
            }
            let _ = empty_tx.send(buf);
        };
        // Whatever the inflating thread waits on now fails, so it ends and the scope joins.
        drop(full_rx);
        drop(empty_tx);
        outcome
    })
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Hands a stream's chunks to the decoder, flushing full batches to `emit`.
#[derive(Default)]
pub(super) struct LineFeed {
    /// Lines ended by a bare CR (classic Mac line ends, some exports): told by the first
    /// line end; such an object's CRs are read as line ends.
    cr_only: Option<bool>,
}

impl LineFeed {
    fn chunk(
        &mut self,
        bytes: &mut [u8],
        decoder: &mut Decoder,
        emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>> {
        if self.cr_only.is_none() {
            self.cr_only = ends_lines_with_bare_cr(bytes);
        }
        if self.cr_only == Some(true) {
            for b in bytes.iter_mut().filter(|b| **b == b'\r') {
                *b = b'\n';
            }
        }
        self.chunk_ref(bytes, decoder, emit)
    }

    /// [`LineFeed::chunk`] of bytes that are known to end lines with LF (a part of a file:
    /// files with bare-CR line ends are never read in parts).
    pub(super) fn chunk_ref(
        &mut self,
        bytes: &[u8],
        decoder: &mut Decoder,
        emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>> {
        let mut chunk = bytes;
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
        Ok(ControlFlow::Continue(()))
    }

    pub(super) fn end(
        self,
        decoder: &mut Decoder,
        emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>> {
        decoder.finish()?;
        if decoder.is_full()
            && let Some(batch) = decoder.flush()?
        {
            return Ok(emit(batch));
        }
        Ok(ControlFlow::Continue(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DecoderOptions;

    /// Reads `bytes` as one text object; the rows' interface ids, or the error.
    fn read(bytes: &[u8]) -> Result<Vec<String>> {
        read_sized(bytes, bytes.len() as u64)
    }

    /// [`read`] of an object said to be `size` bytes (0: unknown, and gzip is inflated aside).
    fn read_sized(bytes: &[u8], size: u64) -> Result<Vec<String>> {
        let options = DecoderOptions {
            projection: Some(vec![
                crate::format::column_index("interface_id").unwrap_or(2),
            ]),
            ..DecoderOptions::default()
        };
        let mut decoder = Decoder::new(options);
        decoder.start_input("test.log");
        let mut batches = Vec::new();
        let flow = read_text(bytes, size, "test.log", &mut decoder, &mut |b| {
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

    #[test]
    fn gzip_inflated_aside_reads_as_inline_and_fails_alike() {
        let text: String = std::iter::once(LINES[0].to_string())
            .chain(
                (0..40_000)
                    .map(|i| format!("2 1 eni-{i} 10.0.0.1 10.0.0.2 1 2 6 1 1 100 160 ACCEPT OK")),
            )
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        // Two members: concatenated gzip is one stream of lines, either way.
        let two = [gz.clone(), gz.clone()].concat();
        let inline = read_sized(&two, 1).unwrap();
        assert_eq!(inline.len(), 80_000);
        assert_eq!(read_sized(&two, 0).unwrap(), inline);
        assert_eq!(read_sized(&two, INFLATE_ASIDE_MIN).unwrap(), inline);
        // A damaged CRC fails the object in both, naming it.
        let mut bad = gz.clone();
        let crc = bad.len() - 8;
        bad[crc] ^= 0xff;
        for size in [0, 1] {
            let err = read_sized(&bad, size).unwrap_err().to_string();
            assert!(err.starts_with("test.log: "), "{err}");
        }
        // Cut short: an error too, never a quiet end.
        let cut = &gz[..gz.len() / 2];
        assert!(read_sized(cut, 0).is_err());
    }

    #[test]
    fn a_reader_that_stops_early_stops_the_inflating_thread() {
        let text: String = (0..200_000)
            .map(|i| format!("2 1 eni-{i} 10.0.0.1 10.0.0.2 1 2 6 1 1 100 160 ACCEPT OK\n"))
            .collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let mut decoder = Decoder::new(DecoderOptions::default());
        decoder.start_input("test.log");
        let mut batches = 0;
        let flow = read_text(&gz[..], 0, "test.log", &mut decoder, &mut |_| {
            batches += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        // Returning at all means the thread ended (the scope joins it).
        assert!(flow.is_break());
        assert_eq!(batches, 1);
    }
}
