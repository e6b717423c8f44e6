//! A large plain-text file read on all cores. Its bytes are cut at line ends into parts,
//! and each part is read by its own partition with its own decoder. A part that starts
//! mid-file needs what reading the file whole would have told its decoder there: how many
//! lines came before (bad lines are named by line) and which header governs its first lines
//! (a header may come again mid-file, and may change the format).
//!
//! Two ways to know them ([`PartStarts`]): a pass over the parts before anything is decoded
//! (side by side on the rayon pool, it counts each part's lines and finds its last header
//! line; a part's start is then the sum of the parts before it), or from the parts
//! themselves as they are read (see part_ledger.rs). The pass looks at a line only when it
//! starts the way a header does, yet it was a fifth of a query's time on one large file.
//!
//! Local files are cut at line starts, and so is standard input when it is a file (a
//! redirect, or the copy detection makes of a pipe; it is cut from where it stands). S3
//! objects are cut at nominal offsets, once their first bytes show plain text, and their
//! parts are streamed (see part_source.rs); only parts that learn their starts as they are
//! read are cut from S3 objects (a pass up front would download the object first). A
//! pipe is read in one piece.

use std::fs::File;

use rayon::prelude::*;
use tokio::runtime::Handle;

use super::S3Access;
use super::object::{ObjectLocation, ObjectRef, TextPart};
use super::object_reader::{ends_lines_with_bare_cr, other_compression, stdin_as_file};
use super::part_ledger::{PartLedger, STREAMED_STALL};
use super::s3_reader::peek;
use super::s3_url::S3Url;
use crate::decode::header_text;
use crate::error::Result;

/// Parts are never smaller than this: below it one core reads a file faster than the
/// setting up of another partition pays for.
pub(crate) const MIN_PART: u64 = 8 << 20;

/// How the parts of a file learn where they start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PartStarts {
    /// By a pass over the file before it is read: for `--strict` (the first bad line is the
    /// error, with its line number) and for plans sent to other processes (a cluster).
    Counted,
    /// From the parts before them as they are read in this process (part_ledger.rs).
    Assumed,
}

/// What planning reads the start of an S3 object from, to tell whether it is plain text.
const PEEK: u64 = 64 << 10;

/// The largest part of an S3 object: a partition reads several in turn, each streamed by a
/// GET of its own (sent ahead while the one before is decoded), and a part's rows held
/// until its start is known stay within its share of the hold limit (see part_ledger.rs).
const S3_PART: u64 = 64 << 20;

/// Splits the large plain-text local files (and standard input when it is a file) and S3
/// objects (through `s3`, called off the runtime) among `objects` into parts, so that
/// `partitions` partitions share the bytes; the other objects pass unchanged. A file that
/// cannot be looked at now is left whole: reading it names the problem.
pub(crate) fn split_large_files(
    objects: Vec<ObjectRef>,
    partitions: usize,
    max_line_len: usize,
    min_part: u64,
    starts: PartStarts,
    s3: Option<&(S3Access, Handle)>,
) -> Vec<ObjectRef> {
    if partitions < 2 {
        return objects;
    }
    // Standard input backed by a file (a redirect, or the copy detection makes of a pipe)
    // is cut like a file; a pipe is read as it comes.
    let stdin = match objects
        .iter()
        .any(|o| o.location == ObjectLocation::Stdin && o.part.is_none())
    {
        true => stdin_as_file().and_then(|(file, offset)| {
            let len = file.metadata().ok()?.len();
            Some((file, offset, len))
        }),
        false => None,
    };
    let input_size = |o: &ObjectRef| match (&o.location, &stdin) {
        (ObjectLocation::Stdin, Some((_, offset, len))) => len.saturating_sub(*offset),
        _ => o.size,
    };
    let total: u64 = objects.iter().map(input_size).sum();
    let part_size = total.div_ceil(partitions as u64).max(min_part).max(1);
    let mut split = Vec::with_capacity(objects.len());
    for object in objects {
        let count = input_size(&object).div_ceil(part_size);
        let parts = match (&object.location, &stdin) {
            _ if object.part.is_some() || count < 2 => None,
            (ObjectLocation::Path(path), _) => File::open(path)
                .and_then(|file| parts_of(&file, object.size, 0, count, max_line_len, starts))
                .map(|parts| parts.map(|p| (p, object.size)))
                .unwrap_or_else(|e| {
                    tracing::debug!("{}: read in one piece: {e}", path.display());
                    None
                }),
            (ObjectLocation::Stdin, Some((file, offset, len))) => {
                parts_of(file, *len, *offset, count, max_line_len, starts)
                    .map(|parts| parts.map(|p| (p, *len)))
                    .unwrap_or_else(|e| {
                        tracing::debug!("<stdin>: read in one piece: {e}");
                        None
                    })
            }
            (ObjectLocation::S3(url), _) if starts == PartStarts::Assumed => s3
                .and_then(|s3| {
                    let count = object.size.div_ceil(part_size.min(S3_PART).max(min_part));
                    s3_parts(s3, url, object.size, count, max_line_len, partitions).unwrap_or_else(
                        |e| {
                            tracing::debug!("read in one piece: {e}");
                            None
                        },
                    )
                })
                .map(|parts| (parts, object.size)),
            _ => None,
        };
        match parts {
            // A part's object has the size of the file it maps (checked when it is read).
            Some((parts, size)) => split.extend(parts.into_iter().map(|part| ObjectRef {
                size,
                part: Some(part),
                ..object.clone()
            })),
            None => split.push(object),
        }
    }
    split
}

