"""Benchmark: the tap against the Python ceiling and the compiled engines, on the same data.

    python bench/run.py [--rows 100000] [--rows 1000000] [--skip-batch] [--skip-anchors]
                        [--runs 3] [--only SUBSTRING]

For each size it generates a Dfinery-like export (47 columns) and a myTracker export (gzip
parts), serves them from the sandbox vendors on 127.0.0.1 and measures, each in a process of
its own: the baseline (csv.DictReader + orjson, one RECORD line per row, no typing) on each
dataset's rows as one plain CSV file, the tap with RECORD messages (to /dev/null, and through a
pipe: ``tap | cat > file``), the tap with BATCH messages (jsonl gzip, parquet), and, when
``pip install '.[bench]'`` brought them, the anchors: Polars, DuckDB and pyarrow turning the
same 47-column file into NDJSON or parquet. It prints rows/s, CPU seconds, peak RSS and the
ratio to the baseline on the same rows, then the ratios the performance goals are stated in.
With ``--runs N`` each variant runs N times, in N rounds that each run every variant once (the
machine's speed drifts over minutes: back-to-back runs of one variant would carry that drift
into the ratios). The run of median wall time is printed, and each ratio is the median of the
ratios within a round, with their spread for the goals. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import dataclasses
import datetime as dt
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

import tap_event_exports
from tap_event_exports.sandbox.dfinery import EVENT_COLUMNS, DfineryFake, csv_for, generate_events
from tap_event_exports.sandbox.mytracker import MyTrackerFake, generate_rows

BASELINE = """
import csv, sys, orjson
out = open("/dev/null", "wb")
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    for row in csv.DictReader(f):
        out.write(orjson.dumps({"type": "RECORD", "stream": "s", "record": row}) + b"\\n")
"""
ANCHORS = {
    "Polars scan_csv -> sink_ndjson (untyped)": (
        "polars",
        "import sys, polars as pl\n"
        "pl.scan_csv(sys.argv[1], infer_schema=False).sink_ndjson(sys.argv[2])",
    ),
    "Polars scan_csv -> sink_parquet (untyped)": (
        "polars",
        "import sys, polars as pl\n"
        "pl.scan_csv(sys.argv[1], infer_schema=False).sink_parquet(sys.argv[2])",
    ),
    "DuckDB read_csv -> COPY json (typed)": (
        "duckdb",
        "import sys, duckdb\n"
        "duckdb.sql(f\"COPY (SELECT * FROM read_csv('{sys.argv[1]}')) TO '{sys.argv[2]}' (FORMAT json)\")",
    ),
    "DuckDB read_csv -> COPY parquet (typed)": (
        "duckdb",
        "import sys, duckdb\n"
        "duckdb.sql(f\"COPY (SELECT * FROM read_csv('{sys.argv[1]}')) TO '{sys.argv[2]}' (FORMAT parquet)\")",
    ),
    "pyarrow open_csv -> ParquetWriter (untyped)": (
        "pyarrow",
        "import sys, pyarrow as pa, pyarrow.csv as pcsv, pyarrow.parquet as pq\n"
        "names = open(sys.argv[1], encoding='utf-8').readline().rstrip('\\n').split(',')\n"
        "reader = pcsv.open_csv(sys.argv[1], "
        "parse_options=pcsv.ParseOptions(newlines_in_values=True), "
        "convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())))\n"
        "with pq.ParquetWriter(sys.argv[2], reader.schema) as writer:\n"
        "    for batch in reader:\n"
        "        writer.write_batch(batch)",
    ),
}
"""The compiled engines a data engineer would reach for: (module, program reading argv[1] and
writing argv[2])."""
SELECTORS = [
    "tsEvent",
    "tsInstall",
    "idApp",
    "idAppTitle",
    "idCountry",
    "idCampaign",
    "SDKKey",
    "idDevice",
    "eventName",
    "params.name",
    "params.value",
    "revenue",
]
GOALS = [
    # (goal, variant, anchor, at least)
    (
        "BATCH parquet / DuckDB parquet",
        "tap, Dfinery, BATCH parquet",
        "DuckDB read_csv -> COPY parquet (typed)",
        1.25,
    ),
    (
        "RECORD through a pipe / Polars NDJSON",
        "tap, Dfinery, RECORD | cat > file",
        "Polars scan_csv -> sink_ndjson (untyped)",
        1.2,
    ),
    (
        "BATCH jsonl gzip / RECORD",
        "tap, Dfinery, BATCH jsonl",
        "tap, Dfinery, RECORD messages",
        0.8,
    ),
    (
        "myTracker RECORD / its baseline",
        "tap, myTracker (gzip parts), RECORD messages",
        "baseline, myTracker rows (12 columns)",
        1.0,
    ),
]


RUNNER = """
import json, os, resource, subprocess, sys, time
started = time.monotonic()
with open(os.devnull, "wb") as sink:
    code = subprocess.run(sys.argv[1:], stdout=sink, stderr=subprocess.DEVNULL).returncode
