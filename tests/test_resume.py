"""A run killed anywhere and restarted with its last STATE loses nothing."""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import subprocess

import pytest

from tap_event_exports.sandbox.dfinery import DfineryFake, generate_events
from tests.conftest import SEOUL, seoul_today
from tests.harness import parse_lines, tap_command

KEY = "df_event_detail_log_id"
IN_FLIGHT = 2


def run_once(config_path, state: dict | None, kill_after: float, sig: int, tmp_path):
    argv = [*tap_command(), "--config", str(config_path)]
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state))
        argv += ["--state", str(state_path)]
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


DAYS = 20


@pytest.fixture
def dfinery():
    first = seoul_today() - dt.timedelta(days=DAYS - 1)
    # each day's export takes a moment, so kills land mid-run
    fake = DfineryFake(events=generate_events(start=first, days=DAYS, per_day=15), delay=0.25)
    with fake:
        yield fake


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_kill_anywhere_and_resume(dfinery, tmp_path, sig):
    first = seoul_today() - dt.timedelta(days=DAYS - 1)
    config = {
        "start_date": dt.datetime.combine(first, dt.time(0), tzinfo=SEOUL).isoformat(),
        "max_concurrent_jobs": IN_FLIGHT,
        "dfinery": {
            "service_id": dfinery.service_id,
            "api_token": dfinery.token,
            "base_url": dfinery.base_url,
            "lookback": "PT0S",
        },
    }
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    rng = random.Random(int(sig))
    state = None
    seen: list[str] = []
    kills = 0
    for _attempt in range(40):
        code, messages = run_once(config_path, state, rng.uniform(0.6, 2.0), sig, tmp_path)
        seen += [m["record"][KEY] for m in messages if m["type"] == "RECORD"]
        states = [m["value"] for m in messages if m["type"] == "STATE"]
        state = states[-1] if states else state
        if code == 0:
            break
        assert code in (-signal.SIGKILL, 128 + signal.SIGTERM), code
        kills += 1
    else:
        pytest.fail("the run never finished")
    expected = {r[KEY] for r in dfinery.events}
    repeats = len(seen) - len(set(seen))
    per_day = max(
        len([r for r in dfinery.events if r["df_event_datetime"] == d])
        for d in {r["df_event_datetime"] for r in dfinery.events}
    )
    print(f"\n{signal.Signals(sig).name}: {kills} kills, {len(seen)} records, {repeats} repeats")
    assert kills >= 2, "the test must actually interrupt runs"
    assert set(seen) == expected, "every record arrives despite the kills"
    # repeats come only from windows in flight at a kill (lookback is zero here)
    rows_per_window = len(expected) / DAYS * 1.6 + per_day
    assert repeats <= kills * IN_FLIGHT * rows_per_window
