"""Run-wide scheduling and exact lookback, measured on the sandbox vendors in one run.

    python bench/scheduling.py [--job-seconds 2.5] [--concurrency 20]

1. Batch push campaigns with one window each: 2 partitions (1 campaign) against 40 partitions
   (20 campaigns, events + ids), jobs of ``--job-seconds`` on the vendor's side; wall-time
   ratio, jobs in flight at most, peak temp disk and peak RSS of the 40-partition run.
2. Keen, 4 collections x 8 daily windows against 1 collection x 1 window.
3. 24 hourly incremental Keen runs over one day (P1D windows, PT2H lookback): rows extracted
   again (the lookback) over rows that were new.

Every run is the tap as a process of its own (stdout to /dev/null). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tap_event_exports.sandbox.batch import BatchFake, generate_data
from tap_event_exports.sandbox.keen import KeenFake, generate_events

UTC = dt.timezone.utc
TAP = [sys.executable, "-m", "tap_event_exports"]


def folder_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                continue
    return total


def run(config: dict, tmp: Path, *, state: dict | None = None, out: Path | None = None) -> dict:
    """One tap run: wall seconds, peak RSS (MiB) and peak temp disk (MB)."""
    exports = tmp / "exports"
    config = config | {"temp_dir": str(exports)}
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    argv = [*TAP, "--config", str(path)]
    if state is not None:
        (tmp / "state.json").write_text(json.dumps(state))
        argv += ["--state", str(tmp / "state.json")]
    peaks = {"rss": 0, "disk": 0}
    started = time.monotonic()
    with (out or Path(os.devnull)).open("wb") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.DEVNULL)
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.05):
                peaks["disk"] = max(peaks["disk"], folder_size(exports))
                try:
                    status = Path(f"/proc/{proc.pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        peaks["rss"] = max(peaks["rss"], int(line.split()[1]))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        code = proc.wait()
        done.set()
        watcher.join()
    if code != 0:
        msg = f"the tap exited {code}"
        raise SystemExit(msg)
    return {
        "wall": time.monotonic() - started,
        "rss": peaks["rss"] / 1024,
        "disk": peaks["disk"] / 1e6,
    }


def batch_partitions(args: argparse.Namespace, tmp: Path) -> None:
    today = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - dt.timedelta(days=1)
    tokens = tuple(f"CAMPAIGN_{n:02d}" for n in range(20))
    data = generate_data(start=start, days=1, per_day=20_000, campaigns=tokens)
    print("## Batch: partitions in flight at once\n")
    print("| partitions | wall s | jobs in flight at most | peak temp disk MB | peak RSS MiB |")
    print("|---:|---:|---:|---:|---:|")
    results = {}
    with BatchFake(data, job_seconds=args.job_seconds) as fake:
        for campaigns in (1, 20):
            config = {
                "start_date": start.isoformat(),
                "end_date": today.isoformat(),
                "poll_interval": 0.25,
                "max_concurrent_jobs": args.concurrency,
                "batch": {
                    "base_url": fake.base_url,
                    "api_key": fake.api_key,
                    "rest_api_key": fake.rest_key,
                    "push_campaigns": list(tokens[:campaigns]),
                    "max_concurrent_jobs": args.concurrency,
                },
            }
            fake.max_jobs_in_flight = 0
            figures = run(config, tmp)
            results[campaigns * 2] = figures["wall"]
            print(
                f"| {campaigns * 2} | {figures['wall']:.2f} | {fake.max_jobs_in_flight} | "
                f"{figures['disk']:.1f} | {figures['rss']:.1f} |",
                flush=True,
            )
    print(f"\nratio 40 / 2 partitions: {results[40] / results[2]:.2f}\n")


def keen_windows(args: argparse.Namespace, tmp: Path) -> None:
    today = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - dt.timedelta(days=8)
    names = ["pageviews", "purchases", "signups", "clicks"]
    events = {n: generate_events(n, start=start, days=8, per_day=2_000) for n in names}
    print("## Keen: windows and streams in flight at once\n")
    print("| collections x windows | wall s |")
    print("|---|---:|")
    walls = {}
    with KeenFake(events, job_seconds=args.job_seconds) as fake:
        for collections, days in ((1, 1), (4, 8)):
            config = {
                "start_date": (today - dt.timedelta(days=days)).isoformat(),
                "end_date": today.isoformat(),
                "poll_interval": 0.25,
                "max_concurrent_jobs": args.concurrency,
                "keen": {
                    "base_url": fake.base_url,
                    "project_id": fake.project_id,
                    "api_key": fake.api_key,
                    "collections": names[:collections],
                    "max_concurrent_jobs": args.concurrency,
                },
            }
            walls[(collections, days)] = run(config, tmp)["wall"]
            print(f"| {collections} x {days} | {walls[(collections, days)]:.2f} |", flush=True)
    print(f"\nratio 32 exports / 1 export: {walls[(4, 8)] / walls[(1, 1)]:.2f}\n")


def keen_hourly(tmp: Path) -> None:
    day = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(
        days=2
    )
    events = {"pageviews": generate_events("pageviews", start=day, days=1, per_day=24_000)}
    seen: set[str] = set()
    extracted = 0
    state = None
    with KeenFake(events, job_seconds=0.05) as fake:
        for hour in range(1, 25):
            config = {
                "start_date": day.isoformat(),
                "end_date": (day + dt.timedelta(hours=hour)).isoformat(),
                "poll_interval": 0.05,
                "keen": {
                    "base_url": fake.base_url,
                    "project_id": fake.project_id,
                    "api_key": fake.api_key,
                    "collections": ["pageviews"],
                },
            }
            out = tmp / "hour.jsonl"
            run(config, tmp, state=state, out=out)
            for line in out.read_text().split("\n"):
                if not line:
                    continue
                message = json.loads(line)
                if message["type"] == "RECORD":
                    extracted += 1
                    seen.add(message["record"]["keen.id"])
                elif message["type"] == "STATE":
                    state = message["value"]
    print("## Keen: 24 hourly incremental runs (P1D window, PT2H lookback)\n")
    again = extracted - len(seen)
    print(f"rows extracted: {extracted:,}; new (distinct) rows: {len(seen):,}")
    print(f"rows re-extracted / new rows: {again / len(seen):.2f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-seconds", type=float, default=2.5)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--skip", nargs="*", default=[], choices=["batch", "keen", "hourly"])
    args = parser.parse_args()
    print(
        f"{dt.date.today()} on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; jobs of {args.job_seconds:g}s, "
        f"max_concurrent_jobs {args.concurrency}\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if "batch" not in args.skip:
            batch_partitions(args, tmp)
        if "keen" not in args.skip:
            keen_windows(args, tmp)
        if "hourly" not in args.skip:
            keen_hourly(tmp)


if __name__ == "__main__":
    main()
