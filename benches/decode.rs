//! Decoder throughput on one core, in bytes of flow log text per second:
//! the default format with all 14 columns, a 3-column projection (also with the rejected
//! rows only, as `WHERE action = 'REJECT'` pushes down), and a 24-field custom format. Each
//! run checks it produced every record it should.
//!
//! `cargo bench --bench decode`

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowlens::{
    Decoder, DecoderOptions, FieldCondition, FlowFormat, GenerateOptions, KeyLayout, ValueTest,
    column_index, generate,
};

/// About this many bytes of text per benchmark input.
const TARGET_BYTES: usize = 32 << 20;

/// Plain-text objects of one format, concatenated (their header lines included).
struct Input {
    text: Vec<u8>,
    records: usize,
    /// Records whose `action` is REJECT (default format only).
    rejected: usize,
    format: FlowFormat,
}

fn archive_inputs() -> (Input, Input) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = GenerateOptions {
        out: dir.path().to_path_buf(),
        end: 1_791_936_000, // 2026-10-14
        days: 2,
        enis: 14,
        seed: 7,
        rate: 3.0,
        object_minutes: 60,
        gzip: false,
        layout: KeyLayout::Plain,
        mixed_formats: true,
        incidents: false,
    };
    generate(&options).expect("generate");
    let mut default = Vec::new();
    let mut custom = Vec::new();
    collect(dir.path(), &mut default, &mut custom);
    (input(default, "version"), input(custom, "interface-id"))
}

fn collect(dir: &Path, default: &mut Vec<u8>, custom: &mut Vec<u8>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, default, custom);
            continue;
        }
        let text = std::fs::read(&path).expect("read object");
        if text.starts_with(b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n") {
            default.extend_from_slice(&text);
        } else if text.starts_with(b"interface-id") {
            custom.extend_from_slice(&text);
        }
    }
}

fn input(mut text: Vec<u8>, header_start: &str) -> Input {
    // Repeat to the target size so every benchmark reads a similar volume.
    let one = text.clone();
    while text.len() < TARGET_BYTES {
        text.extend_from_slice(&one);
    }
    let header = text
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default()
        .to_vec();
    let records = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && !l.starts_with(header_start.as_bytes()))
        .count();
    let rejected = text
        .split(|&b| b == b'\n')
        .filter(|l| l.split(|&b| b == b' ').nth(12) == Some(b"REJECT"))
        .count();
    let format = FlowFormat::parse(&String::from_utf8_lossy(&header)).expect("header");
    Input {
        text,
        records,
        rejected,
        format,
    }
}

fn decode_all(input: &Input, projection: &[usize], conditions: &[FieldCondition]) -> usize {
    let mut decoder = Decoder::new(DecoderOptions {
        projection: Some(projection.to_vec()),
        conditions: conditions.to_vec(),
        ..DecoderOptions::default()
    });
    decoder.start_input("bench");
    let mut rows = 0;
    let mut rest = &input.text[..];
    // Feed in 256 KiB reads, as the file reader does.
    for chunk in input.text.chunks(256 * 1024) {
        rest = chunk;
        while !rest.is_empty() {
            let used = decoder.decode(rest).expect("decode");
            rest = &rest[used..];
            if decoder.is_full() {
                rows += decoder.flush().expect("flush").map_or(0, |b| b.num_rows());
            }
        }
    }
    debug_assert!(rest.is_empty());
    decoder.finish().expect("finish");
    rows += decoder.flush().expect("flush").map_or(0, |b| b.num_rows());
    let bad = decoder.take_bad_lines();
    assert_eq!(bad.total(), 0, "{}", bad.summary());
    rows
}

fn benches(c: &mut Criterion) {
    let (default, custom) = archive_inputs();
    let all_default: Vec<usize> = (0..14).collect();
    let three: Vec<usize> = ["interface_id", "action", "bytes"]
        .iter()
        .filter_map(|c| column_index(c))
        .collect();
    let all_custom: Vec<usize> = custom
        .format
        .positions()
        .iter()
        .flatten()
        .copied()
        .collect();
    assert_eq!(all_custom.len(), 24);

    let rejected = [FieldCondition {
        field: column_index("action").expect("action"),
        test: ValueTest::Text {
            values: vec!["REJECT".to_string()],
            negated: false,
        },
    }];
    assert!(default.rejected > 0 && default.rejected < default.records);

    let mut group = c.benchmark_group("decode");
    group.sample_size(20);
    for (name, input, projection, conditions, records) in [
        (
            "default_14_columns",
            &default,
            &all_default,
            &[][..],
            default.records,
        ),
        (
            "default_3_columns",
            &default,
            &three,
            &[][..],
            default.records,
        ),
        (
            "default_3_columns_rejected",
            &default,
            &three,
            &rejected[..],
            default.rejected,
        ),
        (
            "custom_24_fields",
            &custom,
            &all_custom,
            &[][..],
            custom.records,
        ),
    ] {
        assert_eq!(
            decode_all(input, projection, conditions),
            records,
            "{name}: every record decoded"
        );
        group.throughput(Throughput::Bytes(input.text.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| decode_all(input, projection, conditions))
        });
    }
    group.finish();
}

criterion_group!(decode, benches);
criterion_main!(decode);
