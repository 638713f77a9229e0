"""Shard runs into folders, their merge and the DuckDB load (what the orchestrators build on)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from tap_event_exports.backfill.cli import main
from tap_event_exports.backfill.grid import provider_grids
from tap_event_exports.backfill.pools import credential_pools, pool_name
from tap_event_exports.backfill.runner import (
    MERGED_STATE,
    ShardFailed,
    merge_shards,
    run_shard,
    shard_for,
    write_merged,
)
from tap_event_exports.backfill.warehouse import load_duckdb, table_rows
from tap_event_exports.shards import Merged, Shard, plan_shards, shard_name
from tests.conftest import (
    SEOUL,
    batch_config,
    dfinery_config,
    seoul_today,
    utc_midnight,
)
from tests.harness import as_loaded, by_key, run_tap, shard_taps
from tests.test_shard_plan import streams_of

UTC = dt.timezone.utc


def test_dfinery_shards_load_into_duckdb_as_one_run_and_merge_hands_over(dfinery, tmp_path):
    config = dfinery_config(dfinery)
    first = dt.datetime.combine(seoul_today() - dt.timedelta(days=5), dt.time(0), tzinfo=SEOUL)
    end = first + dt.timedelta(days=4)
    plan = plan_shards(streams_of(config), start=first, end=end, windows_per_shard=1)
    assert len(plan.shards) == 4
    root = tmp_path / "shards"
    for shard in plan.shards:
        done = run_shard(config, shard, root)
        assert done.folder == root.resolve() / shard.id
        assert done.files["dfinery_events"], shard.id
        assert all(p.startswith(str(done.folder / "files")) for p in done.files["dfinery_events"])
        assert not (done.folder / "config.json").exists(), "no credentials left at rest"
        assert json.loads((done.folder / "catalog.json").read_text())["streams"]
        assert dfinery.token not in (done.folder / "tap.log").read_text()

    counts = load_duckdb(root, tmp_path / "backfill.duckdb")
    whole = run_tap(config | {"start_date": first.isoformat(), "end_date": end.isoformat()})
    expected = [as_loaded(r) for r in whole.records("dfinery_events")]
    assert counts == {"dfinery_events": len(expected)}
    loaded = table_rows(tmp_path / "backfill.duckdb", "dfinery_events")
    key = "df_event_detail_log_id"
    assert by_key(loaded, key) == by_key(expected, key), "same rows, same values, same keys"

    merged = merge_shards(root, start=first, end=end)
    assert merged.gaps == []
    mark = merged.state["bookmarks"]["dfinery_events"]["replication_key_value"]
    assert dt.datetime.fromisoformat(mark) == end
    after = run_tap(
        config | {"dfinery": {**config["dfinery"], "lookback": "PT0S"}}, state=merged.state
    )
    later = after.records("dfinery_events")
    assert later, "the days after the backfill arrive"
    assert {r[key] for r in later}.isdisjoint({r[key] for r in expected}), "nothing twice"
    everything = run_tap(config)
    assert {r[key] for r in later} | {r[key] for r in expected} == {
        r[key] for r in everything.records("dfinery_events")
    }


def test_a_missing_shard_is_a_gap_and_its_rerun_fills_it(dfinery, tmp_path):
    config = dfinery_config(dfinery)
    first = dt.datetime.combine(seoul_today() - dt.timedelta(days=5), dt.time(0), tzinfo=SEOUL)
    plan = plan_shards(
        streams_of(config), start=first, end=first + dt.timedelta(days=3), windows_per_shard=1
    )
    root = tmp_path / "shards"
    run_shard(config, plan.shards[0], root)
    run_shard(config, plan.shards[2], root)
    merged = merge_shards(root, start=first, end=first + dt.timedelta(days=3))
    assert merged.gaps == [
        f"dfinery: no shard covers [{plan.shards[1].start}, {plan.shards[1].end})"
    ]
    mark = merged.state["bookmarks"]["dfinery_events"]["replication_key_value"]
    assert mark == plan.shards[0].end, "the bookmark stops before the gap"
    run_shard(config, plan.shards[1], root)
    merged = merge_shards(root, start=first, end=first + dt.timedelta(days=3))
    assert merged.gaps == []
    mark = merged.state["bookmarks"]["dfinery_events"]["replication_key_value"]
    assert mark == plan.shards[2].end
    # a backfill that must reach further reports what is not there yet
    short = merge_shards(root, start=first, end=first + dt.timedelta(days=4))
    assert short.gaps == [
        f"dfinery: no shard covers [{plan.shards[2].end}, "
        f"{(first + dt.timedelta(days=4)).astimezone(UTC).isoformat()})"
    ]


def test_a_failing_shard_raises_one_line_and_keeps_nothing_half_done(dfinery, tmp_path):
    config = dfinery_config(dfinery)
    config["dfinery"]["api_token"] = "wrong-token"
    first = dt.datetime.combine(seoul_today() - dt.timedelta(days=2), dt.time(0), tzinfo=SEOUL)
    shard = shard_for(config, "dfinery", first, first + dt.timedelta(days=1))
    with pytest.raises(ShardFailed) as failure:
        run_shard(config, shard, tmp_path)
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith(f"shard {shard.id}: the tap exited with code 1: ")
    assert "wrong-token" not in message
    assert "401" in message or "token" in message.lower(), message
    assert merge_shards(tmp_path).gaps, "a failed shard is a gap"


def test_the_merged_state_file_holds_the_state_only(tmp_path):
    state = {"bookmarks": {"s": {"replication_key_value": "2025-01-02T00:00:00+00:00"}}}
    merged = Merged(state, ["dfinery: a gap"])
    root = tmp_path / "shards"
    assert write_merged(root, merged) == root / MERGED_STATE
    assert json.loads((root / MERGED_STATE).read_text()) == state, "what --state reads"
    elsewhere = tmp_path / "state" / "s.json"
    assert write_merged(root, merged, elsewhere) == elsewhere
    assert json.loads(elsewhere.read_text()) == state
    assert sorted(p.name for p in root.iterdir()) == [MERGED_STATE], "no .part file left"


def test_an_expected_provider_without_any_shard_folder_is_a_gap(tmp_path):
    """A provider whose plan failed has no folder: the merge names it, over [start, end)."""
    start, end = dt.datetime(2025, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 3, tzinfo=UTC)
    shard = Shard(
        id=shard_name("dfinery", start),
        provider="dfinery",
        streams=["dfinery_events"],
        start=start.isoformat(),
        end=end.isoformat(),
        windows=2,
        export_requests=2,
    )
    folder = tmp_path / shard.id
    folder.mkdir()
    (folder / "shard.json").write_text(json.dumps(shard.__dict__))
    done = {"bookmarks": {"dfinery_events": {"replication_key_value": end.isoformat()}}}
    (folder / "state.json").write_text(json.dumps(done))

    merged = merge_shards(tmp_path, start=start, end=end, providers=["batch", "dfinery"])
    assert merged.gaps == [
        "batch: no shard covers [2025-01-01T00:00:00+00:00, 2025-01-03T00:00:00+00:00)"
    ]
    assert merged.state == {
        "bookmarks": {"dfinery_events": {"replication_key_value": end.isoformat()}}
    }, "the provider that ran still hands over"
    assert merge_shards(tmp_path, start=start, end=end).gaps == [], "batch not expected: no gap"
    assert merge_shards(tmp_path, start=start, providers=["batch"]).gaps == [
        "batch: no shard covers [2025-01-01T00:00:00+00:00, ...)"
    ], "without an end, from start on"
    assert merge_shards(tmp_path / "none", start=start, end=end, providers=["batch"]).gaps == [
        "batch: no shard covers [2025-01-01T00:00:00+00:00, 2025-01-03T00:00:00+00:00)"
    ], "no root yet: nothing ran"
    with pytest.raises(ValueError, match="needs a start with providers"):
        merge_shards(tmp_path, providers=["batch"])


def job_pending(fake, count):
    return lambda: len(fake.jobs) >= count


def test_a_killed_batch_shard_resumes_its_pending_job_and_loses_nothing(tmp_path):
    """Batch's asynchronous jobs: the shard's own state keeps the pending job id across a kill."""
    from tap_event_exports.sandbox.batch import BatchFake, generate_data

    data = generate_data(start=utc_midnight(4), days=5, per_day=12)
    with BatchFake(data, job_seconds=3.0) as fake:
        config = batch_config(fake, push_campaigns=["CAMPAIGN_A"], reachability=True)
        start, end = utc_midnight(3), utc_midnight(1)
        shard = shard_for(config, "batch", start, end)
        assert shard.id == f"batch-{start:%Y%m%dT%H%M%SZ}"
        root = tmp_path / "shards"
        folder = root.resolve() / shard.id
        outcome: dict = {}

        def first_run() -> None:
            try:
                run_shard(config, shard, root)
            except ShardFailed as exc:
                outcome["failed"] = str(exc)

        runner = threading.Thread(target=first_run)
        runner.start()
        deadline = time.monotonic() + 60

        def jobs_in_state() -> set[str]:
            text = (folder / "state.json").read_text() if (folder / "state.json").exists() else ""
            return {job for job in list(fake.jobs) if job in text}

        while time.monotonic() < deadline and not jobs_in_state():
            time.sleep(0.05)
        in_state = jobs_in_state()
        assert in_state, "the shard's state names the pending job"
        tap_pids = shard_taps(folder)
        assert len(tap_pids) == 1
        assert oct((folder / "config.json").stat().st_mode)[-3:] == "600", "owner only"
        os.kill(tap_pids[0], signal.SIGKILL)
        runner.join(timeout=60)
        assert "code -9" in outcome["failed"]

        fake.job_seconds = 0.1
        run_shard(config, shard, root)
        assert json.loads((folder / "state.json").read_text())["bookmarks"]
        creates = [r for r in fake.requests_to("/export/") if r.method == "POST"]
        asked = [(r.path, r.body) for r in creates]
        assert len(asked) == len(set(asked)), "no export was requested twice: pending ones resumed"
        assert len(creates) == len(fake.jobs)
        for job in in_state:
            assert fake.requests_to(f"/export/request/{job}/results/"), "the pending job's file"
        counts = load_duckdb(root, tmp_path / "b.duckdb")
        whole = run_tap(config | {"start_date": start.isoformat(), "end_date": end.isoformat()})
        for stream in ("batch_push_campaign_events", "batch_reachability_events"):
            expected = [as_loaded(r) for r in whole.records(stream)]
            assert counts[stream] == len(expected), stream
            loaded = table_rows(tmp_path / "b.duckdb", stream)
            assert by_key(loaded, "_record_id") == by_key(expected, "_record_id"), stream
        merged = merge_shards(root, start=start, end=end)
        assert merged.gaps == []


def test_pools_name_each_credential_without_its_secret_and_size_it(dfinery, batch):
    config = dfinery_config(dfinery) | {
        "batch": batch_config(batch, reachability=True)["batch"] | {"max_concurrent_jobs": 3}
    }
    pools = credential_pools(config)
    assert pools["dfinery"].size == 5, "Dfinery: 5 exports at once per service"
    assert pools["batch"].size == 3
    assert pools["dfinery"].name == pool_name("dfinery", f"dfinery:{dfinery.service_id}")
    assert pools["batch"].name.startswith("tap-event-exports-batch-")
    assert batch.api_key not in pools["batch"].name
    assert pools["dfinery"].name != pool_name("dfinery", "dfinery:another-service")


def test_grids_follow_the_window_settings(dfinery, batch):
    config = dfinery_config(dfinery) | {"batch": batch_config(batch, reachability=True)["batch"]}
    grids = provider_grids(config)
    assert grids["dfinery"].days
    assert grids["dfinery"].timezone == "Asia/Seoul"
    noon = dt.datetime(2025, 3, 4, 3, 0, tzinfo=UTC)  # 12:00 in Seoul
    assert grids["dfinery"].align(noon) == dt.datetime(2025, 3, 4, tzinfo=SEOUL)
    assert grids["dfinery"].advance(dt.datetime(2025, 3, 4, tzinfo=SEOUL), 2) == dt.datetime(
        2025, 3, 6, tzinfo=SEOUL
    )
    assert not grids["batch"].days
    assert grids["batch"].timezone == "UTC"
    assert grids["batch"].align(noon) == dt.datetime(2025, 3, 4, tzinfo=UTC)
    with pytest.raises(ValueError, match="does not start on dfinery's window grid"):
        shard_for(config, "dfinery", noon, noon + dt.timedelta(days=1))


def test_the_command_line_runs_merges_and_loads(dfinery, tmp_path, capsys):
    config = dfinery_config(dfinery)
    (tmp_path / "c.json").write_text(json.dumps(config))
    first = dt.datetime.combine(seoul_today() - dt.timedelta(days=3), dt.time(0), tzinfo=SEOUL)
    end = first + dt.timedelta(days=2)
    args = ["--config", str(tmp_path / "c.json")]
    main(
        [
            "plan",
            *args,
            "--start",
            first.isoformat(),
            "--end",
            end.isoformat(),
            "--windows-per-shard",
            "1",
        ]
    )
    printed = capsys.readouterr()
    plan = json.loads(printed.out)
    assert printed.err == "", "shards in the past: no warning"
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    root = str(tmp_path / "shards")
    for shard in plan["shards"]:
        main(
            [
                "run",
                *args,
                "--plan",
                str(tmp_path / "plan.json"),
                "--shard",
                shard["id"],
                "--root",
                root,
            ]
        )
        assert f"shard {shard['id']}: done" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["merge", "--root", root, "--start", first.isoformat(), "--end", end.isoformat()])
    assert done.value.code == 0
    state = json.loads(capsys.readouterr().out)
    assert (
        state["bookmarks"]["dfinery_events"]["replication_key_value"] == plan["shards"][-1]["end"]
    )
    main(["load", "--root", root, "--database", str(tmp_path / "x.duckdb")])
    whole = run_tap(config | {"start_date": first.isoformat(), "end_date": end.isoformat()})
    assert (
        capsys.readouterr().out == f"dfinery_events: {len(whole.records('dfinery_events'))} rows\n"
    )
    with pytest.raises(SystemExit) as failed:
        main(
            ["run", *args, "--plan", str(tmp_path / "plan.json"), "--shard", "nope", "--root", root]
        )
    assert (
        failed.value.code
        == "tap-event-exports-shards: error: backfill: no shard 'nope' in the plan"
    )
    today = dt.datetime.combine(seoul_today(), dt.time(0), tzinfo=SEOUL)
    main(
        [
            "plan",
            *args,
            "--start",
            first.isoformat(),
            "--end",
            (today + dt.timedelta(hours=1)).isoformat(),
        ]
    )
    warned = capsys.readouterr().err
    tomorrow = (today + dt.timedelta(days=1)).astimezone(UTC).isoformat()
    assert warned.startswith("tap-event-exports-shards: warning: shard dfinery-"), warned
    assert f" ends at {tomorrow}, after now" in warned, warned


def jobs_recorded(folder: Path, jobs) -> bool:
    """Whether the shard's last STATE names every one of ``jobs``."""
    try:
        state = (folder / "state.json").read_text()
    except FileNotFoundError:
        return False
    return all(job in state for job in jobs)