/// `count` line-aligned parts of the plain text in `file` (`size` bytes) from byte `base`
/// on (where standard input stood when it is a file), or `None` when it is no plain text
/// with newline line ends, or has too few lines to cut. Parts' offsets are the file's.
fn parts_of(
    file: &File,
    size: u64,
    base: u64,
    count: u64,
    max_line_len: usize,
    starts: PartStarts,
) -> std::io::Result<Option<Vec<TextPart>>> {
    let (map, at) = map_range(file, size, base, size)?;
    let bytes: &[u8] = &map[at..];
    if !plain_text(&bytes[..bytes.len().min(PEEK as usize)]) {
        return Ok(None);
    }
    let mut bounds = vec![0];
    for k in 1..count {
        let at = line_start_from(
            bytes,
            usize::try_from(k * size / count).unwrap_or(bytes.len()),
        );
        if at > *bounds.last().unwrap_or(&0) && at < bytes.len() {
            bounds.push(at);
        }
    }
    bounds.push(bytes.len());
    if bounds.len() < 3 {
        return Ok(None);
    }
    if starts == PartStarts::Assumed {
        let ranges: Vec<(u64, u64)> = bounds
            .windows(2)
            .map(|w| (base + w[0] as u64, base + w[1] as u64))
            .collect();
        let count = ranges.len();
        return Ok(Some(assumed_parts(
            bytes,
            ranges,
            max_line_len,
            CutAt::LineStarts,
            count,
        )));
    }
    // The pass covers every part but the last (no part after it needs its lines or
    // headers), cut again at line starts into a piece per thread, so that all cores share
    // it even when there are only two parts.
    let last_start = bounds[bounds.len() - 2];
    let threads = rayon::current_num_threads().max(1);
    let mut cuts: Vec<usize> = bounds[..bounds.len() - 1].to_vec();
    cuts.extend((1..threads).map(|c| line_start_from(bytes, last_start * c / threads)));
    cuts.retain(|&c| c <= last_start);
    cuts.sort_unstable();
    cuts.dedup();
    let passes: Vec<Pass> = cuts
        .par_windows(2)
        .map(|w| pass(&bytes[w[0]..w[1]], w[0] == 0, max_line_len))
        .collect();
    // What reading the file whole knows at each cut: lines before it, the last header.
    let mut known = vec![(0u64, None::<(u64, String)>)];
    for pass in passes {
        let (lines, header) = known.last().cloned().unwrap_or_default();
        let header = match pass.last_header {
            Some((line, text)) => Some((lines + line, text)),
            None => header,
        };
        known.push((lines + pass.lines, header));
    }
    let count = (bounds.len() - 1) as u32;
    let mut parts = Vec::with_capacity(bounds.len() - 1);
    for (index, w) in bounds.windows(2).enumerate() {
        let (lines_before, header) = cuts
            .iter()
            .position(|&c| c == w[0])
            .and_then(|i| known.get(i).cloned())
            .unwrap_or_default();
        parts.push(TextPart {
            index: index as u32,
            count,
            start: base + w[0] as u64,
            end: base + w[1] as u64,
            lines_before,
            header,
            assumed: false,
            nominal: false,
            etag: None,
            ledger: None,
        });
    }
    Ok(Some(parts))
}

/// Whether the first bytes of a file (`head`) show plain text with newline line ends.
fn plain_text(head: &[u8]) -> bool {
    !head.starts_with(&[0x1f, 0x8b])
        && !head.starts_with(b"PAR1")
        && other_compression(head).is_none()
        // A file whose lines end in a bare CR is read in one piece (rare, and its line
        // ends would have to be found differently).
        && ends_lines_with_bare_cr(head) == Some(false)
}

