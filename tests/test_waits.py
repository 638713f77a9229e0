"""Every long wait says which vendor waits, why, how long and until when."""

from __future__ import annotations

import logging
import re
import threading
import time

from tap_event_exports.engine import waits
from tap_event_exports.engine.pacing import RateLimiter

LINE = re.compile(r"^(\w+): waiting (\d+\.\d)s \(until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\): (.+)$")


def wait_lines(caplog):
    return [LINE.match(r.getMessage()) for r in caplog.records if r.name.endswith("waits")]


def test_client_side_pacing_announces_its_wait(caplog, monkeypatch):
    monkeypatch.setattr(waits, "LONG_WAIT_SECONDS", 0.2)
    limiter = RateLimiter(((2, 0.5),), threading.Event(), vendor="mytracker")
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    for _ in range(3):
        limiter.acquire()
    assert time.monotonic() - started >= 0.5
    (line,) = wait_lines(caplog)
    assert line is not None
    assert line.group(1) == "mytracker"
    assert 0.2 <= float(line.group(2)) <= 0.7
    assert line.group(3) == "client-side quota pacing (2/0.5s)"


def test_short_waits_stay_silent(caplog):
    limiter = RateLimiter(((2, 0.3),), threading.Event(), vendor="mytracker")
    caplog.set_level(logging.INFO)
    for _ in range(3):
        limiter.acquire()
    assert wait_lines(caplog) == []


def test_job_polls_and_rate_limit_pauses_are_announced(caplog, monkeypatch):
    from tap_event_exports.sandbox.keen import KeenFake, generate_events
    from tests.conftest import keen_config, utc_midnight
    from tests.harness import run_tap

    monkeypatch.setattr(waits, "LONG_WAIT_SECONDS", 0.05)
    events = {"pageviews": generate_events("pageviews", start=utc_midnight(1), days=1, per_day=5)}
    caplog.set_level(logging.INFO)
    with KeenFake(events, job_seconds=0.4) as fake:
        config = keen_config(fake, collections=["pageviews"])
        config["poll_interval"] = 0.1
        run_tap(config)
    lines = [line for line in wait_lines(caplog) if line is not None]
    polls = [line for line in lines if "still running, next status check" in line.group(3)]
    assert polls, [r.getMessage() for r in caplog.records]
    assert all(line.group(1) == "keen" for line in polls)
    assert "keen_pageviews: window " in polls[0].group(3)
