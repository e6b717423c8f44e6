#!/usr/bin/env python3
"""Runs the same SQL query and `detect` over the same S3 data on one machine and on a
loopback Ballista cluster (`flowlens scheduler` + 1 or 2 `flowlens executor`), in one run.

    python3 benches/cluster_vs_local.py [--days 7] [--enis 50] [--rate 3.5] [--runs 3]

On one small machine this measures what the cluster costs (planning, task dispatch,
shuffles through Arrow Flight, every process sharing the same cores), not a speed-up: the
executors here are processes on the machine the single-process run has to itself.

It builds flowlens in release mode, installs s3s-fs into target/tools if needed, generates
the archive once under target/bench-cluster/, uploads it with PutObject (boto3, in a venv
under target/bench-s3/, as s3_vs_local.py does), checks that every setup gives the same
answer (query rows; findings by kind, interface, window and score), and prints the best of N
runs.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import time

# The S3 server, its upload script and paths are s3_vs_local.py's.
from s3_vs_local import BIN, KEY, ROOT, S3S, SECRET, UPLOAD, boto3_venv, build_with_tools, run

WORK = ROOT / "target" / "bench-cluster"
QUERY = ("SELECT interface_id, action, count(*) AS n, sum(bytes) AS b, "
         "count(DISTINCT dstport) AS ports FROM flows GROUP BY 1, 2 ORDER BY 1, 2")
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port):
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def findings(jsonl):
    out = []
    for line in jsonl.splitlines():
        f = json.loads(line)
        out.append((f["kind"], f["interface_id"], f["window_start"], f["window_end"],
                    round(f["score"], 6)))
    return sorted(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--enis", type=int, default=50)
    p.add_argument("--rate", type=float, default=3.5)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()

    build_with_tools()
    venv = boto3_venv()
    data = WORK / f"{args.days}d-{args.enis}e-r{args.rate}"
    archive, store = data / "local", data / "store"
    if not (archive / "AWSLogs").exists():
        run([str(BIN), "generate", "--out", str(archive), "--days", str(args.days),
             "--enis", str(args.enis), "--rate", str(args.rate), "--end", "2026-10-15",
             "--object-minutes", "60"])
    objects = sorted(archive.rglob("*.gz"))
    size = sum(o.stat().st_size for o in objects)

    port = free_port()
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    processes = [subprocess.Popen(
        [str(S3S), "--host", "127.0.0.1", "--port", str(port), "--access-key", KEY,
         "--secret-key", SECRET, str(store)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        wait_for(port)
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                   AWS_EC2_METADATA_DISABLED="true")
        env.pop("FLOWLENS_CLUSTER", None)
        run([str(venv / "bin" / "python"), "-c", UPLOAD, env["AWS_ENDPOINT_URL"], str(archive)],
            env=env)

        def jobs(cluster):
            flags = [] if cluster is None else ["--cluster", cluster]
            query = [str(BIN), "sql", QUERY, "--source", "s3://bench/", "--output", "csv",
                     "--quiet", *flags]
            detect = [str(BIN), "detect", "--source", "s3://bench/", "--output", "jsonl",
                      "--quiet", *flags]
            return (("SQL query", query, lambda out: out),
                    ("detect (learnt 14-day baseline)", detect, findings))

        def measure(cluster):
            rows = []
            for name, cmd, answer in jobs(cluster):
                best, result = None, None
                for _ in range(args.runs):
                    t = time.perf_counter()
                    out = run(cmd, capture_output=True, text=True, env=env).stdout
                    wall = time.perf_counter() - t
                    best = wall if best is None else min(best, wall)
                    result = answer(out)
                rows.append((name, best, result))
            return rows

        setups = [("one process", measure(None))]
        scheduler = free_port()
        processes.append(subprocess.Popen(
            [str(BIN), "scheduler", "--bind", f"127.0.0.1:{scheduler}"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(scheduler)
        for executors in (1, 2):
            flight, grpc = free_port(), free_port()
            processes.append(subprocess.Popen(
                [str(BIN), "executor", "--scheduler", f"127.0.0.1:{scheduler}",
                 "--bind-host", "127.0.0.1", "--external-host", "127.0.0.1",
                 "--port", str(flight), "--grpc-port", str(grpc), "--concurrent-tasks", "2"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for(flight)
            time.sleep(1)  # registration with the scheduler
            setups.append((f"cluster, {executors} executor(s) x 2 tasks",
                           measure(f"df://127.0.0.1:{scheduler}")))
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait()

    base = setups[0][1]
    for label, rows in setups[1:]:
        for (name, _, expected), (_, _, got) in zip(base, rows):
            if got != expected:
                raise SystemExit(f"{name}: {label} answers differently from one process")
    print(f"archive: {len(objects)} gzip objects, {size / 1e6:.1f} MB compressed, on s3s-fs at "
          f"127.0.0.1; {os.cpu_count()} cores shared by every process; best of {args.runs}")
    print(f"query: {QUERY}\n")
    print("| job | setup | time | vs one process |")
    print("|---|---|---|---|")
    for i, (name, _, _) in enumerate(base):
        for label, rows in setups:
            t = rows[i][1]
            print(f"| {name} | {label} | {t:.2f} s | {t / base[i][1]:.2f}x |")


if __name__ == "__main__":
    main()
