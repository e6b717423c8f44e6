#!/usr/bin/env python3
"""Peak memory and time of `flowlens baseline` and learnt `flowlens detect` as the archive
grows: generated estates of 100 interfaces over 7, 15 and 30 days and of 1,000 interfaces over
15 days (hourly objects, the layout AWS delivers). Baselines are built a day at a time, so
peak RSS should stay flat as the days grow.

    python3 benches/baseline_memory.py [--estates 7x100,15x100,30x100,15x1000]
                                       [--bin target/release/flowlens] [--memory-mb N]

Estates are generated once under target/bench-memory/ (the 1,000-interface fortnight is about
170 million records, 2.8 GB of gzip, and takes a few minutes to write). Peak RSS is the
maximum resident set size that GNU time reports for the whole process.
"""
import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "bench-memory"
END = "2026-11-30"


def measure(cmd):
    """(seconds, peak RSS in MB) of one run of `cmd`."""
    with tempfile.NamedTemporaryFile("r") as report:
        subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", report.name, *cmd], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds, kb = report.read().split()[-2:]
    return float(seconds), int(kb) / 1024


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--estates", default="7x100,15x100,30x100,15x1000",
                   help="DAYSxINTERFACES, comma-separated")
    p.add_argument("--bin", default=str(ROOT / "target" / "release" / "flowlens"))
    p.add_argument("--memory-mb", type=int, help="passed to flowlens as --memory-mb")
    args = p.parse_args()
    if not shutil.which("/usr/bin/time"):
        raise SystemExit("GNU time (/usr/bin/time) is needed: apt-get install time")
    if args.bin == str(ROOT / "target" / "release" / "flowlens"):
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    extra = ["--memory-mb", str(args.memory_mb)] if args.memory_mb else []
    rows = []
    for estate in args.estates.split(","):
        days, enis = (int(n) for n in estate.split("x"))
        archive = WORK / f"{days}d-{enis}e"
        if not (archive / "AWSLogs").exists():
            # The generator holds an estate in memory (1,000 interfaces over 15 days need more
            # than 24 GB): a large estate is written as estates of 100 interfaces with seeds of
            # their own, whose interfaces and flow log ids differ, into one archive.
            for part in range((enis + 99) // 100):
                subprocess.run([args.bin, "generate", "--out", str(archive), "--days", str(days),
                                "--enis", str(min(100, enis - part * 100)), "--seed", str(part + 1),
                                "--object-minutes", "60", "--end", END],
                               check=True, stderr=subprocess.DEVNULL)
        records = subprocess.run([args.bin, "sql", "SELECT count(*) FROM flows", "-s", str(archive),
                                  "-o", "csv", "-q"], check=True, capture_output=True,
                                 text=True).stdout.splitlines()[1]
        size = sum(f.stat().st_size for f in archive.rglob("*.gz"))
        with tempfile.TemporaryDirectory() as out:
            baseline = measure([args.bin, "baseline", "-s", str(archive), "--out", out, "-q", *extra])
        detect = measure([args.bin, "detect", "-s", str(archive), "-o", "jsonl", "-q", *extra])
        rows.append((days, enis, int(records), size, baseline, detect))
        print(f"{days} days x {enis} interfaces: baseline {baseline[0]:.1f} s {baseline[1]:.0f} MB, "
              f"detect {detect[0]:.1f} s {detect[1]:.0f} MB", flush=True)
    print(f"\n{os.cpu_count()} cores; {args.bin}\n")
    print("| estate | records | gzip | baseline: time | baseline: peak RSS "
          "| detect (learnt): time | detect: peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for days, enis, records, size, baseline, detect in rows:
        print(f"| {days} days x {enis} interfaces | {records / 1e6:.1f} M | {size / 1e6:,.0f} MB "
              f"| {baseline[0]:.1f} s | {baseline[1]:,.0f} MB | {detect[0]:.1f} s | {detect[1]:,.0f} MB |")


if __name__ == "__main__":
    main()
