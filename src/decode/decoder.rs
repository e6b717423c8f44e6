//! The push decoder: `decode(&[u8])` takes bytes as they arrive (any chunking), `finish()`
//! marks the end of the input, `flush()` hands over a `RecordBatch`. It never does I/O, so
//! files, gzip streams and S3 bodies all feed it the same way.

use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use memchr::{memchr, memchr_iter, memrchr};

use super::bad_lines::{BadLineReason, BadLineSample, BadLines};
use super::columns::ColumnBuilder;
use super::conditions::FieldCondition;
use super::number::{normalise_unix_time, parse_number};
use super::words::{parse_digits, space_and_high_masks, space_mask};
use crate::error::{Error, Result};
use crate::format::{FIELDS, FieldKind, FlowFormat, FormatProblem, flows_schema, is_header_line};
use crate::time_range::TimeRange;

/// UTF-8 is checked a block of lines at a time rather than per field.
const UTF8_BLOCK: usize = 64 * 1024;

/// Lines of up to this many spaces can take the one-sweep path (formats have at most ~40
/// fields).
const SIMPLE_MAX_FIELDS: usize = 64;

#[derive(Clone, Debug)]
pub struct DecoderOptions {
    /// Catalog indices of the columns to produce, in output order; `None` for all.
    pub projection: Option<Vec<usize>>,
    pub batch_size: usize,
    /// The format of records before any header line (`--format`, else default v2).
    pub default_format: FlowFormat,
    /// Turn the first bad line into an error instead of counting it.
    pub strict: bool,
    /// Lines longer than this (bytes, without the newline) are bad.
    pub max_line_len: usize,
    /// Rows outside this window are dropped while decoding (`--since` / `--until`).
    pub time_range: TimeRange,
    /// Rows that fail one of these are left out (a query's WHERE clause, which the query
    /// still applies): they count as read, but are never built.
    pub conditions: Vec<FieldCondition>,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        DecoderOptions {
            projection: None,
            batch_size: 8192,
            default_format: FlowFormat::default_v2(),
            strict: false,
            max_line_len: 16 * 1024,
            time_range: TimeRange::ALL,
            conditions: Vec::new(),
        }
    }
}

/// A header named a field flowlens does not know; its column is skipped.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnknownField {
    pub field: String,
    pub location: String,
    pub line: u64,
}

impl std::fmt::Display for UnknownField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: unknown field `{}` in header: its column is skipped",
            self.location, self.line, self.field
        )
    }
}

/// What the fields of the line being decoded have shown so far.
#[derive(Default)]
struct LineState {
    fields: usize,
    /// Whether rows are filtered by time (`--since` / `--until`).
    filter: bool,
    /// The first field (position, offset) that is not a number where one belongs.
    bad_number: Option<(usize, usize)>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    /// A condition does not hold: the line is read (and may still be bad) but left out.
    excluded: bool,
    /// Nothing of the line was appended (`simple_line` tests conditions first).
    nothing_built: bool,
}

/// Where each field of the current format goes.
struct Layout {
    field_count: usize,
    /// Per position in the record: the output column it fills, if projected.
    slots: Vec<Option<usize>>,
    /// The projected positions and their output columns, by position.
    projected: Vec<(usize, usize)>,
    /// At most a third of the fields are wanted: lines take `simple_line`, which skips
    /// the others (decode bench: 3 columns of 14 read 24% faster; all 14 read that way
    /// were 15% slower than the general path, which they keep).
    sparse: bool,
    /// Output columns the current format does not have: NULL in every row.
    missing: Vec<usize>,
    /// Per position in the record: the condition that tests it, if any.
    tested: Vec<Option<usize>>,
    /// The tested positions and their conditions, by position.
    tests: Vec<(usize, usize)>,
    /// A condition's field is not in this format: it is NULL, and no row meets it.
    unmet: bool,
    start_pos: Option<usize>,
    end_pos: Option<usize>,
    header: String,
    /// Field id at each position, for messages.
    names: Vec<String>,
}

impl Layout {
    fn new(format: &FlowFormat, out_fields: &[usize], conditions: &[FieldCondition]) -> Self {
        let mut slots = Vec::with_capacity(format.len());
        let mut present = vec![false; out_fields.len()];
        let mut start_pos = None;
        let mut end_pos = None;
        for (pos, field) in format.positions().iter().enumerate() {
            let slot = field.and_then(|idx| out_fields.iter().position(|&o| o == idx));
            if let Some(col) = slot {
                present[col] = true;
            }
            match field.map(|idx| FIELDS[idx].name) {
                Some("start") => start_pos = Some(pos),
                Some("end") => end_pos = Some(pos),
                _ => {}
            }
            slots.push(slot);
        }
        let mut tested = vec![None; format.len()];
        let mut unmet = false;
        for (i, condition) in conditions.iter().enumerate() {
            let at = format
                .positions()
                .iter()
                .position(|&f| f == Some(condition.field));
            match at {
                // Two conditions on one field: the first one decides, the query the rest.
                Some(pos) => tested[pos] = tested[pos].or(Some(i)),
                None => unmet = true,
            }
        }
        let tests = tested
            .iter()
            .enumerate()
            .filter_map(|(pos, t)| t.map(|i| (pos, i)))
            .collect();
        let projected: Vec<(usize, usize)> = slots
            .iter()
            .enumerate()
            .filter_map(|(pos, slot)| slot.map(|col| (pos, col)))
            .collect();
        Layout {
            field_count: format.len(),
            sparse: projected.len() * 3 <= format.len(),
            slots,
            projected,
            missing: (0..out_fields.len()).filter(|&c| !present[c]).collect(),
            tested,
            tests,
            unmet,
            start_pos,
            end_pos,
            header: format.header(),
            names: format.header().split(' ').map(str::to_string).collect(),
        }
    }
}

pub struct Decoder {
    options: DecoderOptions,
    schema: SchemaRef,
    kinds: Vec<FieldKind>,
    columns: Vec<ColumnBuilder>,
    out_fields: Vec<usize>,
    layout: Layout,
    location: String,
    /// Bytes of a line not yet ended by a newline.
    carry: Vec<u8>,
    /// The carried line is already over `max_line_len`: drop bytes until its newline.
    carry_too_long: bool,
    /// Lines seen so far in the current input: the number of the line being decoded.
    line: u64,
    /// The input is a part of a file whose lines before it are not counted yet: its lines
    /// are numbered from the part's start, and its first line is not the file's.
    uncounted: bool,
    /// The last header line read in the current input: its number and text.
    last_header: Option<(u64, String)>,
    rows: usize,
    /// Rows decoded since the decoder was made (flushed or not).
    decoded: u64,
    /// Batches handed over so far.
    flushes: u64,
    bad: BadLines,
    warnings: Vec<UnknownField>,
    utf8_valid_end: usize,
    /// Where the spaces of the line being decoded are (`simple_line`).
    spaces_at: [usize; SIMPLE_MAX_FIELDS],
    /// Tests read every line the general way, to compare the two.
    #[cfg(test)]
    general_only: bool,
}

