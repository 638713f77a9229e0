"""Benchmark: the tap against the practical Python ceiling, on the same data, in one run.

    python bench/run.py [--rows 100000] [--rows 1000000] [--skip-batch]

For each size it generates a Dfinery-like export (47 columns) and a myTracker export (gzip
parts), serves them from the sandbox vendors on 127.0.0.1 and measures, each in a process of
its own: the baseline (csv.DictReader + orjson, one RECORD line per row, no typing) on each
dataset's rows as one plain CSV file, the tap with RECORD messages, and the tap with BATCH
messages (jsonl, parquet). It prints rows/s, CPU seconds, peak RSS and the ratio to the rows/s
of the baseline on the same rows. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from tap_event_exports.sandbox.dfinery import EVENT_COLUMNS, DfineryFake, csv_for, generate_events
from tap_event_exports.sandbox.mytracker import MyTrackerFake, generate_rows

BASELINE = """
import csv, sys, orjson
out = open("/dev/null", "wb")
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    for row in csv.DictReader(f):
        out.write(orjson.dumps({"type": "RECORD", "stream": "s", "record": row}) + b"\\n")
"""
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


RUNNER = """
import json, os, resource, subprocess, sys, time
started = time.monotonic()
with open(os.devnull, "wb") as sink:
    code = subprocess.run(sys.argv[1:], stdout=sink, stderr=subprocess.DEVNULL).returncode
wall = time.monotonic() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps([code, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024]))
"""


def measure(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one process.

    A small runner process starts it, so the peak RSS is the measured program's own, not that
    of this process (which holds the generated data).
    """
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, *argv], capture_output=True, text=True, check=True
    ).stdout
    code, wall, cpu, rss = json.loads(out)
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} failed with status {code}")
    return wall, cpu, rss


def tap(config: dict, tmp: Path, name: str) -> list[str]:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(config))
    return [sys.executable, "-m", "tap_event_exports", "--config", str(path)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="rows per dataset")
    parser.add_argument("--skip-batch", action="store_true", help="no BATCH measurements")
    args = parser.parse_args()
    sizes = args.rows or [100_000]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"{'variant':<44}{'rows':>9}{'wall s':>8}{'rows/s':>10}{'CPU s':>8}{'RSS MiB':>9}{'ratio':>7}"
    )
    for rows in sizes:
        with tempfile.TemporaryDirectory() as name:
            run_size(rows, Path(name), args.skip_batch)


def run_size(rows: int, tmp: Path, skip_batch: bool) -> None:
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

    def line(variant: str, count: int, result: tuple[float, float, float], base: float) -> None:
        wall, cpu, rss = result
        rate = count / wall
        print(
            f"{variant:<44}{count:>9}{wall:>8.2f}{rate:>10.0f}{cpu:>8.2f}{rss:>9.1f}{rate / base:>7.2f}",
            flush=True,
        )

    result = measure([sys.executable, "-c", BASELINE, str(data)])
    base_rate = len(events) / result[0]
    line("baseline: csv.DictReader + orjson", len(events), result, base_rate)

    start = dt.datetime.combine(first, dt.time(0), tzinfo=seoul).isoformat()
    with DfineryFake(events=events, memoize=True) as fake:
        block = {"service_id": fake.service_id, "api_token": fake.token, "base_url": fake.base_url}
        config = {"start_date": start, "dfinery": block}
        measure(tap(config, tmp, "warm-up"))  # renders each window's export once, unmeasured
        line(
            "tap, Dfinery, RECORD messages", len(events), measure(tap(config, tmp, "d")), base_rate
        )
        if not skip_batch:
            for encoding, compression in (("jsonl", "gzip"), ("parquet", "none")):
                batch = {
                    "encoding": {"format": encoding, "compression": compression},
                    "storage": {"root": f"file://{tmp}"},
                    "batch_size": 100_000,
                }
                argv = tap(config | {"batch_config": batch}, tmp, f"d-{encoding}")
                line(f"tap, Dfinery, BATCH {encoding}", len(events), measure(argv), base_rate)
    tracked = tmp / "installs.csv"
    with tracked.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(SELECTORS)
        writer.writerows([row.get(name, "") for name in SELECTORS] for row in installs)
    result = measure([sys.executable, "-c", BASELINE, str(tracked)])
    tracked_rate = len(installs) / result[0]
    line("baseline, myTracker rows (12 columns)", len(installs), result, tracked_rate)
    with MyTrackerFake(
        {"installs": installs},
        job_seconds=0.05,
        part_rows=50_000,
        per_second=1000,
        per_minute=100_000,
        memoize=True,
    ) as fake:
        block = {
            "api_user_id": fake.user_id,
            "api_secret_key": fake.secret,
            "base_url": fake.base_url,
            "exports": [{"event": "installs", "selectors": SELECTORS}],
        }
        config = {"start_date": utc_start.isoformat(), "poll_interval": 0.05, "mytracker": block}
        measure(tap(config, tmp, "m-warm-up"))  # renders each window's gzip parts once, unmeasured
        line(
            "tap, myTracker (gzip parts), RECORD messages",
            len(installs),
            measure(tap(config, tmp, "m")),
            tracked_rate,
        )


if __name__ == "__main__":
    main()
