//! What a run tells the person at the terminal, on stderr.

use std::process::ExitCode;
use std::time::Instant;

use flowlens::FlowsSession;

use super::EXIT_PARTIAL;

pub use flowlens::human_bytes;

/// Before reading: what the sources selected.
pub fn selected(session: &FlowsSession, quiet: bool) {
    let objects = session.selected_objects();
    let bytes: u64 = objects.iter().map(|o| o.size).sum();
    let listing = session.listing();
    tracing::info!(
        "{} objects selected ({}) of {} seen; {} S3 list requests; {} local files skipped by name",
        objects.len(),
        human_bytes(bytes),
        listing.objects_seen,
        listing.list_requests,
        listing.skipped_files
    );
    if listing.unreadable > 0 && !quiet {
        eprintln!(
            "flowlens: {} place(s) under the source folders could not be walked and were \
             skipped (named above)",
            listing.unreadable
        );
    }
    if objects.is_empty() && !quiet {
        eprintln!("flowlens: no flow log objects in the given sources (or time window)");
    }
}

/// After the run: bad lines, failed objects, a summary; the exit code they imply.
pub fn finished(session: &FlowsSession, started: Instant, quiet: bool) -> ExitCode {
    let stats = session.stats();
    let bad = stats.bad_lines();
    let failures = stats.failures();
    if !quiet {
        if bad.total() > 0 {
            eprintln!("flowlens: {}; first ones:", bad.summary());
            for sample in bad.samples() {
                eprintln!("  {sample}");
            }
        }
        if !failures.is_empty() {
            eprintln!(
                "flowlens: {} object(s) could not be read to the end; results are partial:",
                failures.len()
            );
            const SHOWN: usize = 20;
            for f in failures.iter().take(SHOWN) {
                eprintln!("  {}: {}", f.location, f.message);
            }
            if failures.len() > SHOWN {
                eprintln!("  … and {} more", failures.len() - SHOWN);
            }
        }
        tracing::info!(
            "read {} objects ({}), {} rows in {:.2} s",
            stats.objects(),
            human_bytes(stats.bytes()),
            stats.rows(),
            started.elapsed().as_secs_f64()
        );
    }
    // Folders that could not be walked are data not read, as failed objects are.
    if failures.is_empty() && session.listing().unreadable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    }
}
