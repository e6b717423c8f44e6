//! Ad hoc SQL over local sources, as `flowlens sql` runs it: every record in the table, mixed
//! formats, flowlens's functions, bad lines, time pruning, output formats, standard input,
//! the shell, the schema, usage errors and the generator. A test of reading or writing local
//! files belongs here; one that needs S3 goes in `s3`.

use crate::support::*;

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

/// A large plain file is read in parts on all cores (see src/source/text_parts.rs): the
/// answer, the bad lines and their numbers are those of reading it in one piece (its gzip
/// copy is), with a header mid-file that changes the format for the parts after it. So is
/// standard input redirected from it.
#[test]
fn a_large_plain_file_read_in_parts_answers_as_one_piece() {
    let dir = tempfile::tempdir().unwrap();
    let text = large_plain_text(false);
    let plain = dir.path().join("big.log");
    std::fs::write(&plain, &text).unwrap();
    let gz = dir.path().join("big.log.gz");
    std::fs::write(&gz, gzip(text.as_bytes())).unwrap();
    let sql = "SELECT count(*), sum(bytes), count(vpc_id), count(DISTINCT interface_id), \
               min(srcaddr), max(dstport) FROM flows";
    let run = |path: &Path| {
        let out = flowlens(&["sql", sql, "-s", &path.display().to_string(), "-o", "csv"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out).replace(&path.display().to_string(), "FILE");
        (stdout(&out), err)
    };
    let (parts, parts_err) = run(&plain);
    let (whole, whole_err) = run(&gz);
    assert_eq!(parts, whole);
    assert_eq!(parts_err, whole_err);
    assert!(parts.contains(",133331,"), "{parts}");
    // Without the header mid-file, the later part's assumed start (the first header) holds:
    // its rows and the numbers of its bad lines are those of the whole file still.
    let steady_text = large_plain_text(true);
    let steady = dir.path().join("steady.log");
    std::fs::write(&steady, &steady_text).unwrap();
    let steady_gz = dir.path().join("steady.log.gz");
    std::fs::write(&steady_gz, gzip(steady_text.as_bytes())).unwrap();
    let (steady_parts, steady_err) = run(&steady);
    assert_eq!((steady_parts.clone(), steady_err.clone()), run(&steady_gz));
    assert!(steady_parts.contains(",0,"), "{steady_parts}");
    assert!(
        steady_err.contains("FILE:200001: wrong field count"),
        "{steady_err}"
    );
    assert!(parts_err.contains("4 bad lines skipped"), "{parts_err}");
    assert!(
        parts_err.contains("FILE:200002: wrong field count"),
        "{parts_err}"
    );

    // Standard input redirected from the file is cut the same way; through a pipe it is
    // read as it comes. Both answer alike.
    let from_stdin_at = |sql: &str, piped: bool, offset: u64| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowlens"));
        command
            .args(["sql", sql, "-s", "-", "-o", "csv"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = if piped {
            let mut child = command.stdin(Stdio::piped()).spawn().unwrap();
            let mut input = child.stdin.take().unwrap();
            let writer = std::thread::spawn({
                let text = text.clone();
                move || input.write_all(text.as_bytes())
            });
            let out = child.wait_with_output().unwrap();
            // EXPLAIN reads none of it: the pipe breaks.
            let _ = writer.join();
            out
        } else {
            let mut file = std::fs::File::open(&plain).unwrap();
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset)).unwrap();
            command.stdin(Stdio::from(file)).output().unwrap()
        };
        assert!(out.status.success(), "{}", stderr(&out));
        (stdout(&out), stderr(&out).replace("<stdin>", "FILE"))
    };
    let from_stdin = |sql: &str, piped: bool| from_stdin_at(sql, piped, 0);
    // Standard input handed over past the header (read by a shell's `read`, say): the
    // parts start there, and lines are counted from there.
    let (past_header, past_header_err) = from_stdin_at(sql, false, V2_HEADER.len() as u64 + 1);
    assert_eq!(past_header, parts);
    assert!(
        past_header_err.contains("FILE:200001: wrong field count"),
        "{past_header_err}"
    );
    assert_eq!(from_stdin(sql, false), (parts.clone(), parts_err.clone()));
    assert_eq!(from_stdin(sql, true), (parts, parts_err));

    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        let explain = flowlens(&[
            "sql",
            &format!("EXPLAIN {sql}"),
            "-s",
            &plain.display().to_string(),
        ]);
        let plan = stdout(&explain);
        assert!(plan.contains("objects=1 ("), "{plan}");
        assert!(
            plan.contains("parts of large files, starts learnt as read"),
            "{plan}"
        );
        // The first bad line is the error with its number: starts are counted first.
        let strict = flowlens(&[
            "sql",
            &format!("EXPLAIN {sql}"),
            "-s",
            &plain.display().to_string(),
            "--strict",
        ]);
        let plan = stdout(&strict);
        assert!(
            plan.contains("parts of large files, starts counted first"),
            "{plan}"
        );
        let (plan, _) = from_stdin(&format!("EXPLAIN {sql}"), false);
        assert!(plan.contains("parts of large files"), "{plan}");
        let (plan, _) = from_stdin(&format!("EXPLAIN {sql}"), true);
        assert!(!plan.contains("parts of large files"), "{plan}");
    }
}

