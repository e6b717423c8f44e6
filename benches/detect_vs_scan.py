#!/usr/bin/env python3
"""Detection cost against a plain full scan of the same archive, in one run: a week of a
50-interface estate (about 8 million records), `flowlens detect` (learn the baseline from
six days, examine the seventh) against `SELECT count(*), sum(bytes) FROM flows`, and, for
scale, against a scan that decodes every column detection reads; then detection of the last
day against a baseline stored by `flowlens baseline`.

    python3 benches/detect_vs_scan.py [--days 7] [--enis 50] [--rate 3.5] [--runs 3]
"""
import argparse
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "bench-detect"
BIN = ROOT / "target" / "release" / "flowlens"


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def best_of(runs, fn):
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--enis", type=int, default=50)
    p.add_argument("--rate", type=float, default=3.5)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT)
    archive = WORK / f"{args.days}d-{args.enis}e-r{args.rate}"
    if not (archive / "AWSLogs").exists():
        run([str(BIN), "generate", "--out", str(archive), "--days", str(args.days),
             "--enis", str(args.enis), "--rate", str(args.rate), "--end", "2026-10-15",
             "--incidents"])
    count = run([str(BIN), "sql", "SELECT count(*) FROM flows", "-s", str(archive), "-o", "csv", "-q"],
                capture_output=True, text=True).stdout.splitlines()[1]
    size = sum(f.stat().st_size for f in archive.rglob("*.gz"))
    scan = best_of(args.runs, lambda: run(
        [str(BIN), "sql", "SELECT count(*), sum(bytes) FROM flows", "-s", str(archive), "-q", "-o", "csv"],
        capture_output=True))
    columns = ("interface_id account_id vpc_id srcaddr dstaddr srcport dstport protocol action "
               "log_status flow_direction bytes packets start end tcp_flags").split()
    wide = best_of(args.runs, lambda: run(
        [str(BIN), "sql", "SELECT " + ", ".join(f'count("{c}")' for c in columns) + " FROM flows",
         "-s", str(archive), "-q", "-o", "csv"], capture_output=True))
    detect = best_of(args.runs, lambda: run(
        [str(BIN), "detect", "-s", str(archive), "-q", "-o", "jsonl"], capture_output=True))
    learnt = run([str(BIN), "detect", "-s", str(archive), "-q", "-o", "jsonl"],
                 capture_output=True, text=True).stdout
    findings = learnt.count("\n")
    # The stored-baseline path: a baseline of the days before the last, then detection of
    # the last day against it.
    stored = WORK / f"baseline-{archive.name}"
    run([str(BIN), "baseline", "-s", str(archive), "--until", "2026-10-14T00:00:00Z",
         "--out", str(stored), "-q"])
    with_stored = best_of(args.runs, lambda: run(
        [str(BIN), "detect", "-s", str(archive), "--baseline", str(stored), "-q", "-o", "jsonl"],
        capture_output=True))
    stored_findings = run([str(BIN), "detect", "-s", str(archive), "--baseline", str(stored), "-q",
                           "-o", "jsonl"], capture_output=True, text=True).stdout.count("\n")
    print(f"archive: {int(count):,} records, {size / 1e6:.0f} MB gzip, {args.enis} interfaces, "
          f"{args.days} days; {os.cpu_count()} cores")
    print("| run | time |")
    print("|---|---|")
    print(f"| plain full scan (count, sum bytes) | {scan:.2f} s |")
    print(f"| scan of the {len(columns)} columns detection reads (count each) | {wide:.2f} s |")
    print(f"| detect (baseline from {args.days - 1} days, 1 day examined, {findings} findings) | {detect:.2f} s |")
    print(f"| detect with a stored baseline ({stored_findings} findings) | {with_stored:.2f} s |")
    print(f"\ndetect takes {detect / scan:.2f}x the plain full scan "
          f"and {detect / wide:.2f}x the scan of its columns; "
          f"with a stored baseline {with_stored / scan:.2f}x the plain full scan")


if __name__ == "__main__":
    main()
