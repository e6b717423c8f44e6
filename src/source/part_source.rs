//! Where a part of a large file gets its bytes (see text_parts.rs).
//!
//! A local file is mapped into memory and cut at line starts found when it is planned. An
//! S3 object cannot be looked at cheaply when it is planned, so it is cut at nominal
//! offsets, and a part holds the lines that *start* in its range: it is read from the byte
//! before its start (to see whether a line starts there), skips to the first line start,
//! and reads on past its end to the newline of the line that crosses it. Cut a file at line
//! starts and the two rules agree, so the ledger and the reader need not tell them apart.

use std::fs::File;
use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::Bytes;

use super::text_parts::{Pass, check_size, map_range, pass};
use crate::error::{Error, Result};

/// How much of a mapped part the decoder is handed at a time (it keeps no copy of whole
/// lines, only of a line cut by a chunk's end); also how often a part reports progress.
/// Tests hand it over in small chunks, so that parts report progress and carry lines.
const MAPPED_CHUNK: usize = if cfg!(test) { 100 } else { 4 << 20 };

/// How much a nominal part of a local file is read at a time (see [`FileRanges`]): small
/// in tests, so that lines and the cuts' search for line ends cross chunks.
const FILE_CHUNK: usize = if cfg!(test) { 37 } else { 256 << 10 };

/// A part's first request reads this far past its end, for the line that crosses it: a
/// request that ends where it was asked to ends cleanly, and its connection is used again
/// (one dropped mid-body is not). Tests read only a few bytes past, so that the crossing
/// line often needs the request after it.
const PAST_END: u64 = if cfg!(test) { 5 } else { 256 << 10 };

/// An object read as a stream of bytes from `offset` to `until` (exclusive; `None`: its
/// end): an S3 object through ranged GETs.
pub(super) trait RangedObject: Send + Sync {
    fn bytes_from(&self, offset: u64, until: Option<u64>) -> Box<dyn ByteStream>;
}

/// Bytes as they arrive; `None` at the end.
pub(super) trait ByteStream: Send {
    fn next_bytes(&mut self) -> Result<Option<Bytes>>;
}

/// Where [`PartSource::read_lines`] hands lines: a chunk of whole or cut lines and the
/// offset just past it.
type EachChunk<'a> = &'a mut dyn FnMut(&[u8], u64) -> Result<ControlFlow<()>>;

/// The bytes of one file or object that its parts are read from.
pub(super) struct PartSource {
    location: String,
    /// The size it had when it was cut.
    size: u64,
    kind: Kind,
}

enum Kind {
    /// Mapped; parts begin and end at line starts.
    Mapped(File),
    /// Streamed; parts' ranges are nominal.
    Streamed(Arc<dyn RangedObject>),
}

impl PartSource {
    pub fn mapped(location: &str, file: File, size: u64) -> Self {
        PartSource {
            location: location.to_string(),
            size,
            kind: Kind::Mapped(file),
        }
    }

