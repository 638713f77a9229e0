"""Kill-anywhere resume: for each vendor, kill the tap at random points (SIGKILL, SIGTERM),
restart it with the last STATE it printed, repeat until done; the union of what it emitted is
the dataset, and repeats come only from windows in flight at a kill."""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import subprocess

import pytest

from tests.conftest import utc_midnight
from tests.harness import parse_lines, run_tap, tap_command

DAYS = 16
IN_FLIGHT = 2
FIGURES: list[str] = []


def dfinery_case():
    from tap_event_exports.sandbox.dfinery import DfineryFake, generate_events
    from tests.conftest import SEOUL, seoul_today

    first = seoul_today() - dt.timedelta(days=DAYS)
    fake = DfineryFake(events=generate_events(start=first, days=DAYS, per_day=12), delay=0.4)
    start = dt.datetime.combine(first, dt.time(0), tzinfo=SEOUL)
    block = {"service_id": fake.service_id, "api_token": fake.token}
    return fake, start, "dfinery", block, "dfinery_events", "df_event_detail_log_id"


def batch_case():
    from tap_event_exports.sandbox.batch import BatchFake, generate_data

    data = generate_data(start=utc_midnight(DAYS), days=DAYS, per_day=10)
    fake = BatchFake(data, job_seconds=0.45)
    block = {"api_key": fake.api_key, "rest_api_key": fake.rest_key, "reachability": True}
    return fake, utc_midnight(DAYS), "batch", block, "batch_reachability_events", "_record_id"


def mytracker_case():
    from tap_event_exports.sandbox.mytracker import MyTrackerFake, generate_rows

    rows = {"installs": generate_rows("installs", start=utc_midnight(DAYS), days=DAYS, per_day=10)}
    fake = MyTrackerFake(rows, job_seconds=0.3, per_minute=100_000, per_second=1000)
    block = {
        "api_user_id": fake.user_id,
        "api_secret_key": fake.secret,
        "exports": [{"event": "installs", "selectors": ["tsEvent", "idApp", "SDKKey"]}],
    }
    return fake, utc_midnight(DAYS), "mytracker", block, "mytracker_installs", "_record_id"


def keen_case():
    from tap_event_exports.sandbox.keen import KeenFake, generate_events

    events = {
        "pageviews": generate_events("pageviews", start=utc_midnight(DAYS), days=DAYS, per_day=10)
    }
    fake = KeenFake(events, job_seconds=0.3)
    block = {"project_id": fake.project_id, "api_key": fake.api_key, "collections": ["pageviews"]}
    return fake, utc_midnight(DAYS), "keen", block, "keen_pageviews", "keen.id"


CASES = {
    "dfinery": dfinery_case,
    "batch": batch_case,
    "mytracker": mytracker_case,
    "keen": keen_case,
}


def run_once(argv, state, kill_after, sig, tmp_path):
    if state is not None:
        path = tmp_path / "state.json"
        path.write_text(json.dumps(state))
        argv = [*argv, "--state", str(path)]
    out = tmp_path / "out.jsonl"
    with out.open("wb") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(sig)
            proc.wait(timeout=30)
    messages, _ = parse_lines(out.read_bytes())
    return proc.returncode, messages


@pytest.mark.parametrize(
    ("vendor", "sig"),
    [
        ("dfinery", signal.SIGKILL),
        ("dfinery", signal.SIGTERM),
        ("batch", signal.SIGKILL),
        ("batch", signal.SIGTERM),
        ("mytracker", signal.SIGKILL),
        ("keen", signal.SIGKILL),
    ],
    ids=lambda v: v if isinstance(v, str) else signal.Signals(v).name,
)
def test_kill_anywhere_and_resume(tmp_path, vendor, sig):
    fake, start, key, block, stream, pk = CASES[vendor]()
    with fake:
        exports_dir = tmp_path / "exports"
        config = {
            "start_date": start.isoformat(),
            "max_concurrent_jobs": IN_FLIGHT,
            "poll_interval": 0.05,
            "temp_dir": str(exports_dir),
            key: {**block, "base_url": fake.base_url, "lookback": "PT0S"},
        }
        expected = {r[pk] for r in run_tap(config).records(stream)}
        assert len(expected) > 50
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        argv = [*tap_command(), "--config", str(path)]
        rng = random.Random(f"{vendor}-{int(sig)}")
        state, seen, kills, left_behind = None, [], 0, 0
        for _attempt in range(60):
            code, messages = run_once(argv, state, rng.uniform(0.7, 2.2), sig, tmp_path)
            leftovers = list(exports_dir.iterdir()) if exports_dir.exists() else []
            if sig == signal.SIGTERM or code == 0:
                assert leftovers == [], "a run that could clean up left files"
            left_behind = max(left_behind, len(leftovers))
            seen += [m["record"][pk] for m in messages if m["type"] == "RECORD"]
            states = [m["value"] for m in messages if m["type"] == "STATE"]
            state = states[-1] if states else state
            if code == 0:
                break
            assert code in (-signal.SIGKILL, 128 + signal.SIGTERM), code
            kills += 1
        else:
            pytest.fail("the run never finished")
    repeats = len(seen) - len(set(seen))
    per_window = len(expected) / DAYS
    line = (
        f"{vendor:10} {signal.Signals(sig).name:8} {kills:3} kills, {len(set(seen)):5} distinct "
        f"records of {len(expected)}, {repeats:4} repeats"
    )
    FIGURES.append(line)
    print("\n" + line)
    assert kills >= 2, "the test must actually interrupt runs"
    if sig == signal.SIGKILL:
        assert left_behind >= 1, "a killed run leaves its folder for the next run to remove"
    assert list(exports_dir.iterdir()) == [], "nothing remains after the run that followed"
    assert set(seen) == expected, "every record arrives despite the kills"
    # repeats only from windows in flight at a kill (lookback is zero here)
    assert repeats <= kills * (IN_FLIGHT + 1) * per_window * 2
