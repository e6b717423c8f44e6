#!/usr/bin/env python3
"""Reads the same flow log archive from a loopback S3-compatible server (s3s-fs) and from
local disk, in one run, and reports the S3 rate as a share of the local-disk rate.

    python3 benches/s3_vs_local.py [--days 3] [--enis 14] [--rate 4] [--object-minutes 60] [--runs 3] [--concurrency 16]

It builds flowlens in release mode, installs s3s-fs into target/tools if needed, generates
the archive once under target/bench-s3/ (the server serves that folder, so both runs read
the very same files), and prints the best of N runs of one query.
"""
import argparse
import os
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
KEY, SECRET = "bench-key", "bench-secret-0123456789"


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
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--object-minutes", type=int, default=60,
                   help="minutes per object (AWS: 5; larger objects stand for busy flow logs)")
    args = p.parse_args()

    run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT)
    if not S3S.exists():
        run(["cargo", "install", "s3s-fs@0.14.1", "--features", "binary", "--locked",
             "--root", str(ROOT / "target" / "tools"),
             "--target-dir", str(ROOT / "target" / "tools-build")])
    data = WORK / f"{args.days}d-{args.enis}e-r{args.rate}-m{args.object_minutes}"
    archive = data / "bench"
    if not (archive / "AWSLogs").exists():
        run([str(BIN), "generate", "--out", str(archive), "--days", str(args.days),
             "--enis", str(args.enis), "--rate", str(args.rate), "--end", "2026-10-15",
             "--object-minutes", str(args.object_minutes)])
    objects = list(archive.rglob("*.gz"))
    size = sum(o.stat().st_size for o in objects)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(S3S), "--host", "127.0.0.1", "--port", str(port),
                               "--access-key", KEY, "--secret-key", SECRET, str(data)],
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

        def flowlens(source):
            out = run([str(BIN), "sql", QUERY, "--source", source, "--output", "csv", "--quiet",
                       "--s3-concurrency", str(args.concurrency)],
                      capture_output=True, text=True, env=env).stdout
            return out

        t_local, r_local = best_of(args.runs, lambda: flowlens(str(archive)))
        t_s3, r_s3 = best_of(args.runs, lambda: flowlens("s3://bench/"))
        if r_local != r_s3:
            raise SystemExit("answers differ between local and S3")
    finally:
        server.terminate()
        server.wait()

    print(f"archive: {len(objects)} gzip objects, {size / 1e6:.0f} MB compressed; "
          f"{os.cpu_count()} cores; --s3-concurrency {args.concurrency}")
    print(f"query: {QUERY}\n")
    print("| source | time | compressed MB/s |")
    print("|---|---|---|")
    print(f"| local disk | {t_local:.2f} s | {size / t_local / 1e6:.0f} |")
    print(f"| s3s-fs on 127.0.0.1 | {t_s3:.2f} s | {size / t_s3 / 1e6:.0f} |")
    print(f"\nS3 rate is {t_local / t_s3 * 100:.0f}% of the local-disk rate")


if __name__ == "__main__":
    main()