impl Decoder {
    pub fn new(mut options: DecoderOptions) -> Self {
        // Only conditions that can be asked of their fields are tested.
        options.conditions.retain(FieldCondition::fits_field);
        let out_fields: Vec<usize> = match &options.projection {
            Some(p) => p.clone(),
            None => (0..FIELDS.len()).collect(),
        };
        let full = flows_schema();
        let schema = Arc::new(
            full.project(&out_fields)
                .unwrap_or_else(|_| full.as_ref().clone()),
        );
        let kinds: Vec<FieldKind> = out_fields.iter().map(|&i| FIELDS[i].kind).collect();
        let columns = kinds
            .iter()
            .map(|&k| ColumnBuilder::new(k, options.batch_size))
            .collect();
        let layout = Layout::new(&options.default_format, &out_fields, &options.conditions);
        Decoder {
            schema,
            kinds,
            columns,
            out_fields,
            layout,
            location: String::from("<input>"),
            carry: Vec::new(),
            carry_too_long: false,
            line: 0,
            uncounted: false,
            last_header: None,
            rows: 0,
            decoded: 0,
            flushes: 0,
            bad: BadLines::default(),
            warnings: Vec::new(),
            utf8_valid_end: 0,
            spaces_at: [0; SIMPLE_MAX_FIELDS],
            #[cfg(test)]
            general_only: false,
            options,
        }
    }

    /// The schema of the batches this decoder produces.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Starts a new input (file or object) named `location`: line numbers restart and the
    /// format goes back to the default until a header says otherwise. Rows already decoded
    /// stay buffered, so small files share batches.
    pub fn start_input(&mut self, location: impl Into<String>) {
        self.location = location.into();
        self.carry.clear();
        self.carry_too_long = false;
        self.line = 0;
        self.uncounted = false;
        self.last_header = None;
        self.layout = Layout::new(
            &self.options.default_format,
            &self.out_fields,
            &self.options.conditions,
        );
    }

    /// Starts a part of an input (a line-aligned range of a large file read on its own):
    /// line numbers go on from `lines_before`, and `header`, the last header line before the
    /// part and its line number, governs its first lines (else the default format does).
    /// `lines_before` is `None` when the lines before the part are not counted yet: lines
    /// are then numbered from the part's start (the caller renumbers what names them).
    pub fn start_part(
        &mut self,
        location: impl Into<String>,
        lines_before: Option<u64>,
        header: Option<(u64, &str)>,
    ) -> Result<()> {
        self.start_input(location);
        if let Some((line, text)) = header {
            // The part that holds this header warns about its unknown fields, once.
            let warnings = self.warnings.len();
            self.line = line;
            self.header_line(text.as_bytes())?;
            self.warnings.truncate(warnings);
        }
        self.line = lines_before.unwrap_or(0);
        self.uncounted = lines_before.is_none();
        Ok(())
    }

    /// Lines of the current input seen so far (with the lines before a part).
    pub fn lines(&self) -> u64 {
        self.line
    }

    /// Bytes of a line not yet ended that the decoder keeps from the input so far; `None`
    /// when that line is already too long (its bytes are dropped as they come).
    pub fn carried(&self) -> Option<usize> {
        (!self.carry_too_long).then_some(self.carry.len())
    }

    /// The last header line read in the current input, with its line number.
    pub fn last_header(&self) -> Option<(u64, &str)> {
        self.last_header
            .as_ref()
            .map(|(line, text)| (*line, text.as_str()))
    }

    /// Rows buffered and not yet flushed.
    pub fn buffered_rows(&self) -> usize {
        self.rows
    }

    /// Rows decoded so far, flushed or not, with those a condition left out (read, not
    /// built): the difference across an input is its rows.
    pub fn rows_decoded(&self) -> u64 {
        self.decoded
    }

    /// Batches handed over by [`Decoder::flush`] so far: a reader that must drop the rows
    /// of an input that failed tells from it whether they are still buffered.
    pub fn flushes(&self) -> u64 {
        self.flushes
    }

    /// True when a batch is full: call [`Decoder::flush`] before decoding more.
    pub fn is_full(&self) -> bool {
        self.rows >= self.options.batch_size
    }

    /// Decodes complete lines from `buf`, keeping a trailing partial line for the next call.
    /// Returns how many bytes were consumed; fewer than `buf.len()` only when the batch is
    /// full, and then the caller flushes and calls again with the rest.
    pub fn decode(&mut self, buf: &[u8]) -> Result<usize> {
        let mut consumed = 0;
        if !self.carry.is_empty() || self.carry_too_long {
            let Some(nl) = memchr(b'\n', buf) else {
                self.carry_partial(buf);
                return Ok(buf.len());
            };
            self.carry_partial(&buf[..nl]);
            self.end_carried_line()?;
            consumed = nl + 1;
        }
        let rest = &buf[consumed..];
        let complete = match memrchr(b'\n', rest) {
            Some(last) => last + 1,
            None => 0,
        };
        let region = &rest[..complete];
        self.utf8_valid_end = 0;
        let mut pos = 0;
        // One search over the region rather than a call per line (the region ends with a
        // newline, so every line in it has one).
        for nl in memchr_iter(b'\n', region) {
            if self.is_full() {
                break;
            }
            self.line += 1;
            self.decode_line(region, pos, nl, None)?;
            pos = nl + 1;
        }
        consumed += pos;
        if pos >= region.len() && !self.is_full() {
            self.carry_partial(&rest[complete..]);
            consumed = buf.len();
        }
        Ok(consumed)
    }

    /// Marks the end of the input: a last line without a newline is decoded now.
    pub fn finish(&mut self) -> Result<()> {
        if !self.carry.is_empty() || self.carry_too_long {
            self.end_carried_line()?;
        }
        Ok(())
    }

