//! The decoder on any bytes, any chunking, any header: it never panics, and feeding the
//! input in pieces gives exactly what feeding it whole gives (rows, bad lines, errors).
#![no_main]

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use flowlens::{Decoder, DecoderOptions, FieldCondition, FlowFormat, TimeRange, ValueTest};
use libfuzzer_sys::fuzz_target;

/// Rows (one batch), bad lines counted, and the error if the input was refused.
type Outcome = (Option<RecordBatch>, u64, Option<String>);

fn decode(input: &[u8], options: &DecoderOptions, chunk: usize) -> Outcome {
    let mut decoder = Decoder::new(options.clone());
    decoder.start_input("fuzz.log");
    let mut batches = Vec::new();
    let mut run = || -> flowlens::Result<()> {
        for piece in input.chunks(chunk.max(1)) {
            let mut rest = piece;
            while !rest.is_empty() {
                let used = decoder.decode(rest)?;
                rest = &rest[used..];
                if decoder.is_full() {
                    batches.extend(decoder.flush()?);
                }
            }
        }
        decoder.finish()?;
        batches.extend(decoder.flush()?);
        Ok(())
    };
    let error = run().err().map(|e| e.to_string());
    let rows = (error.is_none() && !batches.is_empty())
        .then(|| concat_batches(&batches[0].schema(), &batches).expect("batches share a schema"));
    (rows, decoder.take_bad_lines().total(), error)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (chunk, flags, input) = (1 + data[0] as usize % 64, data[1], &data[3..]);
    let mut options = DecoderOptions {
        batch_size: 1 + data[2] as usize % 17,
        strict: flags & 1 != 0,
        max_line_len: if flags & 2 != 0 { 40 } else { 16 * 1024 },
        ..DecoderOptions::default()
    };
    if flags & 4 != 0 {
        // A projection of a few columns, in an order of the input's choosing.
        options.projection = Some(vec![data[2] as usize % flowlens::FIELDS.len(), 10, 11, 2]);
    }
    if flags & 8 != 0 {
        options.time_range = TimeRange {
            since: Some(1_000),
            until: Some(2_000_000_000),
        };
    }
    if flags & 32 != 0 {
        // Conditions as a WHERE clause pushes them down: on the action's text and on a
        // number field of the input's choosing.
        options.conditions = vec![
            FieldCondition {
                field: 12,
                test: ValueTest::Text {
                    values: vec!["REJECT".to_string()],
                    negated: flags & 64 != 0,
                },
            },
            FieldCondition {
                field: [0, 5, 6, 9, 10][data[2] as usize % 5],
                test: ValueTest::Range {
                    low: 2,
                    high: 1_000_000,
                },
            },
        ];
    }
    if flags & 16 != 0 {
        // The first line is a --format for header-less input.
        let end = input.iter().position(|&b| b == b'\n').unwrap_or(input.len());
        match std::str::from_utf8(&input[..end]).ok().map(FlowFormat::parse) {
            Some(Ok(format)) => options.default_format = format,
            _ => return,
        }
    }
    if options
        .projection
        .as_ref()
        .is_some_and(|p| p.iter().collect::<std::collections::BTreeSet<_>>().len() != p.len())
    {
        return;
    }
    let whole = decode(input, &options, input.len());
    let pieces = decode(input, &options, chunk);
    assert_eq!(whole, pieces, "chunks of {chunk} bytes disagree with the whole input");
});
