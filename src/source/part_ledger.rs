//! What the parts of one large file, read side by side, tell each other.
//!
//! A part that starts mid-file needs two facts about the lines before it: how many there
//! are (bad lines are named by line) and the last header among them (it governs the part's
//! first lines). Counting them up front is a pass over all but the last part before any
//! decoding starts: a fifth of a query's time on one large file. Instead each part is
//! decoded at once, assuming the file's first header governs it and numbering its lines
//! from its own start, and it holds its rows back. Each part, read to its end, enters its
//! line count and last header here, so the part after it learns its start from the
//! parts before it once they are read; this one then checks its assumption and renumbers,
//! or, when a header mid-file changed the format before it, reads its bytes again.
//!
//! A part never waits for one that makes no progress (not started, or held up by its
//! consumer) nor holds more than its share of [`HOLD_LIMIT`] of rows, or more than the
//! query's memory pool gives: it then counts the lines it lacks itself, as the pass up front
//! did, from where the other part's own reading has got to, and a part counted by one is
//! counted for all. So the worst case is the pass up front, done later.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::part_source::PartSource;
use super::text_parts::Pass;
use crate::error::Result;

/// Rows the parts of one file being read at once hold back in memory while their starts
/// are not known yet; each part may hold its share, and never less than [`PART_HOLD_MIN`]
/// nor more than [`PART_HOLD_MAX`].
const HOLD_LIMIT: usize = 256 << 20;
const PART_HOLD_MIN: usize = 8 << 20;
const PART_HOLD_MAX: usize = 64 << 20;

/// How long a part waits for the parts before it without seeing any of them progress
/// before it counts their lines itself. Each step of progress is a few MB decoded.
const STALL: Duration = Duration::from_millis(50);

/// The same for parts streamed from S3, where counting a part means fetching it again and a
/// request's first bytes may take a while.
pub(crate) const STREAMED_STALL: Duration = Duration::from_secs(2);

/// The shared record of one file's parts; cheap to clone.
#[derive(Clone)]
pub(crate) struct PartLedger(Arc<Ledger>);

struct Ledger {
    /// Each part's byte range in the file, by index.
    ranges: Vec<(u64, u64)>,
    max_line_len: usize,
    /// How long a part waits without seeing progress, in ms ([`STALL`]).
    stall_ms: AtomicU64,
    hold_limit: AtomicUsize,
    /// Parts counted by a part after them, and parts read again: what tests look at.
    counted_for_others: AtomicUsize,
    reads_again: AtomicUsize,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    slots: Vec<Slot>,
    /// A part after this one is counting its lines.
    counting: Vec<bool>,
}

#[derive(Clone, Debug, PartialEq)]
enum Slot {
    /// Not being read (yet, or any more: a read that stopped or failed).
    Idle,
    /// Being read; what its last step of progress left known.
    Reading(Option<Arc<Checkpoint>>),
    /// Read to its end, or counted by a part after it.
    Counted(Arc<Pass>),
}

/// How far a part being read has got: its lines before byte `at` of the file (a line
/// start) are `lines` (ended by a newline), and `last_header` is the last header line among
/// them (numbered from the part's first line). A part after it that has to count the part's
/// lines counts only from `at`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Checkpoint {
    pub at: u64,
    pub lines: u64,
    pub last_header: Option<(u64, String)>,
}

/// What the lines before a part say: how many, and the last header among them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PartStart {
    pub lines_before: u64,
    pub header: Option<(u64, String)>,
}

impl PartStart {
    /// Whether this start decodes the part as `assumed` (the file's first header) did: the
    /// same header text, wherever it stood.
    pub fn agrees_with(&self, assumed: Option<&(u64, String)>) -> bool {
        self.header.as_ref().map(|h| &h.1) == assumed.map(|h| &h.1)
    }
}