    /// Hands over the buffered rows as a batch (`None` when there are none).
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let arrays = self.columns.iter_mut().map(|c| c.finish()).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .map_err(|source| self.arrow_error(source))?;
        self.rows = 0;
        self.flushes += 1;
        Ok(Some(batch))
    }

    /// Bad lines seen since the last call, handed over.
    pub fn take_bad_lines(&mut self) -> BadLines {
        std::mem::take(&mut self.bad)
    }

    /// Unknown field names met in headers since the last call, handed over.
    pub fn take_unknown_fields(&mut self) -> Vec<UnknownField> {
        std::mem::take(&mut self.warnings)
    }

    fn arrow_error(&self, source: arrow::error::ArrowError) -> Error {
        Error::Arrow {
            location: self.location.clone(),
            source,
        }
    }

    fn carry_partial(&mut self, bytes: &[u8]) {
        if self.carry_too_long {
            return;
        }
        // One byte more than the limit may be a CR of a CRLF, which does not count: the
        // carried line is measured exactly once it ends (found by the decode fuzz target).
        if self.carry.len() + bytes.len() > self.options.max_line_len + 1 {
            self.carry.clear();
            self.carry_too_long = true;
        } else {
            self.carry.extend_from_slice(bytes);
        }
    }

    fn end_carried_line(&mut self) -> Result<()> {
        self.line += 1;
        if self.carry_too_long {
            self.carry_too_long = false;
            let max = self.options.max_line_len;
            return self.bad_line(BadLineReason::TooLong, || {
                format!("longer than {max} bytes")
            });
        }
        let line = std::mem::take(&mut self.carry);
        let utf8_ok = std::str::from_utf8(&line).is_ok();
        let result = self.decode_line(&line, 0, line.len(), Some(utf8_ok));
        // Hand the allocation back for the next partial line.
        self.carry = line;
        self.carry.clear();
        result
    }

    /// Whether `region[start..end]` is valid UTF-8, validating a block of lines at a time.
    #[inline(always)]
    fn region_utf8_ok(&mut self, region: &[u8], start: usize, end: usize) -> bool {
        end <= self.utf8_valid_end || self.validate_block(region, start, end)
    }

    /// Validates the block of lines that starts with `region[start..end]`.
    #[inline(never)]
    fn validate_block(&mut self, region: &[u8], start: usize, end: usize) -> bool {
        let limit = (start + UTF8_BLOCK).min(region.len());
        let block_end = if limit == region.len() {
            region.len()
        } else {
            match memrchr(b'\n', &region[start..limit]) {
                Some(i) if start + i >= end => start + i,
                _ => end,
            }
        };
        let block = &region[start..block_end];
        // Flow logs are ASCII: the word-at-a-time ASCII check settles almost every block.
        if block.is_ascii() {
            self.utf8_valid_end = block_end;
            return true;
        }
        match std::str::from_utf8(block) {
            Ok(_) => {
                self.utf8_valid_end = block_end;
                true
            }
            Err(e) => {
                self.utf8_valid_end = start + e.valid_up_to();
                end <= self.utf8_valid_end
            }
        }
    }

    fn bad_line(&mut self, reason: BadLineReason, detail: impl FnOnce() -> String) -> Result<()> {
        if self.options.strict {
            return Err(Error::BadLine {
                location: self.location.clone(),
                line: self.line,
                reason,
                detail: detail(),
            });
        }
        let (location, line) = (&self.location, self.line);
        self.bad.record(
            || BadLineSample {
                location: location.clone(),
                line,
                reason,
                detail: detail(),
            },
            reason,
        );
        Ok(())
    }

    /// Decodes the line `region[start..end]`. Field ends come from a bitmask of the line's
    /// spaces, 64 bytes at a time, and numbers are parsed 8 digits at a time; both read
    /// the bytes around a field in `region`, which is why the line comes with its region.
    /// A line that turns out bad (field count, a number, its time) is taken back.
    /// `utf8_ok`: whether the line is UTF-8, if known; else it is found out when needed.
    fn decode_line(
        &mut self,
        region: &[u8],
        start: usize,
        end: usize,
        utf8_ok: Option<bool>,
    ) -> Result<()> {
        let (line_start, line_end) = (start, end);
        let end = if end > start && region[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        // A byte order mark before the first line (editors on Windows write one) is not
        // part of the header.
        let start = if self.line == 1 && !self.uncounted && region[start..end].starts_with(UTF8_BOM)
        {
            start + UTF8_BOM.len()
        } else {
            start
        };
        let line = &region[start..end];
        if line.len() > self.options.max_line_len {
            let max = self.options.max_line_len;
            return self.bad_line(BadLineReason::TooLong, || {
                format!("longer than {max} bytes")
            });
        }
        let Some(first) = line.iter().position(|&b| b != b' ') else {
            return Ok(()); // blank line
        };
        #[cfg(test)]
        let sparse = self.layout.sparse && !self.general_only;
        #[cfg(not(test))]
        let sparse = self.layout.sparse;
        let maybe_header = line[first].is_ascii_lowercase() || line[first] == b'$';
        // A line read the one-sweep way is checked to be ASCII as its spaces are found, from
        // the same loads: a separate pass over the bytes first was a tenth of a scan's time.
        // Any other line is checked here, a block of lines at a time.
        let utf8_ok = match utf8_ok {
            None if maybe_header || !sparse => {
                Some(self.region_utf8_ok(region, line_start, line_end))
            }
            known => known,
        };
        if utf8_ok == Some(false) {
            return self.bad_line(BadLineReason::InvalidUtf8, || {
                format!("`{}`", snippet(line))
            });
        }
        if maybe_header && is_header_line(line) {
            // What the parts after this one of a file read in parts need to know.
            self.last_header = Some((self.line, String::from_utf8_lossy(line).into_owned()));
            return self.header_line(line);
        }
        let state = if !sparse {
            self.split_fields(region, start + first, end)
        } else if let Some(state) = self.simple_line(region, start + first, end) {
            state
        } else {
            self.take_back();
            if utf8_ok.is_none() && !self.region_utf8_ok(region, line_start, line_end) {
                return self.bad_line(BadLineReason::InvalidUtf8, || {
                    format!("`{}`", snippet(line))
                });
            }
            self.split_fields(region, start + first, end)
        };
        let field_count = self.layout.field_count;
        if state.fields != field_count {
            self.take_back();
            let header = &self.layout.header;
            let found = state.fields;
            let detail = format!("expected {field_count} fields ({header}), found {found}");
            return self.bad_line(BadLineReason::FieldCount, || detail);
        }
        if let Some((pos, at)) = state.bad_number {
            self.take_back();
            let name = self
                .layout
                .names
                .get(pos)
                .cloned()
                .unwrap_or_else(|| pos.to_string());
            let rest = &region[at..end];
            let text = snippet(&rest[..memchr(b' ', rest).unwrap_or(rest.len())]);
            return self.bad_line(BadLineReason::BadNumber, || {
                format!("{name}: `{text}` is not a number")
            });
        }
        if state.filter
            && !self
                .options
                .time_range
                .contains_record(state.start_time, state.end_time)
        {
            self.take_back();
            return Ok(());
        }
        // Read, but not wanted: counted as read, so that what a scan reports of its
        // objects does not depend on the query's WHERE clause.
        if state.excluded {
            if !state.nothing_built {
                self.take_back();
            }
            self.decoded += 1;
            return Ok(());
        }
        for &col in &self.layout.missing {
            self.columns[col].append_null();
        }
        self.rows += 1;
        self.decoded += 1;
        Ok(())
    }

    /// The fields of an ASCII line whose fields are each one space apart (no run of spaces,
    /// none at the end), as many as the format has: found in one sweep of the line's space
    /// bits, and only the projected and time fields are looked at, so a field that is not
    /// wanted costs one bit. `None` for any other line, or one whose value does not parse,
    /// after which the caller takes back what was appended and `split_fields` reads the
    /// line again and says what is wrong with it.
    #[inline(always)]
    fn simple_line(&mut self, region: &[u8], from: usize, end: usize) -> Option<LineState> {
        let spaces_at = &mut self.spaces_at;
        let mut seen = 0;
        let mut after_space = false;
        let mut block = from;
        while block < end {
            let len = (end - block).min(64);
            let (mut spaces, high) = space_and_high_masks(region, block, len);
            // Not ASCII (the caller checks it is UTF-8), or not one space between fields.
            if high != 0 || spaces & (spaces >> 1) != 0 || (after_space && spaces & 1 != 0) {
                return None;
            }
            after_space = (spaces >> (len - 1)) & 1 != 0;
            while spaces != 0 {
                *spaces_at.get_mut(seen)? = block + spaces.trailing_zeros() as usize;
                seen += 1;
                spaces &= spaces - 1;
            }
            block += len;
        }
        if after_space || seen + 1 != self.layout.field_count {
            return None;
        }
        let bounds = |spaces_at: &[usize; SIMPLE_MAX_FIELDS], pos: usize| {
            let from = if pos == 0 {
                from
            } else {
                spaces_at[pos - 1] + 1
            };
            (from, if pos == seen { end } else { spaces_at[pos] })
        };
        let mut excluded = self.layout.unmet;
        for &(pos, i) in &self.layout.tests {
            let (from, to) = bounds(&self.spaces_at, pos);
            if !self.condition_holds(i, region, from, to) {
                excluded = true;
                break;
            }
        }
        for i in 0..self.layout.projected.len() {
            let (pos, col) = self.layout.projected[i];
            let (from, to) = bounds(&self.spaces_at, pos);
            // A row left out is not built, but its values are still checked: a line
            // that is bad for what the query reads is counted as bad whatever its WHERE.
            let ok = match excluded {
                false => self.append_value(col, region, from, to),
                true => self.value_ok(col, region, from, to),
            };
            if !ok {
                return None;
            }
        }
        let mut state = LineState {
            fields: seen + 1,
            filter: !self.options.time_range.is_all(),
            excluded,
            nothing_built: excluded,
            ..LineState::default()
        };
        if state.filter {
            let time = |pos: Option<usize>| match pos {
                Some(pos) => {
                    let (from, to) = bounds(&self.spaces_at, pos);
                    parse_number(&region[from..to]).map(|v| v.map(normalise_unix_time))
                }
                None => Ok(None),
            };
            state.start_time = time(self.layout.start_pos).ok()?;
            state.end_time = time(self.layout.end_pos).ok()?;
        }
        Some(state)
    }

    /// The fields of any line, a bit of its space mask at a time: runs of spaces are one
    /// separator, and the first value that does not parse is remembered for the message.
    #[inline(always)]
    fn split_fields(&mut self, region: &[u8], from: usize, end: usize) -> LineState {
        let mut state = LineState {
            filter: !self.options.time_range.is_all(),
            excluded: self.layout.unmet,
            ..LineState::default()
        };
        let mut field_start = from;
        let mut block = field_start;
        while block < end {
            let block_end = (block + 64).min(end);
            let mut spaces = space_mask(region, block, block_end - block);
            while spaces != 0 {
                let at = block + spaces.trailing_zeros() as usize;
                spaces &= spaces - 1;
                // A run of spaces is one separator.
                if at > field_start {
                    self.field(region, field_start, at, &mut state);
                }
                field_start = at + 1;
            }
            block = block_end;
        }
        if end > field_start {
            self.field(region, field_start, end, &mut state);
        }
        state
    }

    /// Parses the field `region[from..to]`, the next of the line, into its column.
    #[inline(always)]
    fn field(&mut self, region: &[u8], from: usize, to: usize, state: &mut LineState) {
        let pos = state.fields;
        state.fields += 1;
        let slot = if pos < self.layout.field_count && state.bad_number.is_none() {
            self.layout.slots[pos]
        } else {
            None
        };
        if let Some(col) = slot
            && !self.append_value(col, region, from, to)
        {
            state.bad_number = Some((pos, from));
        }
        if !self.layout.tests.is_empty()
            && let Some(Some(i)) = self.layout.tested.get(pos)
            && !self.condition_holds(*i, region, from, to)
        {
            state.excluded = true;
        }
        if state.filter && (Some(pos) == self.layout.start_pos || Some(pos) == self.layout.end_pos)
        {
            match parse_number(&region[from..to]) {
                Ok(v) => {
                    let v = v.map(normalise_unix_time);
                    if Some(pos) == self.layout.start_pos {
                        state.start_time = v;
                    } else {
                        state.end_time = v;
                    }
                }
                Err(()) => state.bad_number = state.bad_number.or(Some((pos, from))),
            }
        }
    }

    /// Parses `region[from..to]` into output column `col`; false when it is not a number
    /// where one belongs (nothing is appended then).
    #[inline(always)]
    fn append_value(&mut self, col: usize, region: &[u8], from: usize, to: usize) -> bool {
        let kind = self.kinds[col];
        match &mut self.columns[col] {
            ColumnBuilder::Utf8(b) => {
                if &region[from..to] == b"-" {
                    b.append_null();
                } else {
                    b.append_field(region, from, to);
                }
                true
            }
            column => match (column, number_value(kind, region, from, to)) {
                (ColumnBuilder::Int32(b), Ok(Some(v))) => {
                    b.append(v as i32);
                    true
                }
                (ColumnBuilder::Int64(b), Ok(Some(v))) => {
                    b.append(v);
                    true
                }
                (column, Ok(None)) => {
                    column.append_null();
                    true
                }
                _ => false,
            },
        }
    }

    /// Whether [`Decoder::append_value`] would take `region[from..to]` into column `col`.
    #[inline(always)]
    fn value_ok(&self, col: usize, region: &[u8], from: usize, to: usize) -> bool {
        match self.kinds[col] {
            FieldKind::Utf8 => true,
            kind => number_value(kind, region, from, to).is_ok(),
        }
    }

    /// Whether the field `region[from..to]` meets condition `i`. A number that does not
    /// parse meets it: the row is not left out, and whoever reads the field says it is bad.
    #[inline(always)]
    fn condition_holds(&self, i: usize, region: &[u8], from: usize, to: usize) -> bool {
        let condition = &self.options.conditions[i];
        match FIELDS[condition.field].kind {
            FieldKind::Utf8 => condition.text_holds(&region[from..to]),
            kind => match number_value(kind, region, from, to) {
                Ok(value) => condition.number_holds(value),
                Err(()) => true,
            },
        }
    }

    /// Removes whatever the current line appended.
    fn take_back(&mut self) {
        let rows = self.rows;
        for column in &mut self.columns {
            column.truncate(rows);
        }
    }

    fn header_line(&mut self, line: &[u8]) -> Result<()> {
        // The caller checked UTF-8.
        let text = String::from_utf8_lossy(line);
        match FlowFormat::parse(&text) {
            Ok(format) => {
                for name in format.unknown_fields() {
                    self.warnings.push(UnknownField {
                        field: name.clone(),
                        location: self.location.clone(),
                        line: self.line,
                    });
                }
                self.layout = Layout::new(&format, &self.out_fields, &self.options.conditions);
                Ok(())
            }
            Err(FormatProblem::TransitGateway(field)) => Err(Error::TransitGateway {
                location: self.location.clone(),
                line: self.line,
                field,
            }),
            Err(problem) => Err(Error::Format {
                location: format!("{}:{}", self.location, self.line),
                reason: problem.to_string(),
            }),
        }
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The value of a number field `region[from..to]` as its column holds it (times in
/// seconds): `Ok(None)` for `-`, `Err` when it is no number or does not fit the column.
#[inline(always)]
fn number_value(
    kind: FieldKind,
    region: &[u8],
    from: usize,
    to: usize,
) -> std::result::Result<Option<i64>, ()> {
    let parsed = match parse_digits(region, from, to) {
        Some(v) => Ok(Some(v as i64)),
        None => parse_number(&region[from..to]),
    };
    match (kind, parsed) {
        (FieldKind::Int32, Ok(Some(v))) if v > i64::from(i32::MAX) => Err(()),
        (FieldKind::UnixTime, Ok(Some(v))) => Ok(Some(normalise_unix_time(v))),
        (_, parsed) => parsed,
    }
}

/// The header `line` (without its newline) holds, as the decoder reads it, or `None` when
/// it is no header: what finds the header that governs a part of a file.
pub(crate) fn header_text(line: &[u8], first_line: bool, max_line_len: usize) -> Option<&str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = match first_line {
        true => line.strip_prefix(UTF8_BOM).unwrap_or(line),
        false => line,
    };
    let first = line.iter().position(|&b| b != b' ')?;
    let starts_like_one = line[first].is_ascii_lowercase() || line[first] == b'$';
    if line.len() > max_line_len || !starts_like_one || !is_header_line(line) {
        return None;
    }
    std::str::from_utf8(line).ok()
}

/// A short, printable excerpt of bad input for messages: control characters (a terminal's
/// escape sequences among them) are written as escapes, never passed to the terminal.
fn snippet(bytes: &[u8]) -> String {
    const MAX: usize = 80;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if bytes.len() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ValueTest;
    use crate::format::column_index;
    use arrow::array::Array;
    use arrow::compute::concat_batches;
    use arrow::util::display::{ArrayFormatter, FormatOptions};

    /// What a decode of one input produced: rows as text, bad lines, unknown fields.
    #[derive(Debug, PartialEq)]
    struct Decoded {
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
        bad: BadLines,
        unknown: Vec<UnknownField>,
    }

    /// Decodes `input` fed in chunks of `chunk` bytes.
    fn decode_with(input: &[u8], options: &DecoderOptions, chunk: usize) -> Result<Decoded> {
        decode_through(Decoder::new(options.clone()), input, chunk)
    }

    fn decode_through(mut decoder: Decoder, input: &[u8], chunk: usize) -> Result<Decoded> {
        decoder.start_input("test.log");
        let mut batches = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            let mut rest = piece;
            while !rest.is_empty() {
                let used = decoder.decode(rest)?;
                rest = &rest[used..];
                if decoder.is_full() {
                    batches.extend(decoder.flush()?);
                }
            }
        }
        decoder.finish()?;
        batches.extend(decoder.flush()?);
        let schema = decoder.schema();
        let batch = concat_batches(&schema, &batches).unwrap();
        let fmt = FormatOptions::default().with_null("NULL");
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &fmt).unwrap())
            .collect();
        let rows = (0..batch.num_rows())
            .map(|r| formatters.iter().map(|f| f.value(r).to_string()).collect())
            .collect();
        Ok(Decoded {
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            rows,
            bad: decoder.take_bad_lines(),
            unknown: decoder.take_unknown_fields(),
        })
    }

    /// Decodes in chunks of 1, 3, 7 and all bytes, checks all four agree, returns one.
    fn decode_all_ways(input: &[u8], options: &DecoderOptions) -> Result<Decoded> {
        let whole = decode_with(input, options, input.len())?;
        for chunk in [1, 3, 7] {
            let other = decode_with(input, options, chunk)?;
            assert_eq!(
                other, whole,
                "chunks of {chunk} bytes disagree with one chunk"
            );
        }
        Ok(whole)
    }

    fn projected(columns: &[&str]) -> DecoderOptions {
        DecoderOptions {
            projection: Some(columns.iter().map(|c| column_index(c).unwrap()).collect()),
            ..DecoderOptions::default()
        }
    }

    fn rows(decoded: &Decoded) -> Vec<String> {
        decoded.rows.iter().map(|r| r.join(" ")).collect()
    }

    const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport \
                          protocol packets bytes start end action log-status\n";
    const ACCEPT: &str = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 \
                          20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK\n";
    const REJECT: &str = "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 \
                          49761 3389 6 20 4249 1418530010 1418530070 REJECT OK\n";

    #[test]
    fn default_format_with_header() {
        let input = format!("{HEADER}{ACCEPT}{REJECT}");
        let d = decode_all_ways(input.as_bytes(), &DecoderOptions::default()).unwrap();
        assert_eq!(d.columns.len(), FIELDS.len());
        assert_eq!(d.rows.len(), 2);
        assert_eq!(
            d.rows[0][..14].join(" "),
            ACCEPT.trim_end(),
            "all fourteen fields round-trip"
        );
        // Fields the format lacks are NULL.
        assert!(d.rows[0][14..].iter().all(|v| v == "NULL"));
        assert_eq!(d.bad.total(), 0);
    }

    #[test]
    fn no_header_takes_default_v2() {
        let input = format!("{ACCEPT}{REJECT}");
        let d = decode_all_ways(input.as_bytes(), &projected(&["dstport", "action"])).unwrap();
        assert_eq!(rows(&d), ["22 ACCEPT", "3389 REJECT"]);
    }

    #[test]
    fn format_override_plain_and_braced() {
        let input = b"eni-1 10.0.0.1 443 1500\neni-2 2a02:cf40:: 53 -\n";
        for text in [
            "interface-id srcaddr dstport bytes",
            "${interface-id} ${srcaddr} ${dstport} ${bytes}",
        ] {
            let options = DecoderOptions {
                default_format: FlowFormat::parse(text).unwrap(),
                ..projected(&["interface_id", "srcaddr", "dstport", "bytes", "version"])
            };
            let d = decode_all_ways(input, &options).unwrap();
            assert_eq!(
                rows(&d),
                [
                    "eni-1 10.0.0.1 443 1500 NULL",
                    "eni-2 2a02:cf40:: 53 NULL NULL"
                ]
            );
        }
    }

    #[test]
    fn header_again_mid_file_blank_lines_crlf_and_runs_of_spaces() {
        let input = format!(
            "{HEADER}\r\n{}\n\n   \ninterface-id action srcaddr\r\neni-9  REJECT   10.1.1.1\r\n\
             eni-8 ACCEPT 10.1.1.2",
            ACCEPT.trim_end().replace(' ', "  ") + "\r"
        );
        let d = decode_all_ways(
            input.as_bytes(),
            &projected(&["interface_id", "action", "srcaddr", "dstport"]),
        )
        .unwrap();
        assert_eq!(
            rows(&d),
            [
                "eni-1235b8ca123456789 ACCEPT 172.31.16.139 22",
                "eni-9 REJECT 10.1.1.1 NULL",
                "eni-8 ACCEPT 10.1.1.2 NULL",
            ]
        );
        assert_eq!(d.bad.total(), 0);
    }

    #[test]
    fn nodata_and_skipdata_records() {
        let input = "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA\n\
                     2 123456789010 eni-11111111111111111 - - - - - - - 1431280876 1431280934 - SKIPDATA\n";
        let d = decode_all_ways(
            input.as_bytes(),
            &projected(&[
                "srcaddr",
                "dstport",
                "bytes",
                "start",
                "action",
                "log_status",
            ]),
        )
        .unwrap();
        assert_eq!(
            rows(&d),
            [
                "NULL NULL NULL 1431280876 NULL NODATA",
                "NULL NULL NULL 1431280876 NULL SKIPDATA"
            ]
        );
    }

    #[test]
    fn millisecond_times_are_seconds() {
        let input = "2 1 eni-1 - - - - - - - 1431280876000 1431280934123 - NODATA\n";
        let d = decode_all_ways(input.as_bytes(), &projected(&["start", "end"])).unwrap();
        assert_eq!(rows(&d), ["1431280876 1431280934"]);
    }

    #[test]
    fn unknown_header_field_is_skipped_and_reported_once() {
        let input = "instance-tag-Name srcaddr next-hop-type\nweb 10.0.0.1 igw\ndb 10.0.0.2 -\n\
                     instance-tag-Name srcaddr next-hop-type\napp 10.0.0.3 nat\n";
        let d = decode_all_ways(input.as_bytes(), &projected(&["srcaddr"])).unwrap();
        assert_eq!(rows(&d), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        // The decoder reports each header's unknowns; the scan dedupes them per run.
        let names: Vec<_> = d
            .unknown
            .iter()
            .map(|u| (u.field.as_str(), u.line))
            .collect();
        assert_eq!(
            names,
            [
                ("instance-tag-Name", 1),
                ("next-hop-type", 1),
                ("instance-tag-Name", 4),
                ("next-hop-type", 4)
            ]
        );
    }

    #[test]
    fn transit_gateway_header_is_a_clear_error() {
        let input = "version resource-type account-id tgw-id tgw-attachment-id\n\
                     6 TransitGateway 123456789012 tgw-1 tgw-attach-1\n";
        for chunk in [1, 3, 7, input.len()] {
            let err = decode_with(input.as_bytes(), &DecoderOptions::default(), chunk)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("test.log:1: this is a transit gateway flow log"),
                "{err}"
            );
        }
    }

    #[test]
    fn last_line_without_newline() {
        let input = format!("{HEADER}{}", REJECT.trim_end());
        let d = decode_all_ways(input.as_bytes(), &projected(&["action"])).unwrap();
        assert_eq!(rows(&d), ["REJECT"]);
    }

    #[test]
    fn bad_lines_are_counted_with_line_numbers_and_the_run_goes_on() {
        let mut input = String::from(HEADER); // line 1
        input.push_str(ACCEPT); // 2
        input.push_str("2 123456789010 eni-1 too few fields\n"); // 3
        input.push_str(&ACCEPT.replace("20641", "2o641")); // 4: bad number
        input.push_str(&ACCEPT.replace("4249", "99999999999999999999")); // 5: overflow
        input.push_str(&ACCEPT.replace(" 22 ", " 4294967296 ")); // 6: over Int32
        input.push_str(&format!("2 {} x\n", "9".repeat(20_000))); // 7: too long
        let mut bytes = input.into_bytes();
        bytes.extend_from_slice(b"2 123456789010 eni-\xff\xfe 1 2 3 4 5 6 7 8 9 ACCEPT OK\n"); // 8
        bytes.extend_from_slice(REJECT.as_bytes()); // 9
        let d = decode_all_ways(&bytes, &DecoderOptions::default()).unwrap();
        assert_eq!(d.rows.len(), 2, "the good rows survive");
        assert_eq!(d.bad.count(BadLineReason::FieldCount), 1);
        assert_eq!(d.bad.count(BadLineReason::BadNumber), 3);
        assert_eq!(d.bad.count(BadLineReason::TooLong), 1);
        assert_eq!(d.bad.count(BadLineReason::InvalidUtf8), 1);
        let where_: Vec<(u64, BadLineReason)> =
            d.bad.samples().iter().map(|s| (s.line, s.reason)).collect();
        assert_eq!(
            where_,
            [
                (3, BadLineReason::FieldCount),
                (4, BadLineReason::BadNumber),
                (5, BadLineReason::BadNumber),
                (6, BadLineReason::BadNumber),
                (7, BadLineReason::TooLong),
            ]
        );
        assert_eq!(
            d.bad.samples()[1].to_string(),
            "test.log:4: bad number: srcport: `2o641` is not a number"
        );
        assert!(d.bad.samples()[0].detail.starts_with("expected 14 fields"));
    }

    #[test]
    fn strict_stops_at_the_first_bad_line() {
        let input = format!("{ACCEPT}{ACCEPT}2 1 eni-1 x\n{ACCEPT}");
        let options = DecoderOptions {
            strict: true,
            ..DecoderOptions::default()
        };
        for chunk in [1, 3, 7, input.len()] {
            let err = decode_with(input.as_bytes(), &options, chunk).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::BadLine {
                        line: 3,
                        reason: BadLineReason::FieldCount,
                        ..
                    }
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn projection_skips_columns_and_empty_projection_counts_rows() {
        let input = format!("{HEADER}{ACCEPT}{REJECT}");
        let d = decode_all_ways(input.as_bytes(), &projected(&["bytes"])).unwrap();
        assert_eq!(d.columns, ["bytes"]);
        assert_eq!(rows(&d), ["4249", "4249"]);
        let none = decode_all_ways(input.as_bytes(), &projected(&[])).unwrap();
        assert_eq!(none.rows.len(), 2);
    }

    /// A few wanted fields take `simple_line`, many the general path. Both must read every
    /// line alike, whatever its spacing, bad values and the time filter.
    #[test]
    fn a_few_columns_read_as_the_general_path_reads_them() {
        let mut input = String::from(HEADER); // 1
        input.push_str(ACCEPT); // 2
        input.push_str(&ACCEPT.replace(" 22 ", "  22   ")); // 3: runs of spaces
        input.push_str(&ACCEPT.replace(" OK\n", " OK \n")); // 4: a space at the end
        input.push_str(&format!("   {REJECT}")); // 5: spaces first
        input.push_str(&ACCEPT.replace("4249", "42x9")); // 6: a bad byte count
        input.push_str(&ACCEPT.replace("20641", "2o641")); // 7: a bad source port
        input.push_str(&ACCEPT.replace(" 6 ", " - ")); // 8: no protocol
        input.push_str(&ACCEPT.replace("eni-1235b8ca123456789", "-")); // 9
        input.push_str(&REJECT.replace(" OK", " OK extra")); // 10: a field too many
        input.push_str(&REJECT.replace(" 1418530010 ", " 14185300x0 ")); // 11: a bad start
        input.push_str(&REJECT.replace("1418530070", "1418530070123")); // 12: milliseconds
        input.push_str(&format!("{}\n", "2 ".repeat(70).trim_end())); // 13: 70 fields
        input.push_str(&ACCEPT.replace("\n", "\r\n")); // 14
        let ranges = [
            TimeRange::ALL,
            TimeRange {
                since: Some(1_418_530_000),
                until: Some(1_418_530_100),
            },
            TimeRange {
                since: Some(1_418_530_100),
                until: None,
            },
        ];
        let projections: &[&[&str]] = &[
            &[],
            &["bytes"],
            &["interface_id", "action", "bytes"],
            &["action", "srcport"],
            &["log_status", "version"],
            &["protocol", "start", "interface_id"],
        ];
        let mut bad_seen = 0;
        for time_range in ranges {
            for columns in projections {
                let options = DecoderOptions {
                    time_range,
                    ..projected(columns)
                };
                let fast = decode_all_ways(input.as_bytes(), &options).unwrap();
                for chunk in [1, 3, 7, input.len()] {
                    let mut general = Decoder::new(options.clone());
                    assert!(general.layout.sparse, "{columns:?} take simple_line");
                    general.general_only = true;
                    let general = decode_through(general, input.as_bytes(), chunk).unwrap();
                    assert_eq!(
                        fast, general,
                        "{columns:?} {time_range:?} in chunks of {chunk}"
                    );
                }
                bad_seen = bad_seen.max(fast.bad.total());
                if time_range.is_all() && columns.contains(&"srcport") {
                    // Lines 2 to 6, 8, 9, 11, 12 and 14: 6 and 11 have bad values in
                    // columns that are not read.
                    assert_eq!(fast.rows.len(), 10, "{columns:?}");
                }
            }
        }
        // At most four: 10 and 13, 11 when filtering by time, 6 or 7 when their column is
        // read.
        assert_eq!(bad_seen, 4);
    }

    /// Random lines (good, spaced oddly, cut short, with bad values, headers that change
    /// the format) read with random few-column projections: the one-sweep path and the
    /// general path agree on rows and bad lines, in any chunking.
    #[test]
    fn random_lines_read_alike_on_both_paths() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let values = [
            "2",
            "123456789010",
            "eni-1235b8ca123456789",
            "10.0.0.1",
            "203.0.113.9",
            "443",
            "49152",
            "6",
            "20",
            "4249",
            "1418530010",
            "1418530070",
            "ACCEPT",
            "OK",
        ];
        let odd = [
            "-",
            "x1",
            "99999999999999999999",
            "",
            "1418530070123",
            "4294967296",
            "é",
        ];
        let headers = [
            HEADER.trim_end(),
            "version interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status account-id",
            "interface-id start end bytes action",
        ];
        let (mut rows, mut bad) = (0, 0);
        let (mut kept, mut left_out) = (0, 0);
        for case in 0..12 {
            let mut input = String::new();
            let mut fields = 14;
            for _ in 0..200 {
                match next(40) {
                    0 => {
                        let header = headers[next(3) as usize];
                        fields = header.split(' ').count();
                        input.push_str(header);
                    }
                    1 => input.push_str("   "),
                    _ => {
                        let mut line: Vec<String> = (0..fields)
                            .map(|i| values[(i + next(3) as usize) % values.len()].to_string())
                            .collect();
                        if next(4) == 0 {
                            let at = next(fields as u64) as usize;
                            line[at] = odd[next(odd.len() as u64) as usize].to_string();
                        }
                        if next(10) == 0 {
                            line.pop();
                        }
                        let gap = if next(8) == 0 { "  " } else { " " };
                        input.push_str(&line.join(gap));
                        if next(10) == 0 {
                            input.push(' ');
                        }
                    }
                }
                input.push_str(if next(6) == 0 { "\r\n" } else { "\n" });
            }
            // A few bytes that are not UTF-8, wherever they fall.
            let mut input = input.into_bytes();
            for _ in 0..3 {
                let at = next(input.len() as u64) as usize;
                if input[at] != b'\n' {
                    input[at] = 0xff;
                }
            }
            let names = [
                "interface_id",
                "action",
                "bytes",
                "srcport",
                "start",
                "version",
            ];
            let columns: Vec<&str> = (0..1 + next(4))
                .map(|_| names[next(names.len() as u64) as usize])
                .fold(Vec::new(), |mut v, c| {
                    if !v.contains(&c) {
                        v.push(c);
                    }
                    v
                });
            let time_range = match case % 3 {
                0 => TimeRange::ALL,
                1 => TimeRange {
                    since: Some(1_418_530_050),
                    until: None,
                },
                _ => TimeRange {
                    since: None,
                    until: Some(1_418_530_060),
                },
            };
            let options = DecoderOptions {
                time_range,
                ..projected(&columns)
            };
            let fast = decode_all_ways(&input[..], &options).unwrap();
            for chunk in [1, 7, input.len()] {
                let mut general = Decoder::new(options.clone());
                general.general_only = true;
                let general = decode_through(general, &input[..], chunk).unwrap();
                assert_eq!(fast, general, "case {case}, {columns:?}, chunks of {chunk}");
            }
            rows += fast.rows.len();
            bad += fast.bad.total();

            // A condition on one of the columns read leaves out exactly the rows it fails,
            // as SQL would on the decoded values, and the same lines are bad.
            let k = next(columns.len() as u64) as usize;
            let negated = next(2) == 0;
            let test = match columns[k] {
                "interface_id" => ValueTest::Text {
                    values: vec!["eni-1235b8ca123456789".into()],
                    negated,
                },
                "action" => ValueTest::Text {
                    values: vec!["ACCEPT".into(), "2".into()],
                    negated,
                },
                "bytes" => ValueTest::Range {
                    low: 5000,
                    high: 1_418_530_050,
                },
                "start" => ValueTest::Range {
                    low: 1_418_530_010,
                    high: 1_418_530_060,
                },
                "srcport" => ValueTest::Numbers {
                    values: vec![443, 6],
                    negated,
                },
                _ => ValueTest::Numbers {
                    values: vec![2],
                    negated,
                },
            };
            let condition = FieldCondition {
                field: column_index(columns[k]).unwrap(),
                test,
            };
            let holds = |value: &str| match (&condition.test, value) {
                (_, "NULL") => false,
                (ValueTest::Text { values, negated }, v) => {
                    values.iter().any(|x| x == v) != *negated
                }
                (_, v) => condition.number_holds(Some(v.parse().unwrap())),
            };
            let mut expected = decode_with(&input[..], &options, input.len()).unwrap();
            expected.rows.retain(|row| holds(&row[k]));
            let conditioned = DecoderOptions {
                conditions: vec![condition.clone()],
                ..options.clone()
            };
            let left = decode_all_ways(&input[..], &conditioned).unwrap();
            assert_eq!(left, expected, "case {case}, {columns:?}, {condition}");
            let mut general = Decoder::new(conditioned);
            general.general_only = true;
            let general = decode_through(general, &input[..], 7).unwrap();
            assert_eq!(general, expected, "case {case}, {columns:?}, {condition}");
            kept += left.rows.len();
            left_out += fast.rows.len() - left.rows.len();
        }
        // The cases hold both good and bad lines, and rows both kept and left out.
        assert!(rows > 500 && bad > 100, "{rows} rows, {bad} bad");
        assert!(
            kept > 100 && left_out > 100,
            "{kept} kept, {left_out} left out"
        );
    }

    #[test]
    fn rows_left_out_by_a_condition_count_as_read() {
        let input = format!("{HEADER}{ACCEPT}{REJECT}{ACCEPT}");
        let options = DecoderOptions {
            conditions: vec![FieldCondition {
                field: column_index("action").unwrap(),
                test: ValueTest::Text {
                    values: vec!["REJECT".into()],
                    negated: false,
                },
            }],
            ..projected(&["dstport", "action"])
        };
        let mut decoder = Decoder::new(options);
        decoder.start_input("test.log");
        decoder.decode(input.as_bytes()).unwrap();
        assert_eq!(decoder.rows_decoded(), 3);
        let batch = decoder.flush().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 1);
    }

    #[test]
    fn a_condition_on_a_field_the_format_lacks_meets_no_row() {
        // `vpc-id` is NULL under the default format: no row is equal to anything. After a
        // header that has it, rows are tested again; bad lines are bad either way.
        let input = format!(
            "{HEADER}{ACCEPT}2 x eni-1 - - - - - - - 1 2 - NODATA extra\n\
             version vpc-id bytes\n2 vpc-1 10\n2 vpc-2 20\n2 vpc-1 zz\n"
        );
        let options = DecoderOptions {
            conditions: vec![FieldCondition {
                field: column_index("vpc_id").unwrap(),
                test: ValueTest::Text {
                    values: vec!["vpc-1".into()],
                    negated: false,
                },
            }],
            ..projected(&["vpc_id", "bytes"])
        };
        let d = decode_all_ways(input.as_bytes(), &options).unwrap();
        assert_eq!(rows(&d), ["vpc-1 10"]);
        assert_eq!(d.bad.total(), 2);
    }

    #[test]
    fn small_batches_hold_every_row() {
        let input = ACCEPT.repeat(50);
        let options = DecoderOptions {
            batch_size: 7,
            ..projected(&["srcport"])
        };
        let d = decode_all_ways(input.as_bytes(), &options).unwrap();
        assert_eq!(d.rows.len(), 50);
    }

    #[test]
    fn time_range_drops_rows_outside() {
        let input = "2 1 eni-1 - - - - - - - 100 160 - NODATA\n\
                     2 1 eni-1 - - - - - - - 200 260 - NODATA\n\
                     2 1 eni-1 - - - - - - - 300 360 - NODATA\n";
        let options = DecoderOptions {
            time_range: TimeRange {
                since: Some(170),
                until: Some(300),
            },
            ..projected(&["start"])
        };
        let d = decode_all_ways(input.as_bytes(), &options).unwrap();
        assert_eq!(rows(&d), ["200"]);
    }

    #[test]
    fn lines_split_across_inputs_do_not_leak() {
        // An input cut mid-line: the next input starts clean.
        let mut decoder = Decoder::new(projected(&["interface_id"]));
        decoder.start_input("a.log");
        decoder.decode(b"2 1 eni-a").unwrap();
        decoder.start_input("b.log");
        decoder.decode(ACCEPT.as_bytes()).unwrap();
        decoder.finish().unwrap();
        let batch = decoder.flush().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column(0).null_count(), 0);
    }

    #[test]
    fn a_byte_order_mark_before_the_header_is_not_part_of_it() {
        let input = format!("\u{feff}{HEADER}{ACCEPT}");
        let d = decode_all_ways(input.as_bytes(), &projected(&["interface_id", "bytes"])).unwrap();
        assert_eq!(rows(&d), ["eni-1235b8ca123456789 4249"]);
        assert_eq!(d.bad.total(), 0);
        assert!(d.unknown.is_empty(), "{:?}", d.unknown);
    }

    #[test]
    fn control_bytes_of_bad_lines_are_escaped_in_messages() {
        let input = format!("{HEADER}2 1 eni-\u{1b}[2J\u{1b}]0;pwned\u{7} x\n");
        let d = decode_all_ways(input.as_bytes(), &DecoderOptions::default()).unwrap();
        assert_eq!(d.bad.total(), 1);
        let shown = d.bad.samples()[0].to_string();
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        let err = decode_with(
            input.as_bytes(),
            &DecoderOptions {
                strict: true,
                ..DecoderOptions::default()
            },
            input.len(),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.chars().any(|c| c.is_control()), "{err:?}");
    }

    #[test]
    fn a_header_of_transit_gateway_fields_only_is_refused_as_one() {
        let input = "resource-type tgw-id tgw-attachment-id\nTransitGateway tgw-1 tgw-attach-1\n";
        let err = decode_all_ways(input.as_bytes(), &DecoderOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("this is a transit gateway flow log"), "{err}");
    }

    #[test]
    fn a_crlf_line_of_exactly_the_limit_is_not_too_long_in_any_chunking() {
        // From the decode fuzz target: split across chunks, the CR counted toward the limit.
        let options = DecoderOptions {
            max_line_len: 40,
            ..projected(&["interface_id"])
        };
        let line = "2 1 eni-a 10.0.0.1 10.0.0.2 1 2 6 1 1 OK";
        assert_eq!(line.len(), 40);
        let d = decode_all_ways(format!("{line}\r\n").as_bytes(), &options).unwrap();
        assert_eq!(d.bad.total(), 1);
        assert_eq!(d.bad.samples()[0].reason, BadLineReason::FieldCount);
        let long = format!("{line}x\r\n");
        let d = decode_all_ways(long.as_bytes(), &options).unwrap();
        assert_eq!(d.bad.samples()[0].reason, BadLineReason::TooLong);
    }
}
