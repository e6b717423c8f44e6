//! Baselines and findings: every labelled incident of a generated estate found and nothing
//! else, the findings contract (jsonl, OCSF, --fail-on), stored baselines (robust, extended
//! day by day, damaged, on S3), interfaces' own addresses, and which days detection reads.

use crate::support::*;

/// Every kind, and how many labelled incidents of it the generated estate holds (a slow port
/// scan, a slow exfiltration and a jittered beacon besides the fast ones).
const KINDS: [(&str, usize); 14] = [
    ("port_scan", 2),
    ("brute_force", 1),
    ("dos", 1),
    ("exfiltration", 2),
    ("volume_spike", 1),
    ("unusual_port", 1),
    ("new_peer", 1),
    ("beaconing", 2),
    ("nacl_return_reject", 1),
    ("reject_spike", 1),
    ("outbound_scan", 1),
    ("outbound_brute_force", 1),
    ("outbound_dos", 1),
    ("dns_anomaly", 1),
];

#[test]
fn detection_finds_every_labelled_incident_and_is_quiet_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    estate(dir.path(), true);
    let out = flowlens(&["evaluate", "-s", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for (kind, n) in KINDS {
        assert!(
            text.contains(&format!("| {kind} | {n} | {n} | 0 |")),
            "{kind} not found cleanly:\n{text}"
        );
    }
    assert!(text.contains("recall 17/17;"), "{text}");
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
        stderr(&out).contains("0 findings in 0 incidents for 7 interfaces"),
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
        assert!(KINDS.iter().any(|(k, _)| *k == kind), "{f}");
        let incident = f["incident_id"].as_str().unwrap();
        assert!(incident.len() == 16, "{f}");
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
    assert_eq!(kinds.len(), KINDS.len(), "{kinds:?}");
    // The same run gives the same ids.
    let again = flowlens(&["detect", "-s", src, "-o", "jsonl"]);
    assert_eq!(stdout(&again), stdout(&out));

    // One incident per story: the NACL mistake's twelve peers, the botnet's three addresses
    // over two hours.
    let incident_of = |kind: &str| -> std::collections::BTreeSet<&str> {
        findings
            .iter()
            .filter(|f| f["kind"] == kind)
            .map(|f| f["incident_id"].as_str().unwrap())
            .collect()
    };
    assert_eq!(
        findings
            .iter()
            .filter(|f| f["kind"] == "nacl_return_reject")
            .count(),
        12
    );
    assert_eq!(incident_of("nacl_return_reject").len(), 1);
    assert!(
        findings
            .iter()
            .filter(|f| f["kind"] == "brute_force")
            .count()
            >= 3
    );
    assert_eq!(incident_of("brute_force").len(), 1);
    let grouped = flowlens(&["detect", "-s", src, "-o", "incidents"]);
    assert!(grouped.status.success(), "{}", stderr(&grouped));
    let incidents: Vec<serde_json::Value> = stdout(&grouped)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(incidents.len() < findings.len() / 2, "{}", stdout(&grouped));
    let mut listed = 0;
    for i in &incidents {
        let id = i["incident_id"].as_str().unwrap();
        let members: Vec<&serde_json::Value> =
            findings.iter().filter(|f| f["incident_id"] == id).collect();
        assert_eq!(
            i["finding_ids"].as_array().unwrap().len(),
            members.len(),
            "{i}"
        );
        listed += members.len();
        let highest = members.iter().map(|f| severity_rank(&f["severity"])).max();
        assert_eq!(Some(severity_rank(&i["severity"])), highest, "{i}");
        for t in ["first", "last"] {
            assert!(chrono::DateTime::parse_from_rfc3339(i[t].as_str().unwrap()).is_ok());
        }
        assert!(!i["kinds"].as_array().unwrap().is_empty() && i["summary"].is_string());
    }
    assert_eq!(listed, findings.len());
    let nacl = incident_of("nacl_return_reject");
    let nacl = incidents
        .iter()
        .find(|i| nacl.contains(i["incident_id"].as_str().unwrap()))
        .unwrap();
    assert_eq!(nacl["remote_addrs"].as_array().unwrap().len(), 12, "{nacl}");
    // For people: one line per incident, its findings under it.
    let table = flowlens(&["detect", "-s", src, "--group", "-o", "table"]);
    let text = stdout(&table);
    assert_eq!(
        text.lines().filter(|l| l.contains(" incident ")).count(),
        incidents.len(),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("- "))
            .count(),
        findings.len()
    );
    let ocsf_grouped = flowlens(&["detect", "-s", src, "--group", "-o", "ocsf"]);
    assert_eq!(ocsf_grouped.status.code(), Some(2));

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
    // Thresholds change what is found: a port scan, fast or slow, needs 500 ports now.
    let strict = flowlens(&[
        "detect",
        "-s",
        src,
        "-o",
        "jsonl",
        "-p",
        "port_scan.min_ports=500",
        "-p",
        "port_scan.slow_min_ports=500",
    ]);
    assert!(!stdout(&strict).contains("\"kind\":\"port_scan\""));
}

