//! End-to-end tests of the `flowlens` binary, run as a user runs it. One test binary for
//! the whole crate (each binary is a large link).

// Tests of bad input, faults and hostile values (issue: nothing lost, nothing written where
// it does not belong) go in here; each names the defect it pins down.
mod reliability;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

fn flowlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowlens"))
        .args(args)
        .env_remove("FLOWLENS_SOURCE")
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("the flowlens binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs SQL with `--output csv` and returns the rows (header dropped) as strings.
fn csv_rows(sources: &[&str], extra: &[&str], sql: &str) -> Vec<String> {
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

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn sample_logs() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample-logs")
        .display()
        .to_string()
}

/// Records in a folder of flow log text, counted independently of flowlens: every line
/// that is not blank and is not a header.
fn count_records(dir: &Path) -> u64 {
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

fn walk(dir: &Path) -> Vec<PathBuf> {
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

#[test]
fn sample_logs_every_record_is_in_the_table() {
    let dir = sample_logs();
    let expected = count_records(Path::new(&dir));
    assert!(expected > 50_000, "the sample holds a week of traffic");
    let rows = csv_rows(&[&dir], &[], "SELECT count(*) FROM flows");
    assert_eq!(rows, [expected.to_string()]);
    // Three flow logs of three formats: every interface has all default columns filled
    // and the v5 columns only where its format has them.
    let rows = csv_rows(
        &[&dir],
        &[],
        "SELECT count(DISTINCT interface_id), count(DISTINCT vpc_id), \
         count(*) FILTER (WHERE log_status = 'NODATA'), \
         count(*) FILTER (WHERE action = 'REJECT' AND log_status = 'OK') > 0 \
         FROM flows",
    );
    let fields: Vec<&str> = rows[0].split(',').collect();
    assert_eq!(fields[0], "7");
    assert_eq!(fields[1], "1");
    assert!(
        fields[2].parse::<u64>().unwrap() > 0,
        "idle interfaces log NODATA"
    );
    assert_eq!(fields[3], "true", "internet probes are rejected");
}

#[test]
fn sample_logs_main_job_as_the_readme_runs_it() {
    let out = flowlens(&[
        "sql",
        "SELECT interface_id, action, count(*) AS records, sum(bytes) AS bytes \
         FROM flows WHERE log_status = 'OK' GROUP BY 1, 2 ORDER BY 1, 2",
        "--source",
        &sample_logs(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.contains("| interface_id"), "{table}");
    assert!(table.contains("ACCEPT") && table.contains("REJECT"));
    assert!(table.trim_end().ends_with("rows"), "{table}");
}

const V2_HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport \
                         protocol packets bytes start end action log-status";

/// A folder with three formats: a default file with a header, a gzip file in a custom
/// format whose header changes mid-file, and a headerless CloudWatch-style export.
fn mixed_folder() -> tempfile::TempDir {
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

#[test]
fn mixed_formats_in_one_folder_give_the_right_numbers() {
    let dir = mixed_folder();
    let src = dir.path().display().to_string();
    let rows = csv_rows(
        &[&src],
        &[],
        "SELECT interface_id, action, count(*), sum(bytes), count(start), count(tcp_flags) \
         FROM flows GROUP BY 1, 2 ORDER BY 1, 2 NULLS LAST",
    );
    assert_eq!(
        rows,
        [
            "eni-a,ACCEPT,2,6000,2,0",
            "eni-a,REJECT,1,40,1,0",
            "eni-b,ACCEPT,1,700,1,1",
            "eni-b,REJECT,2,104,1,1",
            "eni-c,ACCEPT,2,9800,1,0",
            "eni-c,,1,,1,0",
        ]
    );
    // Columns a format lacks are NULL; IPv6 text is kept as written.
    let rows = csv_rows(
        &[&src],
        &[],
        "SELECT srcaddr, flow_direction, version FROM flows WHERE dstport = 443 ORDER BY bytes",
    );
    assert_eq!(rows, ["2a02:cf40::1,ingress,", "10.0.0.1,,2"]);
}

#[test]
fn flowlens_functions_in_sql() {
    let dir = mixed_folder();
    let src = dir.path().display().to_string();
    let rows = csv_rows(
        &[&src],
        &[],
        "SELECT srcaddr, ip_in_cidr(srcaddr, '10.0.0.0/16'), ip_in_cidr(srcaddr, '2a02:cf40::/32'), \
         is_private_ip(srcaddr), protocol_name(protocol), tcp_flag_names(tcp_flags) \
         FROM flows WHERE srcaddr IS NOT NULL ORDER BY srcaddr",
    );
    assert_eq!(
        rows,
        [
            "10.0.0.1,true,false,true,TCP,",
            "10.0.2.9,true,false,true,TCP,",
            "2a02:cf40::1,false,true,false,,\"FIN,SYN\"",
            "45.1.2.3,false,false,false,TCP,",
            "45.1.2.4,false,false,false,,SYN",
            "8.8.8.8,false,false,false,TCP,",
        ]
    );
    let out = flowlens(&[
        "sql",
        "SELECT ip_in_cidr(srcaddr, '10.0.0.0/40') FROM flows",
        "--source",
        &src,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`10.0.0.0/40` is not a CIDR block"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_lines_are_counted_reported_and_strict_stops() {
    let dir = tempfile::tempdir().unwrap();
    let good = "2 1 eni-a 10.0.0.1 10.0.0.2 1 2 6 1 100 1700000000 1700000060 ACCEPT OK\n";
    let text = format!(
        "{V2_HEADER}\n{good}2 1 eni-a 10.0.0.1 10.0.0.2 1 2 6 1 1OO 1700000000 1700000060 ACCEPT OK\n\
         2 1 eni-a short line\n{good}"
    );
    let path = dir.path().join("bad.log");
    std::fs::write(&path, text).unwrap();
    let src = path.display().to_string();
    let out = flowlens(&[
        "sql",
        "SELECT count(*), sum(bytes) FROM flows",
        "-s",
        &src,
        "-o",
        "csv",
    ]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).lines().nth(1), Some("2,200"));
    let err = stderr(&out);
    assert!(
        err.contains("2 bad lines skipped (1 wrong field count, 1 bad number)"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{src}:3: bad number: bytes: `1OO` is not a number"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{src}:4: wrong field count")),
        "{err}"
    );

    let strict = flowlens(&[
        "sql",
        "SELECT sum(bytes) FROM flows",
        "-s",
        &src,
        "--strict",
    ]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        stderr(&strict).contains(&format!("{src}:3: bad number")),
        "{}",
        stderr(&strict)
    );
}

#[test]
fn a_corrupt_gzip_object_is_named_and_the_others_finish() {
    let dir = mixed_folder();
    let mut broken = gzip(format!("{V2_HEADER}\n").repeat(2000).as_bytes());
    broken.truncate(broken.len() / 2);
    std::fs::write(dir.path().join("broken.log.gz"), broken).unwrap();
    std::fs::write(
        dir.path().join("tgw.log"),
        "version resource-type account-id tgw-id tgw-attachment-id\n6 TransitGateway 1 tgw-1 a\n",
    )
    .unwrap();
    let src = dir.path().display().to_string();
    let out = flowlens(&["sql", "SELECT count(*) FROM flows", "-s", &src, "-o", "csv"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "partial result: {}",
        stderr(&out)
    );
    assert_eq!(
        stdout(&out).lines().nth(1),
        Some("9"),
        "every good record is counted"
    );
    let err = stderr(&out);
    assert!(err.contains("2 object(s) could not be read"), "{err}");
    assert!(err.contains("broken.log.gz"), "{err}");
    assert!(
        err.contains("tgw.log:1: this is a transit gateway flow log"),
        "{err}"
    );
}

#[test]
fn since_and_until_prune_objects_and_filter_rows() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let out = flowlens(&[
        "generate",
        "--out",
        archive.to_str().unwrap(),
        "--days",
        "3",
        "--enis",
        "3",
        "--end",
        "2026-10-15",
        "--object-minutes",
        "60",
        "--default-format-only",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let src = archive.display().to_string();
    // 2026-10-13T06:00Z .. 2026-10-13T09:00Z
    let (since, until) = ("1791871200", "1791882000");
    let expected = csv_rows(
        &[&src],
        &[],
        &format!("SELECT count(*) FROM flows WHERE \"end\" >= {since} AND start < {until}"),
    );
    let out = flowlens(&[
        "sql",
        "SELECT count(*) FROM flows",
        "-s",
        &src,
        "-o",
        "csv",
        "-v",
        "--since",
        "2026-10-13T06:00:00Z",
        "--until",
        "2026-10-13T09:00:00Z",
    ]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).lines().nth(1).map(str::to_string),
        expected.first().cloned()
    );
    // 72 hourly objects; the window plus late-delivery slack selects a handful.
    let err = stderr(&out);
    let read: u64 = err
        .split("read ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no read count in {err}"));
    assert!((3..=6).contains(&read), "read {read} objects: {err}");

    // A WHERE on start prunes objects the same way.
    let out = flowlens(&[
        "sql",
        &format!("SELECT count(*) FROM flows WHERE start >= {since} AND start < {until}"),
        "-s",
        &src,
        "-v",
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("read 5 objects") || err.contains("read 4 objects"),
        "{err}"
    );
}

#[test]
fn output_formats_and_parquet_round_trip() {
    let dir = mixed_folder();
    let src = dir.path().display().to_string();
    let sql = "SELECT interface_id, bytes FROM flows WHERE interface_id = 'eni-a' ORDER BY bytes";
    let jsonl = flowlens(&["sql", sql, "-s", &src, "-o", "jsonl"]);
    let lines: Vec<serde_json::Value> = stdout(&jsonl)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["bytes"], 40);
    let json = flowlens(&["sql", sql, "-s", &src, "-o", "json"]);
    let array: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(array.as_array().map(Vec::len), Some(3));

    let no_file = flowlens(&["sql", sql, "-s", &src, "-o", "parquet"]);
    assert_eq!(no_file.status.code(), Some(2));

    let out_dir = tempfile::tempdir().unwrap();
    let parquet = out_dir.path().join("all.parquet");
    let write = flowlens(&[
        "sql",
        "SELECT * FROM flows",
        "-s",
        &src,
        "-o",
        "parquet",
        "--out",
        parquet.to_str().unwrap(),
    ]);
    assert!(write.status.success(), "{}", stderr(&write));
    // The Parquet file is itself a source, mapped onto the same table.
    let q = "SELECT interface_id, count(*), sum(bytes), count(tcp_flags) FROM flows GROUP BY 1 ORDER BY 1";
    assert_eq!(
        csv_rows(&[parquet.to_str().unwrap()], &[], q),
        csv_rows(&[&src], &[], q)
    );
}

#[test]
fn stdin_source_and_format_override() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowlens"))
        .args([
            "sql",
            "SELECT interface_id, sum(bytes) FROM flows GROUP BY 1",
            "-s",
            "-",
            "-o",
            "csv",
            "--format",
            "${interface-id} ${bytes}",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&gzip(b"eni-z 5\neni-z 7\n"))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "interface_id,sum(flows.bytes)\neni-z,12\n");
}

#[test]
fn interactive_shell_reads_multi_line_statements() {
    let dir = mixed_folder();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowlens"))
        .args(["sql", "-s", &dir.path().display().to_string()])
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT count(*) AS n\nFROM flows;\nSELECT nosuch FROM flows;\nSELECT 41 + 1 AS answer;\n\\q\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("| 9 "), "{text}");
    assert!(
        text.contains("| 42 "),
        "the shell goes on after an error: {text}"
    );
    assert!(
        stderr(&out).contains("No field named nosuch"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn schema_lists_the_contract() {
    let out = flowlens(&["schema", "-o", "csv"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let columns: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(columns.len(), 42);
    assert_eq!(
        &columns[..4],
        ["version", "account_id", "interface_id", "srcaddr"]
    );
    assert!(text.contains("encryption_status,Int32,encryption-status,10"));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["sql", "SELECT 1", "-s", ".", "--since", "someday"][..],
        &["sql", "SELECT 1", "-s", ".", "--format", "version tgw-id"],
        &["sql", "SELECT 1", "-s", "/no/such/dir"],
        &["sql", "SELECT 1"],
    ] {
        let out = flowlens(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn generate_writes_both_key_layouts() {
    let dir = tempfile::tempdir().unwrap();
    for layout in ["plain", "hive"] {
        let out_dir = dir.path().join(layout);
        let out = flowlens(&[
            "generate",
            "--out",
            out_dir.to_str().unwrap(),
            "--days",
            "1",
            "--enis",
            "2",
            "--end",
            "2026-10-15",
            "--layout",
            layout,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let files = walk(&out_dir);
        // Five-minute objects, as AWS delivers them, for one day.
        assert!(files.len() > 200, "{}", files.len());
        let key = files[0]
            .strip_prefix(&out_dir)
            .unwrap()
            .display()
            .to_string();
        let expected = match layout {
            "plain" => "AWSLogs/123456789012/vpcflowlogs/us-east-1/2026/10/14/",
            _ => {
                "AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/year=2026/month=10/day=14/hour="
            }
        };
        assert!(key.starts_with(expected), "{key}");
        assert!(
            key.ends_with(".log.gz") && key.contains("_vpcflowlogs_us-east-1_fl-"),
            "{key}"
        );
        assert_eq!(
            csv_rows(
                &[out_dir.to_str().unwrap()],
                &[],
                "SELECT count(*) FROM flows"
            ),
            [count_records(&out_dir).to_string()]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Named queries, each checked against an independent computation in plain Rust over the
// records of a generated archive plus a few hand-made objects for the rarer cases.

mod oracle {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    /// One record: column name -> text, `-` left out.
    pub struct Rec(HashMap<String, String>);

    impl Rec {
        pub fn s(&self, c: &str) -> Option<&str> {
            self.0.get(c).map(String::as_str)
        }
        pub fn i(&self, c: &str) -> Option<i64> {
            self.s(c).and_then(|v| v.parse().ok())
        }
        pub fn is(&self, c: &str, v: &str) -> bool {
            self.s(c) == Some(v)
        }
    }

    /// Every record under `dir`, read with a parser written for this test: header lines
    /// name the fields, other non-blank lines are records.
    pub fn load(dir: &Path) -> Vec<Rec> {
        let mut recs = Vec::new();
        for path in walk(dir) {
            if path.extension().is_some_and(|e| e == "jsonl") {
                continue;
            }
            let mut text = String::new();
            let file = std::fs::File::open(&path).unwrap();
            if path.extension().is_some_and(|e| e == "gz") {
                MultiGzDecoder::new(file).read_to_string(&mut text).unwrap();
            } else {
                std::io::BufReader::new(file)
                    .read_to_string(&mut text)
                    .unwrap();
            }
            let mut fields: Vec<String> = Vec::new();
            for line in text.lines() {
                let tokens: Vec<&str> = line.split_whitespace().collect();
                if tokens.is_empty() {
                    continue;
                }
                if tokens[0]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-' || c == '$' || c == '{' || c == '}')
                {
                    fields = tokens
                        .iter()
                        .map(|t| {
                            t.trim_start_matches("${")
                                .trim_end_matches('}')
                                .replace('-', "_")
                        })
                        .collect();
                    continue;
                }
                assert_eq!(tokens.len(), fields.len(), "{}: {line}", path.display());
                let map = fields
                    .iter()
                    .zip(&tokens)
                    .filter(|(_, v)| **v != "-")
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect();
                recs.push(Rec(map));
            }
        }
        recs
    }

    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum V {
        I(i64),
        S(String),
        Null,
    }

    impl V {
        pub fn s(v: Option<&str>) -> V {
            v.map_or(V::Null, |s| V::S(s.to_string()))
        }
        pub fn i(v: Option<i64>) -> V {
            v.map_or(V::Null, V::I)
        }
        fn csv(&self) -> String {
            match self {
                V::I(i) => i.to_string(),
                V::S(s) if s.contains(',') => format!("\"{s}\""),
                V::S(s) => s.clone(),
                V::Null => String::new(),
            }
        }
    }

    pub enum Agg {
        Count,
        Sum(&'static str),
        Distinct(&'static str),
        Min(&'static str),
        Max(&'static str),
    }

    pub type Key<'a> = Box<dyn Fn(&Rec) -> V + 'a>;
    pub type Having<'a> = Option<Box<dyn Fn(&[V]) -> bool + 'a>>;

    pub struct Q<'a> {
        pub filter: Box<dyn Fn(&Rec) -> bool + 'a>,
        pub keys: Vec<Key<'a>>,
        pub aggs: Vec<Agg>,
        /// Output column index and descending; NULLs sort last.
        pub order: Vec<(usize, bool)>,
        pub having: Having<'a>,
        pub limit: Option<usize>,
    }

    pub fn col(c: &'static str) -> Box<dyn Fn(&Rec) -> V> {
        Box::new(move |r: &Rec| match r.s(c) {
            Some(v) if v.bytes().all(|b| b.is_ascii_digit()) && !matches!(c, "account_id") => {
                V::I(v.parse().unwrap())
            }
            other => V::s(other),
        })
    }

    pub fn run(recs: &[Rec], q: Q) -> Vec<String> {
        let mut groups: HashMap<Vec<V>, Vec<&Rec>> = HashMap::new();
        for r in recs.iter().filter(|r| (q.filter)(r)) {
            groups
                .entry(q.keys.iter().map(|k| k(r)).collect())
                .or_default()
                .push(r);
        }
        let mut rows: Vec<Vec<V>> = groups
            .into_iter()
            .map(|(mut key, members)| {
                for agg in &q.aggs {
                    key.push(match agg {
                        Agg::Count => V::I(members.len() as i64),
                        Agg::Sum(c) => {
                            let vals: Vec<i64> = members.iter().filter_map(|r| r.i(c)).collect();
                            if vals.is_empty() {
                                V::Null
                            } else {
                                V::I(vals.iter().sum())
                            }
                        }
                        Agg::Distinct(c) => V::I(
                            members
                                .iter()
                                .filter_map(|r| r.s(c))
                                .collect::<BTreeSet<_>>()
                                .len() as i64,
                        ),
                        Agg::Min(c) => V::i(members.iter().filter_map(|r| r.i(c)).min()),
                        Agg::Max(c) => V::i(members.iter().filter_map(|r| r.i(c)).max()),
                    });
                }
                key
            })
            .filter(|row| q.having.as_ref().is_none_or(|h| h(row)))
            .collect();
        rows.sort_by(|a, b| {
            for &(i, desc) in &q.order {
                let ord = match (&a[i], &b[i]) {
                    (V::Null, V::Null) => std::cmp::Ordering::Equal,
                    (V::Null, _) => std::cmp::Ordering::Greater,
                    (_, V::Null) => std::cmp::Ordering::Less,
                    (x, y) if desc => y.cmp(x),
                    (x, y) => x.cmp(y),
                };
                if ord.is_ne() {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
        rows.truncate(q.limit.unwrap_or(usize::MAX));
        rows.iter()
            .map(|r| r.iter().map(V::csv).collect::<Vec<_>>().join(","))
            .collect()
    }

    pub fn private(addr: Option<&str>) -> Option<bool> {
        addr.and_then(|a| a.parse().ok()).map(flowlens::is_private)
    }
}

/// A generated day plus hand-made objects for what normal traffic rarely shows:
/// reject-reason values and a network ACL that drops return traffic.
fn query_archive() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = flowlens(&[
        "generate",
        "--out",
        dir.path().to_str().unwrap(),
        "--days",
        "1",
        "--enis",
        "7",
        "--end",
        "2026-10-15",
        "--object-minutes",
        "60",
        "--seed",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let extra = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status reject-reason flow-direction\n\
        10 123456789012 eni-fixture1 10.9.0.5 198.51.100.7 40001 443 6 5 500 1791950000 1791950010 ACCEPT OK - egress\n\
        10 123456789012 eni-fixture1 198.51.100.7 10.9.0.5 443 40001 6 4 4000 1791950000 1791950010 REJECT OK - ingress\n\
        10 123456789012 eni-fixture1 10.9.0.5 198.51.100.7 40002 443 6 5 500 1791950100 1791950110 ACCEPT OK - egress\n\
        10 123456789012 eni-fixture1 198.51.100.7 10.9.0.5 443 40002 6 4 4000 1791950100 1791950110 REJECT OK - ingress\n\
        10 123456789012 eni-fixture1 203.0.113.9 10.9.0.5 50000 22 6 1 40 1791950200 1791950201 REJECT OK BPA ingress\n\
        10 123456789012 eni-fixture1 203.0.113.9 10.9.0.5 50001 22 6 1 40 1791950300 1791950301 REJECT OK BPA ingress\n\
        10 123456789012 eni-fixture1 10.9.0.6 10.9.0.5 50002 5432 6 1 40 1791950300 1791950301 REJECT OK EC ingress\n";
    std::fs::write(dir.path().join("fixture.log"), extra).unwrap();
    dir
}

#[test]
fn named_queries_list_and_errors() {
    let out = flowlens(&["query", "--list"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("nacl_return_rejects\n    Stateless network ACL mistakes"),
        "{text}"
    );
    assert!(
        text.contains("--param addr (text, required): the source address"),
        "{text}"
    );
    assert_eq!(text.lines().filter(|l| !l.starts_with(' ')).count(), 24);

    let unknown = flowlens(&["query", "nope", "-s", "."]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("no such query; there are: accepted_tcp_traffic"));
    let missing = flowlens(&["query", "traffic_from_address", "-s", "."]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("needs --param addr=…"),
        "{}",
        stderr(&missing)
    );

    // A user's folder adds and overrides queries.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.sql"),
        "-- name: top_talkers\n-- description: mine\nSELECT 7 AS seven",
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let out = flowlens(&[
        "query",
        "top_talkers",
        "-s",
        d,
        "--queries-dir",
        d,
        "-o",
        "csv",
    ]);
    assert_eq!(stdout(&out), "seven\n7\n", "{}", stderr(&out));
}

#[test]
fn every_named_query_gives_the_right_answer() {
    use oracle::{Agg::*, Q, V, col, private, run};
    let dir = query_archive();
    let src = dir.path().to_str().unwrap().to_string();
    let recs = oracle::load(dir.path());
    assert!(recs.len() > 10_000);
    let flowlens_rows = |name: &str, params: &[&str]| -> Vec<String> {
        let mut args = vec!["query", name, "-s", &src, "-o", "csv"];
        for p in params {
            args.extend(["-p", p]);
        }
        let out = flowlens(&args);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        stdout(&out).lines().skip(1).map(str::to_string).collect()
    };
    let none = || -> oracle::Having<'static> { None };
    let desc_then_keys = |first: usize, keys: usize| -> Vec<(usize, bool)> {
        std::iter::once((first, true))
            .chain((0..keys).map(|k| (k, false)))
            .collect()
    };
    let web_client = recs
        .iter()
        .find(|r| r.is("dstport", "443") && private(r.s("srcaddr")) == Some(false))
        .and_then(|r| r.s("srcaddr"))
        .unwrap()
        .to_string();

    let checked = std::cell::Cell::new(0);
    let check = |name: &str, params: &[&str], q: Q| {
        let expected = run(&recs, q);
        assert_eq!(flowlens_rows(name, params), expected, "{name}");
        checked.set(checked.get() + 1);
        expected.len()
    };

    let n = check(
        "accepted_tcp_traffic",
        &[],
        Q {
            filter: Box::new(|r| r.is("action", "ACCEPT") && r.is("protocol", "6")),
            keys: vec![
                col("interface_id"),
                col("srcaddr"),
                col("dstaddr"),
                col("dstport"),
            ],
            aggs: vec![Count, Sum("packets"), Sum("bytes")],
            order: desc_then_keys(6, 4),
            having: none(),
            limit: Some(100),
        },
    );
    assert_eq!(n, 100);
    check(
        "admin_port_traffic",
        &["ports=22,3389"],
        Q {
            filter: Box::new(|r| matches!(r.s("dstport"), Some("22" | "3389"))),
            keys: vec![
                col("interface_id"),
                col("srcaddr"),
                col("dstaddr"),
                col("dstport"),
                col("action"),
            ],
            aggs: vec![Count, Sum("bytes")],
            order: desc_then_keys(5, 5),
            having: none(),
            limit: Some(100),
        },
    );
    let pair = |first: bool| -> Box<dyn Fn(&oracle::Rec) -> V> {
        Box::new(move |r| {
            let (a, b) = (r.s("srcaddr").unwrap(), r.s("dstaddr").unwrap());
            V::S(if (a < b) == first { a } else { b }.to_string())
        })
    };
    check(
        "bytes_per_pair",
        &[],
        Q {
            filter: Box::new(|r| r.s("srcaddr").is_some() && r.s("dstaddr").is_some()),
            keys: vec![pair(true), pair(false)],
            aggs: vec![Sum("bytes"), Count],
            order: desc_then_keys(2, 2),
            having: none(),
            limit: Some(50),
        },
    );
    // Cross-AZ: each address's zone from its interface's egress records.
    let zones: std::collections::HashMap<&str, &str> = recs
        .iter()
        .filter(|r| r.is("flow_direction", "egress") && private(r.s("srcaddr")) == Some(true))
        .filter_map(|r| Some((r.s("srcaddr")?, r.s("az_id")?)))
        .collect();
    let zone = &zones;
    let zone_of = |c: &'static str| -> Box<dyn Fn(&oracle::Rec) -> V + '_> {
        Box::new(move |r| V::s(r.s(c).and_then(|a| zone.get(a).copied())))
    };
    let n = check(
        "cross_az_traffic",
        &[],
        Q {
            filter: Box::new(|r| {
                let z = |c| r.s(c).and_then(|a| zone.get(a));
                r.is("flow_direction", "egress")
                    && z("srcaddr").is_some()
                    && z("dstaddr").is_some()
                    && z("srcaddr") != z("dstaddr")
            }),
            keys: vec![zone_of("srcaddr"), zone_of("dstaddr")],
            aggs: vec![Sum("bytes"), Count],
            order: desc_then_keys(2, 2),
            having: none(),
            limit: None,
        },
    );
    assert!(n > 0, "the generated estate has cross-AZ traffic");
    check(
        "egress_to_public",
        &[],
        Q {
            filter: Box::new(|r| {
                r.is("action", "ACCEPT")
                    && private(r.s("srcaddr")) == Some(true)
                    && private(r.s("dstaddr")) == Some(false)
            }),
            keys: vec![col("interface_id")],
            aggs: vec![Sum("bytes"), Distinct("dstaddr"), Count],
            order: desc_then_keys(1, 1),
            having: none(),
            limit: None,
        },
    );
    let admin: [&str; 11] = [
        "22", "3389", "1433", "1521", "3306", "5432", "5984", "6379", "9200", "11211", "27017",
    ];
    let n = check(
        "internet_exposed_admin_ports",
        &[],
        Q {
            filter: Box::new(move |r| {
                r.is("action", "ACCEPT")
                    && r.s("dstport").is_some_and(|p| admin.contains(&p))
                    && private(r.s("srcaddr")) == Some(false)
                    && private(r.s("dstaddr")) == Some(true)
            }),
            keys: vec![col("interface_id"), col("dstaddr"), col("dstport")],
            aggs: vec![
                Distinct("srcaddr"),
                Count,
                Sum("bytes"),
                Min("start"),
                Max("end"),
            ],
            order: vec![(3, true), (0, false), (2, false)],
            having: none(),
            limit: None,
        },
    );
    assert!(n > 0, "the bastion's SSH is reached from the office");
    for (name, sep) in [("ipv4_bytes", '.'), ("ipv6_bytes", ':')] {
        let n = check(
            name,
            &[],
            Q {
                filter: Box::new(move |r| r.s("srcaddr").is_some_and(|a| a.contains(sep))),
                keys: vec![col("interface_id")],
                aggs: vec![Count, Sum("bytes")],
                order: desc_then_keys(2, 1),
                having: none(),
                limit: None,
            },
        );
        assert!(n > 0, "{name}");
    }
    let status = |s: &'static str| -> Box<dyn Fn(&oracle::Rec) -> bool> {
        Box::new(move |r| r.is("log_status", s))
    };
    let health = run(
        &recs,
        Q {
            filter: Box::new(|_| true),
            keys: vec![col("interface_id")],
            aggs: vec![Min("start"), Max("end")],
            order: vec![(0, false)],
            having: none(),
            limit: None,
        },
    );
    let counts = |f: Box<dyn Fn(&oracle::Rec) -> bool>| {
        run(
            &recs,
            Q {
                filter: f,
                keys: vec![col("interface_id")],
                aggs: vec![Count],
                order: vec![(0, false)],
                having: none(),
                limit: None,
            },
        )
    };
    let (ok, nodata, skip) = (
        counts(status("OK")),
        counts(status("NODATA")),
        counts(status("SKIPDATA")),
    );
    let count_of = |rows: &[String], eni: &str| -> i64 {
        rows.iter()
            .find_map(|r| r.strip_prefix(&format!("{eni},")))
            .map_or(0, |n| n.parse().unwrap())
    };
    let mut expected: Vec<(i64, i64, String)> = Vec::new();
    let mut lines = Vec::new();
    for row in &health {
        let eni = row.split(',').next().unwrap().to_string();
        let rest = &row[eni.len() + 1..];
        let (o, n, s) = (
            count_of(&ok, &eni),
            count_of(&nodata, &eni),
            count_of(&skip, &eni),
        );
        expected.push((s, n, eni.clone()));
        lines.push((eni.clone(), format!("{eni},{o},{n},{s},{rest}")));
    }
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let expected: Vec<String> = expected
        .iter()
        .map(|(_, _, eni)| lines.iter().find(|(e, _)| e == eni).unwrap().1.clone())
        .collect();
    assert_eq!(flowlens_rows("log_health", &[]), expected, "log_health");
    checked.set(checked.get() + 1);

    // The fixture's ACL drops both replies from 198.51.100.7:443.
    assert_eq!(
        flowlens_rows("nacl_return_rejects", &[]),
        ["eni-fixture1,10.9.0.5,198.51.100.7,443,2,2"]
    );
    checked.set(checked.get() + 1);
    let nat_source = |r: &oracle::Rec| -> Option<String> {
        match (r.s("pkt_srcaddr"), r.s("srcaddr")) {
            (Some(p), Some(s)) if p != s => Some(p.to_string()),
            (_, s) => s.map(str::to_string),
        }
    };
    let n = check(
        "nat_gateway_top_consumers",
        &[],
        Q {
            filter: Box::new(move |r| {
                r.s("resource_id").is_some_and(|x| x.starts_with("nat-"))
                    && private(r.s("dstaddr")) == Some(false)
                    && private(nat_source(r).as_deref()) == Some(true)
            }),
            keys: vec![
                col("interface_id"),
                Box::new(move |r| V::s(nat_source(r).as_deref())),
            ],
            aggs: vec![Sum("bytes"), Distinct("dstaddr"), Count],
            order: desc_then_keys(2, 2),
            having: none(),
            limit: Some(20),
        },
    );
    assert!(n > 0);
    check(
        "noisiest_scanners",
        &[],
        Q {
            filter: Box::new(|r| {
                r.is("action", "REJECT") && private(r.s("srcaddr")) == Some(false)
            }),
            keys: vec![col("srcaddr")],
            aggs: vec![
                Count,
                Distinct("dstport"),
                Distinct("interface_id"),
                Min("start"),
                Max("end"),
            ],
            order: desc_then_keys(1, 1),
            having: none(),
            limit: Some(20),
        },
    );
    assert_eq!(
        flowlens_rows("reject_reasons", &[]),
        ["BPA,eni-fixture1,22,2,1", "EC,eni-fixture1,5432,1,1"]
    );
    checked.set(checked.get() + 1);
    check(
        "rejected_by_eni_port_hourly",
        &["min_flows=2"],
        Q {
            filter: Box::new(|r| r.is("action", "REJECT")),
            keys: vec![
                col("interface_id"),
                col("dstport"),
                Box::new(|r| V::i(r.i("end").map(|e| e / 3600 * 3600))),
            ],
            aggs: vec![Count, Distinct("srcaddr")],
            order: vec![(0, false), (1, false), (2, false)],
            having: Some(Box::new(|row| row[3] >= V::I(2))),
            limit: None,
        },
    );
    check(
        "rejected_tcp_traffic",
        &[],
        Q {
            filter: Box::new(|r| r.is("action", "REJECT") && r.is("protocol", "6")),
            keys: vec![col("interface_id"), col("srcaddr"), col("dstport")],
            aggs: vec![Count, Sum("packets")],
            order: desc_then_keys(3, 3),
            having: none(),
            limit: Some(100),
        },
    );
    check(
        "rejected_traffic",
        &[],
        Q {
            filter: Box::new(|r| r.is("action", "REJECT")),
            keys: vec![col("interface_id"), col("protocol"), col("dstport")],
            aggs: vec![Count, Distinct("srcaddr"), Sum("packets")],
            order: desc_then_keys(3, 3),
            having: none(),
            limit: Some(100),
        },
    );
    check(
        "ssh_rdp_traffic",
        &[],
        Q {
            filter: Box::new(|r| {
                matches!(r.s("dstport"), Some("22" | "3389")) && r.is("protocol", "6")
            }),
            keys: vec![
                col("interface_id"),
                col("srcaddr"),
                col("dstaddr"),
                col("dstport"),
                col("action"),
            ],
            aggs: vec![Count, Sum("bytes")],
            order: desc_then_keys(5, 5),
            having: none(),
            limit: Some(100),
        },
    );
    check(
        "top_talkers",
        &[],
        Q {
            filter: Box::new(|r| r.is("log_status", "OK")),
            keys: vec![col("srcaddr"), col("dstaddr")],
            aggs: vec![Sum("bytes"), Sum("packets"), Count],
            order: desc_then_keys(2, 2),
            having: none(),
            limit: Some(20),
        },
    );
    check(
        "top_talkers_packet_level",
        &[],
        Q {
            filter: Box::new(|r| r.s("pkt_srcaddr").is_some() && r.s("pkt_dstaddr").is_some()),
            keys: vec![col("pkt_srcaddr"), col("pkt_dstaddr")],
            aggs: vec![Sum("bytes"), Sum("packets"), Count],
            order: desc_then_keys(2, 2),
            having: none(),
            limit: Some(20),
        },
    );
    check(
        "top_talking_instances",
        &[],
        Q {
            filter: Box::new(|r| r.s("instance_id").is_some()),
            keys: vec![col("instance_id")],
            aggs: vec![Sum("bytes"), Sum("packets"), Count],
            order: desc_then_keys(1, 1),
            having: none(),
            limit: Some(20),
        },
    );
    check(
        "top_talking_subnets",
        &[],
        Q {
            filter: Box::new(|r| r.s("subnet_id").is_some()),
            keys: vec![col("subnet_id"), col("vpc_id")],
            aggs: vec![Sum("bytes"), Sum("packets"), Count],
            order: vec![(2, true), (0, false)],
            having: none(),
            limit: Some(20),
        },
    );
    let service = |r: &oracle::Rec| V::s(r.s("pkt_dst_aws_service").or(r.s("pkt_src_aws_service")));
    let n = check(
        "traffic_by_aws_service",
        &[],
        Q {
            filter: Box::new(move |r| service(r) != V::Null),
            keys: vec![col("interface_id"), Box::new(service)],
            aggs: vec![Sum("bytes"), Count],
            order: desc_then_keys(2, 2),
            having: none(),
            limit: None,
        },
    );
    assert!(n > 0);
    let client = web_client.clone();
    let n = check(
        "traffic_from_address",
        &[&format!("addr={web_client}")],
        Q {
            filter: Box::new(move |r| r.s("srcaddr") == Some(client.as_str())),
            keys: vec![
                col("interface_id"),
                col("dstaddr"),
                col("dstport"),
                col("protocol"),
                col("action"),
            ],
            aggs: vec![Count, Sum("bytes"), Min("start"), Max("end")],
            order: desc_then_keys(6, 5),
            having: none(),
            limit: Some(100),
        },
    );
    assert!(n > 0);
    let client = web_client.clone();
    check(
        "traffic_to_address",
        &[&format!("addr={web_client}")],
        Q {
            filter: Box::new(move |r| r.s("dstaddr") == Some(client.as_str())),
            keys: vec![
                col("interface_id"),
                col("srcaddr"),
                col("dstport"),
                col("protocol"),
                col("action"),
            ],
            aggs: vec![Count, Sum("bytes"), Min("start"), Max("end")],
            order: desc_then_keys(6, 5),
            having: none(),
            limit: Some(100),
        },
    );
    assert_eq!(checked.get(), 24, "every query in the library is checked");
}

// ---------------------------------------------------------------------------------------
// S3: a real S3-compatible server (s3s-fs) on 127.0.0.1, spoken to through aws-sdk-s3 with
// signed requests. Each test starts its own server on its own port and data folder; the
// server is built once (cargo install into target/tools) and stopped when the test ends.

mod s3 {
    use std::net::{TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Output, Stdio};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    pub const KEY: &str = "flowlens-test-key";
    pub const SECRET: &str = "flowlens-test-secret-0123456789";

    fn target_dir() -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
    }

    /// The s3s-fs binary, installed on first use. A failed install fails the tests.
    fn binary() -> &'static Path {
        static BINARY: OnceLock<PathBuf> = OnceLock::new();
        BINARY.get_or_init(|| {
            let root = target_dir().join("tools");
            let bin = root.join("bin").join("s3s-fs");
            if !bin.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let out = Command::new(cargo)
                    .args([
                        "install",
                        "s3s-fs@0.14.1",
                        "--features",
                        "binary",
                        "--locked",
                        "--root",
                    ])
                    .arg(&root)
                    .arg("--target-dir")
                    .arg(target_dir().join("tools-build"))
                    .output()
                    .expect("cargo runs");
                assert!(
                    out.status.success() && bin.exists(),
                    "installing s3s-fs failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            bin
        })
    }

    pub struct Server {
        child: Child,
        pub endpoint: String,
        pub root: tempfile::TempDir,
    }

    impl Server {
        pub fn start() -> Server {
            let root = tempfile::tempdir().unwrap();
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new(binary())
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", KEY, "--secret-key", SECRET])
                .arg(root.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("s3s-fs starts");
            let server = Server {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
                root,
            };
            let started = Instant::now();
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "s3s-fs did not start listening on 127.0.0.1:{port}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            server
        }

        /// A bucket is a folder of the server's data directory; objects are files in it.
        pub fn bucket(&self, name: &str) -> PathBuf {
            let dir = self.root.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }

        pub fn command(&self, args: &[&str]) -> Command {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowlens"));
            cmd.args(args)
                .env_remove("FLOWLENS_SOURCE")
                .env("AWS_ACCESS_KEY_ID", KEY)
                .env("AWS_SECRET_ACCESS_KEY", SECRET)
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ENDPOINT_URL", &self.endpoint)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("HOME", std::env::temp_dir());
            cmd
        }

        pub fn run(&self, args: &[&str]) -> Output {
            self.command(args).output().expect("flowlens runs")
        }

        pub fn stop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop();
        }
    }

    /// The number before `words` in flowlens's `-v` report, e.g. `12 objects selected`.
    pub fn number_before(text: &str, words: &str) -> u64 {
        text.split(words)
            .next()
            .filter(|head| head.len() < text.len())
            .and_then(|head| head.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `{words}` in: {text}"))
    }

    /// The number after `word` in flowlens's `-v` report, e.g. `read 12 objects`.
    pub fn number_after(text: &str, word: &str) -> u64 {
        text.split(word)
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `{word}` in: {text}"))
    }
}

fn generate_into(dir: &Path, args: &[&str]) {
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

/// A store as strict as many S3-compatible ones (older MinIO and Ceph, B2, GCS's XML API):
/// it refuses uploads that carry the SDK's newer checksum headers or aws-chunked trailers,
/// and takes any other PutObject. Returns its endpoint and the requests it saw.
fn strict_store() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line.to_ascii_lowercase());
                }
                if head.is_empty() {
                    break;
                }
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    break;
                }
                let refused = head.contains("x-amz-checksum-")
                    || head.contains("x-amz-sdk-checksum-algorithm")
                    || head.contains("x-amz-trailer")
                    || head.contains("aws-chunked");
                log.lock().unwrap().push(head);
                let reply = if refused {
                    let xml = "<Error><Code>InvalidArgument</Code><Message>unsupported checksum header</Message></Error>";
                    format!(
                        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{xml}",
                        xml.len()
                    )
                } else {
                    "HTTP/1.1 200 OK\r\nETag: \"0\"\r\nContent-Length: 0\r\n\r\n".to_string()
                };
                if stream.write_all(reply.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (endpoint, seen)
}

#[test]
fn uploads_to_a_custom_endpoint_carry_no_checksums_it_may_refuse() {
    let (endpoint, seen) = strict_store();
    let src = sample_logs();
    let out = Command::new(env!("CARGO_BIN_EXE_flowlens"))
        .args([
            "sql",
            "SELECT action, count(*) FROM flows GROUP BY 1",
            "-s",
            &src,
            "-o",
            "csv",
            "--out",
            "s3://results/actions.csv",
            "--endpoint-url",
            &endpoint,
        ])
        .env_remove("FLOWLENS_SOURCE")
        .env_remove("AWS_REQUEST_CHECKSUM_CALCULATION")
        .env_remove("AWS_RESPONSE_CHECKSUM_VALIDATION")
        .env("AWS_ACCESS_KEY_ID", s3::KEY)
        .env("AWS_SECRET_ACCESS_KEY", s3::SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|h| h.starts_with("put /results/actions.csv")),
        "{seen:?}"
    );
}

#[test]
fn s3_listing_paginates_prunes_by_layout_and_matches_local() {
    let server = s3::Server::start();
    let bucket = server.bucket("logs");
    // One-minute objects: 1,440 keys in one day folder, so listing must paginate.
    generate_into(
        &bucket,
        &[
            "--days",
            "1",
            "--enis",
            "1",
            "--default-format-only",
            "--object-minutes",
            "1",
        ],
    );
    let local = csv_rows(
        &[bucket.to_str().unwrap()],
        &[],
        "SELECT count(*), sum(bytes) FROM flows",
    );
    let keys = walk(&bucket).len() as u64;
    assert!(keys > 1000, "{keys} keys");

    let out = server.run(&[
        "sql",
        "SELECT count(*), sum(bytes) FROM flows",
        "-s",
        "s3://logs/",
        "-o",
        "csv",
        "-v",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().nth(1).map(str::to_string),
        local.first().cloned()
    );
    let err = stderr(&out);
    assert_eq!(
        s3::number_before(&err, " objects selected"),
        keys,
        "objects selected: {err}"
    );
    assert_eq!(s3::number_after(&err, "read "), keys, "{err}");
    // AWSLogs/, acct/, vpcflowlogs/, region/, 2026/, 10/, and two pages of 14/.
    assert!(s3::number_after(&err, "seen; ") >= 8, "{err}");

    // Two hours: only those objects (plus an hour of late-delivery slack) are read.
    let window = [
        "--since",
        "2026-10-14T06:00:00Z",
        "--until",
        "2026-10-14T08:00:00Z",
    ];
    let mut args = vec![
        "sql",
        "SELECT count(*) FROM flows",
        "-s",
        "s3://logs/AWSLogs/",
        "-o",
        "csv",
        "-v",
    ];
    args.extend(window);
    let out = server.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let read = s3::number_after(&err, "read ");
    assert!((120..=260).contains(&read), "read {read} objects: {err}");
    let expected = csv_rows(
        &[bucket.to_str().unwrap()],
        &window,
        "SELECT count(*) FROM flows",
    );
    assert_eq!(
        stdout(&out).lines().nth(1).map(str::to_string),
        expected.first().cloned()
    );

    // Another account or day is not even listed below its folder.
    let out = server.run(&[
        "sql",
        "SELECT count(*) FROM flows",
        "-s",
        "s3://logs/",
        "-o",
        "csv",
        "-v",
        "--account",
        "999999999999",
    ]);
    let err = stderr(&out);
    assert_eq!(s3::number_before(&err, " objects selected"), 0, "{err}");
    assert_eq!(s3::number_after(&err, "seen; "), 2, "{err}");
}

#[test]
fn s3_hive_layout_hourly_folders_are_pruned() {
    let server = s3::Server::start();
    let bucket = server.bucket("hive");
    generate_into(
        &bucket,
        &[
            "--days",
            "2",
            "--enis",
            "3",
            "--layout",
            "hive",
            "--object-minutes",
            "15",
        ],
    );
    let total = count_records(&bucket);
    let out = server.run(&[
        "sql",
        "SELECT count(*) FROM flows",
        "-s",
        "s3://hive",
        "-o",
        "csv",
        "-v",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().nth(1),
        Some(total.to_string().as_str())
    );
    let all_objects = s3::number_before(&stderr(&out), " objects selected");

    let out = server.run(&[
        "sql",
        "SELECT count(*) FROM flows",
        "-s",
        "s3://hive/AWSLogs",
        "-o",
        "csv",
        "-v",
        "--since",
        "2026-10-14T10:00:00Z",
        "--until",
        "2026-10-14T11:00:00Z",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let seen = s3::number_after(&err, "of ");
    // Hours 09-11 are listed (late-delivery slack), the other 45 hour folders are not.
    assert!(
        seen > 0 && seen * 8 < all_objects,
        "saw {seen} of {all_objects} objects: {err}"
    );
}

#[test]
fn s3_parquet_outputs_and_objects_round_trip() {
    let server = s3::Server::start();
    let bucket = server.bucket("lake");
    let dir = mixed_folder();
    let src = dir.path().to_str().unwrap();
    let out = server.run(&[
        "sql",
        "SELECT * FROM flows",
        "-s",
        src,
        "-o",
        "parquet",
        "--out",
        "s3://lake/converted/all.parquet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        bucket.join("converted/all.parquet").exists(),
        "uploaded through the S3 API"
    );
    let q = "SELECT interface_id, count(*), sum(bytes), count(tcp_flags) FROM flows GROUP BY 1 ORDER BY 1";
    let from_s3 = server.run(&["sql", q, "-s", "s3://lake/converted/", "-o", "csv"]);
    assert!(from_s3.status.success(), "{}", stderr(&from_s3));
    let local: Vec<String> = csv_rows(&[src], &[], q);
    let remote: Vec<String> = stdout(&from_s3)
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    assert_eq!(remote, local);
    // CSV results can go to S3 too.
    let out = server.run(&[
        "sql",
        "SELECT count(*) AS n FROM flows",
        "-s",
        src,
        "-o",
        "csv",
        "--out",
        "s3://lake/results/n.csv",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(bucket.join("results/n.csv")).unwrap(),
        "n\n9\n"
    );
}

#[test]
fn s3_corrupt_object_is_named_and_the_others_finish() {
    let server = s3::Server::start();
    let bucket = server.bucket("mixed");
    let dir = mixed_folder();
    for name in ["a.log", "b.log.gz", "c.txt"] {
        std::fs::copy(dir.path().join(name), bucket.join(name)).unwrap();
    }
    let mut broken = gzip(format!("{V2_HEADER}\n").repeat(5000).as_bytes());
    broken.truncate(broken.len() / 2);
    std::fs::write(bucket.join("broken.log.gz"), broken).unwrap();
    let out = server.run(&[
        "sql",
        "SELECT count(*) FROM flows",
        "-s",
        "s3://mixed/",
        "-o",
        "csv",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().nth(1), Some("9"));
    assert!(
        stderr(&out).contains("s3://mixed/broken.log.gz:"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn s3_missing_bucket_and_wrong_credentials_are_clear_errors() {
    let server = s3::Server::start();
    server.bucket("real");
    let out = server.run(&[
        "sql",
        "SELECT count(*) FROM flows",
        "-s",
        "s3://nosuchbucket/x/",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("s3://nosuchbucket/x/: no such bucket"),
        "{}",
        stderr(&out)
    );

    let out = server
        .command(&[
            "sql",
            "SELECT count(*) FROM flows",
            "-s",
            "s3://real/",
            "-vv",
        ])
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret-at-all")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("s3://real/: the credentials were refused"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-secret-at-all") && !err.contains(s3::SECRET),
        "no secret in logs"
    );
}

#[test]
fn s3_server_going_away_mid_run_is_an_error_not_a_hang() {
    use std::io::BufRead;
    let mut server = s3::Server::start();
    let bucket = server.bucket("gone");
    generate_into(
        &bucket,
        &[
            "--days",
            "1",
            "--enis",
            "2",
            "--default-format-only",
            "--object-minutes",
            "1",
        ],
    );
    let mut child = server
        .command(&[
            "sql",
            "SELECT count(*) FROM flows",
            "-s",
            "s3://gone/",
            "-v",
            "--s3-concurrency",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    // Listing is done once the selection is reported; then the server goes away.
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("objects selected") {}
    assert!(line.contains("objects selected"), "{line}");
    server.stop();
    let started = std::time::Instant::now();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "flowlens hung"
    );
    assert!(!status.success(), "{rest}");
    assert!(
        rest.contains("s3://gone/"),
        "the failure names the object: {rest}"
    );
    eprintln!(
        "after the server went away ({:.1} s):\n{rest}",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------
// Detection: every kind found in its scenario, quiet on normal traffic, the CLI contract.

const KINDS: [&str; 10] = [
    "port_scan",
    "brute_force",
    "dos",
    "exfiltration",
    "volume_spike",
    "unusual_port",
    "new_peer",
    "beaconing",
    "nacl_return_reject",
    "reject_spike",
];

/// Fifteen days of a seven-interface estate: fourteen of baseline, then the day examined.
fn estate(dir: &Path, incidents: bool) {
    let mut args = vec!["--days", "15", "--enis", "7", "--object-minutes", "60"];
    if incidents {
        args.push("--incidents");
    }
    generate_into(dir, &args);
}

#[test]
fn detection_finds_every_labelled_incident_and_is_quiet_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    estate(dir.path(), true);
    let out = flowlens(&["evaluate", "-s", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for kind in KINDS {
        assert!(
            text.contains(&format!("| {kind} | 1 | 1 | 0 |")),
            "{kind} not found cleanly:\n{text}"
        );
    }
    assert!(text.contains("recall 10/10;"), "{text}");
    assert!(
        text.contains(" 0 false alarms over 7 interface-days"),
        "{text}"
    );

    // The same estate without incidents: nothing to report.
    let clean = tempfile::tempdir().unwrap();
    estate(clean.path(), false);
    let out = flowlens(&[
        "detect",
        "-s",
        clean.path().to_str().unwrap(),
        "-o",
        "jsonl",
        "--fail-on",
        "low",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out), "", "findings on clean traffic");
    assert!(
        stderr(&out).contains("0 findings for 7 interfaces"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn detect_cli_contract_jsonl_ocsf_and_fail_on() {
    let dir = tempfile::tempdir().unwrap();
    estate(dir.path(), true);
    let src = dir.path().to_str().unwrap();
    let out = flowlens(&["detect", "-s", src, "-o", "jsonl", "--fail-on", "critical"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a critical finding exits 4: {}",
        stderr(&out)
    );
    let findings: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert!(findings.len() >= 10);
    let mut kinds = std::collections::BTreeSet::new();
    for f in &findings {
        let id = f["finding_id"].as_str().unwrap();
        assert!(
            id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{f}"
        );
        let kind = f["kind"].as_str().unwrap();
        assert!(KINDS.contains(&kind), "{f}");
        kinds.insert(kind.to_string());
        assert!(["low", "medium", "high", "critical"].contains(&f["severity"].as_str().unwrap()));
        assert!(f["interface_id"].as_str().unwrap().starts_with("eni-"));
        assert_eq!(f["account_id"], "123456789012");
        for t in ["window_start", "window_end"] {
            let text = f[t].as_str().unwrap();
            assert!(
                chrono::DateTime::parse_from_rfc3339(text).is_ok() && text.ends_with('Z'),
                "{f}"
            );
        }
        assert!(f["score"].is_number() && !f["summary"].as_str().unwrap().is_empty());
        let evidence = f["evidence"].as_object().unwrap();
        for key in ["observed", "baseline", "remote_addrs", "ports"] {
            assert!(evidence.contains_key(key), "evidence lacks {key}: {f}");
        }
        assert!(
            evidence["remote_addrs"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "{f}"
        );
    }
    assert_eq!(kinds.len(), 10, "{kinds:?}");
    // The same run gives the same ids.
    let again = flowlens(&["detect", "-s", src, "-o", "jsonl"]);
    assert_eq!(stdout(&again), stdout(&out));

    let ocsf = flowlens(&["detect", "-s", src, "-o", "ocsf", "--fail-on", "critical"]);
    assert_eq!(ocsf.status.code(), Some(4));
    let events: Vec<serde_json::Value> = stdout(&ocsf)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), findings.len());
    for (e, f) in events.iter().zip(&findings) {
        assert_eq!(e["class_uid"], 2004);
        assert_eq!(e["category_uid"], 2);
        assert_eq!(e["activity_id"], 1);
        assert_eq!(e["type_uid"], 200401);
        let sev = ["low", "medium", "high", "critical"]
            .iter()
            .position(|s| *s == f["severity"].as_str().unwrap())
            .unwrap() as u64;
        assert_eq!(e["severity_id"].as_u64(), Some(sev + 2));
        assert_eq!(e["finding_info"]["uid"], f["finding_id"]);
        assert_eq!(e["finding_info"]["types"][0], f["kind"]);
        assert_eq!(e["metadata"]["product"]["name"], "flowlens");
        assert!(
            e["time"].as_i64().unwrap() > 1_700_000_000_000,
            "milliseconds"
        );
        assert_eq!(e["resources"][0]["uid"], f["interface_id"]);
        assert_eq!(e["cloud"]["provider"], "AWS");
    }

    let list = flowlens(&["detect", "--list-params"]);
    assert!(
        stdout(&list).contains("port_scan.min_ports = 15\n"),
        "{}",
        stdout(&list)
    );
    let bad = flowlens(&["detect", "-s", src, "-p", "port_scan.nope=1"]);
    assert_eq!(bad.status.code(), Some(2));
    // Thresholds change what is found: a port scan needs 500 ports now.
    let strict = flowlens(&[
        "detect",
        "-s",
        src,
        "-o",
        "jsonl",
        "-p",
        "port_scan.min_ports=500",
    ]);
    assert!(!stdout(&strict).contains("\"kind\":\"port_scan\""));
}

/// The file of a stored baseline's table (`history`, `peers` or `ports`) that its pointer
/// names.
fn baseline_table(dir: &Path, table: &str) -> PathBuf {
    let pointer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("baseline.json")).unwrap()).unwrap();
    let version = pointer["version"].as_u64().unwrap();
    dir.join(format!("v{version}/{table}.parquet"))
}

/// The median of one interface's weekday hour-of-day slot in a stored baseline's hourly
/// history, as detection computes it.
fn slot_median(dir: &Path, eni: &str, metric: &str, hod: i64) -> f64 {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, Int64Type};
    let file = std::fs::File::open(baseline_table(dir, "history")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut values = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = |n: &str| batch.column_by_name(n).unwrap().clone();
        let (ids, metrics) = (col("interface_id"), col("metric"));
        let (hods, weekend, value) = (col("hod"), col("weekend"), col("value"));
        for i in 0..batch.num_rows() {
            if ids.as_string::<i32>().value(i) == eni
                && metrics.as_string::<i32>().value(i) == metric
                && hods.as_primitive::<Int64Type>().value(i) == hod
                && !weekend.as_boolean().value(i)
            {
                values.push(value.as_primitive::<Float64Type>().value(i));
            }
        }
    }
    assert!(!values.is_empty(), "no {metric} slot {hod} for {eni}");
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n % 2 {
        1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[test]
fn baseline_is_robust_to_an_outlier_hour_and_stored_baselines_detect_alike() {
    let dir = tempfile::tempdir().unwrap();
    estate(dir.path(), true);
    let src = dir.path().to_str().unwrap();
    let labels = std::fs::read_to_string(dir.path().join("labels.jsonl")).unwrap();
    let dos: serde_json::Value = labels
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .find(|l: &serde_json::Value| l["kind"] == "dos")
        .unwrap();
    let web = dos["interface_id"].as_str().unwrap().to_string();
    let baseline_window = [
        "--since",
        "2026-09-30T00:00:00Z",
        "--until",
        "2026-10-14T00:00:00Z",
    ];

    let clean = dir.path().join("baseline-clean");
    let mut args = vec!["baseline", "-s", src, "--out", clean.to_str().unwrap()];
    args.extend(baseline_window);
    let out = flowlens(&args);
    assert!(out.status.success(), "{}", stderr(&out));

    // One outlier hour on a weekday at 14:00: a hundred times the usual inbound flows.
    let outlier_dir = tempfile::tempdir().unwrap();
    let mut text = format!("{V2_HEADER}\n");
    for i in 0..20_000 {
        let t = 1_791_036_000 + (i % 3000); // 2026-10-05T14:00Z, a Monday
        text.push_str(&format!(
            "2 123456789012 {web} 49.1.{}.{} 10.0.0.10 40000 443 6 3 180 {t} {} ACCEPT OK\n",
            i / 250,
            i % 250,
            t + 5
        ));
    }
    std::fs::write(outlier_dir.path().join("outlier.log"), text).unwrap();
    let with_outlier = dir.path().join("baseline-outlier");
    let mut args = vec![
        "baseline",
        "-s",
        src,
        "-s",
        outlier_dir.path().to_str().unwrap(),
        "--out",
        with_outlier.to_str().unwrap(),
    ];
    args.extend(baseline_window);
    let out = flowlens(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = slot_median(&clean, &web, "in_flows", 14);
    let after = slot_median(&with_outlier, &web, "in_flows", 14);
    assert!(before > 50.0, "{before}");
    assert!(
        (after - before).abs() <= 0.25 * before,
        "one outlier hour moved the median from {before} to {after}"
    );

    // Detection with the stored baseline finds the same kinds as with a learnt one.
    let window = [
        "--since",
        "2026-10-14T00:00:00Z",
        "--until",
        "2026-10-15T00:00:00Z",
    ];
    let kinds = |extra: &[&str]| -> std::collections::BTreeSet<String> {
        let mut args = vec!["detect", "-s", src, "-o", "jsonl"];
        args.extend(window);
        args.extend(extra);
        let out = flowlens(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let learnt = kinds(&[]);
    assert_eq!(learnt.len(), 10, "{learnt:?}");
    assert_eq!(
        kinds(&["--baseline", with_outlier.to_str().unwrap()]),
        learnt
    );
}

/// Every row of a Parquet file as text, sorted: two tables are equal when these are.
fn parquet_rows(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let mut names: Vec<usize> = (0..batch.num_columns()).collect();
        names.sort_by_key(|&c| batch.schema().field(c).name().clone());
        for i in 0..batch.num_rows() {
            let cells: Vec<String> = names
                .iter()
                .map(|&c| arrow::util::display::array_value_to_string(batch.column(c), i).unwrap())
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows.sort();
    rows
}

fn pointer(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("baseline.json")).unwrap()).unwrap()
}

#[test]
fn a_baseline_extended_day_by_day_equals_one_learnt_at_once_and_no_day_is_folded_twice() {
    let dir = tempfile::tempdir().unwrap();
    let src_dir = dir.path().join("logs");
    generate_into(
        &src_dir,
        &["--days", "4", "--enis", "3", "--object-minutes", "60"],
    );
    let src = src_dir.to_str().unwrap();
    let (d0, d2, d4) = (
        "2026-10-11T00:00:00Z",
        "2026-10-13T00:00:00Z",
        "2026-10-15T00:00:00Z",
    );
    let whole = dir.path().join("whole");
    let out = flowlens(&[
        "baseline",
        "-s",
        src,
        "--since",
        d0,
        "--until",
        d4,
        "--out",
        whole.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let part = dir.path().join("part");
    let out = flowlens(&[
        "baseline",
        "-s",
        src,
        "--since",
        d0,
        "--until",
        d2,
        "--out",
        part.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        pointer(&part)["covered"],
        serde_json::json!([[1_791_676_800i64, 1_791_849_600i64]])
    );
    // Extending it: from where it ends (no --since) to the end asked for.
    let out = flowlens(&[
        "baseline",
        "-s",
        src,
        "--until",
        d4,
        "--update",
        part.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("covers 2026-10-11T00:00:00Z to 2026-10-15T00:00:00Z"),
        "{}",
        stderr(&out)
    );
    for table in ["history", "peers", "ports"] {
        let (a, b) = (
            parquet_rows(&baseline_table(&whole, table)),
            parquet_rows(&baseline_table(&part, table)),
        );
        assert!(!a.is_empty(), "{table}");
        assert_eq!(
            a, b,
            "{table} differs between the whole baseline and the extended one"
        );
    }
    // The old version's tables are gone; the pointer names the new.
    let version = pointer(&part)["version"].as_u64().unwrap();
    assert!(
        !part
            .join(format!("v{}", version - 1))
            .join("history.parquet")
            .exists()
    );
    // Asking again for days it covers folds nothing and writes nothing.
    let out = flowlens(&[
        "baseline",
        "-s",
        src,
        "--since",
        d0,
        "--until",
        d4,
        "--update",
        part.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing new to fold"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pointer(&part)["version"].as_u64(), Some(version));
    // Without --until an update stops before the latest record's hour, which may still be
    // filling: the data ends at d4, so there is nothing new.
    let out = flowlens(&["baseline", "-s", src, "--update", part.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        pointer(&part)["version"].as_u64(),
        Some(version),
        "{}",
        stderr(&out)
    );
    // Detection against either finds the same.
    let found = |base: &Path| {
        let out = flowlens(&[
            "detect",
            "-s",
            src,
            "-o",
            "jsonl",
            "--since",
            "2026-10-14T00:00:00Z",
            "--baseline",
            base.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(found(&whole), found(&part));
}

#[test]
fn a_damaged_or_foreign_baseline_names_the_file_and_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let src = sample_logs();
    let out = flowlens(&[
        "baseline",
        "-s",
        &src,
        "--until",
        "2026-10-30T00:00:00Z",
        "--out",
        base.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A damaged table: detection and --update both stop, naming it and the way out.
    let peers = baseline_table(&base, "peers");
    std::fs::write(&peers, b"PAR1 not really").unwrap();
    for args in [
        vec!["detect", "-s", &src, "--baseline", base.to_str().unwrap()],
        vec!["baseline", "-s", &src, "--update", base.to_str().unwrap()],
    ] {
        let out = flowlens(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&peers.display().to_string()), "{err}");
        assert!(
            err.contains("build it again with `flowlens baseline"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&peers).unwrap(), b"PAR1 not really");
    // A baseline of flowlens before day-by-day baselines (format 1: no format field).
    let old = dir.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(
        old.join("baseline.json"),
        r#"{"since":1,"until":2,"interfaces":3,"flowlens_version":"0.1.0"}"#,
    )
    .unwrap();
    let out = flowlens(&["baseline", "-s", &src, "--update", old.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("a baseline in format 1 (written by flowlens 0.1.0)"),
        "{}",
        stderr(&out)
    );
    // --out replaces it with a whole new one.
    let out = flowlens(&["baseline", "-s", &src, "--out", old.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pointer(&old)["format"], 2);
}

#[test]
fn a_baseline_on_s3_detects_like_one_on_disk() {
    let server = s3::Server::start();
    let bucket = server.bucket("logs");
    server.bucket("state");
    let src = sample_logs();
    reliability::copy_tree(Path::new(&src), &bucket);
    let local = tempfile::tempdir().unwrap();
    let until = ["--until", "2026-10-31T00:00:00Z"];
    let mut args = vec!["baseline", "-s", "s3://logs/", "--out", "s3://state/base/"];
    args.extend(until);
    let out = server.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut args = vec![
        "baseline",
        "-s",
        &src,
        "--out",
        local.path().to_str().unwrap(),
    ];
    args.extend(until);
    let out = flowlens(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let on_s3 = server.root.path().join("state").join("base");
    for table in ["history", "peers", "ports"] {
        assert_eq!(
            parquet_rows(&baseline_table(&on_s3, table)),
            parquet_rows(&baseline_table(local.path(), table)),
            "{table}"
        );
    }
    let detect = server.run(&[
        "detect",
        "-s",
        "s3://logs/",
        "-o",
        "jsonl",
        "--baseline",
        "s3://state/base/",
    ]);
    assert!(detect.status.success(), "{}", stderr(&detect));
    let here = flowlens(&[
        "detect",
        "-s",
        &src,
        "-o",
        "jsonl",
        "--baseline",
        local.path().to_str().unwrap(),
    ]);
    assert!(here.status.success(), "{}", stderr(&here));
    assert_eq!(stdout(&detect), stdout(&here));
    assert!(!stdout(&here).is_empty());
}

// ---------------------------------------------------------------------------------------
// Convert: Parquet that answers like the text, laid out like AWS's, the same every time.

fn file_digests(dir: &Path) -> Vec<(String, u64, Vec<u8>)> {
    let mut files: Vec<(String, u64, Vec<u8>)> = walk(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (
                p.strip_prefix(dir).unwrap().display().to_string(),
                bytes.len() as u64,
                bytes,
            )
        })
        .collect();
    files.sort();
    files
}

/// The remote peers (address, side offering the service) a stored baseline holds for `eni`.
fn baseline_peers(dir: &Path, eni: &str) -> std::collections::BTreeSet<(String, String)> {
    use arrow::array::AsArray;
    let file = std::fs::File::open(baseline_table(dir, "peers")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut peers = std::collections::BTreeSet::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = |n: &str| batch.column_by_name(n).unwrap().clone();
        let (ids, remotes, sides) = (col("interface_id"), col("remote"), col("service_side"));
        for i in 0..batch.num_rows() {
            if ids.as_string::<i32>().value(i) == eni {
                peers.insert((
                    remotes.as_string::<i32>().value(i).to_string(),
                    sides.as_string::<i32>().value(i).to_string(),
                ));
            }
        }
    }
    peers
}

#[test]
fn a_busy_peer_is_not_taken_for_the_interfaces_own_address() {
    // Default format (no flow-direction): a server at 10.0.0.5 behind a load balancer node
    // (10.0.1.9) that is in 60% of its records, plus a few direct clients. The balancer is a
    // peer the server offers port 443 to, not a second address of the server's own.
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("{V2_HEADER}\n");
    let mut record = |src: &str, dst: &str, sport: u32, dport: u32, t: i64| {
        text.push_str(&format!(
            "2 123456789012 eni-0server {src} {dst} {sport} {dport} 6 10 5000 {t} {} ACCEPT OK\n",
            t + 30
        ));
    };
    for hour in 0..30i64 {
        let t = 1_791_000_000 + hour * 3600;
        for i in 0..6 {
            record(
                "10.0.1.9",
                "10.0.0.5",
                40_000 + i,
                443,
                t + 60 * i64::from(i),
            );
            record(
                "10.0.0.5",
                "10.0.1.9",
                443,
                40_000 + i,
                t + 60 * i64::from(i),
            );
        }
        for i in 0..4 {
            let client = format!("10.0.2.{}", (hour * 4 + i64::from(i)) % 200 + 1);
            record(&client, "10.0.0.5", 50_000 + i, 443, t + 900);
            record("10.0.0.5", &client, 443, 50_000 + i, t + 900);
        }
    }
    std::fs::write(dir.path().join("server.log"), text).unwrap();
    let out = dir.path().join("baseline");
    let run = flowlens(&[
        "baseline",
        "-s",
        dir.path().join("server.log").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let peers = baseline_peers(&out, "eni-0server");
    assert!(
        peers.contains(&("10.0.1.9".to_string(), "local".to_string())),
        "{peers:?}"
    );
    assert!(
        peers.iter().all(|(remote, _)| remote != "10.0.0.5"),
        "the server's own address became a peer: {peers:?}"
    );
}

#[test]
fn detect_without_a_window_reads_only_the_days_it_needs() {
    // 18 days of hourly objects: the last day is examined and the 14 before it learnt from,
    // so the first three days' objects need not be read at all.
    let dir = tempfile::tempdir().unwrap();
    generate_into(
        dir.path(),
        &["--days", "18", "--enis", "4", "--object-minutes", "60"],
    );
    let src = dir.path().to_str().unwrap();
    let out = flowlens(&["detect", "-s", src, "-o", "jsonl", "-v"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let selected = stderr(&out)
        .lines()
        .find_map(|l| {
            let (count, rest) = l.split_once(" objects selected")?;
            let seen = rest.split_once(" of ")?.1.split_once(" seen")?.0;
            Some((
                count.rsplit(' ').next()?.parse::<u64>().ok()?,
                seen.parse::<u64>().ok()?,
            ))
        })
        .unwrap_or_else(|| panic!("{}", stderr(&out)));
    // Objects are hourly: the 15 days needed (and an hour of slack for late delivery) are
    // at most 16 of the 18 days' objects.
    assert!(selected.0 * 18 <= selected.1 * 16, "{selected:?}");
    // The same findings as with the window given, which lists exactly those days.
    let given = flowlens(&[
        "detect",
        "-s",
        src,
        "-o",
        "jsonl",
        "--since",
        "2026-10-14T00:00:00Z",
        "--until",
        "2026-10-15T00:00:00Z",
    ]);
    assert!(given.status.success(), "{}", stderr(&given));
    assert_eq!(stdout(&out), stdout(&given));
    assert!(
        stderr(&out).contains("2026-10-14T00:00:00Z to 2026-10-15T00:00:00Z (baseline 2026-09-30"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn baseline_without_since_covers_the_data_from_its_first_hour() {
    let src = sample_logs();
    let out = tempfile::tempdir().unwrap();
    let run = flowlens(&[
        "baseline",
        "-s",
        &src,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("baseline.json")).unwrap())
            .unwrap();
    let first = csv_rows(
        &[&src],
        &[],
        "SELECT min(\"end\") / 3600 * 3600 FROM flows WHERE interface_id IS NOT NULL",
    );
    assert_eq!(meta["since"].to_string(), first[0], "{meta}");
    assert!(stderr(&run).contains("from 2026-10-"), "{}", stderr(&run));
}

#[test]
fn convert_gives_the_same_answers_deterministic_files_and_shards() {
    let src = sample_logs();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("parquet");
    let run = flowlens(&["convert", "-s", &src, "--out", dir.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("converted 504 objects"),
        "{}",
        stderr(&run)
    );
    let files = file_digests(&dir);
    assert!(files.iter().all(|(name, _, _)| name.starts_with(
        "AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/year=2026/month=10/day="
    ) && name.contains("/hour=") && name.ends_with("/part-00000.parquet")), "{:?}", &files[0].0);

    for sql in [
        "SELECT interface_id, action, log_status, count(*), sum(bytes), sum(packets), min(start), max(\"end\") FROM flows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        "SELECT count(DISTINCT srcaddr), count(DISTINCT dstaddr), count(tcp_flags), count(pkt_srcaddr), count(ecs_task_id), sum(srcport), sum(dstport) FROM flows",
        "SELECT flow_direction, type, count(*) FROM flows GROUP BY 1, 2 ORDER BY 1, 2",
    ] {
        assert_eq!(
            csv_rows(&[dir.to_str().unwrap()], &[], sql),
            csv_rows(&[&src], &[], sql),
            "{sql}"
        );
    }
    // Sorted by interface and start within each file.
    let one = dir.join(&files[0].0);
    let rows = csv_rows(
        &[one.to_str().unwrap()],
        &[],
        "SELECT interface_id, start FROM flows",
    );
    let mut sorted = rows.clone();
    sorted.sort_by(|a, b| {
        let key = |r: &String| {
            let (eni, start) = r.split_once(',').unwrap();
            (eni.to_string(), start.parse::<i64>().unwrap_or(i64::MAX))
        };
        key(a).cmp(&key(b))
    });
    assert_eq!(rows, sorted);

    // Converting again leaves exactly the same files.
    let again = flowlens(&["convert", "-s", &src, "--out", dir.to_str().unwrap()]);
    assert!(again.status.success());
    assert!(file_digests(&dir) == files, "a rerun changed the output");

    // Two shards together hold everything once, in files of their own.
    let sharded = out.path().join("sharded");
    for shard in ["0/2", "1/2"] {
        let run = flowlens(&[
            "convert",
            "-s",
            &src,
            "--out",
            sharded.to_str().unwrap(),
            "--shard",
            shard,
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    let names: Vec<String> = file_digests(&sharded).into_iter().map(|f| f.0).collect();
    assert!(names.iter().any(|n| n.contains("shard-0000-of-0002-part-")));
    assert!(names.iter().any(|n| n.contains("shard-0001-of-0002-part-")));
    let q = "SELECT count(*), sum(bytes) FROM flows";
    assert_eq!(
        csv_rows(&[sharded.to_str().unwrap()], &[], q),
        csv_rows(&[&src], &[], q)
    );

    let ddl = flowlens(&["convert", "--athena-ddl", "--out", "s3://lake/flows"]);
    let ddl = stdout(&ddl);
    assert!(
        ddl.contains("`encryption_status` int")
            && ddl.contains("LOCATION 's3://lake/flows/AWSLogs/'"),
        "{ddl}"
    );
}

#[test]
fn s3_detect_without_a_window_lists_only_the_days_it_needs() {
    let server = s3::Server::start();
    let bucket = server.bucket("logs");
    generate_into(
        &bucket,
        &["--days", "18", "--enis", "2", "--object-minutes", "60"],
    );
    let all = server.run(&[
        "sql",
        "SELECT count(*) FROM flows",
        "-s",
        "s3://logs/",
        "-v",
    ]);
    assert!(all.status.success(), "{}", stderr(&all));
    let out = server.run(&["detect", "-s", "s3://logs/", "-o", "jsonl", "-v"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (all, err) = (stderr(&all), stderr(&out));
    // The last day and the 14 before it (and an hour of slack for late delivery): two of
    // the 18 day folders are never listed.
    let requests = |text: &str| s3::number_before(text, " S3 list requests");
    let seen = |text: &str| s3::number_before(text, " seen;");
    assert!(requests(&err) + 2 <= requests(&all), "{err}\n{all}");
    assert!(seen(&err) * 18 <= seen(&all) * 16, "{err}\n{all}");
    // The same findings as from the same files on disk.
    let local = flowlens(&["detect", "-s", bucket.to_str().unwrap(), "-o", "jsonl"]);
    assert!(local.status.success(), "{}", stderr(&local));
    assert_eq!(stdout(&out), stdout(&local));
}

#[test]
fn a_large_result_goes_up_to_s3_in_parts() {
    // Every column of the sample as CSV is over 16 MiB: a multipart upload of several parts.
    let server = s3::Server::start();
    let results = server.bucket("results");
    let src = sample_logs();
    let q = "SELECT * FROM flows";
    let out = server.run(&[
        "sql",
        q,
        "-s",
        &src,
        "-o",
        "csv",
        "--out",
        "s3://results/all.csv",
        "-vv",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(" bytes in 2 parts"),
        "{}",
        stderr(&out)
    );
    let local = tempfile::tempdir().unwrap();
    let path = local.path().join("all.csv");
    let out = flowlens(&[
        "sql",
        q,
        "-s",
        &src,
        "-o",
        "csv",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = |p: &Path| {
        let text = std::fs::read_to_string(p).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        (text.len(), lines)
    };
    let (size, expected) = lines(&path);
    assert!(size > 20 << 20, "{size}");
    let (_, uploaded) = lines(&results.join("all.csv"));
    assert_eq!(uploaded.len(), expected.len());
    assert!(uploaded == expected);
}

#[test]
fn convert_to_s3_and_query_it_there() {
    let server = s3::Server::start();
    let lake = server.bucket("lake");
    let dir = mixed_folder();
    let src = dir.path().to_str().unwrap();
    let out = server.run(&["convert", "-s", src, "--out", "s3://lake/flows"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // As if an earlier run (with smaller files) had written a second file in a partition:
    // a rerun writes only part-00000 there and must delete the other, or its records would
    // count twice.
    let first = walk(&lake)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("/part-00000.parquet"))
        .unwrap();
    let leftover = first.with_file_name("part-00001.parquet");
    std::fs::copy(&first, &leftover).unwrap();
    let out = server.run(&["convert", "-s", src, "--out", "s3://lake/flows", "-v"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!leftover.exists(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("an earlier run's file"),
        "{}",
        stderr(&out)
    );
    let q = "SELECT interface_id, count(*), sum(bytes) FROM flows GROUP BY 1 ORDER BY 1";
    let remote = server.run(&["sql", q, "-s", "s3://lake/flows/", "-o", "csv"]);
    assert!(remote.status.success(), "{}", stderr(&remote));
    let remote: Vec<String> = stdout(&remote)
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    assert_eq!(remote, csv_rows(&[src], &[], q));
}

// ---------------------------------------------------------------------------------------
// The scheduled task: killed (SIGKILL) anywhere, run again, nothing lost or duplicated.

fn read_table_sum(path: &Path) -> (usize, f64) {
    use arrow::array::AsArray;
    use arrow::datatypes::Float64Type;
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let (mut rows, mut sum) = (0, 0.0);
    for batch in reader {
        let batch = batch.unwrap();
        rows += batch.num_rows();
        if let Some(values) = batch.column_by_name("value") {
            sum += values
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .sum::<f64>();
        }
    }
    (rows, sum)
}

/// What a run leaves behind, read back: converted records, findings, checkpoint, baseline.
#[derive(Debug, PartialEq)]
struct Outcome {
    parquet_files: Vec<String>,
    records: Vec<String>,
    findings: Vec<(String, String)>,
    processed: serde_json::Value,
    history: (usize, i64),
    folded: serde_json::Value,
}

fn outcome(server: &s3::Server, name: &str) -> Outcome {
    let root = server.root.path();
    let conv = root.join("lake").join(name);
    let mut parquet_files: Vec<String> = walk(&conv)
        .iter()
        .map(|p| p.strip_prefix(&conv).unwrap().display().to_string())
        .collect();
    parquet_files.sort();
    let records = {
        let out = server.run(&[
            "sql",
            "SELECT count(*), sum(bytes), count(DISTINCT srcaddr) FROM flows",
            "-s",
            &format!("s3://lake/{name}/"),
            "-o",
            "csv",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).lines().map(str::to_string).collect()
    };
    let fdir = root.join("state").join(name).join("findings");
    let mut findings: Vec<(String, String)> = walk(&fdir)
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect();
    findings.sort();
    let st = root.join("state").join(name).join("st");
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(st.join("checkpoint.json")).unwrap())
            .unwrap();
    let pointer: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(st.join("baseline").join("baseline.json")).unwrap(),
    )
    .unwrap();
    let (rows, sum) = read_table_sum(&baseline_table(&st.join("baseline"), "history"));
    assert!(!st.join("pending.json").exists() && !st.join("lock.json").exists());
    Outcome {
        parquet_files,
        records,
        findings,
        processed: checkpoint["processed"].clone(),
        history: (rows, sum.round() as i64),
        folded: pointer["batches"].clone(),
    }
}

fn scheduled_run(server: &s3::Server, name: &str, failpoint: Option<&str>) -> Output {
    let mut cmd = server.command(&["run"]);
    cmd.env("FLOWLENS_SOURCE", "s3://logs/")
        .env("FLOWLENS_STATE", format!("s3://state/{name}/st"))
        .env("FLOWLENS_FINDINGS", format!("s3://state/{name}/findings"))
        .env("FLOWLENS_CONVERT", format!("s3://lake/{name}"))
        .env("FLOWLENS_LOCK_TTL", "1s")
        .env_remove("FLOWLENS_FAILPOINT");
    if let Some(point) = failpoint {
        cmd.env("FLOWLENS_FAILPOINT", point);
    }
    cmd.output().unwrap()
}

fn summary(out: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(out).trim())
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(out), stderr(out)))
}

#[test]
fn scheduled_task_forgets_objects_without_a_time_in_their_name_once_they_are_gone() {
    // Names with no date or stamp are listed on every run, so the task must remember them
    // while they exist, and only while they exist.
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let sample = walk(Path::new(&sample_logs()))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".log.gz"))
        .unwrap();
    let mut text = Vec::new();
    MultiGzDecoder::new(std::fs::File::open(sample).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_flowlens"))
            .arg("run")
            .env("FLOWLENS_SOURCE", &src)
            .env("FLOWLENS_STATE", work.path().join("st"))
            .env("FLOWLENS_FINDINGS", work.path().join("findings"))
            .env_remove("FLOWLENS_CONVERT")
            .env_remove("FLOWLENS_FAILPOINT")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let checkpoint: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(work.path().join("st/checkpoint.json")).unwrap(),
        )
        .unwrap();
        let processed: Vec<String> = checkpoint["processed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let name = v.as_str().unwrap();
                name.rsplit('/').next().unwrap().to_string()
            })
            .collect();
        (
            summary(&out)["status"].as_str().unwrap().to_string(),
            processed,
        )
    };
    std::fs::write(src.join("first.log"), &text).unwrap();
    assert_eq!(run(), ("ok".to_string(), vec!["first.log".to_string()]));
    std::fs::remove_file(src.join("first.log")).unwrap();
    std::fs::write(src.join("second.log"), &text).unwrap();
    assert_eq!(run(), ("ok".to_string(), vec!["second.log".to_string()]));
    assert_eq!(run(), ("idle".to_string(), vec!["second.log".to_string()]));
}

#[test]
fn scheduled_task_survives_a_crash_at_any_point() {
    let server = s3::Server::start();
    server.bucket("state");
    server.bucket("lake");
    generate_into(
        &server.bucket("logs"),
        &[
            "--days",
            "2",
            "--enis",
            "3",
            "--object-minutes",
            "60",
            "--incidents",
        ],
    );

    let first = scheduled_run(&server, "ref", None);
    assert!(first.status.success(), "{}", stderr(&first));
    let s = summary(&first);
    assert_eq!(s["status"], "ok");
    assert_eq!(s["objects"], 96);
    assert!(
        s["findings"].as_object().is_some_and(|f| !f.is_empty()),
        "{s}"
    );
    assert_eq!(
        summary(&scheduled_run(&server, "ref", None))["status"],
        "idle"
    );
    let reference = outcome(&server, "ref");
    assert!(!reference.parquet_files.is_empty() && reference.findings.len() == 1);

    // A second run while the first holds the lock does not proceed.
    let lock = server.root.path().join("state/locked/st/lock.json");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, r#"{"owner":"other","expires":32503680000}"#).unwrap();
    assert_eq!(
        summary(&scheduled_run(&server, "locked", None))["status"],
        "locked"
    );

    let points = [
        "locked",
        "listed",
        "pending",
        "read:1",
        "read:40",
        "read:96",
        "parquet:1",
        "parquet:20",
        "parquet:48",
        "converted",
        "read:100",
        "read:170",
        "read:200",
        "detected",
        "findings",
        "baseline_table:1",
        "baseline_table:2",
        "baseline_table:3",
        "folded",
        "checkpointed",
        "done",
    ];
    assert!(points.len() >= 20);
    for (i, point) in points.iter().enumerate() {
        let name = format!("crash{i}");
        let crashed = scheduled_run(&server, &name, Some(point));
        assert!(
            !crashed.status.success(),
            "{point}: the failpoint did not fire: {}",
            stderr(&crashed)
        );
        assert!(
            stderr(&crashed).contains(&format!("failpoint {point}")),
            "{point}: {}",
            stderr(&crashed)
        );
        std::thread::sleep(std::time::Duration::from_millis(1100)); // the crashed run's lock expires
        let rerun = scheduled_run(&server, &name, None);
        assert!(rerun.status.success(), "{point}: {}", stderr(&rerun));
        let status = summary(&rerun)["status"].clone();
        assert!(
            status == "ok" || (status == "idle" && *point == "done"),
            "{point}: {status}"
        );
        assert_eq!(
            summary(&scheduled_run(&server, &name, None))["status"],
            "idle",
            "{point}"
        );
        assert_eq!(
            outcome(&server, &name),
            reference,
            "after a crash at {point}"
        );
    }
}

#[test]
fn scheduled_task_stops_on_sigterm_and_the_next_run_completes() {
    let work = tempfile::tempdir().unwrap();
    let dir = |name: &str| work.path().join(name).display().to_string();
    let run = |state: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowlens"));
        cmd.arg("run")
            .env("FLOWLENS_SOURCE", sample_logs())
            .env("FLOWLENS_STATE", dir(&format!("{state}/st")))
            .env("FLOWLENS_FINDINGS", dir(&format!("{state}/findings")))
            .env("FLOWLENS_LOCK_TTL", "1s")
            .env_remove("FLOWLENS_FAILPOINT");
        cmd
    };
    let reference = run("ref").output().unwrap();
    assert!(reference.status.success(), "{}", stderr(&reference));

    let child = run("term")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stopped = child.wait_with_output().unwrap();
    if stderr(&stopped).contains("SIGTERM") {
        // Stopped before an object: an error, the batch left pending for the next run.
        assert_eq!(stopped.status.code(), Some(1), "{}", stderr(&stopped));
        assert!(work.path().join("term/st/pending.json").exists());
        assert!(!work.path().join("term/st/checkpoint.json").exists());
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let rerun = run("term").output().unwrap();
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    let read = |state: &str, file: &str| {
        std::fs::read_to_string(work.path().join(state).join(file)).unwrap()
    };
    assert_eq!(
        read("term", "st/checkpoint.json"),
        read("ref", "st/checkpoint.json")
    );
    let findings = |state: &str| {
        let mut f: Vec<String> = walk(&work.path().join(state).join("findings"))
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        f.sort();
        f
    };
    assert_eq!(findings("term"), findings("ref"));
    assert!(!work.path().join("term/st/pending.json").exists());
}
