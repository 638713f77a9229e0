"""Time a sync of 8 windows whose export jobs each take T seconds, at several concurrencies.

    python bench/jobs_concurrency.py [--job-seconds 2] [--levels 1 2 4]

Runs the tap as a process (stdout to /dev/null) against the fake Batch on 127.0.0.1 and prints
the wall time of each level and its ratio to ``max_concurrent_jobs: 1`` measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tap_event_exports.sandbox.batch import BatchFake, generate_data

WINDOWS = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()

    today = dt.datetime.now(dt.timezone.utc).date()
    start = dt.datetime.combine(today - dt.timedelta(days=WINDOWS - 1), dt.time(0), dt.timezone.utc)
    data = generate_data(start=start, days=WINDOWS, per_day=500)
    results: dict[int, float] = {}
    with (
        BatchFake(data, job_seconds=args.job_seconds) as fake,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for level in args.levels:
            config = {
                "start_date": start.isoformat(),
                "max_concurrent_jobs": level,
                "poll_interval": 0.25,
                "batch": {
                    "base_url": fake.base_url,
                    "api_key": fake.api_key,
                    "rest_api_key": fake.rest_key,
                    "reachability": True,
                    "max_concurrent_jobs": level,
                },
            }
            path = Path(tmp, f"config-{level}.json")
            path.write_text(json.dumps(config))
            fake.max_jobs_in_flight = 0
            began = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "tap_event_exports", "--config", str(path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            results[level] = time.monotonic() - began
            print(
                f"max_concurrent_jobs={level}: {results[level]:6.2f}s "
                f"({WINDOWS} windows, jobs of {args.job_seconds:g}s, "
                f"{fake.max_jobs_in_flight} jobs in flight at most)",
                flush=True,
            )
    base = results[args.levels[0]]
    for level, seconds in results.items():
        print(f"ratio {level} / {args.levels[0]}: {seconds / base:.2f}")


if __name__ == "__main__":
    main()
