//! Crash points for the scheduled task's crash-safety tests, and the stop request a
//! SIGTERM makes. `FLOWLENS_FAILPOINT=name[:n]` kills the process with SIGKILL (no
//! cleanup of any kind) the n-th time (default: first) execution reaches the point `name`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};

static TARGET: LazyLock<Option<(String, usize)>> = LazyLock::new(|| {
    let spec = std::env::var("FLOWLENS_FAILPOINT").ok()?;
    let (name, n) = match spec.split_once(':') {
        Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
        None => (spec, 1),
    };
    Some((name, n))
});

static HITS: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Default::default);

/// Aborts here if this point was asked for.
pub fn point(name: &str) {
    let Some((target, n)) = TARGET.as_ref() else {
        return;
    };
    if target != name {
        return;
    }
    let mut hits = HITS.lock().unwrap_or_else(|p| p.into_inner());
    let count = hits.entry(name.to_string()).or_insert(0);
    *count += 1;
    if *count == *n {
        eprintln!("flowlens: failpoint {name}:{n} reached, killing the process");
        // SIGKILL from outside the process, as an OOM killer or `docker kill` would.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks readers to stop before their next object (SIGTERM).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
