//! Bad input, faults and hostile values: every defect found by trying flowlens as a hostile
//! user would gets a test here that fails without its fix.

use crate::support::*;

const ACCOUNT: &str = "123456789012";

/// A default-format (v2) record.
fn record(eni: &str, src: &str, dst: &str, dport: u16, end: i64, action: &str) -> String {
    format!(
        "2 {ACCOUNT} {eni} {src} {dst} 40000 {dport} 6 3 180 {} {end} {action} OK\n",
        end - 30
    )
}

/// Where AWS puts the object of a flow log's 5-minute slot starting at `slot` (Unix seconds).
fn aws_key(slot: i64, tag: &str) -> String {
    let t = chrono::DateTime::from_timestamp(slot, 0).unwrap();
    format!(
        "AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/{}/{ACCOUNT}_vpcflowlogs_us-east-1_fl-1_{}_{tag}.log.gz",
        t.format("%Y/%m/%d"),
        t.format("%Y%m%dT%H%MZ")
    )
}

/// Writes gzip flow log text (with its header) under `dir` at `key`.
fn put(dir: &Path, key: &str, records: &str) -> PathBuf {
    let path = dir.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, gzip(format!("{V2_HEADER}\n{records}").as_bytes())).unwrap();
    path
}

fn findings_of(out: &Output) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = stdout(out)
        .lines()
        .map(|l| {
            let f: serde_json::Value = serde_json::from_str(l).unwrap();
            let text = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (text("kind"), text("interface_id"), text("window_start"))
        })
        .collect();
    found.sort();
    found
}

/// `flowlens run` on local folders, with `extra` variables.
fn local_run(
    work: &Path,
    src: &Path,
    extra: &[(&str, &str)],
) -> (Option<i32>, serde_json::Value, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowlens"));
    cmd.arg("run")
        .env("FLOWLENS_SOURCE", src)
        .env("FLOWLENS_STATE", work.join("st"))
        .env("FLOWLENS_FINDINGS", work.join("findings"))
        .env_remove("FLOWLENS_CONVERT")
        .env_remove("FLOWLENS_FAILPOINT")
        .env_remove("FLOWLENS_MAX_ATTEMPTS");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), summary(&out), stderr(&out))
}

fn checkpoint(work: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(work.join("st/checkpoint.json")).unwrap())
        .unwrap()
}