fn severity_rank(severity: &serde_json::Value) -> usize {
    ["low", "medium", "high", "critical"]
        .iter()
        .position(|s| severity == *s)
        .unwrap()
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
        let t = 1_791_208_800 + (i % 3000); // 2026-10-05T14:00Z, a Monday
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
    assert_eq!(learnt.len(), KINDS.len(), "{learnt:?}");
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
    // The old version's tables are gone, folder and all; the pointer names the new.
    let version = pointer(&part)["version"].as_u64().unwrap();
    assert!(!part.join(format!("v{}", version - 1)).exists());
    assert!(part.join(format!("v{version}/history.parquet")).exists());
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
    copy_tree(Path::new(&src), &bucket);
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
fn a_network_that_only_probed_is_new_when_the_interface_reaches_it() {
    // Three days of an app server calling 203.0.113.10:443, while 198.51.100.7 probes it
    // and is rejected every time. On the fourth day the server calls 198.51.100.7 for hours:
    // it never talked to that network (every earlier flow was rejected), so it is a new peer,
    // and the baseline keeps no peer for the scanner.
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("{V2_HEADER}\n");
    let t0 = 1_791_000_000i64;
    let mut record = |src: &str, dst: &str, sport: i64, dport: i64, t: i64, action: &str| {
        text.push_str(&format!(
            "2 123456789012 eni-0app {src} {dst} {sport} {dport} 6 10 5000 {t} {} {action} OK\n",
            t + 30
        ));
    };
    for hour in 0..96i64 {
        let t = t0 + hour * 3600;
        for i in 0..10 {
            record(
                "10.0.0.7",
                "203.0.113.10",
                40_000 + i,
                443,
                t + 60 * i,
                "ACCEPT",
            );
        }
        if (10..40).contains(&hour) {
            for port in [22, 23, 3389, 5432] {
                record("198.51.100.7", "10.0.0.7", 51_000, port, t + 600, "REJECT");
            }
        }
        if (80..84).contains(&hour) {
            for i in 0..10 {
                record(
                    "10.0.0.7",
                    "198.51.100.7",
                    45_000 + i,
                    443,
                    t + 90 * i,
                    "ACCEPT",
                );
            }
        }
    }
    let logs = dir.path().join("app.log");
    std::fs::write(&logs, text).unwrap();
    let src = logs.to_str().unwrap();

    let out = flowlens(&["detect", "-s", src, "-o", "jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let findings = stdout(&out);
    assert!(
        findings
            .lines()
            .any(|line| line.contains("\"kind\":\"new_peer\"") && line.contains("198.51.100.0/24")),
        "the network that only probed is not new to the server:\n{findings}"
    );

    // The first three days' baseline: the server's peer, and nothing of the scanner.
    let base = dir.path().join("baseline");
    let until = (t0 + 72 * 3600).to_string();
    let out = flowlens(&[
        "baseline",
        "-s",
        src,
        "--until",
        &until,
        "--out",
        base.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let peers = baseline_peers(&base, "eni-0app");
    let expected = [("203.0.113.10".to_string(), "remote".to_string())];
    assert_eq!(
        peers,
        expected.into_iter().collect(),
        "a rejected scanner is a peer"
    );
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

/// Services above the clients' ephemeral ports: gRPC on 50051 (above half of Linux's
/// ephemeral range) and an exporter on 61001 (above all of it) that the interface offers, and
/// a service on 62000 that it uses. The rollup folds the higher port of each record away as a
/// client's; `traffic` turns a folded port that met many client ports back into the service,
/// so the baseline learns the services, not a new "service" for every client port.
#[test]
fn a_service_above_the_clients_ephemeral_ports_is_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let start = 1_796_342_400; // 2026-12-04T00:00:00Z
    let mut lines = vec![V2_HEADER.to_string()];
    let mut push = |src: &str, dst: &str, sport: u32, dport: u32, t: i64, action: &str| {
        lines.push(format!(
            "2 123456789012 eni-svc {src} {dst} {sport} {dport} 6 5 900 {t} {} {action} OK",
            t + 5
        ));
    };
    for i in 0..400u32 {
        let t = start + i64::from(i) * 200;
        let client = format!("10.0.2.{}", 10 + i % 5);
        for (k, service) in [50051, 61001].into_iter().enumerate() {
            // 32768..49767: all below both services
            let ephemeral = 32768 + (i * 37 + k as u32 * 8500) % 17000;
            push(&client, "10.0.1.5", ephemeral, service, t, "ACCEPT");
            push("10.0.1.5", &client, service, ephemeral, t, "ACCEPT");
        }
        // The interface calls a service on 62000 elsewhere from its own ephemeral ports.
        let own = 40000 + (i * 53) % 20000;
        push("10.0.1.5", "10.0.9.9", own, 62000, t, "ACCEPT");
        push("10.0.9.9", "10.0.1.5", 62000, own, t, "ACCEPT");
        // A resolver asked from one fixed port is not a service of the interface's.
        push("10.0.1.5", "10.0.0.2", 45000, 53, t, "ACCEPT");
        // A scanner with a fixed source port probing many ports does not make it a service.
        push("45.1.2.3", "10.0.1.5", 54321, 1 + i, t, "REJECT");
    }
    std::fs::write(dir.path().join("svc.log"), lines.join("\n") + "\n").unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = flowlens(&[
        "baseline",
        "-s",
        dir.path().to_str().unwrap(),
        "--out",
        out_dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Columns in name order: flows, hours_seen, interface_id, max_remote_hour_flows,
    // protocol, service_port, service_side.
    let services: std::collections::BTreeSet<(String, String)> =
        parquet_rows(&baseline_table(out_dir.path(), "ports"))
            .iter()
            .map(|r| r.split('|').collect::<Vec<&str>>())
            .filter(|cells| cells[2] == "eni-svc")
            .map(|cells| (cells[6].to_string(), cells[5].to_string()))
            .collect();
    for expected in [
        ("local", "50051"),
        ("local", "61001"),
        ("remote", "62000"),
        ("remote", "53"),
    ] {
        assert!(
            services.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} missing from {services:?}"
        );
    }
    assert_eq!(
        services.len(),
        4,
        "client ports taken for services: {services:?}"
    );
}

/// A baseline stored before the outbound metrics existed: detection still runs, and says
/// which detectors stay silent and how to give them history.
#[test]
fn a_baseline_without_the_later_metrics_says_which_detectors_are_silent() {
    use arrow::array::AsArray;
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
    let detect = || flowlens(&["detect", "-s", &src, "--baseline", base.to_str().unwrap()]);
    assert!(!stderr(&detect()).contains("stored by an earlier flowlens"));
    // Drop the later metrics' rows, as an earlier flowlens stored the history.
    let path = baseline_table(&base, "history");
    let file = std::fs::File::open(&path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut kept = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let metric = batch
            .column_by_name("metric")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let keep: arrow::array::BooleanArray = metric
            .iter()
            .map(|m| Some(!matches!(m, Some("out_targets" | "top_out_packets"))))
            .collect();
        kept.push(arrow::compute::filter_record_batch(&batch, &keep).unwrap());
    }
    let schema = kept[0].schema();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None)
            .unwrap();
    for batch in &kept {
        writer.write(batch).unwrap();
    }
    writer.close().unwrap();
    let out = detect();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "the baseline has no history of out_targets and top_out_packets: it was stored by an \
             earlier flowlens, so outbound_scan and outbound_dos stay silent"
        ),
        "{}",
        stderr(&out)
    );
}
