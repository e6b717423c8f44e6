//! What the end-to-end tests share: running the binary as a user does, the bundled sample
//! logs, generated estates, reading outputs back; and in `servers`, the S3-compatible server
//! the S3 tests talk to. A helper used by one module stays in that module.

pub(crate) mod servers;

pub(crate) use std::io::{Read, Write};
pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::process::{Command, Output, Stdio};

pub(crate) use flate2::Compression;
pub(crate) use flate2::read::MultiGzDecoder;
pub(crate) use flate2::write::GzEncoder;

/// The S3-compatible server, under the name the tests use.
pub(crate) use servers as s3;

pub(crate) const V2_HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport \
                         protocol packets bytes start end action log-status";
pub(crate) fn flowlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowlens"))
        .args(args)
        .env_remove("FLOWLENS_SOURCE")
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("the flowlens binary runs")
}
pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
/// Runs SQL with `--output csv` and returns the rows (header dropped) as strings.
pub(crate) fn csv_rows(sources: &[&str], extra: &[&str], sql: &str) -> Vec<String> {
    let mut args = vec!["sql", sql, "--output", "csv"];
    for s in sources {
        args.extend(["--source", s]);
    }
    args.extend(extra);
    let out = flowlens(&args);
    assert!(
        out.status.success(),
        "flowlens {args:?} failed: {}",
        stderr(&out)
    );
    stdout(&out).lines().skip(1).map(str::to_string).collect()
}
/// 200,000 lines of the default format (about 18 MB: a large file, cut into parts on two
/// cores or more), a bad line every 50,000, and a third of the way in a header that adds
/// vpc-id, which the lines after it carry; `steady`: without that header.
pub(crate) fn large_plain_text(steady: bool) -> String {
    let mut text = format!("{V2_HEADER}\n");
    let lines = 200_000;
    for i in 0..lines {
        let changed = !steady && i >= lines / 3;
        if !steady && i == lines / 3 {
            text.push_str(&format!("{V2_HEADER} vpc-id\n"));
        }
        let vpc = if changed { " vpc-1" } else { "" };
        match i {
            i if i % 50_000 == 49_999 => text.push_str("2 1 eni-bad 10.0.0.1\n"),
            _ => text.push_str(&format!(
                "2 123456789012 eni-{:05} 10.0.{}.{} 10.1.0.1 443 {} 6 3 {} 1700000000 1700000060 ACCEPT OK{vpc}\n",
                i % 977,
                i % 200,
                i % 250,
                1024 + i % 60000,
                100 + i % 1500
            )),
        }
    }
    text
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}
pub(crate) fn sample_logs() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample-logs")
        .display()
        .to_string()
}
/// Records in a folder of flow log text, counted independently of flowlens: every line
/// that is not blank and is not a header.
pub(crate) fn count_records(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in walk(dir) {
        let name = entry.to_string_lossy();
        if !(name.ends_with(".log") || name.ends_with(".gz") || name.ends_with(".txt")) {
            continue;
        }
        let mut text = String::new();
        let file = std::fs::File::open(&entry).unwrap();
        if entry.extension().is_some_and(|e| e == "gz") {
            MultiGzDecoder::new(file).read_to_string(&mut text).unwrap();
        } else {
            std::io::BufReader::new(file)
                .read_to_string(&mut text)
                .unwrap();
        }
        total += text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                let first = l.split(' ').next().unwrap_or("");
                !matches!(first, "version" | "interface-id") && !first.starts_with("${")
            })
            .count() as u64;
    }
    total
}
pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
pub(crate) fn generate_into(dir: &Path, args: &[&str]) {
    let mut all = vec![
        "generate",
        "--out",
        dir.to_str().unwrap(),
        "--end",
        "2026-10-15",
    ];
    all.extend(args);
    let out = flowlens(&all);
    assert!(out.status.success(), "{}", stderr(&out));
}
/// Fifteen days of a seven-interface estate: fourteen of baseline, then the day examined.
pub(crate) fn estate(dir: &Path, incidents: bool) {
    let mut args = vec!["--days", "15", "--enis", "7", "--object-minutes", "60"];
    if incidents {
        args.push("--incidents");
    }
    generate_into(dir, &args);
}
/// The file of a stored baseline's table (`history`, `peers` or `ports`) that its pointer
/// names.
pub(crate) fn baseline_table(dir: &Path, table: &str) -> PathBuf {
    let pointer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("baseline.json")).unwrap()).unwrap();
    let version = pointer["version"].as_u64().unwrap();
    dir.join(format!("v{version}/{table}.parquet"))
}

/// A folder with three formats: a default file with a header, a gzip file in a custom
/// format whose header changes mid-file, and a headerless CloudWatch-style export.
pub(crate) fn mixed_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let a = format!(
        "{V2_HEADER}\n\
         2 111122223333 eni-a 10.0.0.1 8.8.8.8 40000 443 6 10 1000 1700000000 1700000060 ACCEPT OK\n\
         2 111122223333 eni-a 8.8.8.8 10.0.0.1 443 40000 6 12 5000 1700000000 1700000060 ACCEPT OK\n\
         2 111122223333 eni-a 45.1.2.3 10.0.0.1 51000 22 6 1 40 1700000100 1700000110 REJECT OK\n"
    );
    std::fs::write(dir.path().join("a.log"), a).unwrap();
    let b = "${interface-id} ${srcaddr} ${dstaddr} ${dstport} ${bytes} ${action} ${start} ${end} ${tcp-flags} ${flow-direction}\n\
             eni-b 2a02:cf40::1 2600:1f18::5 443 700 ACCEPT 1700000200 1700000260 3 ingress\n\
             eni-b 45.1.2.4 10.0.1.5 3389 44 REJECT 1700000300 1700000301 2 ingress\n\
             \n\
             interface-id action bytes dstport\r\n\
             eni-b   REJECT  60  23\r\n\
             eni-c ACCEPT 9000 5432";
    std::fs::write(dir.path().join("b.log.gz"), gzip(b.as_bytes())).unwrap();
    let c = "2 111122223333 eni-c 10.0.2.9 10.0.1.5 41000 5432 6 7 800 1700000400 1700000460 ACCEPT OK\n\
             2 111122223333 eni-c - - - - - - - 1700000500 1700001100 - NODATA\n";
    std::fs::write(dir.path().join("c.txt"), c).unwrap();
    std::fs::write(dir.path().join("notes.md"), "not a flow log\n").unwrap();
    dir
}

pub(crate) fn summary(out: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(out).trim())
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(out), stderr(out)))
}

/// Copies a folder tree.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    for file in walk(from) {
        let target = to.join(file.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&file, &target).unwrap();
    }
}