/// `count` parts of a large S3 object that is plain text, cut at nominal offsets; `None`
/// when it is not (its name says gzip or Parquet, or its first bytes say it is no text).
fn s3_parts(
    s3: &(S3Access, Handle),
    url: &S3Url,
    size: u64,
    count: u64,
    max_line_len: usize,
    readers: usize,
) -> Result<Option<Vec<TextPart>>> {
    if url.key.ends_with(".gz") || url.key.ends_with(".parquet") {
        return Ok(None);
    }
    let (head, etag) = peek(&s3.0.0, &s3.1, url, PEEK)?;
    Ok(plain_text(&head).then(|| {
        let cut = CutAt::Nominal { etag };
        nominal_parts(&head, size, count, max_line_len, cut, readers)
    }))
}

/// `count` parts of `size` bytes cut at nominal offsets (see part_source.rs); `head`: the
/// first bytes.
fn nominal_parts(
    head: &[u8],
    size: u64,
    count: u64,
    max_line_len: usize,
    cut: CutAt,
    readers: usize,
) -> Vec<TextPart> {
    let at = |k: u64| (u128::from(size) * u128::from(k) / u128::from(count)) as u64;
    let ranges = (0..count).map(|k| (at(k), at(k + 1))).collect();
    assumed_parts(head, ranges, max_line_len, cut, readers)
}

/// Where a file's parts were cut.
enum CutAt {
    LineStarts,
    /// Anywhere (see part_source.rs), in the object's version `etag` if it is known.
    Nominal {
        etag: Option<String>,
    },
}

/// Parts at `ranges` that learn their starts as they are read: the first part is counted
/// from the file's start, and each other part assumes the file's first header (if its first
/// line, in `head`, is one) governs it. At most `readers` parts are read at once.
fn assumed_parts(
    head: &[u8],
    ranges: Vec<(u64, u64)>,
    max_line_len: usize,
    cut: CutAt,
    readers: usize,
) -> Vec<TextPart> {
    let first_line = &head[..memchr::memchr(b'\n', head).unwrap_or(head.len())];
    let first_header = header_text(first_line, true, max_line_len).map(|t| (1, t.to_string()));
    let ledger = PartLedger::new(ranges.clone(), max_line_len, readers);
    let (nominal, etag) = match cut {
        CutAt::LineStarts => (false, None),
        // Counting a part before means fetching it again: wait longer for its progress.
        CutAt::Nominal { etag } => {
            ledger.set_stall(STREAMED_STALL);
            (true, etag)
        }
    };
    let count = ranges.len() as u32;
    ranges
        .into_iter()
        .enumerate()
        .map(|(index, (start, end))| TextPart {
            index: index as u32,
            count,
            start,
            end,
            lines_before: 0,
            header: first_header.clone().filter(|_| index > 0),
            assumed: index > 0,
            nominal,
            etag: etag.clone(),
            ledger: Some(ledger.clone()),
        })
        .collect()
}

/// The first line start at or after `at`: the byte after a newline (or the end).
fn line_start_from(bytes: &[u8], at: usize) -> usize {
    if at == 0 {
        return 0;
    }
    let from = (at - 1).min(bytes.len());
    match memchr::memchr(b'\n', &bytes[from..]) {
        Some(i) => from + i + 1,
        None => bytes.len(),
    }
}

/// The bytes `start..end` of the file mapped into memory, when the file still has the
/// `size` it was listed with (parts are cut at line ends of the file as it was). Returns the
/// mapping and where `start` is in it: the mapping begins at an aligned offset.
///
/// Why a mapping: at these speeds copying the bytes through a read buffer is a good share
/// of the time. A file cut shorter while mapped would fault the process (SIGBUS), as in
/// every tool that maps its input; flow log archives are written once, not cut.
///
/// The pages are not populated up front (MAP_POPULATE): on a file in the page cache that
/// was 0.079 s against 0.083 s (medians of 31, within noise) for a 222 MB file, but on a
/// cold file the part would be read whole before its first line is decoded, and a
/// part larger than memory would thrash.
pub(super) fn map_range(
    file: &File,
    size: u64,
    start: u64,
    end: u64,
) -> std::io::Result<(memmap2::Mmap, usize)> {
    check_size(file, size)?;
    if start > end || end > size {
        return Err(std::io::Error::other(format!(
            "bytes {start}-{end} are beyond the file's {size}"
        )));
    }
    let offset = start - start % MAP_ALIGN;
    let len = usize::try_from(end - offset).map_err(std::io::Error::other)?;
    // SAFETY: the mapping is read only, and only while the file keeps the size checked
    // above; see the comment on why a file cut shorter is accepted as a fault.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(file)?
    };
    // Parts are read front to back.
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok((map, (start - offset) as usize))
}

