//! Reads a part of a large plain-text file or object (see text_parts.rs): from a known
//! start, or from an assumed one that the parts before it confirm (see part_ledger.rs).
//!
//! A local file is mapped into memory and the decoder reads the mapping: no copy through
//! a buffer, which is a good share of the time at these speeds. An S3 object's part is
//! streamed (see part_source.rs).

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};

use super::object::TextPart;
use super::object_reader::{LineFeed, ReadContext};
use super::part_ledger::{Checkpoint, PartLedger, PartStart, Reading};
use super::part_source::{ByteStream, PartSource};
use super::scan_stats::ScanStats;
use crate::decode::{Decoder, DecoderOptions};
use crate::error::{Error, Result};

/// Reads a part whose start is known, with `decoder` (which may hold rows of earlier
/// objects). When the part shares a ledger, the parts after it learn what it holds.
/// `stream`: the part's bytes, when their request was sent ahead.
pub(super) fn read_part(
    source: &PartSource,
    part: &TextPart,
    stream: Option<Box<dyn ByteStream>>,
    decoder: &mut Decoder,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let header = part
        .header
        .as_ref()
        .map(|(line, text)| (*line, text.as_str()));
    decoder.start_part(source.location(), Some(part.lines_before), header)?;
    let reading = part.ledger.as_ref().map(|l| l.reading(part.index));
    let flow = decode_lines(source, part, stream, decoder, reading.as_ref(), emit)?;
    if flow.is_break() {
        return Ok(flow);
    }
    if let Some(reading) = reading {
        let before = part.lines_before;
        let header = decoder
            .last_header()
            .map(|(line, text)| (line - before, text.to_string()));
        reading.counted(decoder.lines() - before, header);
    }
    Ok(flow)
}

/// Reads a part whose start is assumed (`part.assumed`): decoded at once with a decoder of
/// its own, its rows held back (and charged to the context's memory pool) until the parts
/// before it confirm
/// the header it assumed; then its bad lines are renumbered and what it read is recorded in
/// `stats`. When a header before it said otherwise, the part is read again from its true
/// start.
#[allow(clippy::too_many_arguments)]
pub(super) fn read_assumed_part(
    source: &PartSource,
    part: &TextPart,
    stream: Option<Box<dyn ByteStream>>,
    options: &DecoderOptions,
    context: &ReadContext,
    stats: &ScanStats,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    let location = source.location();
    let Some(ledger) = &part.ledger else {
        // Parts are cut this way only for plans read where they were made.
        return Err(Error::invalid(
            location,
            format!("{part} was cut without counting the lines before it, in another process"),
        ));
    };
    let assumed = part.header.as_ref();
    let mut decoder = Decoder::new(options.clone());
    decoder.start_part(location, None, assumed.map(|(l, t)| (*l, t.as_str())))?;
    let reading = ledger.reading(part.index);

    let mut held = Held::new(ledger, context, location);
    let decoded = (|| -> Result<ControlFlow<()>> {
        let mut pass_on = |batch| held.pass_on(batch, part, source, emit);
        let read = decode_lines(
            source,
            part,
            stream,
            &mut decoder,
            Some(&reading),
            &mut pass_on,
        );
        if read?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
        Ok(match decoder.flush()? {
            Some(batch) => pass_on(batch),
            None => ControlFlow::Continue(()),
        })
    })();
    if let Some(error) = held.failed.take() {
        return Err(error);
    }
    let start = match (decoded, held.start.take()) {
        // Renumbered and read again from its start, the part fails as reading the file whole
        // fails there (a header's error names its line).
        (Err(_), _) => None,
        (Ok(ControlFlow::Break(())), Some(start)) if !start.agrees_with(assumed) => Some(start),
        (Ok(ControlFlow::Break(())), _) => return Ok(ControlFlow::Break(())),
        (Ok(ControlFlow::Continue(())), start) => {
            // Read to its end: the parts after it may go on.
            let header = decoder
                .last_header()
                .map(|(line, text)| (line, text.to_string()));
            reading.counted(decoder.lines(), header);
            let start = match start {
                Some(start) => start,
                None => ledger.start_of(part.index, source, true)?,
            };
            if start.agrees_with(assumed) {
                if held.release(emit).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
                record(stats, location, part, &mut decoder, start.lines_before);
                return Ok(ControlFlow::Continue(()));
            }
            Some(start)
        }
    };
    drop(held);
    let start = match start {
        Some(start) => start,
        None => ledger.start_of(part.index, source, true)?,
    };
    read_from(source, part, start, options, stats, emit)
}

