//! Lines that are not records: counted by reason, the first few kept with their line number.

use std::fmt;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum BadLineReason {
    FieldCount,
    BadNumber,
    TooLong,
    InvalidUtf8,
}

impl BadLineReason {
    pub const ALL: [BadLineReason; 4] = [
        BadLineReason::FieldCount,
        BadLineReason::BadNumber,
        BadLineReason::TooLong,
        BadLineReason::InvalidUtf8,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BadLineReason::FieldCount => "wrong field count",
            BadLineReason::BadNumber => "bad number",
            BadLineReason::TooLong => "line too long",
            BadLineReason::InvalidUtf8 => "invalid UTF-8",
        }
    }
}

impl fmt::Display for BadLineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bad line kept as an example.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BadLineSample {
    pub location: String,
    pub line: u64,
    pub reason: BadLineReason,
    pub detail: String,
}

impl fmt::Display for BadLineSample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.location, self.line, self.reason, self.detail
        )
    }
}

/// Bad lines counted by reason, with the first [`BadLines::SAMPLES`] kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BadLines {
    counts: [u64; 4],
    samples: Vec<BadLineSample>,
}

impl BadLines {
    pub const SAMPLES: usize = 5;

    pub(crate) fn record(&mut self, sample: impl FnOnce() -> BadLineSample, reason: BadLineReason) {
        self.counts[reason as usize] += 1;
        if self.samples.len() < Self::SAMPLES {
            self.samples.push(sample());
        }
    }

    pub fn count(&self, reason: BadLineReason) -> u64 {
        self.counts[reason as usize]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn samples(&self) -> &[BadLineSample] {
        &self.samples
    }

    /// Moves the samples' line numbers on by `lines`: the lines of a file before the part
    /// they were counted from.
    pub(crate) fn renumber(&mut self, lines: u64) {
        for sample in &mut self.samples {
            sample.line += lines;
        }
    }

    pub fn merge(&mut self, other: &BadLines) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        // The first lines by place, whatever order the partitions (or the parts of a file
        // read in parts) finish in.
        self.samples.extend(other.samples.iter().cloned());
        self.samples
            .sort_by(|a, b| (&a.location, a.line).cmp(&(&b.location, b.line)));
        self.samples.truncate(Self::SAMPLES);
    }

    /// `3 bad lines (2 wrong field count, 1 bad number)`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = BadLineReason::ALL
            .iter()
            .filter(|r| self.count(**r) > 0)
            .map(|r| format!("{} {}", self.count(*r), r))
            .collect();
        format!("{} bad lines skipped ({})", self.total(), parts.join(", "))
    }
}