#[test]
fn a_key_dated_in_the_future_does_not_blind_detect() {
    let plain = sample_logs();
    let expected = flowlens(&["detect", "-s", &plain, "-o", "jsonl"]);
    let expected = findings_of(&expected);
    assert!(expected.len() >= 10, "{expected:?}");

    let dir = tempfile::tempdir().unwrap();
    copy_tree(Path::new(&plain), dir.path());
    // A misnamed upload (its records are of the sample's days) and a clock error (its
    // records end in 2099 too).
    let slot_2099 = 4_070_908_800; // 2099-01-01T00:00:00Z
    put(
        dir.path(),
        &aws_key(slot_2099, "misnamed"),
        &record(
            "eni-0future",
            "10.9.9.9",
            "10.9.9.8",
            443,
            1_793_000_000,
            "ACCEPT",
        ),
    );
    put(
        dir.path(),
        &aws_key(slot_2099 + 300, "clock"),
        &record(
            "eni-0future",
            "10.9.9.9",
            "10.9.9.8",
            443,
            slot_2099 + 320,
            "ACCEPT",
        ),
    );
    let src = dir.path().to_str().unwrap();
    let out = flowlens(&["detect", "-s", src, "-o", "jsonl", "--fail-on", "low"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(findings_of(&out), expected);
    let err = stderr(&out);
    assert!(
        err.contains("20990101T0000Z_misnamed.log.gz: its key dates its records after 2098-12-31"),
        "{err}"
    );
    assert!(err.contains("later than now plus a day"), "{err}");
}

#[test]
fn a_key_or_checkpoint_in_the_future_does_not_stop_the_scheduled_task() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let day = 1_793_491_200; // 2026-11-01T00:00:00Z
    put(
        &src,
        &aws_key(day, "a"),
        &record("eni-1", "10.0.0.1", "10.0.0.2", 443, day + 60, "ACCEPT"),
    );
    put(
        &src,
        &aws_key(4_070_908_800, "x"),
        &record("eni-1", "10.0.0.1", "10.0.0.2", 443, day + 90, "ACCEPT"),
    );
    let (code, first, err) = local_run(work.path(), &src, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(first["objects"], 2);
    assert!(
        first["future_objects"][0]
            .as_str()
            .unwrap()
            .ends_with("_x.log.gz"),
        "{first}"
    );
    let high_water = checkpoint(work.path())["high_water"].as_i64().unwrap();
    assert!(
        high_water < day + 3 * 3600,
        "the checkpoint followed the 2099 key: {high_water}"
    );

    // Data that arrives later is still taken.
    put(
        &src,
        &aws_key(day + 3600, "b"),
        &record("eni-1", "10.0.0.1", "10.0.0.2", 443, day + 3660, "ACCEPT"),
    );
    let (code, second, err) = local_run(work.path(), &src, &[]);
    assert_eq!(
        (code, second["status"].as_str()),
        (Some(0), Some("ok")),
        "{err}"
    );
    assert_eq!(second["objects"], 1);

    // A checkpoint an earlier version moved to 2099 is brought back.
    let mut cp = checkpoint(work.path());
    cp["high_water"] = serde_json::json!(4_070_908_800i64 + 600);
    std::fs::write(work.path().join("st/checkpoint.json"), cp.to_string()).unwrap();
    put(
        &src,
        &aws_key(day + 7200, "c"),
        &record("eni-1", "10.0.0.1", "10.0.0.2", 443, day + 7260, "ACCEPT"),
    );
    let (code, third, err) = local_run(work.path(), &src, &[]);
    assert_eq!(
        (code, third["status"].as_str()),
        (Some(0), Some("ok")),
        "{err}"
    );
    assert_eq!(third["objects"], 1, "{third}");
    assert!(err.contains("the checkpoint is at 2099-01-01"), "{err}");
}

#[test]
fn partition_values_from_records_cannot_leave_the_output() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("in");
    std::fs::create_dir_all(&src).unwrap();
    let header = format!("{V2_HEADER} region");
    let line = |region: &str| {
        format!(
            "2 {ACCOUNT} eni-1 10.0.0.1 10.0.0.2 40000 443 6 3 180 1793491200 1793491230 ACCEPT OK {region}\n"
        )
    };
    std::fs::write(
        src.join("hostile.log"),
        format!(
            "{header}\n{}{}{}",
            line("../../../../victim"),
            line("eu-west-1"),
            line("use1\u{1b}[31m")
        ),
    )
    .unwrap();
    let out_dir = work.path().join("a").join("b").join("out");
    // A file of an earlier run where the hostile path would land: it must survive.
    let victim = work.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("part-00000.parquet"), b"keep me").unwrap();
    let out = flowlens(&[
        "convert",
        "-s",
        src.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(victim.join("part-00000.parquet")).unwrap(),
        b"keep me"
    );
    let written: Vec<String> = walk(work.path())
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| p.strip_prefix(work.path()).unwrap().display().to_string())
        .collect();
    assert!(
        written
            .iter()
            .all(|p| p.starts_with("a/b/out/AWSLogs/") || p.starts_with("victim/")),
        "{written:?}"
    );
    assert!(
        written.iter().any(|p| p.contains("/aws-region=invalid/")),
        "{written:?}"
    );
    assert!(
        written.iter().any(|p| p.contains("/aws-region=eu-west-1/")),
        "{written:?}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("2 account or region values were no AWS value"),
        "{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "a raw escape byte reached the terminal: {err}"
    );
    // All three records are there.
    let rows = csv_rows(
        &[out_dir.to_str().unwrap()],
        &[],
        "SELECT count(*) FROM flows",
    );
    assert_eq!(rows, vec!["3"]);

    // The same on S3: every key stays under the output prefix.
    let server = s3::Server::start();
    server.bucket("lake");
    let out = server.run(&[
        "convert",
        "-s",
        src.to_str().unwrap(),
        "--out",
        "s3://lake/flows",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let keys: Vec<String> = walk(server.root.path())
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| {
            p.strip_prefix(server.root.path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert!(
        keys.iter().any(|k| k.contains("/aws-region=invalid/")),
        "{keys:?}"
    );
    assert!(
        keys.iter().all(|k| k.starts_with("lake/flows/AWSLogs/")),
        "{keys:?}"
    );
}

#[test]
fn objects_that_fail_are_retried_by_later_runs_then_given_up() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let day = 1_793_491_200;
    let records: String = (0..50)
        .map(|i| record("eni-1", "10.0.0.1", "10.0.0.2", 443, day + 60 + i, "ACCEPT"))
        .collect();
    let good = put(&src, &aws_key(day, "a"), &records);
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&good, &bytes[..bytes.len() / 2]).unwrap();
    let (code, first, err) = local_run(work.path(), &src, &[]);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(first["failed_objects"], 1, "{first}");
    assert_eq!(
        first["records"], 0,
        "rows of the truncated object were kept: {first}"
    );
    assert!(
        checkpoint(work.path())["processed"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Redelivered whole: the next run reads it.
    std::fs::write(&good, &bytes).unwrap();
    let (code, second, err) = local_run(work.path(), &src, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (
            second["status"].as_str(),
            second["retried_objects"].as_u64()
        ),
        (Some("ok"), Some(1))
    );
    assert_eq!(second["records"], 50, "{second}");
    let (_, third, _) = local_run(work.path(), &src, &[]);
    assert_eq!(third["status"], "idle");

    // An object that stays broken is given up after max_attempts runs, and named.
    let broken = put(&src, &aws_key(day + 600, "b"), &records);
    let bytes = std::fs::read(&broken).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() - 9]).unwrap();
    let limit = [("FLOWLENS_MAX_ATTEMPTS", "2")];
    let (code, run1, _) = local_run(work.path(), &src, &limit);
    assert_eq!((code, run1["failed_objects"].as_u64()), (Some(3), Some(1)));
    let (code, run2, err) = local_run(work.path(), &src, &limit);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        run2["abandoned_objects"][0]
            .as_str()
            .unwrap()
            .ends_with("_b.log.gz"),
        "{run2}"
    );
    assert!(
        err.contains("given up after 2 runs could not read it"),
        "{err}"
    );
    let (code, run3, _) = local_run(work.path(), &src, &limit);
    assert_eq!((code, run3["status"].as_str()), (Some(0), Some("idle")));
}

#[test]
fn late_records_before_the_lookback_are_processed_and_counted() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let day = 1_793_491_200;
    put(
        &src,
        &aws_key(day + 10 * 3600, "a"),
        &record(
            "eni-1",
            "10.0.0.1",
            "10.0.0.2",
            443,
            day + 10 * 3600 + 60,
            "ACCEPT",
        ),
    );
    let (code, first, err) = local_run(work.path(), &src, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(first["records"], 1);
    // An object of the slot an hour before the checkpoint (inside the 2 h lookback) that
    // holds records of five hours earlier: AWS delivered it late.
    let late: String = (0..7)
        .map(|i| {
            record(
                "eni-1",
                "10.0.0.1",
                "10.0.0.3",
                443,
                day + 5 * 3600 + i,
                "ACCEPT",
            )
        })
        .collect();
    put(&src, &aws_key(day + 9 * 3600, "late"), &late);
    let (code, second, err) = local_run(work.path(), &src, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (second["records"].as_u64(), second["late_records"].as_u64()),
        (Some(7), Some(7)),
        "{second}"
    );
    assert!(
        err.contains("7 records end before the checkpoint less the lookback"),
        "{err}"
    );
}

#[test]
fn a_parquet_object_that_is_no_flow_log_is_a_bad_object() {
    let dir = tempfile::tempdir().unwrap();
    let src = sample_logs();
    let write = |name: &str, sql: &str| {
        let path = dir.path().join(name);
        let out = flowlens(&[
            "sql",
            sql,
            "-s",
            &src,
            "-o",
            "parquet",
            "--out",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        path
    };
    let not_flows = write("x.parquet", "SELECT 1 AS x FROM flows LIMIT 1000");
    let wrong_type = write(
        "t.parquet",
        "SELECT CAST(1.5 AS DOUBLE) AS packets FROM flows LIMIT 5",
    );
    let too_big = write(
        "o.parquet",
        "SELECT CAST(99999999999 AS BIGINT) AS srcport FROM flows LIMIT 5",
    );
    let fine = write(
        "ok.parquet",
        "SELECT interface_id, CAST(bytes AS INT) AS bytes FROM flows LIMIT 5",
    );
    for (path, says) in [
        (&not_flows, "none of its columns (x) is a flow log field"),
        (&wrong_type, "column `packets` is Float64"),
        (&too_big, "99999999999"),
    ] {
        let sql = "SELECT count(srcport) FROM flows";
        let out = flowlens(&["sql", sql, "-s", path.to_str().unwrap(), "-o", "csv"]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}: {}",
            path.display(),
            stderr(&out)
        );
        assert_eq!(stdout(&out).lines().nth(1), Some("0"));
        let err = stderr(&out);
        assert!(
            err.contains(&path.display().to_string()) && err.contains(says),
            "{err}"
        );
    }
    let rows = csv_rows(
        &[fine.to_str().unwrap()],
        &[],
        "SELECT count(*), count(bytes) FROM flows",
    );
    assert_eq!(rows, vec!["5,5"]);
}

#[test]
fn an_unreadable_lock_left_by_a_failed_write_is_taken_over() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let day = 1_793_491_200;
    put(
        &src,
        &aws_key(day, "a"),
        &record("eni-1", "10.0.0.1", "10.0.0.2", 443, day + 60, "ACCEPT"),
    );
    std::fs::create_dir_all(work.path().join("st")).unwrap();
    // What a full disk left behind in earlier versions.
    std::fs::write(work.path().join("st/lock.json"), b"").unwrap();
    let (code, first, err) = local_run(work.path(), &src, &[]);
    assert_eq!(
        (code, first["status"].as_str()),
        (Some(0), Some("ok")),
        "{err}"
    );
    assert!(err.contains("lock.json: unreadable state"), "{err}");
    assert!(!work.path().join("st/lock.json").exists());
}

/// The sample's objects as one stream, the way `aws s3 cp … -` hands them over.
fn sample_as_one_stream() -> Vec<u8> {
    let mut files = walk(Path::new(&sample_logs()));
    files.retain(|p| p.to_string_lossy().ends_with(".log.gz"));
    files.sort();
    let mut all = Vec::new();
    for f in files {
        MultiGzDecoder::new(std::fs::File::open(f).unwrap())
            .read_to_end(&mut all)
            .unwrap();
    }
    all
}

#[test]
fn detect_reads_standard_input_once() {
    let expected = findings_of(&flowlens(&["detect", "-s", &sample_logs(), "-o", "jsonl"]));
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowlens"))
        .args(["detect", "-s", "-", "-o", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let data = sample_as_one_stream();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(findings_of(&out), expected);
}

#[test]
fn rows_of_a_corrupt_object_never_mix_with_good_data() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(Path::new(&sample_logs()), dir.path());
    let src = dir.path().to_str().unwrap().to_string();
    let sql = "SELECT count(*), count(DISTINCT interface_id), sum(bytes) FROM flows";
    let good = csv_rows(&[&src], &[], sql);
    // A large object whose bytes break off half way, and one with a flipped byte.
    let records: String = (0..20_000)
        .map(|i| {
            record(
                &format!("eni-bad{}", i % 97),
                "10.1.1.1",
                "10.1.1.2",
                443,
                1_793_000_000 + i,
                "ACCEPT",
            )
        })
        .collect();
    let truncated = put(dir.path(), "extra/truncated.log.gz", &records);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let flipped = put(dir.path(), "extra/flipped.log.gz", &records);
    let mut bytes = std::fs::read(&flipped).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&flipped, &bytes).unwrap();

    let out = flowlens(&["sql", sql, "-s", &src, "-o", "csv"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().skip(1).collect::<Vec<_>>(), good);
    let err = stderr(&out);
    assert!(err.contains("2 object(s) could not be read"), "{err}");
    assert!(
        err.contains("truncated.log.gz") && err.contains("flipped.log.gz"),
        "{err}"
    );

    // convert keeps them out of the Parquet too.
    let lake = tempfile::tempdir().unwrap();
    let out = flowlens(&[
        "convert",
        "-s",
        &src,
        "--out",
        lake.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(csv_rows(&[lake.path().to_str().unwrap()], &[], sql), good);

    // detect counts the failed objects once, though it reads some objects twice.
    let out = flowlens(&["detect", "-s", &src, "-o", "jsonl"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("flowlens: 2 object(s) could not be read"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn out_files_are_written_whole_and_hold_one_result() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("result.csv");
    std::fs::write(&out, "earlier result\n").unwrap();
    let src = sample_logs();
    let path = out.to_str().unwrap();
    // A statement that fails half way (a cast error at run time) leaves the file as it was.
    let failing = flowlens(&[
        "sql",
        "SELECT CAST(interface_id AS INT) FROM flows",
        "-s",
        &src,
        "-o",
        "csv",
        "--out",
        path,
    ]);
    assert_eq!(failing.status.code(), Some(1), "{}", stderr(&failing));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "earlier result\n");
    // Two results for one file are refused before anything runs.
    let two = flowlens(&[
        "sql",
        "SELECT 1 AS a; SELECT 2 AS b",
        "-s",
        &src,
        "--out",
        path,
        "-o",
        "csv",
    ]);
    assert_eq!(two.status.code(), Some(2), "{}", stderr(&two));
    assert!(stderr(&two).contains("--out holds one result, but 2 statements return rows"));
    // Set-up statements before the one result are fine.
    let view = flowlens(&[
        "sql",
        "CREATE VIEW r AS SELECT * FROM flows WHERE action = 'REJECT'; SELECT count(*) AS n FROM r",
        "-s",
        &src,
        "--out",
        path,
        "-o",
        "csv",
    ]);
    assert!(view.status.success(), "{}", stderr(&view));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("n\n") && text.lines().count() == 2,
        "{text}"
    );
    // No temporary file is left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn memory_limits_are_checked_and_named() {
    let src = sample_logs();
    let small = flowlens(&["sql", "SELECT 1", "-s", &src, "--memory-mb", "8"]);
    assert_eq!(small.status.code(), Some(2));
    assert!(
        stderr(&small).contains("--memory-mb 8: at least 128"),
        "{}",
        stderr(&small)
    );
    // A sort of every column under the least limit spills and finishes.
    let sorted = csv_rows(
        &[&src],
        &["--memory-mb", "128"],
        "SELECT count(*) FROM (SELECT * FROM flows ORDER BY srcaddr, dstaddr, \"start\", bytes)",
    );
    assert_eq!(sorted, vec![count_records(Path::new(&src)).to_string()]);
}

#[test]
fn a_baseline_of_another_format_is_refused_with_the_way_to_rebuild_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let src = sample_logs();
    let out = flowlens(&["baseline", "-s", &src, "--out", base.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let meta_path = base.join("baseline.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    assert_eq!(meta["format"], 2);
    meta["format"] = serde_json::json!(99);
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    let out = flowlens(&["detect", "-s", &src, "--baseline", base.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("baseline.json: a baseline in format 99"),
        "{err}"
    );
    assert!(
        err.contains("build it again with `flowlens baseline"),
        "{err}"
    );
}

#[test]
fn compressed_data_that_is_not_gzip_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut zstd = vec![0x28, 0xb5, 0x2f, 0xfd];
    zstd.extend((0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(dir.path().join("packed.log"), &zstd).unwrap();
    let out = flowlens(&[
        "sql",
        "SELECT count(*) FROM flows",
        "-s",
        dir.path().to_str().unwrap(),
        "-o",
        "csv",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("packed.log: this is zstd data"), "{err}");
    assert!(!err.contains("bad lines"), "{err}");
    assert!(err.lines().count() < 10, "{err}");
}

/// A proxy on 127.0.0.1 between flowlens and the S3 test server that injects faults into
/// the first GETs of each object: throttling, a body that breaks off half way, a body that
/// stalls half way. Every connection carries one request (`Connection: close`).
mod fault_proxy {
    use std::collections::HashMap;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum Fault {
        /// 503 SlowDown, as S3 answers when throttling.
        SlowDown,
        /// Headers and half the body, then the connection closes.
        BreakOff,
        /// Headers and half the body, then nothing for a minute.
        Stall,
    }

    pub struct Proxy {
        pub endpoint: String,
        /// Object GETs seen per key.
        pub gets: Arc<Mutex<HashMap<String, usize>>>,
    }

    /// Faults the first `times` GETs of every object whose key ends with `suffix`.
    pub fn start(upstream: &str, fault: Fault, times: usize, suffix: &'static str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let gets = Arc::new(Mutex::new(HashMap::new()));
        let seen = gets.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let (upstream, seen) = (upstream.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, &upstream, &seen, fault, times, suffix);
                });
            }
        });
        Proxy { endpoint, gets }
    }

    fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.push(byte[0]);
        }
        Ok(head)
    }

    /// The head with `Connection: close` in place of any Connection header.
    fn closing(head: &str) -> String {
        let mut lines: Vec<&str> = head
            .trim_end()
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
            .collect();
        lines.push("Connection: close");
        format!("{}\r\n\r\n", lines.join("\r\n"))
    }

    fn serve(
        mut client: TcpStream,
        upstream: &str,
        seen: &Mutex<HashMap<String, usize>>,
        fault: Fault,
        times: usize,
        suffix: &str,
    ) -> std::io::Result<()> {
        let head = String::from_utf8_lossy(&read_head(&mut client)?).into_owned();
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_string())
            })
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        client.read_exact(&mut body)?;
        let mut words = head.split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("").to_string();
        let faulted =
            method == "GET" && !target.contains("list-type") && path.ends_with(suffix) && {
                let mut seen = seen.lock().unwrap();
                let n = seen.entry(path.clone()).or_insert(0);
                *n += 1;
                *n <= times
            };
        if faulted && fault == Fault::SlowDown {
            let xml = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let reply = format!(
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
            return client.write_all(reply.as_bytes());
        }
        let mut server = TcpStream::connect(upstream)?;
        server.write_all(closing(&head).as_bytes())?;
        server.write_all(&body)?;
        let mut response = Vec::new();
        server.read_to_end(&mut response)?;
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| i + 4)
            .unwrap_or(response.len());
        let (reply_head, reply_body) = response.split_at(split);
        let reply_head = closing(&String::from_utf8_lossy(reply_head));
        client.write_all(reply_head.as_bytes())?;
        if !faulted {
            return client.write_all(reply_body);
        }
        client.write_all(&reply_body[..reply_body.len() / 2])?;
        client.flush()?;
        if fault == Fault::Stall {
            std::thread::sleep(Duration::from_secs(60));
        }
        Ok(())
    }
}

