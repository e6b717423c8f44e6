#!/usr/bin/env python3
"""One large file, side by side: flowlens against polars and DuckDB on a ~2-million-line
default-format flow log file, plain and as one gzip stream, and the inflate floor.

    python3 benches/single_file.py [--lines 2000000] [--runs 5]

It builds flowlens in release mode, writes the file once under target/bench-single/
(generated objects concatenated under one header, then `gzip -6` as a single stream),
installs polars, DuckDB and python-isal (ISA-L) into a virtualenv there, checks that the
three engines give the same answer and prints medians of N runs of
`SELECT interface_id, count(*), sum(bytes) FROM flows WHERE action = 'REJECT' GROUP BY 1`.
flowlens is timed as a whole process (start-up included); the others in-process. The
inflate floor is the fastest streaming inflate of the gzip file in-process: ISA-L (igzip)
and zlib, reading 1 MiB at a time and dropping the bytes. Last, flowlens reads the plain
file as standard input, redirected and through a pipe.
"""
import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "bench-single"
BIN = ROOT / "target" / "release" / "flowlens"
# The same query and DuckDB column types as the many-objects comparison.
import compare_duckdb  # noqa: E402
from compare_duckdb import COLUMNS, QUERY, run  # noqa: E402

# Runs in the virtualenv: times one engine `runs` times, prints the median and the answer.
ENGINE = r'''
import statistics, sys, time, zlib
engine, path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
COLUMNS = %(columns)r
QUERY = %(query)r

def polars():
    import polars as pl
    opts = dict(separator=" ", has_header=True, null_values=["-"],
                schema_overrides={"bytes": pl.Int64, "interface-id": pl.Utf8, "action": pl.Utf8})
    frame = pl.read_csv(path, **opts).lazy() if path.endswith(".gz") else pl.scan_csv(path, **opts)
    out = (frame.filter(pl.col("action") == "REJECT").group_by("interface-id")
           .agg(pl.len().alias("n"), pl.col("bytes").sum().alias("b"))
           .sort("interface-id").collect())
    return [f"{r[0]},{r[1]},{r[2]}" for r in out.iter_rows()]

def duckdb():
    import duckdb
    duckdb.sql("SET enable_progress_bar = false")
    sql = QUERY.replace("FROM flows", f"FROM read_csv('{path}', delim=' ', nullstr='-', "
                        f"header=true, columns={COLUMNS})")
    return [",".join(str(v) for v in r) for r in duckdb.sql(sql).fetchall()]

def stream(opener):
    def run():
        total = 0
        with opener(path) as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
        return [str(total)]
    return run

def isal_stream():
    from isal import igzip
    return stream(lambda p: igzip.open(p, "rb"))()

def zlib_stream():
    d = zlib.decompressobj(31)
    total = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            total += len(d.decompress(chunk))
    return [str(total)]

fn = {"polars": polars, "duckdb": duckdb, "isal": isal_stream, "zlib": zlib_stream}[engine]
fn()
times, answer = [], None
for _ in range(runs):
    t = time.perf_counter()
    answer = fn()
    times.append(time.perf_counter() - t)
print(statistics.median(times))
print("\n".join(answer))
''' % {"columns": COLUMNS, "query": QUERY}


def ensure_venv():
    python = compare_duckdb.ensure_venv(WORK, ["duckdb", "polars", "isal"])
    versions = subprocess.run(
        [str(python), "-c", "import duckdb, polars, isal; "
         "print(f'DuckDB {duckdb.__version__}, polars {polars.__version__}, isal {isal.__version__}')"],
        capture_output=True, text=True, check=True).stdout.strip()
    return python, versions


def make_file(lines):
    plain = WORK / f"flows-{lines}.log"
    gz = WORK / f"flows-{lines}.log.gz"
    if plain.exists() and gz.exists():
        return plain, gz
    estate = WORK / f"estate-{lines}"
    if not (estate / "AWSLogs").exists():
        # ~1,190 records per object-hour at these settings; a day is ~2 million lines.
        run([str(BIN), "generate", "--out", str(estate), "--days", "1", "--enis", "40",
             "--rate", "16", "--end", "2026-10-15", "--default-format-only", "--plain",
             "--object-minutes", "5"])
    written = 0
    tmp = plain.with_suffix(".tmp")
    with open(tmp, "w") as out:
        for i, obj in enumerate(sorted(estate.rglob("*.log"))):
            with open(obj) as f:
                header = f.readline()
                if i == 0:
                    out.write(header)
                for line in f:
                    if written >= lines:
                        break
                    out.write(line)
                    written += 1
            if written >= lines:
                break
    tmp.rename(plain)
    with open(gz, "wb") as out:
        run(["gzip", "-6", "-c", str(plain)], stdout=out)
    return plain, gz


