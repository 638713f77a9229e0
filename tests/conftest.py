"""Fixtures: fake vendors on 127.0.0.1 and configs pointing at them."""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

import pytest

from tap_event_exports.engine import http
from tap_event_exports.sandbox.dfinery import DfineryFake, generate_events, generate_profiles
from tap_event_exports.vendors import keen as keen_vendor
from tap_event_exports.vendors import mytracker as mytracker_vendor
from tests.harness import assert_no_secrets

SEOUL = ZoneInfo("Asia/Seoul")
DAYS = 6


@pytest.fixture(autouse=True)
def _no_secret_in_logs(caplog):
    """No configured secret may reach a log record, in any test."""
    caplog.set_level(logging.DEBUG)
    yield
    assert_no_secrets(caplog.text)


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch):
    """Keep retry backoff short so fault tests run in seconds (waits the vendor asks for stay)."""
    monkeypatch.setattr(http, "BACKOFF_BASE_SECONDS", 0.02)
    monkeypatch.setattr(http, "BACKOFF_CAP_SECONDS", 0.1)
    # Keen blocks the rest of a minute after a 429: the fake's minute is 2 s (see ``keen``)
    monkeypatch.setattr(keen_vendor, "RATE_LIMIT_PERIOD_SECONDS", KEEN_MINUTE_SECONDS)
    # a create refused by myTracker's full queue asks again after poll_interval, not 5 s
    monkeypatch.setattr(mytracker_vendor, "QUEUE_PAUSE_FLOOR", 0.01)


def seoul_today() -> dt.date:
    return dt.datetime.now(SEOUL).date()


@pytest.fixture
def dfinery():
    """A fake Dfinery with six days of events ending today, and 25 user profiles."""
    first = seoul_today() - dt.timedelta(days=DAYS - 1)
    fake = DfineryFake(
        events=generate_events(start=first, days=DAYS, per_day=30),
        profiles=generate_profiles(25),
        audiences={"vip": []},
    )
    with fake:
        yield fake


def dfinery_config(fake: DfineryFake, **block) -> dict:
    first = seoul_today() - dt.timedelta(days=DAYS - 1)
    start = dt.datetime.combine(first, dt.time(0), tzinfo=SEOUL)
    return {
        "start_date": start.isoformat(),
        "max_retries": 4,
        "dfinery": {
            "service_id": fake.service_id,
            "api_token": fake.token,
            "base_url": fake.base_url,
            **block,
        },
    }


BATCH_DAYS = 5


def utc_midnight(days_ago: int) -> dt.datetime:
    today = dt.datetime.now(dt.timezone.utc).date()
    return dt.datetime.combine(
        today - dt.timedelta(days=days_ago), dt.time(0), tzinfo=dt.timezone.utc
    )


@pytest.fixture
def batch():
    """A fake Batch with five days of events ending today; jobs take 0.1 s."""
    from tap_event_exports.sandbox.batch import BatchFake, generate_data

    data = generate_data(start=utc_midnight(BATCH_DAYS - 1), days=BATCH_DAYS, per_day=12)
    with BatchFake(data, job_seconds=0.1) as fake:
        yield fake


def batch_config(fake, **block) -> dict:
    return {
        "start_date": utc_midnight(BATCH_DAYS - 1).isoformat(),
        "max_retries": 4,
        "poll_interval": 0.02,
        "batch": {
            "base_url": fake.base_url,
            "api_key": fake.api_key,
            "rest_api_key": fake.rest_key,
            **block,
        },
    }


MYTRACKER_DAYS = 4
INSTALL_SELECTORS = [
    "tsEvent",
    "tsInstall",
    "idApp",
    "idAppTitle",
    "idCountry",
    "SDKKey",
    "dtEvent",
]
CUSTOM_SELECTORS = ["tsEvent", "idApp", "eventName", "params.name", "params.value", "revenue"]


