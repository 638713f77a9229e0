"""Every vendor against every fault: recovered with the exact dataset, or a clean failure.

The outcome expected of each fault is written down in EXPECTED; the matrix of what happened is
printed at the end of the run (tests/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter

import pytest

from tap_event_exports.engine.errors import TapError
from tests.conftest import batch_config, dfinery_config, keen_config, mytracker_config
from tests.harness import run_tap

RECOVERS, FAILS, NA = "recovered", "clean failure", "n/a"

# vendor: (fixture, config builder, stream, key, file path, JSON status path)
VENDORS = {
    "dfinery": (
        "dfinery",
        dfinery_config,
        "dfinery_events",
        "df_event_detail_log_id",
        "/export/event",
        None,
    ),
    "batch": (
        "batch",
        lambda f: batch_config(f, reachability=True),
        "batch_reachability_events",
        "_record_id",
        "/storage/",
        "/export/request/",
    ),
    "mytracker": (
        "mytracker",
        lambda f: (
            mytracker_config(f)
            | {
                "mytracker": {
                    **mytracker_config(f)["mytracker"],
                    "exports": mytracker_config(f)["mytracker"]["exports"][:1],
                }
            }
        ),
        "mytracker_installs",
        "_record_id",
        "/storage/download/raw/",
        "get.json",
    ),
    "keen": (
        "keen",
        lambda f: keen_config(f, collections=["pageviews"]),
        "keen_pageviews",
        "keen.id",
        "/keen-results/",
        "/_extract/",
    ),
}

# fault: (injected kind, times, target: "file" | "status", expected outcome)
FAULTS = {
    "500 once": ("500", 1, "file", RECOVERS),
    "500 every time": ("500", 99, "file", FAILS),
    "429 + Retry-After": ("429", 1, "file", RECOVERS),
    "reset before answer": ("reset", 1, "file", RECOVERS),
    "slower than request_timeout": ("slow", 1, "file", RECOVERS),
    "cut mid-body": ("cut", 1, "file", RECOVERS),
    "HTML 503 page": ("html-503", 1, "file", RECOVERS),
    "HTML page on 200 (file)": ("html-200", 1, "file", RECOVERS),
    "HTML page on 200 (status JSON)": ("html-200", 1, "status", RECOVERS),
    "500 on status": ("500", 2, "status", RECOVERS),
    "truncated gzip": ("gzip-cut", 1, "file", RECOVERS),
    "ragged CSV row": ("ragged", 1, "file", FAILS),
    "bad UTF-8": ("bad-utf8", 1, "file", FAILS),
    "header changes between windows": ("new-column", 1, "file", RECOVERS),
    "expired result link": ("403", 1, "file", RECOVERS),
    "vendor's own 429 (reset header / quota body)": ("vendor-429", 1, "vendor", RECOVERS),
    "5xx with the vendor's routine headers": ("vendor-5xx", 1, "vendor", RECOVERS),
    "job ends in the vendor's error state": ("vendor-job-error", 1, "vendor", None),
}


def dfinery_routine_headers(fake) -> None:
    """What Dfinery's examples show on a routine answer: a daily cycle, plenty left, and the
    reset (unix ms) at the end of the period, here 2075 s away. On a 5xx that reset is no wait
    hint: the run must retry with its own backoff and finish in seconds."""
    fake.limit_cycle = "1d"
    fake.advertised_remaining = 99999
    fake.quota_reset_at = time.time() + 2075


QUICK_SECONDS = 20.0
"""How long a run recovering from one 5xx may take (a reset read as a wait would be ~35 min)."""

# Faults only the vendor's own fake can produce: (switch, argument) per vendor, the outcome the
# vendor's documentation implies (a job error myTracker calls retryable is recreated, and so is
# Batch's, which nothing documents as final), and
# optionally how to set the fake up first. A vendor's own 500 carries whatever that vendor
# sends on every answer: Dfinery its x-ratelimit-* headers; Keen and Batch document no such
# header (a plain 500 with their error body); myTracker its envelope with code 500.
VENDOR_FAULTS = {
    ("dfinery", "vendor-429"): (("429",), {"reset_in": 1.0}, RECOVERS),
    ("dfinery", "vendor-5xx"): (("500",), {}, RECOVERS, dfinery_routine_headers),
    ("keen", "vendor-5xx"): (("500",), {}, RECOVERS),
    ("mytracker", "vendor-5xx"): (("500",), {}, RECOVERS),
    ("batch", "vendor-5xx"): (("500",), {}, RECOVERS),
    ("mytracker", "vendor-429"): (("429",), {}, RECOVERS),
    ("keen", "vendor-429"): (("429",), {}, RECOVERS),
    ("batch", "vendor-job-error"): (("ERROR",), {}, RECOVERS),
    ("mytracker", "vendor-job-error"): (("Error occurred",), {}, RECOVERS),
    ("keen", "vendor-job-error"): (("error",), {}, FAILS),
}

MATRIX: dict[tuple[str, str], str] = {}


def content(records: list[dict]) -> Counter:
    return Counter(
        json.dumps(
            {k: v for k, v in r.items() if k not in {"_record_id", "added_column"}},
            sort_keys=True,
            default=str,
        )
        for r in records
    )


def applicable(vendor: str, fault: str) -> bool:
    kind, _times, target, _outcome = FAULTS[fault]
    if target == "vendor":
        return (vendor, kind) in VENDOR_FAULTS
    if target == "status" and VENDORS[vendor][5] is None:
        return False  # Dfinery answers synchronously: no status to poll
    if fault == "truncated gzip":
        return vendor == "mytracker"  # the only vendor whose files are gzip
    if fault == "expired result link":
        return vendor in {"batch", "keen"}  # results on another host, behind a signed link
    return True


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("vendor", list(VENDORS))
def test_fault(request, vendor, fault):
    if not applicable(vendor, fault):
        MATRIX[(vendor, fault)] = NA
        pytest.skip("not applicable to this vendor")
    fixture, make_config, stream, key, file_path, status_path = VENDORS[vendor]
    fake = request.getfixturevalue(fixture)
    config = make_config(fake) | {"max_concurrent_jobs": 1, "request_timeout": 1, "max_retries": 3}
    # both runs end at the same instant: the fakes hold rows up to the end of today, and a run
    # ending at its own "now" would see the rows of the seconds between the two runs
    end = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(seconds=2)
    config["end_date"] = end.isoformat()
    baseline = run_tap(config)
    expected = {r[key]: r for r in baseline.records(stream)}
    assert expected
    kind, times, target, outcome = FAULTS[fault]
    fake.log.clear()
    if target == "vendor":
        args, kwargs, outcome, *setup = VENDOR_FAULTS[(vendor, kind)]
        for prepare in setup:
            prepare(fake)
        fake.fail_next(*args, **kwargs)
    else:
        path = file_path if target == "file" else status_path
        fake.inject(kind, times=times, path=path, delay=2.5)
    started = time.monotonic()
    run = run_tap(config, raise_errors=False)
    took = time.monotonic() - started
    records = run.records(stream)
    keys = [r[key] for r in records]
    assert len(keys) == len(set(keys)), "no record is emitted twice in one run"
    if kind == "vendor-5xx":
        assert took < QUICK_SECONDS, f"one 5xx cost {took:.0f}s: a reset header was read as a wait"
    if outcome == RECOVERS:
        assert run.error is None, run.error
        # content-based keys change with the content (a new column), so compare content
        assert content(records) == content(baseline.records(stream))
    else:
        assert isinstance(run.error, TapError), run.error
        message = str(run.error)
        assert message.startswith(f"{vendor}: {stream}"), message
        assert "window" in message
        assert "\n" not in message
        assert set(keys) <= set(expected)
        mark = run.bookmark(stream)
        window_marks = sorted(
            {
                s["bookmarks"][stream]["replication_key_value"]
                for s in baseline.states()
                if s.get("bookmarks", {}).get(stream, {}).get("replication_key_value")
            }
        )
        assert mark is None or mark in window_marks[:-1], (
            "the bookmark covers complete windows only"
        )
    MATRIX[(vendor, fault)] = outcome