    pub fn streamed(location: &str, object: Arc<dyn RangedObject>, size: u64) -> Self {
        PartSource {
            location: location.to_string(),
            size,
            kind: Kind::Streamed(object),
        }
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// Whether reading it again costs a transfer (a part then waits for the parts before it
    /// rather than counting them itself).
    pub fn is_streamed(&self) -> bool {
        matches!(self.kind, Kind::Streamed(_))
    }

    /// Hands `each` the lines that start in `start..end`, in chunks, with the offset just
    /// past each chunk. `line_start`: `start` is known to be a line's first byte. `stream`:
    /// the bytes from [`first_byte`], when their request was sent ahead.
    pub fn read_lines(
        &self,
        start: u64,
        end: u64,
        line_start: bool,
        stream: Option<Box<dyn ByteStream>>,
        each: EachChunk<'_>,
    ) -> Result<ControlFlow<()>> {
        match &self.kind {
            Kind::Mapped(file) => {
                let start = start.min(end);
                let (map, at) = map_range(file, self.size, start, end)
                    .map_err(|e| Error::io(&self.location, e))?;
                let mut offset = start;
                for chunk in map[at..].chunks(MAPPED_CHUNK) {
                    offset += chunk.len() as u64;
                    if each(chunk, offset)?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Ok(ControlFlow::Continue(()))
            }
            Kind::Streamed(object) => {
                let from = first_byte(start, line_start);
                let mut range = LineRange::new(from, start, end);
                if range.is_done() {
                    return Ok(ControlFlow::Continue(()));
                }
                let until = first_request_end(end, self.size);
                let mut stream = stream.unwrap_or_else(|| object.bytes_from(from, until));
                // No byte has come yet from the request being read.
                let mut fresh = true;
                loop {
                    let Some(bytes) = stream.next_bytes()? else {
                        let next = range.next;
                        if range.is_done() || next >= self.size {
                            break;
                        }
                        // A request that ends without a byte, short of the object's size:
                        // the object is shorter than when it was cut.
                        if fresh {
                            return Err(Error::invalid(
                                &self.location,
                                format!(
                                    "ends at byte {next}, before the {} bytes it had when it \
                                     was listed",
                                    self.size
                                ),
                            ));
                        }
                        // The request ended before the line that crosses the part's end
                        // did: the rest of that line comes with the next.
                        fresh = true;
                        stream = object.bytes_from(next, None);
                        continue;
                    };
                    fresh = false;
                    let (lines, after) = range.cut(&bytes);
                    if !lines.is_empty() && each(lines, after)?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                    // Dropping the stream stops its transfer.
                    if range.is_done() {
                        break;
                    }
                }
                Ok(ControlFlow::Continue(()))
            }
        }
    }

    /// Counts the lines that start in `start..end` and finds the last header among them
    /// (see [`pass`]); from byte 0, the first line is the file's (its byte order mark).
    pub fn count(
        &self,
        start: u64,
        end: u64,
        line_start: bool,
        max_line_len: usize,
    ) -> Result<Pass> {
        let file_start = start == 0;
        match &self.kind {
            Kind::Mapped(file) => {
                let start = start.min(end);
                let (map, at) = map_range(file, self.size, start, end)
                    .map_err(|e| Error::io(&self.location, e))?;
                Ok(pass(&map[at..], file_start, max_line_len))
            }
            Kind::Streamed(_) => {
                let mut counter = StreamedPass::new(file_start, max_line_len);
                let _ = self.read_lines(start, end, line_start, None, &mut |lines, _| {
                    counter.push(lines);
                    Ok(ControlFlow::Continue(()))
                })?;
                Ok(counter.finish())
            }
        }
    }
}

/// Where the first request for a streamed part ending at `end` stops (exclusive; `None`:
/// the object's end, `size`).
pub(super) fn first_request_end(end: u64, size: u64) -> Option<u64> {
    let until = end.saturating_add(PAST_END);
    (until < size).then_some(until)
}

/// Where a streamed part's read begins: the byte before its start tells whether a line
/// starts there, unless that is known.
pub(super) fn first_byte(start: u64, line_start: bool) -> u64 {
    match line_start {
        true => start,
        false => start.saturating_sub(1),
    }
}

/// Cuts a stream that begins at byte `from` down to the lines that start in `start..end`.
#[derive(Debug)]
pub(super) struct LineRange {
    /// The offset of the next byte the stream gives.
    next: u64,
    end: u64,
    state: Cut,
}

#[derive(Debug, PartialEq)]
enum Cut {
    /// Looking for the first line start.
    Skipping,
    /// Handing lines on, up to the newline of the line that crosses `end`.
    Taking,
    Done,
}

impl LineRange {
    /// `from` is `start` when a line starts there (or `start` is 0), else `start - 1`.
    pub fn new(from: u64, start: u64, end: u64) -> Self {
        let state = match () {
            _ if from == start && start >= end => Cut::Done,
            _ if from == start => Cut::Taking,
            _ => Cut::Skipping,
        };
        LineRange {
            next: from,
            end,
            state,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == Cut::Done
    }

    /// The part of `bytes` (the stream's next) that belongs to the range, and the offset
    /// just past it.
    pub fn cut<'b>(&mut self, bytes: &'b [u8]) -> (&'b [u8], u64) {
        let base = self.next;
        self.next += bytes.len() as u64;
        let mut lo = 0;
        if self.state == Cut::Skipping {
            match memchr::memchr(b'\n', bytes) {
                // The first line start is at or past the end: no line starts in the range
                // (a line crossing all of it belongs to a part before).
                Some(i) if base + i as u64 + 1 >= self.end => self.state = Cut::Done,
                Some(i) => {
                    lo = i + 1;
                    self.state = Cut::Taking;
                }
                None => {}
            }
        }
        if self.state != Cut::Taking {
            return (&[], base);
        }
        // The range's last line is the one that holds byte `end - 1` or starts before it:
        // it ends at the first newline at or past `end - 1`.
        let last = usize::try_from((self.end - 1).saturating_sub(base))
            .unwrap_or(usize::MAX)
            .clamp(lo, bytes.len());
        let hi = match memchr::memchr(b'\n', &bytes[last..]) {
            Some(j) => {
                self.state = Cut::Done;
                last + j + 1
            }
            None => bytes.len(),
        };
        (&bytes[lo..hi], base + hi as u64)
    }
}

/// [`pass`] over lines that arrive in chunks cut anywhere: each chunk's whole lines are
/// passed as they are, and only a line cut by a chunk's end is copied (not even that once
/// it is too long to be a header).
struct StreamedPass {
    file_start: bool,
    max_line_len: usize,
    /// The start of a line cut by a chunk's end.
    carry: Vec<u8>,
    /// The carried line is too long to be a header: only its end is looked for.
    long: bool,
    seen: Pass,
}

impl StreamedPass {
    fn new(file_start: bool, max_line_len: usize) -> Self {
        StreamedPass {
            file_start,
            max_line_len,
            carry: Vec::new(),
            long: false,
            seen: Pass::default(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        if !self.carry.is_empty() || self.long {
            let Some(i) = memchr::memchr(b'\n', rest) else {
                self.hold(rest);
                return;
            };
            self.hold(&rest[..=i]);
            self.pass_carry(true);
            rest = &rest[i + 1..];
        }
        match memchr::memrchr(b'\n', rest) {
            Some(i) => {
                self.add(pass(&rest[..=i], self.file_start, self.max_line_len));
                self.hold(&rest[i + 1..]);
            }
            None => self.hold(rest),
        }
    }

    fn hold(&mut self, bytes: &[u8]) {
        if self.long {
            return;
        }
        self.carry.extend_from_slice(bytes);
        // A byte order mark, a CR and the newline on top of the longest header.
        if self.carry.len() > self.max_line_len + 8 {
            self.long = true;
            self.carry = Vec::new();
        }
    }

    /// Passes the carried line; `ended`: its newline has come.
    fn pass_carry(&mut self, ended: bool) {
        let carry = std::mem::take(&mut self.carry);
        match std::mem::take(&mut self.long) {
            true => self.add(Pass {
                lines: u64::from(ended),
                last_header: None,
            }),
            false => self.add(pass(&carry, self.file_start, self.max_line_len)),
        }
    }

    /// What a pass over the lines after those seen gave.
    fn add(&mut self, next: Pass) {
        if let Some((line, text)) = next.last_header {
            self.seen.last_header = Some((self.seen.lines + line, text));
        }
        self.seen.lines += next.lines;
        self.file_start = false;
    }

    fn finish(mut self) -> Pass {
        // A last line without a newline ends no line, but it may be a header.
        if !self.carry.is_empty() || self.long {
            self.pass_carry(false);
        }
        self.seen
    }
}

/// Nominal parts of a local file read as S3 objects are (planning cuts local files at line
/// starts and maps them; tests read through this to check the nominal cut on files).
pub(super) struct FileRanges {
    pub path: std::path::PathBuf,
    pub size: u64,
}

impl RangedObject for FileRanges {
    fn bytes_from(&self, offset: u64, until: Option<u64>) -> Box<dyn ByteStream> {
        Box::new(FileStream {
            path: self.path.clone(),
            size: self.size,
            offset,
            until: until.unwrap_or(self.size),
            file: None,
        })
    }
}

struct FileStream {
    path: std::path::PathBuf,
    size: u64,
    /// The next byte to read, and where to stop.
    offset: u64,
    until: u64,
    file: Option<File>,
}

impl ByteStream for FileStream {
    fn next_bytes(&mut self) -> Result<Option<Bytes>> {
        use std::io::{Read, Seek, SeekFrom};
        let location = self.path.display().to_string();
        let io = |e| Error::io(&location, e);
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let mut file = File::open(&self.path).map_err(io)?;
                check_size(&file, self.size).map_err(io)?;
                file.seek(SeekFrom::Start(self.offset)).map_err(io)?;
                self.file.insert(file)
            }
        };
        let want = usize::try_from(self.until.saturating_sub(self.offset)).unwrap_or(FILE_CHUNK);
        let mut buf = vec![0; want.min(FILE_CHUNK)];
        let n = file.read(&mut buf).map_err(io)?;
        buf.truncate(n);
        self.offset += n as u64;
        Ok((n > 0).then(|| Bytes::from(buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `bytes` that start in `start..end`, by the definition.
    fn lines_starting_in(bytes: &[u8], start: usize, end: usize) -> &[u8] {
        let line_start = |at: usize| {
            (at..bytes.len())
                .find(|&i| i == 0 || bytes[i - 1] == b'\n')
                .unwrap_or(bytes.len())
        };
        &bytes[line_start(start)..line_start(end)]
    }

    fn cut_in_chunks(
        bytes: &[u8],
        start: usize,
        end: usize,
        line_start: bool,
        chunk: usize,
    ) -> Vec<u8> {
        let from = first_byte(start as u64, line_start) as usize;
        let mut range = LineRange::new(from as u64, start as u64, end as u64);
        let mut out = Vec::new();
        for piece in bytes[from..].chunks(chunk) {
            if range.is_done() {
                break;
            }
            let (lines, after) = range.cut(piece);
            out.extend_from_slice(lines);
            if !lines.is_empty() {
                assert_eq!(&bytes[after as usize - lines.len()..after as usize], lines);
            }
        }
        out
    }

    /// Any nominal range, in chunks of any size, gives the lines that start in it; ranges
    /// that tile the file give every line once.
    #[test]
    fn a_nominal_range_holds_the_lines_that_start_in_it() {
        let mut rng = fastrand::Rng::with_seed(5);
        for case in 0..300 {
            let bytes: Vec<u8> = (0..rng.usize(1..120))
                .map(|_| match rng.u8(..6) {
                    0 => b'\n',
                    _ => b'a' + rng.u8(..3),
                })
                .collect();
            let cuts = {
                let mut cuts: Vec<usize> = (0..rng.usize(0..6))
                    .map(|_| rng.usize(1..bytes.len().max(2)))
                    .collect();
                cuts.push(0);
                cuts.push(bytes.len());
                cuts.sort_unstable();
                cuts.dedup();
                cuts
            };
            for chunk in [1, 3, 7, bytes.len()] {
                let mut all = Vec::new();
                for w in cuts.windows(2) {
                    let got = cut_in_chunks(&bytes, w[0], w[1], false, chunk);
                    assert_eq!(
                        got,
                        lines_starting_in(&bytes, w[0], w[1]),
                        "case {case}, {w:?}, chunk {chunk}"
                    );
                    all.extend(got);
                }
                assert_eq!(all, bytes, "case {case}, chunk {chunk}");
                // From a known line start (a checkpoint), at or past the end included.
                for at in (0..=bytes.len()).filter(|&i| i == 0 || bytes[i - 1] == b'\n') {
                    let end = cuts[1];
                    let want = match at < end {
                        true => lines_starting_in(&bytes, at, end),
                        false => &[][..],
                    };
                    assert_eq!(
                        cut_in_chunks(&bytes, at, end, true, chunk),
                        want,
                        "case {case}, at {at}"
                    );
                }
            }
        }
    }

    /// An object that ends before the size it was cut with: its bytes up to `len`.
    struct Shorter(Vec<u8>, usize);

    impl RangedObject for Shorter {
        fn bytes_from(&self, offset: u64, until: Option<u64>) -> Box<dyn ByteStream> {
            let end = until.map_or(self.1, |u| (u as usize).min(self.1));
            let bytes = self.0[(offset as usize).min(end)..end].to_vec();
            Box::new(
                Some(Bytes::from(bytes))
                    .filter(|b| !b.is_empty())
                    .into_iter(),
            )
        }
    }

    impl ByteStream for std::option::IntoIter<Bytes> {
        fn next_bytes(&mut self) -> Result<Option<Bytes>> {
            Ok(self.next())
        }
    }

    /// A streamed part of an object found shorter than when it was cut fails, naming where
    /// it ends, instead of asking for the missing bytes again and again.
    #[test]
    fn an_object_shorter_than_its_cut_fails() {
        let text = b"aaaa\nbbbb\ncccc\ndddd\neeee\nffff\n".repeat(4);
        let size = text.len() as u64;
        // The first request (to the part's end and a few bytes past) is whole; the bytes
        // after it are gone.
        let short = Shorter(text.clone(), 30);
        let source = PartSource::streamed("obj", Arc::new(short), size);
        let err = source
            .read_lines(10, 31, false, None, &mut |_, _| {
                Ok(ControlFlow::Continue(()))
            })
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("obj: ends at byte 30, before the"), "{err}");
        // Whole, the same part reads the lines that start in it.
        let whole = Shorter(text.clone(), text.len());
        let source = PartSource::streamed("obj", Arc::new(whole), size);
        let mut got = Vec::new();
        let _ = source
            .read_lines(10, 31, false, None, &mut |lines, _| {
                got.extend_from_slice(lines);
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
        assert_eq!(got, lines_starting_in(&text, 10, 31));
    }

    /// Counting lines that arrive in chunks gives what the pass over them whole gives,
    /// headers cut by chunks, too long, or last without a newline included.
    #[test]
    fn a_streamed_pass_agrees_with_the_whole_pass() {
        const HEADER: &str = "version interface-id action bytes";
        let mut rng = fastrand::Rng::with_seed(9);
        for case in 0..200 {
            let mut text = String::new();
            if rng.bool() {
                text.push('\u{feff}');
            }
            for i in 0..rng.usize(0..30) {
                text.push_str(&match rng.u8(..6) {
                    0 => format!("{HEADER}\n"),
                    1 => format!("{HEADER}{}\r\n", " x".repeat(rng.usize(..40))),
                    2 => "\n".to_string(),
                    _ => format!("2 eni-{i} ACCEPT {i}\n"),
                });
            }
            if rng.bool() {
                text.push_str(HEADER);
            }
            let bytes = text.as_bytes();
            let whole = pass(bytes, true, 60);
            for chunk in [1, 3, 7, bytes.len().max(1)] {
                let mut counter = StreamedPass::new(true, 60);
                bytes.chunks(chunk).for_each(|c| counter.push(c));
                assert_eq!(
                    counter.finish(),
                    whole,
                    "case {case}, chunk {chunk}: {text:?}"
                );
            }
        }
    }
}
