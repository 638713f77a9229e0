"""The end-of-run summary: a table and one JSON line with the same numbers."""

from __future__ import annotations

import json
import logging

from tests.conftest import batch_config
from tests.harness import run_tap


def summary_of(caplog):
    lines = [r.getMessage() for r in caplog.records if r.name == "tap_event_exports.summary"]
    table = next(line for line in lines if line.startswith("Run summary:"))
    data = json.loads(
        next(line for line in lines if line.startswith("RUN_SUMMARY ")).split(" ", 1)[1]
    )
    return table, data


def test_the_summary_counts_what_the_run_did(batch, caplog):
    caplog.set_level(logging.INFO)
    batch.fail_next("500", times=1)
    config = batch_config(batch, push_campaigns=["CAMPAIGN_A", "CAMPAIGN_B"], reachability=True)
    run = run_tap(config)
    table, data = summary_of(caplog)
    for stream in (
        "batch_push_campaign_events",
        "batch_push_campaign_ids",
        "batch_reachability_events",
    ):
        got = data["streams"][stream]
        assert got["rows"] == len(run.records(stream)), stream
        assert got["vendor"] == "batch"
        assert got["jobs_created"] == got["windows"] > 0
        assert got["jobs_resumed"] == 0
        assert f"{stream:40} {got['rows']:>10.0f}" in table
    assert data["totals"]["rows"] == sum(len(run.records(s)) for s in data["streams"])
    assert data["vendors"]["batch"]["requests_retried"] == 1
    assert "batch: 1 retried request(s)" in table
    marks = data["bookmarks"]
    assert marks["batch_reachability_events"]["from"] is None
    assert marks["batch_reachability_events"]["to"] == run.bookmark("batch_reachability_events")
    assert data["peak_exports_in_flight"] >= 2


def test_a_resumed_run_counts_resumed_jobs_and_moved_bookmarks(batch, caplog, tmp_path):
    from tests.harness import run_until_sigterm

    batch.job_seconds = 3.0
    config = batch_config(batch, reachability=True)
    state = run_until_sigterm(config, tmp_path, lambda: bool(batch.jobs))
    batch.job_seconds = 0.05
    caplog.set_level(logging.INFO)
    run_tap(config, state=state)
    _, data = summary_of(caplog)
    assert data["streams"]["batch_reachability_events"]["jobs_resumed"] >= 1
