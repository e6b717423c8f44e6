//! Sources and outputs on a real S3-compatible server (support::servers) through the AWS SDK:
//! listing and pruning, Parquet objects, corrupt objects, missing buckets and wrong keys, a
//! server going away, multipart uploads, stores strict about checksums. Detection, convert
//! and the scheduled task on S3 go in their own modules.

use crate::support::*;

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

/// flowlens run with `args` against the store at `endpoint` (`--endpoint-url`), with the
/// test credentials and the SDK's checksum settings left at their defaults.
fn at_endpoint(endpoint: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flowlens"))
        .args(args)
        .args(["--endpoint-url", endpoint])
        .env_remove("FLOWLENS_SOURCE")
        .env_remove("AWS_REQUEST_CHECKSUM_CALCULATION")
        .env_remove("AWS_RESPONSE_CHECKSUM_VALIDATION")
        .env("AWS_ACCESS_KEY_ID", s3::KEY)
        .env("AWS_SECRET_ACCESS_KEY", s3::SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap()
}

#[test]
fn uploads_to_a_custom_endpoint_carry_no_checksums_it_may_refuse() {
    let (endpoint, seen) = strict_store();
    let src = sample_logs();
    let out = at_endpoint(
        &endpoint,
        &[
            "sql",
            "SELECT action, count(*) FROM flows GROUP BY 1",
            "-s",
            &src,
            "-o",
            "csv",
            "--out",
            "s3://results/actions.csv",
        ],
    );
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

/// A large plain-text object is read in parts on all cores, as a local file is: cut at
/// nominal offsets, each part streamed by a ranged GET from the byte before it (see
/// src/source/part_source.rs). The answer, the bad lines and their numbers are those of
/// its gzip copy read in one piece, with a header mid-file that changes the format for the
/// parts after it (they are read again) and without.
#[test]
fn a_large_plain_object_read_in_parts_answers_as_one_piece() {
    let server = s3::Server::start();
    let bucket = server.bucket("big");
    std::fs::create_dir_all(bucket.join("plain")).unwrap();
    std::fs::create_dir_all(bucket.join("gzip")).unwrap();
    let sql = "SELECT count(*), sum(bytes), count(vpc_id), count(DISTINCT interface_id), \
               min(srcaddr), max(dstport) FROM flows";
    let run = |sql: &str, key: &str| {
        let source = format!("s3://big/{key}");
        let out = server.run(&["sql", sql, "-s", &source, "-o", "csv"]);
        assert!(out.status.success(), "{}", stderr(&out));
        (stdout(&out), stderr(&out).replace(&source, "OBJECT"))
    };
    for (name, steady, bad_line) in [("changed", false, 200_002), ("steady", true, 200_001)] {
        let text = large_plain_text(steady);
        std::fs::write(bucket.join(format!("plain/{name}.log")), &text).unwrap();
        let gz = gzip(text.as_bytes());
        std::fs::write(bucket.join(format!("gzip/{name}.log.gz")), gz).unwrap();
        let (parts, parts_err) = run(sql, &format!("plain/{name}.log"));
        let whole = run(sql, &format!("gzip/{name}.log.gz"));
        assert_eq!((parts.clone(), parts_err.clone()), whole, "{name}");
        assert!(parts_err.contains("4 bad lines skipped"), "{parts_err}");
        assert!(
            parts_err.contains(&format!("OBJECT:{bad_line}: wrong field count")),
            "{parts_err}"
        );
        let vpc_rows = if steady { ",0," } else { ",133331," };
        assert!(parts.contains(vpc_rows), "{name}: {parts}");
    }
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        let (plan, _) = run(&format!("EXPLAIN {sql}"), "plain/changed.log");
        assert!(plan.contains("objects=1 ("), "{plan}");
        assert!(plan.contains("parts of large files"), "{plan}");
        let (plan, _) = run(&format!("EXPLAIN {sql}"), "gzip/changed.log.gz");
        assert!(!plan.contains("parts of large files"), "{plan}");
    }
}

/// A small store for what s3s-fs does not do: path-style ListObjectsV2 and GetObject over
/// `objects` (key, bytes) in bucket `big`. Without `ranges` it serves objects whole,
/// ignoring Range (some S3-compatible servers and proxies do). With `ranges` it serves byte
/// ranges, and each object is overwritten once it has been read the first time: its ETag
/// changes, and a GET pinned to the old one (If-Match) fails with 412. Returns its endpoint
/// and the request heads it saw.
fn fake_store(
    objects: Vec<(String, Vec<u8>)>,
    ranges: bool,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let objects = std::sync::Arc::new(objects);
    let gets = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (log, objects, gets) = (log.clone(), objects.clone(), gets.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        head.push_str(&line.to_ascii_lowercase());
                    }
                    if head.is_empty() {
                        return;
                    }
                    log.lock().unwrap().push(head.clone());
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| l.strip_prefix(name))
                            .map(|v| v.trim().to_string())
                    };
                    let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                    let mut extra = String::new();
                    let (status, body) = if query.contains("list-type=2") {
                        let prefix = query
                            .split('&')
                            .find_map(|p| p.strip_prefix("prefix="))
                            .unwrap_or("");
                        let contents: String = objects
                            .iter()
                            .filter(|(k, _)| k.starts_with(prefix))
                            .map(|(k, b)| {
                                format!(
                                    "<Contents><Key>{k}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>\
                                     <ETag>\"e\"</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                                    b.len()
                                )
                            })
                            .collect();
                        let xml = format!(
                            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult \
                             xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>big</Name>\
                             <Prefix>{prefix}</Prefix><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>\
                             {contents}</ListBucketResult>"
                        );
                        ("200 OK", xml.into_bytes())
                    } else if let Some(key) = path.strip_prefix("/big/") {
                        match objects.iter().find(|(k, _)| k == key) {
                            Some((_, bytes)) if ranges => {
                                let first =
                                    gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
                                let etag = if first { "\"v1\"" } else { "\"v2\"" };
                                extra = format!("ETag: {etag}\r\n");
                                let range = header("range: bytes=").and_then(|r| {
                                    let (a, b) = r.split_once('-')?;
                                    let a: usize = a.parse().ok()?;
                                    let b = b.parse::<usize>().map_or(bytes.len(), |b| b + 1);
                                    Some((a, b.min(bytes.len())))
                                });
                                match (header("if-match:"), range) {
                                    (Some(wanted), _) if wanted != etag => (
                                        "412 Precondition Failed",
                                        b"<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>".to_vec(),
                                    ),
                                    (_, Some((a, b))) => {
                                        extra.push_str(&format!(
                                            "Content-Range: bytes {a}-{}/{}\r\n",
                                            b - 1,
                                            bytes.len()
                                        ));
                                        ("206 Partial Content", bytes[a..b].to_vec())
                                    }
                                    _ => ("200 OK", bytes.clone()),
                                }
                            }
                            Some((_, bytes)) => {
                                extra = "ETag: \"e\"\r\n".to_string();
                                ("200 OK", bytes.clone())
                            }
                            None => (
                                "404 Not Found",
                                b"<Error><Code>NoSuchKey</Code></Error>".to_vec(),
                            ),
                        }
                    } else {
                        (
                            "404 Not Found",
                            b"<Error><Code>NoSuchBucket</Code></Error>".to_vec(),
                        )
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if stream.write_all(reply.as_bytes()).is_err()
                        || stream.write_all(&body).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (endpoint, seen)
}

