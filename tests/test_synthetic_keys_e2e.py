"""Synthetic keys end to end: the fake myTracker over real HTTP, keyed by the packed table.

Every path that keys rows (the Arrow reader for RECORD messages, the record reader for parquet
BATCH files) must give the keys of a run that counts every export in a dict, as the tap did
before the packed table. The table's sizes are shrunk so that these small exports cross all of
its paths.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlparse

import pyarrow.parquet as pq
import pytest

from tap_event_exports.engine import synthetic_keys as sk
from tap_event_exports.sandbox.mytracker import MyTrackerFake, generate_rows
from tests.conftest import INSTALL_SELECTORS, utc_midnight
from tests.harness import run_tap
from tests.test_synthetic_keys import TINY

DAYS = 3
STREAM = "mytracker_installs"


@pytest.fixture
def tracker():
    """Three whole days of installs in gzip parts of 150 rows; every seventh row comes three
    times more: twice right after it (the same part) and once a part later (the same day)."""
    rows = generate_rows("installs", start=utc_midnight(DAYS), days=DAYS, per_day=400)
    for index in range(len(rows) - 1, -1, -7):
        rows.insert(min(index + 160, len(rows)), dict(rows[index]))
        rows[index + 1 : index + 1] = [dict(rows[index]), dict(rows[index])]
    with MyTrackerFake(
        {"installs": rows}, job_seconds=0.02, part_rows=150, per_second=1000
    ) as fake:
        yield fake


def config(fake: MyTrackerFake, **extra) -> dict:
    return {
        "start_date": utc_midnight(DAYS).isoformat(),
        "end_date": utc_midnight(0).isoformat(),  # whole days: every run sees the same rows
        "poll_interval": 0.02,
        "mytracker": {
            "base_url": fake.base_url,
            "api_user_id": fake.user_id,
            "api_secret_key": fake.secret,
            "exports": [{"event": "installs", "selectors": INSTALL_SELECTORS}],
        },
        **extra,
    }


def packed_from_the_start(monkeypatch) -> None:
    monkeypatch.setattr(sk, "SMALL", 0)
    for name, value in TINY.items():
        monkeypatch.setattr(sk, name, value)


COMPILED, SMALL = sk._COMPILED, sk.SMALL
"""The counter and sizes the tap runs with."""


def counted_in_a_dict(monkeypatch) -> None:
    monkeypatch.setattr(sk, "_COMPILED", None)
    monkeypatch.setattr(sk, "SMALL", 10**9)


def counted(monkeypatch, counter: str) -> None:
    """Count the rows as ``counter`` says, after a reference run counted in a dict."""
    if counter == "packed":
        packed_from_the_start(monkeypatch)
    else:
        monkeypatch.setattr(sk, "_COMPILED", COMPILED)
        monkeypatch.setattr(sk, "SMALL", SMALL)


COUNTERS = [
    "packed",
    pytest.param(
        "compiled",
        marks=pytest.mark.skipif(sk._COMPILED is None, reason="compiled helpers not built"),
    ),
]


@pytest.mark.parametrize("counter", COUNTERS)
def test_records_keep_the_keys_of_the_dict_of_digests(tracker, monkeypatch, counter):
    counted_in_a_dict(monkeypatch)
    reference = run_tap(config(tracker)).records(STREAM)
    counted(monkeypatch, counter)
    packed = run_tap(config(tracker)).records(STREAM)
    assert len(packed) > 1000
    assert packed == reference
    keys = [r["_record_id"] for r in packed]
    assert len(set(keys)) == len(keys)
    assert any(key.endswith("~3") for key in keys), "identical rows were numbered"


@pytest.mark.parametrize("counter", COUNTERS)
def test_parquet_batches_keep_the_keys_of_the_dict_of_digests(
    tracker, monkeypatch, tmp_path, counter
):
    """Parquet BATCH files of a stream with synthetic keys are written by the record reader."""
    counted_in_a_dict(monkeypatch)
    expected = run_tap(config(tracker)).records(STREAM)
    counted(monkeypatch, counter)
    batch = {
        "encoding": {"format": "parquet", "compression": "none"},
        "storage": {"root": f"file://{tmp_path}"},
        "batch_size": 500,
    }
    run = run_tap(config(tracker, batch_config=batch))
    manifests = [m["manifest"] for m in run.messages if m["type"] == "BATCH"]
    rows = [r for files in manifests for url in files for r in read_parquet(urlparse(url).path)]
    assert len(rows) == len(expected)
    assert [r["_record_id"] for r in rows] == [r["_record_id"] for r in expected]


def read_parquet(path: str) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_the_end_date_bounds_the_windows(tracker):
    """The comparisons above rely on runs that see the same whole days."""
    run = run_tap(config(tracker))
    bound = dt.datetime.fromisoformat(run.bookmark(STREAM))
    assert bound <= utc_midnight(0)