impl PartLedger {
    /// A ledger for a file cut into parts at `ranges` (byte offsets in the file), of which
    /// at most `readers` are read at once (a partition reads its parts in turn).
    pub fn new(ranges: Vec<(u64, u64)>, max_line_len: usize, readers: usize) -> Self {
        let state = Mutex::new(State {
            slots: vec![Slot::Idle; ranges.len()],
            counting: vec![false; ranges.len()],
        });
        // The first part holds nothing back.
        let holding = ranges.len().saturating_sub(1).min(readers).max(1);
        let share = HOLD_LIMIT / holding;
        PartLedger(Arc::new(Ledger {
            ranges,
            max_line_len,
            stall_ms: AtomicU64::new(STALL.as_millis() as u64),
            hold_limit: AtomicUsize::new(share.clamp(PART_HOLD_MIN, PART_HOLD_MAX)),
            counted_for_others: AtomicUsize::new(0),
            reads_again: AtomicUsize::new(0),
            state,
            changed: Condvar::new(),
        }))
    }

    /// Rows (bytes of Arrow memory) a part may hold back while its start is not known.
    pub fn hold_limit(&self) -> usize {
        self.0.hold_limit.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub fn set_hold_limit(&self, bytes: usize) {
        self.0.hold_limit.store(bytes, Ordering::Relaxed);
    }

    /// How long a part waits without seeing the parts before it progress.
    pub fn set_stall(&self, stall: Duration) {
        self.0
            .stall_ms
            .store(stall.as_millis() as u64, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub fn is_counted(&self, index: usize) -> bool {
        matches!(self.state().slots[index], Slot::Counted(_))
    }

    #[cfg(test)]
    pub fn counted_for_others(&self) -> usize {
        self.0.counted_for_others.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub fn reads_again(&self) -> usize {
        self.0.reads_again.load(Ordering::Relaxed)
    }

    /// A part found its assumed start wrong and is read again.
    pub fn read_again(&self) {
        self.0.reads_again.fetch_add(1, Ordering::Relaxed);
    }

    /// Part `index` is being read: the guard reports its progress and, at its end, what it
    /// holds. A part already counted stays counted (a plan read twice).
    pub fn reading(&self, index: u32) -> Reading {
        let mut state = self.state();
        if let Some(slot) = state.slots.get_mut(index as usize)
            && !matches!(slot, Slot::Counted(_))
        {
            *slot = Slot::Reading(None);
        }
        Reading {
            ledger: self.clone(),
            index: index as usize,
        }
    }

    /// The start of part `index`: from the parts before it. With `wait`, parts being read
    /// are waited for while they progress; any part still uncounted is then counted here,
    /// from `source` (the file or object the parts were cut from), unless another part is
    /// counting it.
    pub(super) fn start_of(
        &self,
        index: u32,
        source: &PartSource,
        wait: bool,
    ) -> Result<PartStart> {
        let mut state = self.state();
        let index = (index as usize).min(state.slots.len());
        if wait {
            let mut progress = state.slots[..index].to_vec();
            while state.slots[..index]
                .iter()
                .any(|s| matches!(s, Slot::Reading(_)))
            {
                let timeout;
                let stall = Duration::from_millis(self.0.stall_ms.load(Ordering::Relaxed));
                (state, timeout) = self.wait(state, Some(stall));
                if timeout {
                    // Nothing before this part moved in a whole wait: stop waiting.
                    if state.slots[..index] == progress[..] {
                        break;
                    }
                    progress = state.slots[..index].to_vec();
                }
            }
        }
        // Count the parts nobody has counted; wait for those another part is counting
        // (counting only reads bytes: it ends).
        loop {
            let uncounted = |j: &usize| !matches!(state.slots[*j], Slot::Counted(_));
            match (0..index).filter(uncounted).find(|&j| !state.counting[j]) {
                Some(j) => {
                    state.counting[j] = true;
                    drop(state);
                    // Should counting panic, the claim is let go: nobody waits for it forever.
                    let claim = Claim { ledger: self, j };
                    tracing::debug!(
                        "{}: part {} counts the lines of part {} itself",
                        source.location(),
                        index + 1,
                        j + 1
                    );
                    let counted = self.count_lines(j, source).map(|c| self.count(j, c));
                    drop(claim);
                    counted?;
                    self.0.counted_for_others.fetch_add(1, Ordering::Relaxed);
                    state = self.state();
                }
                None if (0..index).any(|j| uncounted(&j)) => state = self.wait(state, None).0,
                None => break,
            }
        }
        let mut start = PartStart {
            lines_before: 0,
            header: None,
        };
        for slot in &state.slots[..index] {
            if let Slot::Counted(counted) = slot {
                if let Some((line, text)) = &counted.last_header {
                    start.header = Some((start.lines_before + line, text.clone()));
                }
                start.lines_before += counted.lines;
            }
        }
        Ok(start)
    }

    /// Counts the lines of part `j` and finds its last header: the pass of text_parts.rs,
    /// over the bytes the part's own reading has not got to yet.
    fn count_lines(&self, j: usize, source: &PartSource) -> Result<Pass> {
        let read = match &self.state().slots[j] {
            Slot::Reading(Some(checkpoint)) => Some(checkpoint.clone()),
            _ => None,
        };
        let (start, end) = self.0.ranges[j];
        let rest = match &read {
            Some(read) => source.count(read.at, end, true, self.0.max_line_len)?,
            None => source.count(start, end, start == 0, self.0.max_line_len)?,
        };
        Ok(match read {
            None => rest,
            Some(read) => Pass {
                lines: read.lines + rest.lines,
                last_header: match rest.last_header {
                    Some((line, text)) => Some((read.lines + line, text)),
                    None => read.last_header.clone(),
                },
            },
        })
    }

    fn count(&self, index: usize, counted: Pass) {
        let mut state = self.state();
        if let Some(slot) = state.slots.get_mut(index) {
            *slot = Slot::Counted(Arc::new(counted));
        }
        self.0.changed.notify_all();
    }

    /// Waits for a change (at most `timeout`); true when the time ran out.
    fn wait<'a>(
        &self,
        state: MutexGuard<'a, State>,
        timeout: Option<Duration>,
    ) -> (MutexGuard<'a, State>, bool) {
        match timeout {
            Some(timeout) => {
                let (state, result) = self
                    .0
                    .changed
                    .wait_timeout(state, timeout)
                    .unwrap_or_else(|e| e.into_inner());
                (state, result.timed_out())
            }
            None => (
                self.0
                    .changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner()),
                false,
            ),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held left whole slots behind: they are still good.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Part `j` being counted by a part after it (see [`PartLedger::start_of`]).
struct Claim<'a> {
    ledger: &'a PartLedger,
    j: usize,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.ledger.state().counting[self.j] = false;
        self.ledger.0.changed.notify_all();
    }
}

impl std::fmt::Debug for PartLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PartLedger({} parts)", self.0.ranges.len())
    }
}

/// Parts compare equal when they share a ledger (one cut of one file).
impl PartialEq for PartLedger {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PartLedger {}

/// A part being read (see [`PartLedger::reading`]). Dropped before [`Reading::counted`], the
/// part is idle again, and nobody waits for it.
pub(crate) struct Reading {
    ledger: PartLedger,
    index: usize,
}

impl Reading {
    /// Another step of the part has been decoded, up to `checkpoint`.
    pub fn advanced(&self, checkpoint: Checkpoint) {
        if let Some(Slot::Reading(at)) = self.ledger.state().slots.get_mut(self.index) {
            *at = Some(Arc::new(checkpoint));
        }
    }

