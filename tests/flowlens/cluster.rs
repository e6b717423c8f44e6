//! `--cluster`: a `flowlens scheduler` and two `flowlens executor` processes on 127.0.0.1
//! (Apache DataFusion Ballista), reading from the S3 test server, must answer exactly as the
//! local engine does.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::servers::Server;
use crate::support::{copy_tree, sample_logs, stderr, stdout};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(port: u16, what: &str) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} did not start listening on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scheduler and two executors, stopped when dropped.
struct Cluster {
    processes: Vec<Child>,
    url: String,
}

impl Cluster {
    fn start(s3: &Server) -> Cluster {
        let port = free_port();
        let spawn = |mut cmd: Command| cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        let mut processes = Vec::new();
        let mut scheduler = s3.command(&[
            "scheduler",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--executor-timeout",
            "20",
        ]);
        scheduler.env_remove("FLOWLENS_CLUSTER");
        processes.push(spawn(scheduler).expect("flowlens scheduler starts"));
        wait_for(port, "flowlens scheduler");
        for _ in 0..2 {
            let (flight, grpc) = (free_port(), free_port());
            let executor = s3.command(&[
                "executor",
                "--scheduler",
                &format!("127.0.0.1:{port}"),
                "--bind-host",
                "127.0.0.1",
                "--external-host",
                "127.0.0.1",
                "--port",
                &flight.to_string(),
                "--grpc-port",
                &grpc.to_string(),
                "--concurrent-tasks",
                "2",
                "--heartbeat",
                "2",
            ]);
            processes.push(spawn(executor).expect("flowlens executor starts"));
            wait_for(flight, "flowlens executor");
        }
        Cluster {
            processes,
            url: format!("df://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    stdout(out)
}

/// Findings by kind, interface, window and numbers, in a stable order.
fn findings(out: &Output) -> Vec<String> {
    let mut found: Vec<String> = ok(out)
        .lines()
        .map(|line| {
            let f: serde_json::Value = serde_json::from_str(line).unwrap();
            format!(
                "{} {} {} {} {} {}",
                f["kind"],
                f["interface_id"],
                f["window_start"],
                f["window_end"],
                f["score"],
                f["evidence"]
            )
        })
        .collect();
    found.sort();
    found
}

#[test]
fn a_cluster_of_two_executors_answers_as_the_local_engine_over_s3() {
    let s3 = Server::start();
    copy_tree(Path::new(&sample_logs()), &s3.bucket("logs"));
    let cluster = Cluster::start(&s3);
    let source = "s3://logs/";
    let on = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--source", source, "--cluster", &cluster.url]);
        s3.run(&all)
    };
    let here = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--source", source]);
        s3.run(&all)
    };
    for sql in [
        "SELECT action, count(*) AS n, sum(bytes) AS b, count(DISTINCT interface_id) AS e \
         FROM flows GROUP BY 1 ORDER BY 1",
        "SELECT interface_id, ip_network(srcaddr, 24, 48) AS net, count(*) AS n FROM flows \
         WHERE NOT is_private_ip(srcaddr) GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 20",
        "SELECT dstport, count(*) FROM flows WHERE action = 'REJECT' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10",
    ] {
        let args = ["sql", sql, "--output", "csv"];
        let local = ok(&here(&args));
        assert!(local.lines().count() > 1, "{local}");
        assert_eq!(ok(&on(&args)), local, "{sql}");
    }
    let args = ["query", "top_talkers", "--output", "csv"];
    assert_eq!(ok(&on(&args)), ok(&here(&args)));

    // Parquet objects (as convert writes them) read on the executors too.
    s3.bucket("parquet");
    ok(&here(&["convert", "--out", "s3://parquet/"]));
    let sql = "SELECT action, count(*), sum(bytes), min(start) FROM flows GROUP BY 1 ORDER BY 1";
    let args = ["sql", sql, "--output", "csv", "--source", "s3://parquet/"];
    let local = ok(&s3.run(&args));
    let mut remote = args.to_vec();
    remote.extend(["--cluster", &cluster.url]);
    assert_eq!(ok(&s3.run(&remote)), local);
    assert_eq!(local, ok(&here(&["sql", sql, "--output", "csv"])));

    let args = ["detect", "--output", "jsonl"];
    let local = findings(&here(&args));
    assert!(!local.is_empty());
    assert_eq!(findings(&on(&args)), local);

    // A baseline learnt on the cluster finds what one learnt here does.
    let dir = tempfile::tempdir().unwrap();
    let (remote_dir, local_dir) = (dir.path().join("cluster"), dir.path().join("local"));
    let (remote_dir, local_dir) = (remote_dir.to_str().unwrap(), local_dir.to_str().unwrap());
    ok(&on(&["baseline", "--out", remote_dir]));
    ok(&here(&["baseline", "--out", local_dir]));
    let with = |baseline: &str| {
        findings(&here(&[
            "detect",
            "--output",
            "jsonl",
            "--baseline",
            baseline,
        ]))
    };
    assert_eq!(with(remote_dir), with(local_dir));
}

#[test]
fn an_object_the_executors_cannot_read_is_named_and_the_answer_is_partial() {
    let s3 = Server::start();
    let bucket = s3.bucket("logs");
    copy_tree(Path::new(&sample_logs()), &bucket);
    std::fs::write(bucket.join("broken.log.gz"), b"\x1f\x8b\x08\x00not gzip").unwrap();
    let cluster = Cluster::start(&s3);
    let args = [
        "sql",
        "SELECT count(*) FROM flows",
        "--output",
        "csv",
        "--source",
        "s3://logs/",
    ];
    let local = s3.run(&args);
    let mut on_cluster = args.to_vec();
    on_cluster.extend(["--cluster", &cluster.url]);
    let remote = s3.run(&on_cluster);
    assert_eq!(remote.status.code(), Some(3), "{}", stderr(&remote));
    assert_eq!(local.status.code(), Some(3));
    assert_eq!(stdout(&remote), stdout(&local));
    assert!(
        stderr(&remote).contains("s3://logs/broken.log.gz"),
        "{}",
        stderr(&remote)
    );
}

#[test]
fn an_unreachable_scheduler_is_an_error_naming_it() {
    let refused = |url: &str| {
        let out = crate::support::flowlens(&[
            "sql",
            "SELECT count(*) FROM flows",
            "--source",
            &sample_logs(),
            "--cluster",
            url,
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(url), "{}", stderr(&out));
    };
    refused(&format!("df://127.0.0.1:{}", free_port()));

    // Something answers, but not a scheduler: refused at once, not a hang.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = format!("df://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = std::io::Write::write_all(&mut stream, b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    refused(&other);
    let bad = crate::support::flowlens(&[
        "sql",
        "SELECT 1",
        "--source",
        &sample_logs(),
        "--cluster",
        "sched:50050",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[test]
fn an_executor_killed_mid_query_gives_the_answer_or_a_clear_error_never_a_wrong_one() {
    let s3 = Server::start();
    let bucket = s3.bucket("logs");
    // Two copies of the archive: a query long enough to be cut in the middle.
    copy_tree(Path::new(&sample_logs()), &bucket.join("a"));
    copy_tree(Path::new(&sample_logs()), &bucket.join("b"));
    let mut cluster = Cluster::start(&s3);
    let sql = "SELECT f.interface_id, count(*) AS n, sum(f.bytes) AS b FROM flows f \
               JOIN (SELECT DISTINCT interface_id, dstport FROM flows) p \
               ON f.interface_id = p.interface_id AND f.dstport = p.dstport \
               GROUP BY 1 ORDER BY 1";
    let args = ["sql", sql, "--output", "csv", "--source", "s3://logs/"];
    let expected = ok(&s3.run(&args));
    let mut on_cluster = args.to_vec();
    on_cluster.extend(["--cluster", &cluster.url]);
    let query = s3
        .command(&on_cluster)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // The last executor started: the scheduler's tasks on it are lost.
    let mut victim = cluster.processes.pop().unwrap();
    victim.kill().unwrap();
    victim.wait().unwrap();
    let out = query.wait_with_output().unwrap();
    eprintln!(
        "after the kill: exit {:?}; {}",
        out.status.code(),
        stderr(&out).trim()
    );
    match out.status.code() {
        Some(0) => assert_eq!(
            stdout(&out),
            expected,
            "a wrong answer after a lost executor"
        ),
        code => {
            assert_eq!(code, Some(1), "{}", stderr(&out));
            assert!(
                stdout(&out).is_empty(),
                "rows printed before failing: {}",
                stdout(&out)
            );
            assert!(stderr(&out).contains("error"), "{}", stderr(&out));
        }
    }
}