@pytest.fixture
def mytracker():
    """A fake myTracker with four days of installs and custom events ending today."""
    from tap_event_exports.sandbox.mytracker import MyTrackerFake, generate_rows

    start = utc_midnight(MYTRACKER_DAYS - 1)
    rows = {
        event: generate_rows(event, start=start, days=MYTRACKER_DAYS, per_day=25)
        for event in ("installs", "customEvents")
    }
    with MyTrackerFake(rows, job_seconds=0.1, part_rows=30) as fake:
        yield fake


def mytracker_config(fake, **block) -> dict:
    return {
        "start_date": utc_midnight(MYTRACKER_DAYS - 1).isoformat(),
        "max_retries": 4,
        "poll_interval": 0.02,
        "mytracker": {
            "base_url": fake.base_url,
            "api_user_id": fake.user_id,
            "api_secret_key": fake.secret,
            "exports": [
                {"event": "installs", "selectors": INSTALL_SELECTORS},
                {
                    "event": "customEvents",
                    "selectors": CUSTOM_SELECTORS,
                    "filters": {"eventName": ["level_up", "tutorial"], "idApp": [1, 454]},
                },
            ],
            **block,
        },
    }


KEEN_DAYS = 3
KEEN_COLLECTIONS = ("Purchases v2", "pageviews")
KEEN_MINUTE_SECONDS = 2.0
"""How long the fake Keen blocks after a 429 (its minute), and how long the tap waits for it."""


@pytest.fixture
def keen():
    """A fake Keen project with two collections over three days ending today."""
    from tap_event_exports.sandbox.keen import KeenFake, generate_events

    start = utc_midnight(KEEN_DAYS - 1)
    collections = {
        name: generate_events(name, start=start, days=KEEN_DAYS, per_day=30)
        for name in KEEN_COLLECTIONS
    }
    with KeenFake(collections, job_seconds=0.1, minute_seconds=KEEN_MINUTE_SECONDS) as fake:
        yield fake


def keen_config(fake, **block) -> dict:
    return {
        "start_date": utc_midnight(KEEN_DAYS - 1).isoformat(),
        "max_retries": 4,
        "poll_interval": 0.02,
        "keen": {
            "base_url": fake.base_url,
            "project_id": fake.project_id,
            "api_key": fake.api_key,
            "collections": list(KEEN_COLLECTIONS),
            **block,
        },
    }


def pytest_terminal_summary(terminalreporter):
    """Print the fault matrix (faults x vendors -> outcome) when its tests ran."""
    from tests.test_fault_matrix import FAULTS, MATRIX, VENDORS

    if MATRIX:
        _print_matrix(terminalreporter, FAULTS, MATRIX, VENDORS)
    from tests.test_resume import FIGURES

    if FIGURES:
        terminalreporter.write_sep("-", "kill-anywhere resume")
        for line in FIGURES:
            terminalreporter.write_line(line)


def _print_matrix(terminalreporter, FAULTS, MATRIX, VENDORS):
    vendors = list(VENDORS)
    width = max(len(f) for f in FAULTS) + 2
    terminalreporter.write_sep("-", "fault matrix (fault x vendor -> outcome)")
    terminalreporter.write_line("".ljust(width) + "".join(v.ljust(16) for v in vendors))
    for fault in FAULTS:
        cells = [MATRIX.get((v, fault), "NOT RUN / FAILED") for v in vendors]
        terminalreporter.write_line(fault.ljust(width) + "".join(c.ljust(16) for c in cells))


def _hypothesis_profiles() -> None:
    """Hypothesis (tests/test_reading_properties.py): derandomized by default, so CI runs the
    same examples every time; ``HYPOTHESIS_PROFILE=explore`` searches with random seeds and ten
    times the examples."""
    try:
        from hypothesis import Phase, settings
    except ImportError:  # not installed: only the property tests need it
        return
    import os

    quick = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]  # no explain
    settings.register_profile("ci", derandomize=True, database=None, print_blob=True, phases=quick)
    settings.register_profile("explore", max_examples=1000, database=None, print_blob=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


_hypothesis_profiles()