def flowlens(path, runs, stdin=None):
    """flowlens on `path`; with `stdin` ("redirect" or "pipe") the file comes as `-s -`,
    redirected from the file or piped through `cat`."""
    source = "-" if stdin else str(path)
    cmd = [str(BIN), "sql", QUERY, "--source", source, "--output", "csv", "--quiet"]

    def once():
        if stdin == "pipe":
            cat = subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)
            out = run(cmd, stdin=cat.stdout, capture_output=True, text=True).stdout
            cat.stdout.close()
            cat.wait()
            return out
        if stdin == "redirect":
            with open(path, "rb") as f:
                return run(cmd, stdin=f, capture_output=True, text=True).stdout
        return run(cmd, capture_output=True, text=True).stdout

    out = once()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = once()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out.splitlines()[1:]


def engine(python, name, path, runs):
    out = run([str(python), "-c", ENGINE, name, str(path), str(runs)],
              capture_output=True, text=True).stdout.splitlines()
    return float(out[0]), out[1:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT)
    WORK.mkdir(parents=True, exist_ok=True)
    plain, gz = make_file(args.lines)
    python, versions = ensure_venv()
    print(f"{args.lines:,} lines: {plain.stat().st_size / 1e6:.0f} MB plain, "
          f"{gz.stat().st_size / 1e6:.0f} MB as one gzip stream; {os.cpu_count()} cores; "
          f"{versions}; medians of {args.runs}")
    print(f"query: {QUERY}\n")

    results = {}
    for label, path in [("plain", plain), ("gzip", gz)]:
        t_fl, r_fl = flowlens(path, args.runs)
        t_pl, r_pl = engine(python, "polars", path, args.runs)
        t_dd, r_dd = engine(python, "duckdb", path, args.runs)
        if not (r_fl == r_pl == r_dd):
            raise SystemExit(f"answers differ on {label}:\nflowlens {r_fl[:3]}\n"
                             f"polars   {r_pl[:3]}\nduckdb   {r_dd[:3]}")
        results[label] = (t_fl, t_pl, t_dd)
    t_isal, n_isal = engine(python, "isal", gz, args.runs)
    t_zlib, n_zlib = engine(python, "zlib", gz, args.runs)
    if n_isal != n_zlib or int(n_isal[0]) != plain.stat().st_size:
        raise SystemExit(f"inflated sizes differ: {n_isal} {n_zlib}")
    floor = min(t_isal, t_zlib)

    print("| file | flowlens | polars | DuckDB | flowlens vs polars | flowlens vs DuckDB |")
    print("|---|---|---|---|---|---|")
    for label, (t_fl, t_pl, t_dd) in results.items():
        print(f"| {label} | {t_fl:.3f} s | {t_pl:.3f} s | {t_dd:.3f} s | "
              f"{t_pl / t_fl:.2f}x faster | {t_dd / t_fl:.2f}x faster |")
    print(f"\nstreaming inflate of the gzip file alone, in-process: ISA-L {t_isal:.3f} s, "
          f"zlib {t_zlib:.3f} s; flowlens on the gzip file takes "
          f"{results['gzip'][0] / floor:.2f}x the fastest (target: at most 1.15x)")

    # The plain file as standard input: a redirect is cut into parts as the path is; a pipe
    # is read as it comes.
    print("\n| plain file given as | flowlens |")
    print("|---|---|")
    print(f"| its path | {results['plain'][0]:.3f} s |")
    for stdin, shown in [("redirect", "`-s - < file`"), ("pipe", "`-s -` piped from `cat`")]:
        t_in, r_in = flowlens(plain, args.runs, stdin)
        if r_in != r_pl:
            raise SystemExit(f"standard input ({stdin}) answers differently: {r_in[:3]}")
        print(f"| {shown} | {t_in:.3f} s |")


if __name__ == "__main__":
    main()