/// Whether `file` still has the `size` it was listed (and cut) with.
pub(super) fn check_size(file: &File, size: u64) -> std::io::Result<()> {
    let now = file.metadata()?.len();
    if now != size {
        return Err(std::io::Error::other(format!(
            "the file changed while it was read ({size} bytes when listed, {now} now)"
        )));
    }
    Ok(())
}

/// Mapping offsets must be multiples of the page size; 64 KiB is one on every platform
/// Rust runs on (4 KiB on x86_64, up to 64 KiB on some ARM kernels).
const MAP_ALIGN: u64 = 64 * 1024;

/// What the pass saw in one part.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Pass {
    /// Newlines in the part: the lines it ends.
    pub lines: u64,
    /// The part's last header line: its number within the part (from 1) and text.
    pub last_header: Option<(u64, String)>,
}

/// Counts the lines of a part and finds its last header line, reading lines as the
/// decoder does. `file_start`: the part is the file's first.
///
/// 64 bytes at a time: a mask of the newlines counts the lines, and only a line whose
/// first byte can start a header (a lowercase letter, `$`, a space) is looked at. A call per line (an iterator over the
/// newlines) made this pass a tenth of the whole query's time.
pub(super) fn pass(part: &[u8], file_start: bool, max_line_len: usize) -> Pass {
    let mut seen = Pass::default();
    if part.is_empty() {
        return seen;
    }
    look_at(part, 0, 1, file_start, &mut seen, max_line_len);
    let mut lines = 0u64;
    let mut base = 0;
    // 64 bytes a round; the byte after a newline is looked at only when there is one (about
    // every 110 bytes), and it is a digit for every data line of the default format.
    while base + 65 <= part.len() {
        let newlines = newline_mask(&part[base..base + 64]);
        let mut rest = newlines;
        while rest != 0 {
            let j = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if can_start_header(part[base + j + 1]) {
                let before = lines + u64::from((newlines & ((1u64 << j) - 1)).count_ones()) + 1;
                look_at(
                    part,
                    base + j + 1,
                    before + 1,
                    false,
                    &mut seen,
                    max_line_len,
                );
            }
        }
        lines += u64::from(newlines.count_ones());
        base += 64;
    }
    for at in base..part.len() {
        if part[at] == b'\n' {
            lines += 1;
            if at + 1 < part.len() && can_start_header(part[at + 1]) {
                look_at(part, at + 1, lines + 1, false, &mut seen, max_line_len);
            }
        }
    }
    seen.lines = lines;
    seen
}

fn can_start_header(b: u8) -> bool {
    b.is_ascii_lowercase() || b == b'$' || b == b' '
}

/// Bit i set when `bytes[i]` is a newline (`bytes` holds 64).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn newline_mask(bytes: &[u8]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    assert!(bytes.len() >= 64);
    let mut mask = 0u64;
    for k in (0..64).step_by(16) {
        // SAFETY: SSE2 is part of the x86_64 baseline; the unaligned load reads 16 of the
        // 64 bytes asserted above.
        let bits = unsafe {
            let v = _mm_loadu_si128(bytes.as_ptr().add(k).cast::<__m128i>());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8)))
        };
        mask |= u64::from(bits as u16) << k;
    }
    mask
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn newline_mask(bytes: &[u8]) -> u64 {
    bytes[..64]
        .iter()
        .enumerate()
        .fold(0, |mask, (i, &b)| mask | (u64::from(b == b'\n') << i))
}

