//! Named-query parameter substitution on any values: a text value always becomes one quoted
//! literal, whatever it contains (`${other}`, quotes, comments), and nothing else changes.
#![no_main]

use libfuzzer_sys::fuzz_target;

const QUERY: &str = "-- name: q\n-- param: a text: one\n-- param: b text: two\n\
                     -- param: n int = 5: rows\nSELECT ${a}, ${b} -- ${n}\nLIMIT ${n}";

fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\u{0}');
    let a = parts.next().unwrap_or_default().to_string();
    let b = parts.next().unwrap_or_default().to_string();
    let n = parts.next();
    let mut values = vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())];
    if let Some(n) = n {
        values.push(("n".to_string(), n.to_string()));
    }
    match flowlens::fuzzing::render_query(QUERY, &values) {
        Ok(sql) => {
            let n = n.map(|n| n.trim().parse::<i64>().expect("accepted as a number").to_string());
            let n = n.unwrap_or_else(|| "5".to_string());
            let expected = format!("SELECT {}, {} -- {n}\nLIMIT {n}", quoted(&a), quoted(&b));
            assert!(sql.ends_with(&expected), "{sql:?} != {expected:?}");
        }
        Err(e) => assert!(n.is_some(), "only a bad number is refused: {e}"),
    }
    // Any query text at all: parsing and rendering never panic.
    let _ = flowlens::fuzzing::render_query(text, &values);
});