/// Feeds the lines of `part` through `decoder` to its end, telling the parts after it
/// (through `reading`) how far it has got.
fn decode_lines(
    source: &PartSource,
    part: &TextPart,
    stream: Option<Box<dyn ByteStream>>,
    decoder: &mut Decoder,
    reading: Option<&Reading>,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    // Lines are numbered from the file's start (an assumed part's, with none before it, from
    // the part's own).
    let lines_before = part.lines_before;
    let mut lines = LineFeed::default();
    let read = source.read_lines(part.start, part.end, false, stream, &mut |chunk, after| {
        if lines.chunk_ref(chunk, decoder, emit)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
        if let Some(reading) = reading {
            report_progress(reading, decoder, after, lines_before);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    if read.is_break() {
        return Ok(ControlFlow::Break(()));
    }
    lines.end(decoder, emit)
}

/// Tells the parts after this one how far it has been read: up to the line the decoder
/// carries (unless that line is too long to say where it starts), of the bytes before `at`.
fn report_progress(reading: &Reading, decoder: &Decoder, at: u64, lines_before: u64) {
    if let Some(carried) = decoder.carried() {
        reading.advanced(Checkpoint {
            at: at - carried as u64,
            lines: decoder.lines() - lines_before,
            last_header: decoder
                .last_header()
                .map(|(line, text)| (line - lines_before, text.to_string())),
        });
    }
}

/// Reads `part` again from its now known `start`.
fn read_from(
    source: &PartSource,
    part: &TextPart,
    start: PartStart,
    options: &DecoderOptions,
    stats: &ScanStats,
    emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    if let Some(ledger) = &part.ledger {
        ledger.read_again();
    }
    let known = TextPart {
        lines_before: start.lines_before,
        header: start.header,
        assumed: false,
        ..part.clone()
    };
    let mut decoder = Decoder::new(options.clone());
    if read_part(source, &known, None, &mut decoder, emit)?.is_break() {
        return Ok(ControlFlow::Break(()));
    }
    if let Some(batch) = decoder.flush()?
        && emit(batch).is_break()
    {
        return Ok(ControlFlow::Break(()));
    }
    record(stats, source.location(), part, &mut decoder, 0);
    Ok(ControlFlow::Continue(()))
}

/// Records what the part's decoder read, its bad lines and unknown fields moved on by the
/// `lines_before` they were counted without.
fn record(
    stats: &ScanStats,
    location: &str,
    part: &TextPart,
    decoder: &mut Decoder,
    lines_before: u64,
) {
    let mut bad = decoder.take_bad_lines();
    bad.renumber(lines_before);
    let mut unknown = decoder.take_unknown_fields();
    for field in &mut unknown {
        field.line += lines_before;
    }
    stats.add_unknown_fields(unknown);
    let rows = decoder.rows_decoded();
    stats.object_read(
        location,
        Some(part.index),
        part.end - part.start,
        rows,
        &bad,
    );
}

/// The rows of a part whose start is not known yet.
struct Held<'a> {
    ledger: &'a PartLedger,
    batches: Vec<RecordBatch>,
    bytes: usize,
    /// The held rows' share of the query's memory pool.
    reservation: Option<MemoryReservation>,
    /// Whether the scan's consumer still takes batches.
    wanted: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    /// The start, once known: batches then go straight on (if it agrees with the assumed).
    start: Option<PartStart>,
    failed: Option<Error>,
}

impl<'a> Held<'a> {
    fn new(ledger: &'a PartLedger, context: &ReadContext, location: &str) -> Self {
        let consumer = format!("rows held by a part of {location}");
        Held {
            ledger,
            batches: Vec::new(),
            bytes: 0,
            reservation: context
                .memory
                .as_ref()
                .map(|pool| MemoryConsumer::new(consumer).register(pool)),
            wanted: context.wanted.clone(),
            start: None,
            failed: None,
        }
    }

    /// Holds `batch`, or passes it on once the start is known. Past the ledger's limit the
    /// start is found out now (counting the parts before that are not read yet, or, when
    /// counting means fetching them again, waiting while they are read): either the held
    /// rows go on, or the part stops to be read again.
    fn pass_on(
        &mut self,
        batch: RecordBatch,
        part: &TextPart,
        source: &PartSource,
        emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if self.start.is_some() {
            return emit(batch);
        }
        // Nothing is sent while rows are held: a consumer that hung up (a LIMIT reached)
        // is noticed by asking.
        if self.wanted.as_ref().is_some_and(|wanted| !wanted()) {
            return ControlFlow::Break(());
        }
        let batch_bytes = batch.get_array_memory_size();
        self.bytes += batch_bytes;
        self.batches.push(batch);
        // Past the ledger's limit, or what the query's memory pool can give, the rows go on.
        let charged = match &mut self.reservation {
            Some(reservation) => reservation.try_grow(batch_bytes).is_ok(),
            None => true,
        };
        if charged && self.bytes <= self.ledger.hold_limit() {
            return ControlFlow::Continue(());
        }
        match self
            .ledger
            .start_of(part.index, source, source.is_streamed())
        {
            Ok(start) => {
                let agrees = start.agrees_with(part.header.as_ref());
                self.start = Some(start);
                match agrees {
                    true => self.release(emit),
                    false => ControlFlow::Break(()),
                }
            }
            Err(error) => {
                self.failed = Some(error);
                ControlFlow::Break(())
            }
        }
    }

    /// Passes the held rows on.
    fn release(&mut self, emit: &mut dyn FnMut(RecordBatch) -> ControlFlow<()>) -> ControlFlow<()> {
        self.bytes = 0;
        if let Some(reservation) = &mut self.reservation {
            reservation.free();
        }
        for batch in self.batches.drain(..) {
            emit(batch)?;
        }
        ControlFlow::Continue(())
    }
}