wall = time.monotonic() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps([code, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024]))
"""


@dataclasses.dataclass
class Variant:
    """One measured command: its rows, and the variant its ratio column is against."""

    name: str
    rows: int
    argv: list[str]
    base: str | None = None
    cleanup: Path | None = None
    """A file the command writes, or a folder whose files it writes: removed after each run."""

    def clean(self) -> None:
        if self.cleanup is None:
            return
        if self.cleanup.is_dir():
            for written in self.cleanup.iterdir():
                written.unlink()
        else:
            self.cleanup.unlink(missing_ok=True)


class Bench:
    """Runs the variants of one size in rounds, prints them and the goal ratios."""

    def __init__(self, runs: int, only: str | None) -> None:
        self.runs = runs
        self.only = only

    def wanted(self, variant: str) -> bool:
        return self.only is None or self.only in variant or variant.startswith("baseline")

    def measure(self, argv: list[str]) -> tuple[float, float, float]:
        """Wall seconds, CPU seconds and peak RSS (MiB) of one run.

        A small runner process starts each run, so the peak RSS is the measured program's
        own (the largest process it waited for), not that of this process.
        """
        out = subprocess.run(
            [sys.executable, "-c", RUNNER, *argv], capture_output=True, text=True, check=True
        ).stdout
        code, wall, cpu, rss = json.loads(out)
        if code != 0:
            raise SystemExit(f"{shlex.join(argv)} failed with status {code}")
        return wall, cpu, rss

    def rounds(self, variants: list[Variant]) -> None:
        """Run every variant once per round, then print the table and the goal ratios.

        The machine's speed drifts over minutes (other guests, memory reclaim), so variants
        are interleaved rather than run back to back: a goal's ratio is the median of the
        ratios of its two variants within each round. Each round starts one variant later
        than the one before.
        """
        results: dict[str, list[tuple[float, float, float]]] = {v.name: [] for v in variants}
        for index in range(self.runs):
            shift = index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                results[variant.name].append(self.measure(variant.argv))
                variant.clean()
        rates = {v.name: [v.rows / wall for wall, _, _ in results[v.name]] for v in variants}
        for variant in variants:
            runs = results[variant.name]
            median = statistics.median_low([wall for wall, _, _ in runs])
            wall, cpu, rss = next(run for run in runs if run[0] == median)
            rate = variant.rows / wall
            ratio = statistics.median(
                mine / theirs
                for mine, theirs in zip(
                    rates[variant.name], rates[variant.base or variant.name], strict=True
                )
            )
            print(
                f"{variant.name:<46}{variant.rows:>9}{wall:>8.2f}{rate:>10.0f}{cpu:>8.2f}"
                f"{rss:>9.1f}{ratio:>7.2f}",
                flush=True,
            )
        for goal, variant_name, anchor, target in GOALS:
            if variant_name in rates and anchor in rates:
                ratios = [
                    mine / theirs
                    for mine, theirs in zip(rates[variant_name], rates[anchor], strict=True)
                ]
                ratio = statistics.median(ratios)
                verdict = "met" if ratio >= target else "not met"
                spread = f"; rounds {min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
                print(
                    f"  {goal:<44}{ratio:>6.3f}  (goal >= {target}: {verdict}{spread})", flush=True
                )


def tap(config: dict, tmp: Path, name: str) -> list[str]:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(config))
    return [sys.executable, "-m", "tap_event_exports", "--config", str(path)]


def compile_package() -> None:
    """Write the package's bytecode, as installing a wheel does (pip compiles at install).

    An editable checkout run with ``PYTHONDONTWRITEBYTECODE`` set would otherwise compile
    every module of the tap from source at each start (about 50 ms a run here), a cost no
    installed tap pays; the anchors' packages come compiled.
    """
    package = Path(tap_event_exports.__file__).parent
    compileall.compile_dir(str(package), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="rows per dataset")
    parser.add_argument("--skip-batch", action="store_true", help="no BATCH measurements")
    parser.add_argument("--skip-anchors", action="store_true", help="no Polars/DuckDB/pyarrow")
    parser.add_argument(
        "--runs", type=int, default=1, help="rounds: runs per variant (median wall, median ratio)"
    )
    parser.add_argument("--only", help="only the variants whose name holds this (and baselines)")
    args = parser.parse_args()
    sizes = args.rows or [100_000]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    missing = sorted(
        {module for module, _ in ANCHORS.values() if importlib.util.find_spec(module) is None}
    )
    if missing and not args.skip_anchors:
        print(f"anchors skipped, not installed: {', '.join(missing)} (pip install '.[bench]')")
    print(
        f"{'variant':<46}{'rows':>9}{'wall s':>8}{'rows/s':>10}{'CPU s':>8}{'RSS MiB':>9}{'ratio':>7}"
    )
    compile_package()
    bench = Bench(max(1, args.runs), args.only)
    for rows in sizes:
        with tempfile.TemporaryDirectory() as name:
            run_size(
                bench,
                rows,
                Path(name),
                skip_batch=args.skip_batch,
                skip_anchors=args.skip_anchors,
                missing=missing,
            )


def run_size(
    bench: Bench, rows: int, tmp: Path, *, skip_batch: bool, skip_anchors: bool, missing: list[str]
) -> None:
    days = 4
    seoul = ZoneInfo("Asia/Seoul")
    today = dt.datetime.now(seoul).date()
    first = today - dt.timedelta(days=days)
    events = generate_events(start=first, days=days, per_day=max(1, int(rows / days / 1.2)))
    events = (events * 2)[:rows] if len(events) < rows else events[:rows]
    data = tmp / "events.csv"
    data.write_bytes(csv_for(events, EVENT_COLUMNS))
    utc_start = dt.datetime.combine(
        dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days),
        dt.time(0),
        dt.timezone.utc,
    )
    installs = generate_rows("installs", start=utc_start, days=days, per_day=rows // days)

    tracked = tmp / "installs.csv"
    with tracked.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(SELECTORS)
        writer.writerows([row.get(name, "") for name in SELECTORS] for row in installs)

    baseline = "baseline: csv.DictReader + orjson"
    variants = [Variant(baseline, len(events), [sys.executable, "-c", BASELINE, str(data)])]
    if not skip_anchors:
        for name, (module, program) in ANCHORS.items():
            if module not in missing and bench.wanted(name):
                out = tmp / f"anchor-{len(variants)}.out"
                argv = [sys.executable, "-c", program, str(data), str(out)]
                variants.append(Variant(name, len(events), argv, baseline, out))

    start = dt.datetime.combine(first, dt.time(0), tzinfo=seoul).isoformat()
    # quotas no run reaches: --runs repeats every variant against the same fakes
    with (
        DfineryFake(events=events, memoize=True, hourly_limit=10_000) as dfinery,
        MyTrackerFake(
            {"installs": installs},
            job_seconds=0.05,
            part_rows=50_000,
            per_second=1000,
            per_minute=100_000,
            memoize=True,
        ) as mytracker,
    ):
        block = {
            "service_id": dfinery.service_id,
            "api_token": dfinery.token,
            "base_url": dfinery.base_url,
        }
        config = {"start_date": start, "dfinery": block}
        bench.measure(tap(config, tmp, "warm-up"))  # renders each window's export once, unmeasured
        argv = tap(config, tmp, "d")
        name = "tap, Dfinery, RECORD messages"
        if bench.wanted(name):
            variants.append(Variant(name, len(events), argv, baseline))
        name = "tap, Dfinery, RECORD | cat > file"
        if bench.wanted(name):
            out = tmp / "records.out"
            piped = ["sh", "-c", f"{shlex.join(argv)} | cat > {shlex.quote(str(out))}"]
            variants.append(Variant(name, len(events), piped, baseline, out))
        if not skip_batch:
            for encoding, compression in (("jsonl", "gzip"), ("parquet", "none")):
                name = f"tap, Dfinery, BATCH {encoding}"
                if not bench.wanted(name):
                    continue
                root = tmp / f"batch-{encoding}"
                root.mkdir(exist_ok=True)
                batch = {
                    "encoding": {"format": encoding, "compression": compression},
                    "storage": {"root": f"file://{root}"},
                    "batch_size": 100_000,
                }
                argv = tap(config | {"batch_config": batch}, tmp, f"d-{encoding}")
                variants.append(Variant(name, len(events), argv, baseline, root))

        tracked_baseline = "baseline, myTracker rows (12 columns)"
        variants.append(
            Variant(tracked_baseline, len(installs), [sys.executable, "-c", BASELINE, str(tracked)])
        )
        name = "tap, myTracker (gzip parts), RECORD messages"
        if bench.wanted(name):
            block = {
                "api_user_id": mytracker.user_id,
                "api_secret_key": mytracker.secret,
                "base_url": mytracker.base_url,
                "exports": [{"event": "installs", "selectors": SELECTORS}],
            }
            config = {
                "start_date": utc_start.isoformat(),
                "poll_interval": 0.05,
                "mytracker": block,
            }
            # renders each window's gzip parts once, unmeasured
            bench.measure(tap(config, tmp, "m-warm-up"))
            variants.append(Variant(name, len(installs), tap(config, tmp, "m"), tracked_baseline))
        bench.rounds(variants)


if __name__ == "__main__":
    main()