/// An S3 bucket of the sample's objects behind a proxy injecting `fault`.
fn faulty_sample(
    server: &s3::Server,
    fault: fault_proxy::Fault,
    times: usize,
) -> fault_proxy::Proxy {
    let bucket = server.bucket("logs");
    if !bucket.join("AWSLogs").exists() {
        copy_tree(Path::new(&sample_logs()), &bucket);
    }
    fault_proxy::start(&server.endpoint, fault, times, ".log.gz")
}

fn through(server: &s3::Server, proxy: &fault_proxy::Proxy, args: &[&str]) -> Output {
    let mut cmd = server.command(args);
    cmd.env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .env("FLOWLENS_S3_TIMEOUT", "2");
    cmd.output().unwrap()
}

const FAULT_SQL: &str =
    "SELECT count(*), count(DISTINCT interface_id), sum(bytes), sum(packets) FROM flows";

#[test]
fn s3_faults_are_retried_to_the_right_answer() {
    use fault_proxy::Fault;
    let expected = csv_rows(&[&sample_logs()], &[], FAULT_SQL);
    let server = s3::Server::start();
    for fault in [Fault::SlowDown, Fault::BreakOff, Fault::Stall] {
        let proxy = faulty_sample(&server, fault, 1);
        let out = through(
            &server,
            &proxy,
            &["sql", FAULT_SQL, "-s", "s3://logs/", "-o", "csv"],
        );
        assert_eq!(out.status.code(), Some(0), "{fault:?}: {}", stderr(&out));
        assert_eq!(
            stdout(&out).lines().skip(1).collect::<Vec<_>>(),
            expected,
            "{fault:?}"
        );
        // Every object was faulted once and asked for again.
        let gets = proxy.gets.lock().unwrap();
        assert!(
            gets.len() > 100 && gets.values().all(|&n| n >= 2),
            "{fault:?}: {gets:?}"
        );
    }

    // convert and the scheduled task through a proxy that breaks every object once.
    let proxy = faulty_sample(&server, Fault::BreakOff, 1);
    let lake = tempfile::tempdir().unwrap();
    let out = through(
        &server,
        &proxy,
        &[
            "convert",
            "-s",
            "s3://logs/",
            "--out",
            lake.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        csv_rows(&[lake.path().to_str().unwrap()], &[], FAULT_SQL),
        expected
    );
    let proxy = faulty_sample(&server, Fault::Stall, 1);
    let work = tempfile::tempdir().unwrap();
    let mut run = server.command(&["run"]);
    let out = run
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .env("FLOWLENS_S3_TIMEOUT", "2")
        .env("FLOWLENS_SOURCE", "s3://logs/")
        .env("FLOWLENS_STATE", work.path().join("st"))
        .env("FLOWLENS_FINDINGS", work.path().join("findings"))
        .env_remove("FLOWLENS_CONVERT")
        .env_remove("FLOWLENS_FAILPOINT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records: u64 = expected[0].split(',').next().unwrap().parse().unwrap();
    assert_eq!(summary(&out)["records"], records);
}

#[test]
fn s3_faults_that_persist_name_the_object_and_never_give_a_wrong_answer() {
    use fault_proxy::Fault;
    let server = s3::Server::start();
    let bucket = server.bucket("logs");
    copy_tree(Path::new(&sample_logs()), &bucket);
    // One object breaks off on every GET; the proxy passes the others.
    let victim = walk(&bucket)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".log.gz"))
        .unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    let proxy = fault_proxy::start(
        &server.endpoint,
        Fault::BreakOff,
        usize::MAX,
        Box::leak(name.clone().into_boxed_str()),
    );
    let out = through(
        &server,
        &proxy,
        &["sql", FAULT_SQL, "-s", "s3://logs/", "-o", "csv"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{name}: the body broke off after")),
        "{err}"
    );
    // The answer is that of the other objects, exactly.
    let rest = tempfile::tempdir().unwrap();
    copy_tree(Path::new(&sample_logs()), rest.path());
    for f in walk(rest.path()) {
        if f.file_name().unwrap().to_string_lossy() == name {
            std::fs::remove_file(f).unwrap();
        }
    }
    let expected = csv_rows(&[rest.path().to_str().unwrap()], &[], FAULT_SQL);
    assert_eq!(stdout(&out).lines().skip(1).collect::<Vec<_>>(), expected);
}
