//! What a scan saw, shared by all its partitions: objects and rows read, bad lines by
//! reason, objects that failed, unknown header fields.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::decode::{BadLines, UnknownField};

/// An object that could not be read to its end; the others still were.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectFailure {
    pub location: String,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct ScanStats {
    objects: AtomicU64,
    bytes: AtomicU64,
    rows: AtomicU64,
    bad: Mutex<BadLines>,
    failures: Mutex<Vec<ObjectFailure>>,
    unknown_fields: Mutex<BTreeMap<String, UnknownField>>,
    /// Objects read whole, by location: a job that reads an object twice (detection reads
    /// the examined day again, a day's read takes objects at its edges) counts it once.
    seen: Mutex<std::collections::HashSet<String>>,
    /// Each object read, for [`ScanStats::report`], when made with [`ScanStats::for_report`].
    reads: Option<Mutex<Vec<ObjectRead>>>,
}

/// One object read to its end.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectRead {
    pub location: String,
    /// The part of a large file read in parts (see text_parts.rs).
    #[serde(default)]
    pub part: Option<u32>,
    pub bytes: u64,
    pub rows: u64,
    pub bad: BadLines,
}

impl ScanStats {
    /// Stats of a scan run for another process (a cluster task), which keep each object read
    /// so [`ScanStats::report`] can hand them back.
    pub fn for_report() -> Self {
        ScanStats {
            reads: Some(Mutex::default()),
            ..ScanStats::default()
        }
    }

    /// Records an object, or a `part` of a file read in parts, read to its end with its
    /// rows and bad lines, unless it was read before in this job. A file read in parts
    /// counts as one object.
    pub(crate) fn object_read(
        &self,
        location: &str,
        part: Option<u32>,
        bytes: u64,
        rows: u64,
        bad: &BadLines,
    ) {
        let key = match part {
            Some(part) => format!("{location}\0{part}"),
            None => location.to_string(),
        };
        if !lock(&self.seen).insert(key) {
            return;
        }
        if let Some(reads) = &self.reads {
            lock(reads).push(ObjectRead {
                location: location.to_string(),
                part,
                bytes,
                rows,
                bad: bad.clone(),
            });
        }
        if part.is_none_or(|p| p == 0) {
            self.objects.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.add_bad_lines(bad);
    }

    pub(crate) fn add_bad_lines(&self, bad: &BadLines) {
        if bad.total() > 0 {
            lock(&self.bad).merge(bad);
        }
    }

    /// Records an object that failed; one that fails again in a second scan of the same
    /// run (detection reads some objects twice) is counted and reported once.
    pub(crate) fn add_failure(&self, failure: ObjectFailure) {
        let mut failures = lock(&self.failures);
        if failures.iter().any(|f| f.location == failure.location) {
            return;
        }
        tracing::error!("{}: {}", failure.location, failure.message);
        failures.push(failure);
    }

    /// Adds what another scan saw (a job's scans of parts of the archive roll up here).
    pub fn absorb(&self, other: &ScanStats) {
        self.objects.fetch_add(other.objects(), Ordering::Relaxed);
        self.bytes.fetch_add(other.bytes(), Ordering::Relaxed);
        self.rows.fetch_add(other.rows(), Ordering::Relaxed);
        self.add_bad_lines(&other.bad_lines());
        for failure in other.failures() {
            self.add_failure(failure);
        }
        let mut seen = lock(&self.unknown_fields);
        for field in other.unknown_fields() {
            seen.entry(field.field.clone()).or_insert(field);
        }
    }

    /// Records unknown header fields; each name is warned about once per run.
    pub(crate) fn add_unknown_fields(&self, fields: Vec<UnknownField>) {
        if fields.is_empty() {
            return;
        }
        let mut seen = lock(&self.unknown_fields);
        for field in fields {
            if !seen.contains_key(&field.field) {
                tracing::warn!("{field}");
                seen.insert(field.field.clone(), field);
            }
        }
    }

    pub fn objects(&self) -> u64 {
        self.objects.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    pub fn bad_lines(&self) -> BadLines {
        lock(&self.bad).clone()
    }

    pub fn failures(&self) -> Vec<ObjectFailure> {
        lock(&self.failures).clone()
    }

    pub fn unknown_fields(&self) -> Vec<UnknownField> {
        lock(&self.unknown_fields).values().cloned().collect()
    }

    /// What this scan saw as plain data, for a process that ran part of another's plan
    /// (a cluster executor) to hand back to the one that asked.
    pub fn report(&self) -> ScanReport {
        ScanReport {
            reads: self
                .reads
                .as_ref()
                .map(|r| lock(r).clone())
                .unwrap_or_default(),
            failures: self.failures(),
            unknown_fields: self.unknown_fields(),
        }
    }

    /// Adds what another process's scan saw (see [`ScanStats::report`]); an object this
    /// job read before counts once, as it does here.
    pub fn absorb_report(&self, report: &ScanReport) {
        for read in &report.reads {
            self.object_read(&read.location, read.part, read.bytes, read.rows, &read.bad);
        }
        for failure in &report.failures {
            self.add_failure(failure.clone());
        }
        self.add_unknown_fields(report.unknown_fields.clone());
    }
}

/// [`ScanStats`] as plain data.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanReport {
    pub reads: Vec<ObjectRead>,
    pub failures: Vec<ObjectFailure>,
    pub unknown_fields: Vec<UnknownField>,
}

/// The stats stay usable after a panic elsewhere: a poisoned lock still holds valid counts.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
