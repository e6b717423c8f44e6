#!/usr/bin/env python3
"""Reads the same flow log archive from a loopback S3-compatible server (s3s-fs) and from
local disk, in one run, and reports the S3 rate as a share of the local-disk rate.

    python3 benches/s3_vs_local.py [--days 3] [--enis 14] [--rate 4] [--object-minutes 60] [--runs 3]
                                   [--concurrency N[,N…]] [--concat]

It builds flowlens in release mode, installs s3s-fs into target/tools if needed, generates
the archive once under target/bench-s3/, uploads it to the server with PutObject (boto3, in
a venv under target/bench-s3/) so the store holds each object's ETag as S3 does (s3s-fs
serving a bare folder would re-read every object to compute its MD5 on each GET), and
prints the best of N runs of two queries: a light 3-column one and a full read of every
field (what `convert` and `detect` do). Both local and S3 use the same cores as the server,
so it also reports the CPU seconds each side used.

Many tiny objects (a quiet flow log writes a few KB every 5 minutes): with `--concat` the same
objects are also read as one local file, their gzip members concatenated (headers and all),
which is the floor the per-object cost is measured against; `--concurrency 64,256,1024` runs
the S3 reads at each setting. About 10,000 objects of ~1.5 KB:

    python3 benches/s3_vs_local.py --days 12 --enis 14 --rate 1 --object-minutes 5 --concat \
        --concurrency 64,256,1024

One large plain object (read in parts, one ranged GET stream per core) against the same file
on local disk, e.g. the file benches/single_file.py writes:

    python3 benches/s3_vs_local.py --large-object target/bench-single/flows-2000000.log
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


def build_with_tools():
    """flowlens in release mode, and the S3 server (s3s-fs) in target/tools."""
    run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT)
    if not S3S.exists():
        run(["cargo", "install", "s3s-fs@0.14.1", "--features", "binary", "--locked",
             "--root", str(ROOT / "target" / "tools"),
             "--target-dir", str(ROOT / "target" / "tools-build")])


def boto3_venv():
    """A venv with boto3, for uploads that store each object's ETag as S3 does."""
    venv = WORK / "venv"
    if not (venv / "bin" / "python").exists():
        run(["python3", "-m", "venv", str(venv)])
        run([str(venv / "bin" / "pip"), "install", "--quiet", "boto3"])
    return venv


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--enis", type=int, default=14)
    p.add_argument("--rate", type=float, default=4.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--concurrency", default=None,
                   help="--s3-concurrency, or several comma-separated (default: flowlens's own)")
    p.add_argument("--concat", action="store_true",
                   help="also read the objects concatenated into one local gzip file")
    p.add_argument("--object-minutes", type=int, default=60,
                   help="minutes per object (AWS: 5; larger objects stand for busy flow logs)")
    p.add_argument("--large-object", type=Path, default=None,
                   help="upload this one file instead of a generated archive")
    args = p.parse_args()

    build_with_tools()
    data = WORK / f"{args.days}d-{args.enis}e-r{args.rate}-m{args.object_minutes}"
    if args.large_object:
        data = WORK / f"large-{args.large_object.name}"
    archive = data / "local"
    store = data / "store"
    venv = boto3_venv()
    if args.large_object:
        # A folder holding only the file (a hard link), uploaded as one object.
        archive.mkdir(parents=True, exist_ok=True)
        link = archive / args.large_object.name
        if not link.exists():
            os.link(args.large_object.resolve(), link)
    elif not (archive / "AWSLogs").exists():
        run([str(BIN), "generate", "--out", str(archive), "--days", str(args.days),
             "--enis", str(args.enis), "--rate", str(args.rate), "--end", "2026-10-15",
             "--object-minutes", str(args.object_minutes)])
    objects = sorted(archive.rglob("*.log" if args.large_object else "*.gz"))
    size = sum(o.stat().st_size for o in objects)
    concat = data / "concatenated.log.gz"
    if args.concat and not concat.exists():
        with open(concat, "wb") as out:
            for o in objects:
                out.write(o.read_bytes())
    settings = [None] if args.concurrency is None else [int(c) for c in args.concurrency.split(",")]

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

        def flowlens(query, source, concurrency=None):
            flags = [] if concurrency is None else ["--s3-concurrency", str(concurrency)]
            return run([str(BIN), "sql", query, "--source", source, "--output", "csv",
                        "--quiet", *flags],
                       capture_output=True, text=True, env=env).stdout

        def measure(query, source, concurrency=None):
            """Best wall time of the runs, and the CPU seconds flowlens and the server used
            in the best run."""
            flowlens(query, source, concurrency)
            best = None
            for _ in range(args.runs):
                ours, theirs = children_cpu(), cpu_seconds(server.pid)
                t = time.perf_counter()
                answer = flowlens(query, source, concurrency)
                wall = time.perf_counter() - t
                run_cpu = (children_cpu() - ours, cpu_seconds(server.pid) - theirs)
                if best is None or wall < best[0]:
                    best = (wall, run_cpu, answer)
            return best

        results = []
        for name, query in (("3-column query", QUERY), ("full read, all 14 fields", FULL)):
            # (source, best run); the first is what the others are a share of.
            rows = []
            if args.concat:
                rows.append(("one concatenated local file", measure(query, str(concat))))
            local = str(objects[0]) if args.large_object else str(archive)
            rows.append((f"{len(objects)} local files", measure(query, local)))
            for concurrency in settings:
                label = f"s3s-fs on 127.0.0.1, --s3-concurrency {concurrency or 'default'}"
                source = f"s3://bench/{objects[0].name}" if args.large_object else "s3://bench/"
                rows.append((label, measure(query, source, concurrency)))
            for label, (_, _, answer) in rows[1:]:
                if answer != rows[0][1][2]:
                    raise SystemExit(f"{name}: {label} answers differently from {rows[0][0]}")
            results.append((name, rows))
    finally:
        server.terminate()
        server.wait()

    kind = "plain" if args.large_object else "gzip"
    print(f"archive: {len(objects)} {kind} objects, {size / 1e6:.1f} MB as stored "
          f"({size / len(objects) / 1e3:.1f} KB each); "
          f"{os.cpu_count()} cores shared by flowlens and the server")
    print(f"3-column query: {QUERY}\n")
    print("| workload | source | time | MB/s as stored | CPU s flowlens | CPU s server | rate / first row |")
    print("|---|---|---|---|---|---|---|")
    for name, rows in results:
        first = rows[0][1][0]
        for label, (t, cpu, _) in rows:
            server_cpu = f"{cpu[1]:.2f}" if label.startswith("s3s") else "-"
            print(f"| {name} | {label} | {t:.2f} s | {size / t / 1e6:.1f} | {cpu[0]:.2f} | "
                  f"{server_cpu} | {first / t * 100:.0f}% |")


if __name__ == "__main__":
    main()
