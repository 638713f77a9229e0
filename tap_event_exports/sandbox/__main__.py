"""``tap-event-exports-sandbox``: every fake vendor on 127.0.0.1, and a config that uses them.

Starts the sandbox vendors with generated data over the last ``--days`` days, writes a ready
config for the tap (``--config-out``, default stdout) and serves until interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

from tap_event_exports.sandbox import keen
from tap_event_exports.sandbox.batch import BatchFake, generate_data
from tap_event_exports.sandbox.dfinery import DfineryFake, generate_events, generate_profiles
from tap_event_exports.sandbox.mytracker import MyTrackerFake, generate_rows
from tap_event_exports.sandbox.server import FakeServer

SANDBOX_INSTALLS = ["tsEvent", "tsInstall", "idApp", "idAppTitle", "idCountry", "SDKKey"]
SANDBOX_COLLECTIONS = ("Purchases v2", "pageviews")
SANDBOX_CUSTOM_EVENTS = ["tsEvent", "idApp", "eventName", "params.name", "params.value"]


def build(
    days: int, per_day: int, port: int = 0, *, through_today: bool = True
) -> tuple[list[FakeServer], dict]:
    """Start the fakes; return them with a tap config pointing at them.

    The data covers ``days`` days ending today, or ending yesterday with ``through_today=False``
    (then runs on the same day find nothing new).
    """
    last = 0 if through_today else 1
    seoul_today = dt.datetime.now(ZoneInfo("Asia/Seoul")).date()
    first = seoul_today - dt.timedelta(days=days - 1 + last)
    dfinery = DfineryFake(
        events=generate_events(start=first, days=days, per_day=per_day),
        profiles=generate_profiles(max(10, per_day)),
        port=port,
    ).start()
    utc_start = dt.datetime.combine(
        dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days - 1 + last),
        dt.time(0),
        tzinfo=dt.timezone.utc,
    )
    batch = BatchFake(
        generate_data(start=utc_start, days=days, per_day=per_day),
        port=port + 1 if port else 0,
    ).start()
    mytracker = MyTrackerFake(
        {
            event: generate_rows(event, start=utc_start, days=days, per_day=per_day)
            for event in ("installs", "customEvents")
        },
        part_rows=max(100, per_day),
        port=port + 2 if port else 0,
    ).start()
    keen_fake = keen.KeenFake(
        {
            name: keen.generate_events(name, start=utc_start, days=days, per_day=per_day)
            for name in SANDBOX_COLLECTIONS
        },
        port=port + 3 if port else 0,
    ).start()
    start = dt.datetime.combine(first, dt.time(0), tzinfo=ZoneInfo("Asia/Seoul"))
    config = {
        "start_date": min(start, utc_start).isoformat(),
        "max_concurrent_jobs": 2,
        "poll_interval": 0.2,
        "dfinery": {
            "base_url": dfinery.base_url,
            "service_id": dfinery.service_id,
            "api_token": dfinery.token,
            "user_profiles": {},
        },
        "keen": {
            "base_url": keen_fake.base_url,
            "project_id": keen_fake.project_id,
            "api_key": keen_fake.api_key,
            "collections": list(SANDBOX_COLLECTIONS),
        },
        "mytracker": {
            "base_url": mytracker.base_url,
            "api_user_id": mytracker.user_id,
            "api_secret_key": mytracker.secret,
            "exports": [
                {"event": "installs", "selectors": SANDBOX_INSTALLS},
                {"event": "customEvents", "selectors": SANDBOX_CUSTOM_EVENTS},
            ],
        },
        "batch": {
            "base_url": batch.base_url,
            "api_key": batch.api_key,
            "rest_api_key": batch.rest_key,
            "push_campaigns": sorted(batch.data.campaigns),
            "transactional_groups": sorted(batch.data.transactional),
            "in_app_campaigns": sorted(batch.data.in_app),
            "reachability": True,
            "userbase": True,
        },
    }
    return [dfinery, mytracker, batch, keen_fake], config


def main(argv: list[str] | None = None) -> None:
    """Run the sandbox until interrupted."""
    parser = argparse.ArgumentParser(prog="tap-event-exports-sandbox", description=__doc__)
    parser.add_argument("--days", type=int, default=7, help="days of data ending today")
    parser.add_argument(
        "--complete-days",
        action="store_true",
        help="end the data yesterday: no event arrives while the sandbox runs",
    )
    parser.add_argument("--per-day", type=int, default=200, help="events per day per source")
    parser.add_argument("--port", type=int, default=0, help="first port (default: any free)")
    parser.add_argument("--config-out", type=Path, help="write the tap config here")
    args = parser.parse_args(argv)
    servers, config = build(
        args.days, args.per_day, args.port, through_today=not args.complete_days
    )
    text = json.dumps(config, indent=2)
    if args.config_out:
        args.config_out.write_text(text + "\n")
        print(f"sandbox config written to {args.config_out}", file=sys.stderr)
    else:
        print(text, flush=True)
    for server in servers:
        print(f"{type(server).__name__} on {server.base_url}", file=sys.stderr)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
