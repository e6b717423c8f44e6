//! The key-layout parser on any key: it never panics, and any window it reads is a real,
//! non-empty span of time.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = std::str::from_utf8(data) else {
        return;
    };
    let info = flowlens::fuzzing::key_info(key);
    for window in [info.window, flowlens::fuzzing::prefix_window(key)].into_iter().flatten() {
        let (lo, hi) = window;
        assert!(lo < hi, "{key:?}: empty window {window:?}");
    }
    // Account and region come from whole path segments: never a separator.
    for value in [&info.account, &info.region].into_iter().flatten() {
        assert!(!value.contains(['/', '\\']), "{key:?}: {value:?}");
    }
});