    /// The part has been read to its end: `lines` (newlines) and its last header line
    /// (numbered from the part's first line) are known.
    pub fn counted(self, lines: u64, last_header: Option<(u64, String)>) {
        self.ledger.count(self.index, Pass { lines, last_header });
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut state = self.ledger.state();
        if let Some(slot) = state.slots.get_mut(self.index)
            && matches!(slot, Slot::Reading(_))
        {
            *slot = Slot::Idle;
            self.ledger.0.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;
    use crate::source::part_source::FileRanges;
    use crate::source::text_parts::pass;
    use crate::source::text_parts::tests::awkward_file;

    /// The awkward file of text_parts.rs written out, and where a cut at `num / den` of it
    /// falls (a line start).
    fn two_parts(num: usize, den: usize) -> (Vec<u8>, tempfile::TempDir, PartSource, usize) {
        let bytes = awkward_file();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let source = PartSource::mapped("big.log", file, bytes.len() as u64);
        let at = bytes.len() * num / den;
        let cut = bytes[..at].iter().rposition(|&b| b == b'\n').unwrap() + 1;
        (bytes, dir, source, cut)
    }

    /// A part counted by the part after it from where its own reading has got gives what
    /// counting it whole gives, from any line it may have got to; so does a part cut at a
    /// nominal offset and streamed.
    #[test]
    fn a_part_is_counted_from_where_its_reading_got_to() {
        let (bytes, dir, mapped, cut) = two_parts(2, 3);
        let size = bytes.len() as u64;
        let streamed = PartSource::streamed(
            "big.log",
            Arc::new(FileRanges {
                path: dir.path().join("big.log"),
                size,
            }),
            size,
        );
        let whole = pass(&bytes[..cut], true, 200);
        // Cut at the line start, or (streamed) anywhere in the line before it.
        let line_before = bytes[..cut - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1;
        let nominal = (line_before + 1..=cut).map(|c| (&streamed, c as u64));
        for (source, cut_at) in std::iter::once((&mapped, cut as u64)).chain(nominal) {
            let ranges = vec![(0, cut_at), (cut_at, size)];
            let fresh = PartLedger::new(ranges.clone(), 200, 2);
            let start = fresh.start_of(1, source, false).unwrap();
            assert_eq!(start.lines_before, whole.lines, "{cut_at}");
            assert_eq!(start.header, whole.last_header);
            assert!(start.header.is_some());
            let line_starts = (0..cut).filter(|&i| i == 0 || bytes[i - 1] == b'\n');
            for at in line_starts {
                let ledger = PartLedger::new(ranges.clone(), 200, 2);
                let reading = ledger.reading(0);
                let read = pass(&bytes[..at], true, 200);
                reading.advanced(Checkpoint {
                    at: at as u64,
                    lines: read.lines,
                    last_header: read.last_header,
                });
                assert_eq!(
                    ledger.start_of(1, source, false).unwrap(),
                    start,
                    "{cut_at} {at}"
                );
                assert_eq!(ledger.counted_for_others(), 1);
            }
        }
    }

    /// A part being read is waited for while it progresses; one that stops is not.
    #[test]
    fn a_part_waits_only_for_parts_that_progress() {
        let (bytes, _dir, source, cut) = two_parts(1, 2);
        let size = bytes.len() as u64;
        let ranges = vec![(0, cut as u64), (cut as u64, size)];
        let whole = pass(&bytes[..cut], true, 200);
        // Read to its end on another thread after a few steps: waited for, not counted.
        // (A long wait for progress, so that a busy machine cannot make it look stalled.)
        let ledger = PartLedger::new(ranges.clone(), 200, 2);
        ledger.set_stall(Duration::from_secs(5));
        let reading = ledger.reading(0);
        let start = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| ledger.start_of(1, &source, true).unwrap());
            for step in 1..4 {
                std::thread::sleep(Duration::from_millis(20));
                reading.advanced(Checkpoint {
                    at: step,
                    lines: step,
                    last_header: None,
                });
            }
            reading.counted(whole.lines, whole.last_header.clone());
            waiter.join().unwrap()
        });
        assert_eq!(start.lines_before, whole.lines);
        assert_eq!(ledger.counted_for_others(), 0);
        // Stalled: counted by the part after it.
        let ledger = PartLedger::new(ranges, 200, 2);
        let _stalled = ledger.reading(0);
        let start = ledger.start_of(1, &source, true).unwrap();
        assert_eq!(start.lines_before, whole.lines);
        assert_eq!(ledger.counted_for_others(), 1);
    }
}
