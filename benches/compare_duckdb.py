#!/usr/bin/env python3
"""End-to-end comparison: flowlens vs DuckDB's read_csv on the same query over the same
~1 GB flow log archive, plain text and gzip, in one run; plus gzip decompression alone.

    python3 benches/compare_duckdb.py [--days 7] [--enis 21] [--rate 16] [--runs 3]

It builds flowlens in release mode, generates the archives once under
target/bench-compare/ (reused on later runs), installs DuckDB into a virtualenv there,
checks both engines return the same answer, and prints the best of N wall-clock runs.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "bench-compare"
BIN = ROOT / "target" / "release" / "flowlens"
QUERY = ("SELECT interface_id, count(*) AS n, sum(bytes) AS b FROM flows "
         "WHERE action = 'REJECT' GROUP BY 1 ORDER BY 1")
COLUMNS = ("{'version': 'INTEGER', 'account_id': 'VARCHAR', 'interface_id': 'VARCHAR', "
           "'srcaddr': 'VARCHAR', 'dstaddr': 'VARCHAR', 'srcport': 'INTEGER', "
           "'dstport': 'INTEGER', 'protocol': 'INTEGER', 'packets': 'BIGINT', "
           "'bytes': 'BIGINT', 'start': 'BIGINT', 'end': 'BIGINT', 'action': 'VARCHAR', "
           "'log_status': 'VARCHAR'}")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_venv(work, packages):
    """The Python of a virtualenv under `work` that can import `packages` (installed from
    PyPI the first time)."""
    venv = work / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", str(venv)])
    probe = subprocess.run([str(python), "-c", "import " + ", ".join(packages)],
                           capture_output=True)
    if probe.returncode != 0:
        run([str(python), "-m", "pip", "install", "--quiet", *packages])
    return python


def generate(args, name, extra):
    out = WORK / f"{name}-{args.days}d-{args.enis}e-r{args.rate}"
    if not (out / "AWSLogs").exists():
        run([str(BIN), "generate", "--out", str(out), "--days", str(args.days),
             "--enis", str(args.enis), "--rate", str(args.rate), "--end", "2026-10-15",
             "--default-format-only", "--object-minutes", "5", *extra])
    return out


def du(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def best_of(runs, fn):
    fn()  # warm the page cache and the binary
    times = []
    result = None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def flowlens(src):
    out = run([str(BIN), "sql", QUERY, "--source", str(src), "--output", "csv", "--quiet"],
              capture_output=True, text=True).stdout
    return [line for line in out.splitlines()[1:]]


def duckdb(python, src, pattern):
    sql = (QUERY.replace("FROM flows", f"FROM read_csv('{src}/**/{pattern}', delim=' ', nullstr='-', "
                         f"header=true, columns={COLUMNS})"))
    code = ("import duckdb,sys\n"
            "duckdb.sql('SET enable_progress_bar = false')\n"
            f"rows = duckdb.sql({sql!r}).fetchall()\n"
            "print('\\n'.join(','.join(str(v) for v in r) for r in rows))\n")
    out = run([str(python), "-c", code], capture_output=True, text=True).stdout
    return out.splitlines()


def gunzip_all(src, procs):
    files = [str(p) for p in sorted(src.rglob("*.gz"))]
    chunk = (len(files) + procs - 1) // procs
    workers = [subprocess.Popen(["gzip", "-dc", *files[i:i + chunk]], stdout=subprocess.DEVNULL)
               for i in range(0, len(files), chunk)]
    for w in workers:
        if w.wait() != 0:
            raise SystemExit("gzip failed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--enis", type=int, default=21)
    parser.add_argument("--rate", type=float, default=16.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT)
    WORK.mkdir(parents=True, exist_ok=True)
    plain = generate(args, "plain", ["--plain"])
    gz = generate(args, "gzip", [])
    python = ensure_venv(WORK, ["duckdb"])
    text_bytes = du(plain)
    print(f"archive: {text_bytes / 1e9:.2f} GB of text in {sum(1 for _ in plain.rglob('*.log'))} "
          f"objects; {du(gz) / 1e9:.2f} GB as gzip; {os.cpu_count()} cores")
    print(f"query: {QUERY}\n")

    rows = []
    for label, src, pattern in [("plain", plain, "*.log"), ("gzip", gz, "*.log.gz")]:
        t_fl, r_fl = best_of(args.runs, lambda: flowlens(src))
        t_dd, r_dd = best_of(args.runs, lambda: duckdb(python, src, pattern))
        if r_fl != r_dd:
            raise SystemExit(f"answers differ on {label}:\nflowlens {r_fl[:3]}\nduckdb   {r_dd[:3]}")
        rows.append((label, t_fl, t_dd))
    t_gz1, _ = best_of(args.runs, lambda: gunzip_all(gz, 1))
    t_gzn, _ = best_of(args.runs, lambda: gunzip_all(gz, os.cpu_count() or 1))

    print("| archive | flowlens | DuckDB read_csv | flowlens vs DuckDB | flowlens text rate |")
    print("|---|---|---|---|---|")
    for label, t_fl, t_dd in rows:
        print(f"| {label} | {t_fl:.2f} s | {t_dd:.2f} s | {t_dd / t_fl:.1f}x faster | "
              f"{text_bytes / t_fl / 1e6:.0f} MB/s |")
    print(f"\ngzip -dc of the gzip archive alone: {t_gz1:.2f} s on 1 process, "
          f"{t_gzn:.2f} s on {os.cpu_count()} processes; "
          f"flowlens on gzip takes {rows[1][1] / t_gzn:.2f}x the parallel decompression time")


if __name__ == "__main__":
    main()
