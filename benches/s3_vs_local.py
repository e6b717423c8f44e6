#!/usr/bin/env python3
"""Reads the same flow log archive from a loopback S3-compatible server (s3s-fs) and from
local disk, in one run, and reports the S3 rate as a share of the local-disk rate.

    python3 benches/s3_vs_local.py [--days 3] [--enis 14] [--rate 4] [--object-minutes 60] [--runs 3] [--concurrency N]

It builds flowlens in release mode, installs s3s-fs into target/tools if needed, generates
the archive once under target/bench-s3/, uploads it to the server with PutObject (boto3, in
a venv under target/bench-s3/) so the store holds each object's ETag as S3 does (s3s-fs
serving a bare folder would re-read every object to compute its MD5 on each GET), and
prints the best of N runs of two queries: a light 3-column one and a full read of every
field (what `convert` and `detect` do). Both local and S3 use the same cores as the server,
so it also reports the CPU seconds each side used.
"""
import argparse
import os
import resource
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "bench-s3"
BIN = ROOT / "target" / "release" / "flowlens"
S3S = ROOT / "target" / "tools" / "bin" / "s3s-fs"
QUERY = ("SELECT interface_id, count(*) AS n, sum(bytes) AS b FROM flows "
         "WHERE action = 'REJECT' GROUP BY 1 ORDER BY 1")
FULL = ("SELECT count(version), count(account_id), count(interface_id), count(srcaddr), "
        "count(dstaddr), sum(srcport), sum(dstport), sum(protocol), sum(packets), sum(bytes), "
        "min(start), max(\"end\"), count(action), count(log_status) FROM flows")
KEY, SECRET = "bench-key", "bench-secret-0123456789"
UPLOAD = """
import boto3, pathlib, sys
from concurrent.futures import ThreadPoolExecutor
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
s3.create_bucket(Bucket="bench")
root = pathlib.Path(sys.argv[2])
files = [p for p in root.rglob("*") if p.is_file()]
def put(p):
    s3.put_object(Bucket="bench", Key=p.relative_to(root).as_posix(), Body=p.read_bytes())
with ThreadPoolExecutor(8) as pool:
    list(pool.map(put, files))
"""


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def best_of(runs, fn):
    fn()
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--enis", type=int, default=14)
    p.add_argument("--rate", type=float, default=4.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=None,
                   help="--s3-concurrency (default: flowlens's own default)")
    p.add_argument("--object-minutes", type=int, default=60,
                   help="minutes per object (AWS: 5; larger objects stand for busy flow logs)")
    args = p.parse_args()

    run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT)
    if not S3S.exists():
        run(["cargo", "install", "s3s-fs@0.14.1", "--features", "binary", "--locked",
             "--root", str(ROOT / "target" / "tools"),
             "--target-dir", str(ROOT / "target" / "tools-build")])
    data = WORK / f"{args.days}d-{args.enis}e-r{args.rate}-m{args.object_minutes}"
    archive = data / "local"
    store = data / "store"
    venv = WORK / "venv"
    if not (venv / "bin" / "python").exists():
        run(["python3", "-m", "venv", str(venv)])
        run([str(venv / "bin" / "pip"), "install", "--quiet", "boto3"])
    if not (archive / "AWSLogs").exists():
        run([str(BIN), "generate", "--out", str(archive), "--days", str(args.days),
             "--enis", str(args.enis), "--rate", str(args.rate), "--end", "2026-10-15",
             "--object-minutes", str(args.object_minutes)])
    objects = list(archive.rglob("*.gz"))
    size = sum(o.stat().st_size for o in objects)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir()
    server = subprocess.Popen([str(S3S), "--host", "127.0.0.1", "--port", str(port),
                               "--access-key", KEY, "--secret-key", SECRET, str(store)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                   AWS_EC2_METADATA_DISABLED="true")
        run([str(venv / "bin" / "python"), "-c", UPLOAD, env["AWS_ENDPOINT_URL"], str(archive)],
            env=env)

        def flowlens(query, source):
            flags = [] if args.concurrency is None else ["--s3-concurrency", str(args.concurrency)]
            return run([str(BIN), "sql", query, "--source", source, "--output", "csv",
                        "--quiet", *flags],
                       capture_output=True, text=True, env=env).stdout

        def measure(query, source):
            """Best wall time of the runs, and the CPU seconds flowlens and the server used
            in the best run."""
            flowlens(query, source)
            best = None
            for _ in range(args.runs):
                ours, theirs = children_cpu(), cpu_seconds(server.pid)
                t = time.perf_counter()
                answer = flowlens(query, source)
                wall = time.perf_counter() - t
                run_cpu = (children_cpu() - ours, cpu_seconds(server.pid) - theirs)
                if best is None or wall < best[0]:
                    best = (wall, run_cpu, answer)
            return best

        results = []
        for name, query in (("3-column query", QUERY), ("full read, all 14 fields", FULL)):
            local = measure(query, str(archive))
            s3 = measure(query, "s3://bench/")
            if local[2] != s3[2]:
                raise SystemExit(f"{name}: answers differ between local and S3")
            results.append((name, local, s3))
    finally:
        server.terminate()
        server.wait()

    print(f"archive: {len(objects)} gzip objects, {size / 1e6:.0f} MB compressed; "
          f"{os.cpu_count()} cores shared by flowlens and the server; "
          f"--s3-concurrency {args.concurrency or 'default'}")
    print(f"3-column query: {QUERY}\n")
    print("| workload | source | time | compressed MB/s | CPU s flowlens | CPU s server | S3 / local |")
    print("|---|---|---|---|---|---|---|")
    for name, (t_local, cpu_local, _), (t_s3, cpu_s3, _) in results:
        print(f"| {name} | local disk | {t_local:.2f} s | {size / t_local / 1e6:.0f} | "
              f"{cpu_local[0]:.2f} | - | |")
        print(f"| {name} | s3s-fs on 127.0.0.1 | {t_s3:.2f} s | {size / t_s3 / 1e6:.0f} | "
              f"{cpu_s3[0]:.2f} | {cpu_s3[1]:.2f} | {t_local / t_s3 * 100:.0f}% |")


if __name__ == "__main__":
    main()