#[test]
fn where_conditions_leave_rows_out_while_decoding_with_the_same_answers() {
    // Each WHERE clause is one the decoder can test on a field's text (EXPLAIN shows it
    // pushed into the scan); the same condition as an aggregate's FILTER, which is never
    // pushed down, is the oracle. Sample logs hold three formats (v5 fields missing from
    // two); the mixed folder holds a custom format and a file of other fields.
    let mixed = mixed_folder();
    let mixed = mixed.path().display().to_string();
    let sample = sample_logs();
    let cases = [
        ("action = 'REJECT'", "action = 'REJECT'"),
        ("action <> 'ACCEPT'", "action <> 'ACCEPT'"),
        ("dstport IN (22, 3389)", "dstport IN (22, 3389)"),
        ("bytes >= 1000 AND protocol = 6", "bytes >= 1000"),
        ("vpc_id IS NOT NULL", "vpc_id IS NOT NULL"),
        (
            "srcport BETWEEN 1024 AND 65535",
            "srcport BETWEEN 1024 AND 65535",
        ),
        ("tcp_flags <> 2", "tcp_flags <> 2"),
        ("log_status = 'NODATA'", "log_status = 'NODATA'"),
    ];
    for source in [&sample, &mixed] {
        for (condition, shown) in cases {
            let pushed = csv_rows(
                &[source],
                &[],
                &format!(
                    "SELECT count(*), sum(bytes), count(DISTINCT interface_id) FROM flows \
                     WHERE {condition}"
                ),
            );
            let oracle = csv_rows(
                &[source],
                &[],
                &format!(
                    "SELECT count(*) FILTER (WHERE {condition}), \
                     sum(bytes) FILTER (WHERE {condition}), \
                     count(DISTINCT interface_id) FILTER (WHERE {condition}) FROM flows"
                ),
            );
            assert_eq!(pushed, oracle, "{source}: WHERE {condition}");
            let plan = csv_rows(
                &[source],
                &[],
                &format!("EXPLAIN SELECT count(*) FROM flows WHERE {condition}"),
            )
            .join("\n");
            let scan = plan
                .lines()
                .find(|l| l.contains("FlowsScanExec"))
                .unwrap_or_default();
            let pushed = scan.split("conditions=[").nth(1).unwrap_or_default();
            assert!(pushed.contains(shown), "{condition}: {plan}");
        }
    }
    // On the sample, the conditions keep some rows and leave out others.
    let rejected = csv_rows(
        &[&sample],
        &[],
        "SELECT count(*) FROM flows WHERE action = 'REJECT'",
    );
    let all = csv_rows(&[&sample], &[], "SELECT count(*) FROM flows");
    let (rejected, all): (u64, u64) = (rejected[0].parse().unwrap(), all[0].parse().unwrap());
    assert!(rejected > 0 && rejected < all, "{rejected} of {all}");

    // A line that is bad for what the query reads is still reported when the condition
    // would have left it out.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.log");
    std::fs::write(
        &path,
        format!(
            "{V2_HEADER}\n\
             2 1 eni-a 10.0.0.1 10.0.0.2 1 2 6 1 100 1700000000 1700000060 REJECT OK\n\
             2 1 eni-a 10.0.0.1 10.0.0.2 1 2 6 1 1OO 1700000000 1700000060 ACCEPT OK\n"
        ),
    )
    .unwrap();
    let src = path.display().to_string();
    let out = flowlens(&[
        "sql",
        "SELECT count(*), sum(bytes) FROM flows WHERE action = 'REJECT'",
        "-s",
        &src,
        "-o",
        "csv",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().nth(1), Some("1,100"));
    assert!(
        stderr(&out).contains(&format!(
            "{src}:3: bad number: bytes: `1OO` is not a number"
        )),
        "{}",
        stderr(&out)
    );
}