/// Notes the line that starts at `part[start]`, line `number` of the part, if it is a header.
fn look_at(
    part: &[u8],
    start: usize,
    number: u64,
    file_start: bool,
    seen: &mut Pass,
    max_line_len: usize,
) {
    let rest = &part[start..];
    let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
    if let Some(text) = header_text(line, file_start, max_line_len) {
        seen.last_header = Some((number, text.to_string()));
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::Write;
    use std::ops::ControlFlow;
    use std::sync::Arc;

    use super::*;
    use crate::decode::DecoderOptions;
    use crate::source::{ReadContext, ScanStats, scan_objects};

    /// A file with what makes a part's start hard to know: a byte order mark before the
    /// first header, bad lines, blank lines, CRLF, a line too long, headers mid-file that
    /// change the format (one with an unknown field), and a last line without a newline.
    pub(in crate::source) fn awkward_file() -> Vec<u8> {
        let mut text = String::from(
            "\u{feff}version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n",
        );
        for i in 0..400u32 {
            let line = match (i % 97, (151..=300).contains(&i)) {
                (13, _) => "2 1 eni-bad 10.0.0.1\n".to_string(),
                (41, _) => format!("2 1 eni-{i} 10.0.0.1 10.0.0.2 x 2 6 1 1 100 160 ACCEPT OK\r\n"),
                (55, _) => "\n".to_string(),
                (77, _) => format!("{}\n", "9".repeat(300)),
                (_, true) => format!("eni-x{i} {i} REJECT 7\n"),
                _ => format!("2 1 eni-{i} 10.0.0.1 10.0.0.2 1 2 6 1 {i} 100 160 ACCEPT OK\n"),
            };
            text.push_str(&line);
            if i == 150 {
                text.push_str("interface-id bytes action no-such-field\n");
            }
            if i == 300 {
                text.push_str("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n");
            }
        }
        text.push_str("2 1 eni-last 10.0.0.1 10.0.0.2 1 2 6 1 1 100 160 REJECT OK");
        text.into_bytes()
    }

    /// How the parts of a file are read in a test.
    #[derive(Clone, Copy, Debug)]
    enum Order {
        /// One after another, first to last (the parts before are read when a part needs them).
        Forwards,
        /// Last to first (no part before is read yet: a part counts them itself).
        Backwards,
        /// Each on a thread of its own, at once (parts wait for each other).
        Together,
    }

    /// What reading `objects` gave: rows (pretty-printed lines, sorted: parts read in any
    /// order), rows read, objects, bad lines, their samples, and unknown fields.
    type Read = (Vec<String>, u64, u64, u64, Vec<String>, Vec<String>);

    /// `pool`: the bytes of a memory pool the reads share, if any.
    fn read_with(objects: &[ObjectRef], order: Order, pool: Option<usize>) -> Read {
        let options = DecoderOptions {
            batch_size: 64,
            max_line_len: 200,
            ..DecoderOptions::default()
        };
        let stats = Arc::new(ScanStats::default());
        let batches = std::sync::Mutex::new(Vec::new());
        let read_one = |object: &ObjectRef| {
            let context = context_with(pool);
            scan_objects(
                std::slice::from_ref(object),
                &options,
                &context,
                &stats,
                &mut |b| {
                    batches.lock().unwrap().push(b);
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        };
        match order {
            Order::Forwards => objects.iter().for_each(read_one),
            Order::Backwards => objects.iter().rev().for_each(read_one),
            Order::Together => std::thread::scope(|scope| {
                for object in objects {
                    scope.spawn(|| read_one(object));
                }
            }),
        }
        let batches = batches.into_inner().unwrap();
        let mut rows: Vec<String> = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
            .lines()
            .map(str::to_string)
            .collect();
        rows.sort();
        let bad = stats.bad_lines();
        let samples = bad.samples().iter().map(|s| s.to_string()).collect();
        let mut unknown: Vec<String> = stats
            .unknown_fields()
            .iter()
            .map(|u| format!("{}:{} {}", u.location, u.line, u.field))
            .collect();
        unknown.sort();
        (
            rows,
            stats.rows(),
            stats.objects(),
            bad.total(),
            samples,
            unknown,
        )
    }

    /// A local read's context, with a memory pool of `pool` bytes if any.
    fn context_with(pool: Option<usize>) -> ReadContext {
        use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
        ReadContext {
            s3: None,
            lookahead: 1,
            memory: pool.map(|bytes| Arc::new(GreedyMemoryPool::new(bytes)) as Arc<dyn MemoryPool>),
            wanted: None,
        }
    }

    fn read(objects: &[ObjectRef], order: Order) -> Read {
        read_with(objects, order, None)
    }

    fn write_file(bytes: &[u8]) -> (tempfile::TempDir, ObjectRef) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        let object = ObjectRef::path(path, bytes.len() as u64);
        (dir, object)
    }

    /// A file of 2,000 good lines under one header on line 1: no part needs reading again.
    fn steady_file() -> (tempfile::TempDir, ObjectRef) {
        let mut text = String::from("version interface-id action bytes\n");
        for i in 0..2000 {
            text.push_str(&format!("2 eni-{i} ACCEPT {i}\n"));
        }
        write_file(text.as_bytes())
    }

    /// How a test cuts a file.
    #[derive(Clone, Copy, Debug)]
    enum Cut {
        /// At line starts, counted up front.
        Counted,
        /// At line starts, learnt as parts are read.
        Assumed,
        /// At nominal offsets, learnt as parts are read, and streamed: as S3 objects are.
        Nominal,
    }

    /// `objects` cut for `partitions` partitions (parts of any size).
    fn split(objects: Vec<ObjectRef>, partitions: usize, cut: Cut) -> Vec<ObjectRef> {
        let starts = match cut {
            Cut::Counted => PartStarts::Counted,
            Cut::Assumed => PartStarts::Assumed,
            Cut::Nominal => {
                return objects
                    .into_iter()
                    .flat_map(|object| nominal(&object, partitions))
                    .collect();
            }
        };
        split_large_files(objects, partitions, 200, 1, starts, None)
    }

    /// A local plain-text file cut as an S3 object is: at nominal offsets, streamed.
    fn nominal(object: &ObjectRef, partitions: usize) -> Vec<ObjectRef> {
        let ObjectLocation::Path(path) = &object.location else {
            unreachable!("tests cut local files")
        };
        let bytes = std::fs::read(path).unwrap();
        let count = (partitions as u64).min(object.size);
        if count < 2 || !plain_text(&bytes[..bytes.len().min(PEEK as usize)]) {
            return vec![object.clone()];
        }
        nominal_parts(
            &bytes,
            object.size,
            count,
            200,
            CutAt::Nominal { etag: None },
            2,
        )
        .into_iter()
        .map(|part| ObjectRef {
            part: Some(part),
            ..object.clone()
        })
        .collect()
    }

    fn ledger_of(objects: &[ObjectRef]) -> &PartLedger {
        objects[0].part.as_ref().unwrap().ledger.as_ref().unwrap()
    }

    #[test]
    fn parts_read_as_the_whole_file_does() {
        let bytes = awkward_file();
        let (_dir, file) = write_file(&bytes);
        let whole = read(std::slice::from_ref(&file), Order::Forwards);
        assert_eq!(whole.2, 1);
        assert!(whole.3 > 8, "{whole:?}");
        assert!(whole.0.iter().any(|r| r.contains("eni-x299")));
        assert!(whole.0.iter().any(|r| r.contains("eni-last")));
        assert_eq!(whole.5.len(), 1, "{whole:?}");
        let cases = [
            (Cut::Counted, None, None),
            (Cut::Assumed, None, None),
            (Cut::Nominal, None, None),
            // Every part holds almost nothing back: it counts the parts before it at once
            // (or, streamed, waits for them while they progress), past its limit or past
            // what the memory pool gives.
            (Cut::Assumed, Some(0), None),
            (Cut::Assumed, None, Some(100)),
            (Cut::Nominal, Some(0), None),
            (Cut::Nominal, None, Some(100)),
        ];
        for (cut, hold_limit, pool) in cases {
            for partitions in [2, 3, 5, 8, 40] {
                for order in [Order::Forwards, Order::Backwards, Order::Together] {
                    let objects = split(vec![file.clone()], partitions, cut);
                    assert!(objects.len() > 1, "{partitions}: not split");
                    if let Some(limit) = hold_limit {
                        ledger_of(&objects).set_hold_limit(limit);
                    }
                    let starts_at: Vec<u64> = objects
                        .iter()
                        .flat_map(|o| &o.part)
                        .map(|p| p.start)
                        .collect();
                    assert!(
                        matches!(cut, Cut::Nominal)
                            || starts_at
                                .iter()
                                .all(|&s| s == 0 || bytes[s as usize - 1] == b'\n'),
                        "{partitions}: {starts_at:?}"
                    );
                    let case =
                        format!("{cut:?} {hold_limit:?} {pool:?} {partitions} parts {order:?}");
                    assert_eq!(read_with(&objects, order, pool), whole, "{case}");
                }
            }
        }
    }

    /// A part whose rows reach its hold limit, or what the memory pool gives, does not wait
    /// for the parts before it to be read (here one that never progresses): it counts them
    /// and its rows go on before it has been read to its end.
    #[test]
    fn a_part_past_its_hold_limit_or_the_memory_pool_counts_the_parts_before_it() {
        let (_dir, file) = steady_file();
        for (hold_limit, pool) in [(Some(0), None), (None, Some(100))] {
            let objects = split(vec![file.clone()], 2, Cut::Assumed);
            let ledger = ledger_of(&objects);
            if let Some(limit) = hold_limit {
                ledger.set_hold_limit(limit);
            }
            ledger.set_stall(std::time::Duration::from_secs(30));
            let _stalled = ledger.reading(0);
            let options = DecoderOptions {
                batch_size: 64,
                ..DecoderOptions::default()
            };
            let context = context_with(pool);
            let stats = Arc::new(ScanStats::default());
            let (mut early, mut rows) = (0, 0);
            scan_objects(&objects[1..], &options, &context, &stats, &mut |b| {
                early += usize::from(!ledger.is_counted(1));
                rows += b.num_rows();
                ControlFlow::Continue(())
            })
            .unwrap();
            let case = format!("{hold_limit:?} {pool:?}");
            assert!(early > 1, "{case}: {early}");
            assert_eq!(ledger.counted_for_others(), 1, "{case}");
            assert_eq!(rows as u64, stats.rows(), "{case}");
            assert!(rows > 500, "{case}: {rows}");
        }
    }

    /// A part that holds its rows back stops as soon as its consumer has hung up (a LIMIT
    /// reached): it sends nothing for a while, so it asks.
    #[test]
    fn a_part_holding_its_rows_stops_when_nobody_wants_them() {
        let (_dir, file) = steady_file();
        let objects = split(vec![file], 2, Cut::Assumed);
        let ledger = ledger_of(&objects);
        ledger.set_stall(std::time::Duration::from_secs(30));
        let _stalled = ledger.reading(0);
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let context = ReadContext {
            wanted: Some(Arc::new({
                let asked = asked.clone();
                move || asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 2
            })),
            ..context_with(None)
        };
        let options = DecoderOptions {
            batch_size: 64,
            ..DecoderOptions::default()
        };
        let stats = Arc::new(ScanStats::default());
        let mut rows = 0;
        scan_objects(&objects[1..], &options, &context, &stats, &mut |b| {
            rows += b.num_rows();
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(rows, 0);
        assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert_eq!(ledger.counted_for_others(), 0);
    }

    /// Random files of lines that make a part's start matter (headers mid-file, some that
    /// change the format and some that repeat it, bad and long lines, CRLF, blank lines, a
    /// byte order mark), cut into random numbers of parts read in every order with random
    /// hold limits: always what reading the file whole gives.
    #[test]
    fn random_files_read_in_parts_as_a_whole() {
        const HEADERS: [&str; 3] = [
            "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status",
            "interface-id action bytes",
            "bytes interface-id action srcport",
        ];
        let mut rng = fastrand::Rng::with_seed(17);
        for case in 0..40 {
            let mut text = String::new();
            if rng.bool() {
                text.push('\u{feff}');
            }
            let mut format = match rng.u8(..3) {
                0 => None,
                n => Some(usize::from(n) - 1),
            };
            if let Some(f) = format {
                text.push_str(HEADERS[f]);
                text.push('\n');
            }
            for i in 0..rng.usize(50..400) {
                let line = match rng.u8(..40) {
                    0 => {
                        let f = rng.usize(..HEADERS.len());
                        format = Some(f);
                        format!("{}\n", HEADERS[f])
                    }
                    1 => "2 1 eni-bad\n".to_string(),
                    2 => "\n".to_string(),
                    3 => format!("{}\n", "7".repeat(rng.usize(150..300))),
                    4 => format!("x{i} \u{e9}\n"),
                    _ => {
                        let end = if rng.u8(..10) == 0 { "\r\n" } else { "\n" };
                        match format {
                            None | Some(0) => format!(
                                "2 1 eni-{i} 10.0.0.1 10.0.0.2 1 2 6 1 {i} 100 160 ACCEPT OK{end}"
                            ),
                            Some(1) => format!("eni-{i} REJECT {i}{end}"),
                            _ => format!("{i} eni-{i} ACCEPT {}{end}", i % 7),
                        }
                    }
                };
                text.push_str(&line);
            }
            if rng.bool() {
                text.push_str("2 1 eni-last 10.0.0.1 10.0.0.2 1 2 6 1 1 100 160 REJECT OK");
            }
            let (_dir, file) = write_file(text.as_bytes());
            let whole = read(std::slice::from_ref(&file), Order::Forwards);
            let partitions = rng.usize(2..12);
            let orders = [Order::Forwards, Order::Backwards, Order::Together];
            for (cut, order) in [Cut::Assumed, Cut::Nominal]
                .into_iter()
                .flat_map(|cut| orders.map(|order| (cut, order)))
            {
                let objects = split(vec![file.clone()], partitions, cut);
                if objects.len() < 2 {
                    continue;
                }
                if rng.bool() {
                    ledger_of(&objects).set_hold_limit(rng.usize(..4000));
                }
                assert_eq!(
                    read(&objects, order),
                    whole,
                    "case {case}, {cut:?}, {partitions} parts, {order:?}"
                );
            }
        }
    }

    /// A part that starts at a line with a byte order mark mid-file reads it as reading
    /// the file whole does: only the file's first line may carry one.
    #[test]
    fn a_byte_order_mark_at_a_part_start_mid_file_is_no_file_start() {
        let first = "interface-id action bytes\n".to_string() + &"eni-1 ACCEPT 1\n".repeat(40);
        let bom_line = "\u{feff}bytes interface-id action\n";
        // Lines after it until the file's middle falls just before it.
        let text = (0..200)
            .map(|n| first.clone() + bom_line + &"2 eni-2 REJECT\n".repeat(n))
            .find(|text| {
                let middle = text.len() / 2;
                let at = first.len();
                middle < at && text[middle..at].matches('\n').count() == 1
            })
            .unwrap();
        let (_dir, file) = write_file(text.as_bytes());
        let whole = read(std::slice::from_ref(&file), Order::Forwards);
        let objects = split(vec![file], 2, Cut::Assumed);
        assert_eq!(objects[1].part.as_ref().unwrap().start, first.len() as u64);
        assert_eq!(read(&objects, Order::Forwards), whole);
        assert!(whole.3 > 0, "{whole:?}");
    }

    #[test]
    fn parts_that_assume_the_right_header_are_read_once() {
        // A header on line 1 only, and bad lines all through (named by their line).
        let mut text = String::from(
            "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n",
        );
        for i in 0..3000u32 {
            match i % 211 {
                17 => text.push_str("2 1 eni-bad 10.0.0.1\n"),
                _ => text.push_str(&format!(
                    "2 1 eni-{i} 10.0.0.1 10.0.0.2 1 2 6 1 {i} 100 160 ACCEPT OK\n"
                )),
            }
        }
        let (_dir, file) = write_file(text.as_bytes());
        let whole = read(std::slice::from_ref(&file), Order::Forwards);
        assert!(whole.3 > 10 && whole.4.len() == 5, "{whole:?}");
        for order in [Order::Forwards, Order::Backwards, Order::Together] {
            let objects = split(vec![file.clone()], 6, Cut::Assumed);
            assert_eq!(objects.len(), 6);
            assert_eq!(read(&objects, order), whole, "{order:?}");
            let ledger = ledger_of(&objects);
            assert_eq!(ledger.reads_again(), 0, "{order:?}");
            match order {
                // Each part learnt its start from the parts read before it.
                Order::Forwards => assert_eq!(ledger.counted_for_others(), 0),
                // The last part counted all five before it.
                Order::Backwards => assert_eq!(ledger.counted_for_others(), 5),
                Order::Together => {}
            }
        }
        // A header mid-file that changes the format: the parts after it read again.
        let mut changed = text.clone();
        let middle = changed[..changed.len() / 3].rfind('\n').unwrap() + 1;
        changed.insert_str(middle, "interface-id action bytes srcaddr\n");
        let (_dir, file) = write_file(changed.as_bytes());
        let whole = read(std::slice::from_ref(&file), Order::Forwards);
        let objects = split(vec![file.clone()], 6, Cut::Assumed);
        assert_eq!(read(&objects, Order::Forwards), whole);
        assert!(ledger_of(&objects).reads_again() >= 3);
    }

    #[test]
    fn small_gzip_and_one_line_files_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("a.log.gz");
        std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]).unwrap();
        let line = dir.path().join("one.log");
        std::fs::write(&line, "x".repeat(5000)).unwrap();
        let cr = dir.path().join("cr.log");
        std::fs::write(&cr, "a\rb\rc\rd\r".repeat(500)).unwrap();
        for path in [gz, line, cr] {
            let size = std::fs::metadata(&path).unwrap().len();
            let objects = split_large_files(
                vec![ObjectRef::path(path, size)],
                4,
                200,
                1,
                PartStarts::Assumed,
                None,
            );
            assert_eq!(objects.len(), 1);
            assert!(objects[0].part.is_none());
        }
        // Below the smallest part: one piece.
        let small = dir.path().join("small.log");
        std::fs::write(&small, awkward_file()).unwrap();
        let size = std::fs::metadata(&small).unwrap().len();
        let objects = split_large_files(
            vec![ObjectRef::path(small, size)],
            4,
            200,
            MIN_PART,
            PartStarts::Assumed,
            None,
        );
        assert_eq!(objects.len(), 1);
    }

    /// The pass, a line at a time: what the masks must agree with.
    fn naive_pass(part: &[u8], file_start: bool, max_line_len: usize) -> Pass {
        let mut seen = Pass::default();
        let body = part.strip_suffix(b"\n").unwrap_or(part);
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            if let Some(text) = header_text(line, file_start && i == 0, max_line_len) {
                seen.last_header = Some((i as u64 + 1, text.to_string()));
            }
        }
        seen.lines = part.iter().filter(|&&b| b == b'\n').count() as u64;
        seen
    }

    #[test]
    fn the_pass_agrees_with_reading_line_by_line_from_any_line_start() {
        let bytes = awkward_file();
        let starts = std::iter::once(0).chain(
            (0..bytes.len())
                .filter(|&i| bytes[i] == b'\n')
                .map(|i| i + 1),
        );
        for start in starts.filter(|s| s % 7 == 0 || *s < 300) {
            for end in [bytes.len(), (start + 5000).min(bytes.len())] {
                let part = &bytes[start..end];
                assert_eq!(
                    pass(part, start == 0, 200),
                    naive_pass(part, start == 0, 200),
                    "{start}..{end}"
                );
            }
        }
    }
}
