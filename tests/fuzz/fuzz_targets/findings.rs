//! The findings writers (JSON lines and OCSF) on any values: never a panic, always one line of
//! valid JSON whose text fields read back as they were.
#![no_main]

use flowlens::{Finding, Severity};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if data.len() < 18 {
        return;
    }
    let int = |at: usize| i64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
    let (start, end, rest) = (int(0), int(8), &data[16..]);
    let severity = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical]
        [rest[0] as usize % 4];
    let text = String::from_utf8_lossy(&rest[1..]).into_owned();
    let mut words = text.splitn(4, ' ');
    let mut next = || words.next().unwrap_or_default().to_string();
    let (kind, eni, summary, evidence) = (next(), next(), next(), next());
    let mut map = serde_json::Map::new();
    map.insert(evidence.clone(), Value::String(evidence.clone()));
    let finding = Finding {
        finding_id: "0123456789abcdef".to_string(),
        kind: kind.clone(),
        severity,
        interface_id: eni.clone(),
        account_id: Some(summary.clone()),
        vpc_id: None,
        window_start: start,
        window_end: end,
        score: f64::from_bits(start as u64),
        summary: summary.clone(),
        evidence: map,
    };
    for line in [finding.to_json().to_string(), finding.to_ocsf(end).to_string()] {
        assert!(!line.contains('\n'), "one finding, one line");
        let back: Value = serde_json::from_str(&line).expect("valid JSON");
        assert!(back.is_object());
    }
    let back: Value = serde_json::from_str(&finding.to_json().to_string()).expect("valid JSON");
    assert_eq!(back["kind"], Value::String(kind));
    assert_eq!(back["interface_id"], Value::String(eni));
    assert_eq!(back["summary"], Value::String(summary));
    assert_eq!(back["evidence"][&evidence], Value::String(evidence.clone()));
});
