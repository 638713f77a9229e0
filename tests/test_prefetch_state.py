"""Exports fetched ahead of their turn keep state exact: the job ids of every partition in
flight are in STATE, a stopped run's next run resumes them instead of creating them again, and
re-extracted rows keep their synthetic keys wherever the lookback puts the windows."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import time

import pytest

from tests.harness import parse_lines, run_tap, tap_command

UTC = dt.timezone.utc


def campaigns_fake(count, *, job_seconds):
    from tap_event_exports.sandbox.batch import BatchFake, generate_data
    from tests.conftest import utc_midnight

    tokens = tuple(f"CAMPAIGN_{n:02d}" for n in range(count))
    data = generate_data(start=utc_midnight(0), days=1, per_day=80, campaigns=tokens)
    return BatchFake(data, job_seconds=job_seconds), tokens


def config_for(fake, tokens, tmp_path):
    from tests.conftest import utc_midnight

    return {
        "start_date": utc_midnight(0).isoformat(),
        "poll_interval": 0.1,
        "max_concurrent_jobs": 16,
        "temp_dir": str(tmp_path / "exports"),
        "batch": {
            "base_url": fake.base_url,
            "api_key": fake.api_key,
            "rest_api_key": fake.rest_key,
            "push_campaigns": list(tokens),
            "max_concurrent_jobs": 16,
        },
    }


def stop_when(argv, ready, sig, tmp_path):
    out = tmp_path / "out.jsonl"
    with out.open("wb") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.8)  # long enough for a STATE that follows new job ids (every 0.5 s)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    messages, _ = parse_lines(out.read_bytes())
    return proc.returncode, messages


def creates(fake):
    return [r for r in fake.requests_to("/export/campaign/") if r.method == "POST"]


def pending_by_partition(state, stream):
    partitions = state["bookmarks"][stream].get("partitions", [])
    return {
        p["context"]["campaign_token"]: sorted(
            entry["job"] for entry in p.get("pending_jobs", {}).values() if "job" in entry
        )
        for p in partitions
    }


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stop_during_prefetch_keeps_every_partitions_jobs_and_the_next_run_resumes_them(
    tmp_path, sig
):
    fake, tokens = campaigns_fake(6, job_seconds=4.0)
    with fake:
        config = config_for(fake, tokens, tmp_path)
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        argv = [*tap_command(), "--config", str(path)]
        code, messages = stop_when(argv, lambda: len(fake.jobs) >= 12, sig, tmp_path)
        assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGTERM)
        created = set(fake.jobs)
        assert len(created) == 12, "events and ids of 6 campaigns, all created at once"
        states = [m["value"] for m in messages if m["type"] == "STATE"]
        assert states, "a STATE was written while the first export ran"
        state = states[-1]
        pending = {
            stream: pending_by_partition(state, stream)
            for stream in ("batch_push_campaign_events", "batch_push_campaign_ids")
        }
        # every partition, reached or not, has its job id in the STATE
        for stream, by_token in pending.items():
            assert set(by_token) == set(tokens), stream
            assert all(len(jobs) == 1 for jobs in by_token.values()), by_token
        in_state = {
            job for by_token in pending.values() for jobs in by_token.values() for job in jobs
        }
        assert in_state == created

        fake.job_seconds = 0.2
        posts_before = len(creates(fake))
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state))
        proc = subprocess.run(
            [*argv, "--state", str(state_path)], capture_output=True, check=False, timeout=120
        )
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        assert created <= set(fake.jobs)
        again = creates(fake)[posts_before:]
        midnight = json.loads(creates(fake)[0].body)["from"]
        # the resumed windows are not created again; only the time since the first run is new
        assert all(json.loads(post.body)["from"] > midnight for post in again), again
        second, _ = parse_lines(proc.stdout)
        # a plain run of the same range, for the dataset: up to where the resumed run reached
        # (today's data runs on past "now", so a later run would see a few more rows)
        final = [m["value"] for m in second if m["type"] == "STATE"][-1]
        reached = min(
            p["replication_key_value"]
            for entry in final["bookmarks"].values()
            for p in entry.get("partitions", [entry])
        )
        expected = run_tap(config | {"end_date": reached})
    got = {
        (m["stream"], m["record"]["_record_id"]) for m in messages + second if m["type"] == "RECORD"
    }
    want = {
        (m["stream"], m["record"]["_record_id"]) for m in expected.messages if m["type"] == "RECORD"
    }
    assert got == want
    assert list((tmp_path / "exports").iterdir()) == []


def test_re_extracted_rows_keep_their_keys_with_windows_off_the_grid():
    """Run 1 ends mid-day; run 2 restarts at bookmark - lookback (PT3H, off the P1D grid)."""
    from tap_event_exports.sandbox.batch import BatchFake, generate_data

    day = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(
        days=2
    )
    data = generate_data(start=day, days=2, per_day=300, campaigns=("CAMPAIGN_A",))
    with BatchFake(data, job_seconds=0.05) as fake:
        block = {
            "base_url": fake.base_url,
            "api_key": fake.api_key,
            "rest_api_key": fake.rest_key,
            "push_campaigns": ["CAMPAIGN_A"],
            "lookback": "PT3H",
        }
        top = {"start_date": day.isoformat(), "poll_interval": 0.02, "batch": block}
        first = run_tap(top | {"end_date": (day + dt.timedelta(hours=30)).isoformat()})
        bookmark = first.bookmark("batch_push_campaign_events")
        assert bookmark is None  # partitioned: bookmarks live per partition
        state = first.last_state
        second = run_tap(top | {"end_date": (day + dt.timedelta(days=2)).isoformat()}, state=state)
    windows = [b for b in fake.requests_to("/export/campaign/") if b.method == "POST"]
    bodies = [json.loads(b.body) for b in windows]
    restart = day + dt.timedelta(hours=27)
    assert any(b["from"] == restart.strftime("%Y-%m-%dT%H:%M:%S") for b in bodies), (
        "the second run starts exactly at bookmark - lookback"
    )

    def keyed(run):
        return {
            m["record"]["_record_id"]: m["record"]
            for m in run.messages
            if m["type"] == "RECORD" and m["stream"] == "batch_push_campaign_events"
        }

    one, two = keyed(first), keyed(second)
    overlap_start = restart.isoformat()
    again = {
        k: r for k, r in two.items() if r["event_date"] < (day + dt.timedelta(hours=30)).isoformat()
    }
    assert again, "the lookback re-extracted rows"
    assert all(r["event_date"] >= overlap_start for r in again.values())
    assert set(again) <= set(one), "re-extracted rows keep the keys they had"
    for key, record in again.items():
        assert record == one[key]
    # identical rows (same values, same event time) stay distinct by their repeat count
    repeats = [k for k in one if "~" in k]
    assert repeats, "the fake's data has identical rows"


def test_a_failed_run_leaves_a_state_naming_the_jobs_it_prefetched_and_the_next_run_resumes_them():
    """An export that fails stops the run; jobs already created for later streams are kept."""
    from tap_event_exports.engine.jobs import JobFailedError
    from tap_event_exports.sandbox.batch import BatchFake, generate_data
    from tests.conftest import batch_config, utc_midnight

    data = generate_data(start=utc_midnight(1), days=2, per_day=12)
    with BatchFake(data, job_seconds=1.0) as fake:
        config = batch_config(fake, push_campaigns=["CAMPAIGN_A"], reachability=True)
        config |= {"start_date": utc_midnight(0).isoformat(), "max_concurrent_jobs": 4}
        config["batch"]["lookback"] = "PT0S"
        # the push events' export ends in ERROR each time: created again three times, it fails
        fake.fail_next("ERROR", times=4, path="/campaign/CAMPAIGN_A/events")
        run = run_tap(config, raise_errors=False)
        assert isinstance(run.error, JobFailedError)
        state = run.last_state
        assert state is not None
        windows = {
            entry["job"]: window
            for stream in state["bookmarks"].values()
            for part in stream.get("partitions", [stream])
            for window, entry in part.get("pending_jobs", {}).items()
        }
        pending = set(windows)
        assert pending, "the last STATE names the exports created ahead of their turn"
        downloads = {job: len(fake.requests_to(f"/request/{job}/results/")) for job in pending}
        posts_before = len(creates(fake))
        again = run_tap(config, state=state)
        for job in pending:
            later = len(fake.requests_to(f"/request/{job}/results/"))
            assert later > downloads[job], f"job {job} resumed: its file read again"
        starts = sorted(json.loads(post.body)["from"] for post in creates(fake)[posts_before:])
        ends = sorted(w.split("/")[1].removesuffix("+00:00") for w in windows.values())
        midnight = utc_midnight(0).strftime("%Y-%m-%dT%H:%M:%S")
        # the failed export again, and after each resumed job only the time since it was made
        assert starts[0] == midnight, starts
        assert set(starts[1:]) <= set(ends), (starts, ends)
        assert len(starts) <= 1 + len(ends), (starts, ends)
        final = again.last_state
        assert final is not None
        reached = min(
            p["replication_key_value"]
            for entry in final["bookmarks"].values()
            for p in entry.get("partitions", [entry])
        )
        expected = run_tap(config | {"end_date": reached})  # today's data runs past now
    records = [m for m in run.messages + again.messages if m["type"] == "RECORD"]
    got = {(m["stream"], m["record"]["_record_id"]) for m in records}
    assert got == {
        (m["stream"], m["record"]["_record_id"]) for m in expected.messages if m["type"] == "RECORD"
    }