def test_an_interrupted_shard_run_stops_its_tap_and_keeps_the_pending_job(tmp_path):
    """An orchestrator stopping the task (SIGINT): no tap left running, the job id kept."""
    import subprocess

    from tap_event_exports.sandbox.batch import BatchFake, generate_data

    data = generate_data(start=utc_midnight(4), days=5, per_day=12)
    with BatchFake(data, job_seconds=60.0) as fake:
        config = batch_config(fake, reachability=True)
        shard = shard_for(config, "batch", utc_midnight(3), utc_midnight(2))
        (tmp_path / "c.json").write_text(json.dumps(config))
        script = (
            "import json, sys\n"
            "from tap_event_exports.backfill.runner import run_shard\n"
            "from tap_event_exports.shards import Shard\n"
            f"run_shard(json.load(open({str(tmp_path / 'c.json')!r})), Shard(**{shard.__dict__!r}),"
            f" {str(tmp_path / 'shards')!r})\n"
        )
        runner = subprocess.Popen([sys.executable, "-c", script])
        folder = (tmp_path / "shards").resolve() / shard.id
        # the tap writes a STATE with a new job id soon after the vendor answers; a stop in
        # between could not know the id, so the stop comes once the shard's state holds it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            fake.jobs and shard_taps(folder) and jobs_recorded(folder, fake.jobs)
        ):
            time.sleep(0.05)
        taps = shard_taps(folder)
        assert len(taps) == 1
        os.kill(runner.pid, signal.SIGINT)
        assert runner.wait(timeout=60) != 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and shard_taps(folder):
            time.sleep(0.05)
        assert shard_taps(folder) == [], "the shard's tap stopped with its task"
        state = (folder / "state.json").read_text()
        assert set(fake.jobs)
        assert all(job in state for job in fake.jobs), state
