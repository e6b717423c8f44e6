//! `--since` / `--until` parsing on any text: it never panics, every time it accepts lies in
//! 1970 .. 9999, and what format_time prints parses back to the same second.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("a valid time");
    if let Ok(secs) = flowlens::parse_time("--since", text, now) {
        assert!((0..=flowlens::fuzzing::MAX_TIME).contains(&secs), "{text:?} -> {secs}");
        let printed = flowlens::format_time(secs);
        assert_eq!(flowlens::parse_time("--since", &printed, now).ok(), Some(secs), "{printed}");
    }
});