/// On a store that ignores Range, a large plain object is read whole, as before parts: its
/// answer is the local file's, and nothing is read from a wrong offset.
#[test]
fn a_store_without_byte_ranges_reads_a_large_object_whole() {
    let text = large_plain_text(false);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("big.log");
    std::fs::write(&local, &text).unwrap();
    let (endpoint, seen) = fake_store(vec![("big.log".into(), text.into_bytes())], false);
    let sql = "SELECT count(*), sum(bytes), count(vpc_id), min(srcaddr) FROM flows";
    let out = at_endpoint(
        &endpoint,
        &["sql", sql, "-s", "s3://big/big.log", "-o", "csv"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let want = flowlens(&["sql", sql, "-s", &local.display().to_string(), "-o", "csv"]);
    assert_eq!(stdout(&out), stdout(&want));
    assert_eq!(
        stderr(&out).replace("s3://big/big.log", "FILE"),
        stderr(&want).replace(&local.display().to_string(), "FILE")
    );
    let seen = seen.lock().unwrap();
    // Planning asked for the first bytes (and got the whole object back).
    assert!(
        seen.iter().any(|h| h.contains("range: bytes=0-65535")),
        "{seen:?}"
    );
}

/// A large object overwritten between planning (which read its first bytes) and reading its
/// parts: every part's GET is pinned to the ETag planning saw, so the query fails naming the
/// object instead of mixing two versions.
#[test]
fn an_object_overwritten_while_read_in_parts_fails_instead_of_mixing() {
    let text = large_plain_text(true);
    let (endpoint, seen) = fake_store(vec![("big.log".into(), text.into_bytes())], true);
    let out = at_endpoint(
        &endpoint,
        &[
            "sql",
            "SELECT count(*) FROM flows",
            "-s",
            "s3://big/big.log",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("s3://big/big.log: the object changed while it was read"),
        "{err}"
    );
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().any(|h| h.contains("if-match: \"v1\"")),
        "{seen:?}"
    );
}
