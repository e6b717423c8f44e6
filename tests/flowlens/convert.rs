//! `flowlens convert`: Parquet that answers like the text, laid out like AWS's, the same bytes
//! every time, sharded, and on S3.

use crate::support::*;

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
