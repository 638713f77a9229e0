"""Backfills on Dagster: partitions on the tap's window grid, one shard run each, vendor pools.

Runs in the virtualenv with the ``dagster`` extra (``scripts/test`` builds ``.venv-dagster``);
elsewhere the module is skipped. Every run is in-process (``execute_job`` on an instance in a
temporary folder, no daemon) with the multiprocess executor; several runs at once stand for
what a Dagster backfill launches, sharing the instance's pools.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

dg = pytest.importorskip("dagster")

from tap_event_exports.backfill import dagster_defs  # noqa: E402
from tap_event_exports.backfill.pools import credential_pools  # noqa: E402
from tap_event_exports.backfill.runner import MERGED_STATE  # noqa: E402
from tap_event_exports.backfill.warehouse import table_rows  # noqa: E402
from tap_event_exports.sandbox.batch import BatchFake, generate_data  # noqa: E402
from tap_event_exports.sandbox.dfinery import DfineryFake, generate_events  # noqa: E402
from tests.conftest import (  # noqa: E402
    SEOUL,
    batch_config,
    dfinery_config,
    seoul_today,
    utc_midnight,
)
from tests.harness import as_loaded, by_key, run_tap, shard_taps  # noqa: E402

EXECUTOR = {
    "execution": {
        "config": {
            "multiprocess": {
                "max_concurrent": 4,
                # steps fork from a process that has Dagster and the tap imported already
                "start_method": {"forkserver": {"preload_modules": [dagster_defs.MODULE]}},
            }
        }
    }
}
RUN_TIMEOUT = 600  # seconds for one run, on a loaded 2-core machine


class CountingDfinery(DfineryFake):
    """The fake Dfinery, keeping the most exports it ever ran at once."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.peak_running = 0

    def _admit(self):
        refused = super()._admit()
        with self._quota_lock:
            self.peak_running = max(self.peak_running, self._running)
        return refused


def instance_at(home: Path):
    home.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.local_temp(str(home))


def materialize_partitions(home: Path, job, keys: list[str]) -> dict[str, bool]:
    """Run one partition per run, all at once (as a backfill launches them); key -> success."""

    def one(key: str) -> bool:
        with instance_at(home) as instance:
            result = dg.execute_job(
                job, instance=instance, run_config=EXECUTOR, tags={"dagster/partition": key}
            )
            with result:
                return result.success

    with concurrent.futures.ThreadPoolExecutor(len(keys)) as pool:
        futures = {key: pool.submit(one, key) for key in keys}
        return {key: future.result(timeout=RUN_TIMEOUT) for key, future in futures.items()}


def materializations(instance, key: list[str]) -> dict[str, dict]:
    """Partition (or None) -> the metadata of its latest materialization."""
    records = instance.fetch_materializations(dg.AssetKey(key), limit=1000).records
    out: dict = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        event = record.asset_materialization
        out[event.partition] = {k: v.value for k, v in event.metadata.items()}
    return out


def write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_dagster_backfill_of_dfinery_equals_one_run_within_the_pool_and_hands_over(tmp_path):
    first = seoul_today() - dt.timedelta(days=5)
    fake = CountingDfinery(
        events=generate_events(start=first, days=6, per_day=30), max_concurrent=2, delay=0.5
    )
    with fake:
        config = dfinery_config(fake, max_concurrent_jobs=2)
        path = write_config(tmp_path, config)
        root, database = tmp_path / "shards", tmp_path / "backfill.duckdb"
        pool = credential_pools(config)["dfinery"]
        assert pool.size == 2

        defs = dagster_defs.backfill_definitions(path, root=root, database=database)
        partitions = defs.resolve_job_def("dfinery_backfill").partitions_def
        keys = partitions.get_partition_keys()
        assert keys == [(first + dt.timedelta(days=n)).isoformat() for n in range(5)], (
            "one partition per Seoul day, up to yesterday (today is not complete)"
        )
        window = partitions.time_window_for_partition_key(keys[0])
        assert window.start == dt.datetime.combine(first, dt.time(0), tzinfo=SEOUL)
        shards_asset = defs.resolve_assets_def(dg.AssetKey(["tap_event_exports", "dfinery_shards"]))
        assert shards_asset.op.pool == pool.name

        home = tmp_path / "dagster"
        with instance_at(home) as instance:
            assert dagster_defs.apply_pools(instance, path) == [pool]
        job = dagster_defs.reconstructable("dfinery_backfill", path, root=root, database=database)
        outcome = materialize_partitions(home, job, keys)
        assert outcome == dict.fromkeys(keys, True)
        assert 1 <= fake.peak_running <= pool.size, "the pool is never exceeded at the vendor"

        merge = dagster_defs.reconstructable("backfill_merge", path, root=root, database=database)
        with (
            instance_at(home) as instance,
            dg.execute_job(merge, instance=instance, run_config=EXECUTOR) as result,
        ):
            assert result.success
        end = dt.datetime.combine(seoul_today(), dt.time(0), tzinfo=SEOUL)
        whole = run_tap(config | {"end_date": end.isoformat()})
        expected = [as_loaded(r) for r in whole.records("dfinery_events")]
        key = "df_event_detail_log_id"
        loaded = table_rows(database, "dfinery_events")
        assert len(loaded) == len(expected) > 0
        assert by_key(loaded, key) == by_key(expected, key), "the shards' union is one run"

        with instance_at(home) as instance:
            shards = materializations(instance, ["tap_event_exports", "dfinery_shards"])
            assert sorted(shards) == keys
            assert sum(m["rows"] for m in shards.values()) == len(expected), "no duplicates"
            assert all(m["files"] >= 1 for m in shards.values())
            state_meta = materializations(instance, ["tap_event_exports", "backfill_state"])[None]
            assert state_meta["gaps"] == 0
            assert state_meta["missing_partitions"] == {"dfinery": 0}
            warehouse = materializations(instance, ["tap_event_exports", "backfill_warehouse"])
            assert warehouse[None]["rows_per_table"] == {"dfinery_events": len(expected)}

        merged = json.loads((root / MERGED_STATE).read_text())
        mark = merged["bookmarks"]["dfinery_events"]["replication_key_value"]
        assert dt.datetime.fromisoformat(mark) == end
        # the incremental job takes over from the merged state: only what came after
        fake.events.extend(
            dict(e, df_event_detail_log_id=f"late-{n}")
            for n, e in enumerate(generate_events(start=seoul_today(), days=1, per_day=5))
        )
        incremental = run_tap(
            config | {"dfinery": {**config["dfinery"], "lookback": "PT0S"}}, state=merged
        )
        later = {r[key] for r in incremental.records("dfinery_events")}
        assert any(k.startswith("late-") for k in later)
        assert later.isdisjoint(by_key(expected, key)), "nothing of the backfill again"
        everything = run_tap(config)
        assert later | set(by_key(expected, key)) == {
            r[key] for r in everything.records("dfinery_events")
        }


def test_dagster_batch_shard_killed_with_a_pending_job_reruns_without_loss(tmp_path):
    """Batch's asynchronous jobs: each shard keeps its pending job ids; one is SIGKILLed."""
    data = generate_data(start=utc_midnight(4), days=5, per_day=12)
    with BatchFake(data, job_seconds=3.0) as fake:
        config = batch_config(
            fake, push_campaigns=["CAMPAIGN_A"], reachability=True, max_concurrent_jobs=2
        )
        config["start_date"] = utc_midnight(4).isoformat()
        path = write_config(tmp_path, config)
        root, database = tmp_path / "shards", tmp_path / "batch.duckdb"
        pool = credential_pools(config)["batch"]
        assert pool.size == 2
        defs = dagster_defs.backfill_definitions(path, root=root, database=database)
        keys = defs.resolve_job_def("batch_backfill").partitions_def.get_partition_keys()
        assert keys == [f"{utc_midnight(n):%Y-%m-%d}" for n in (4, 3, 2, 1)]
        home = tmp_path / "dagster"
        with instance_at(home) as instance:
            dagster_defs.apply_pools(instance, path)
        job = dagster_defs.reconstructable("batch_backfill", path, root=root, database=database)

        killed: dict = {}

        def kill_one_pending_shard() -> None:
            deadline = time.monotonic() + RUN_TIMEOUT
            while time.monotonic() < deadline:
                for state in root.resolve().glob("*/state.json"):
                    text = state.read_text()
                    pending = {job for job in list(fake.jobs) if job in text}
                    taps = shard_taps(state.parent) if pending else []
                    if len(taps) == 1:
                        os.kill(taps[0], signal.SIGKILL)
                        killed.update(folder=state.parent, jobs=pending)
                        return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_one_pending_shard, daemon=True)
        killer.start()
        outcome = materialize_partitions(home, job, keys)
        killer.join(timeout=60)
        assert killed, "a shard was killed while its export job was pending"
        failed = [k for k, ok in outcome.items() if not ok]
        assert len(failed) == 1, outcome
        assert killed["folder"].name == f"batch-{failed[0].replace('-', '')}T000000Z"
        assert fake.max_jobs_in_flight <= pool.size, "the pool is never exceeded at the vendor"

        fake.job_seconds = 0.1
        assert materialize_partitions(home, job, failed) == {failed[0]: True}
        creates = [r for r in fake.requests_to("/export/") if r.method == "POST"]
        asked = [(r.path, r.body) for r in creates]
        assert len(asked) == len(set(asked)), "no export requested twice: the pending one resumed"
        for pending in killed["jobs"]:
            assert fake.requests_to(f"/export/request/{pending}/results/"), "its file was read"

        merge = dagster_defs.reconstructable("backfill_merge", path, root=root, database=database)
        with (
            instance_at(home) as instance,
            dg.execute_job(merge, instance=instance, run_config=EXECUTOR) as result,
        ):
            assert result.success
        start, end = utc_midnight(4), utc_midnight(0)
        whole = run_tap(config | {"start_date": start.isoformat(), "end_date": end.isoformat()})
        for stream in ("batch_push_campaign_events", "batch_reachability_events"):
            expected = [as_loaded(r) for r in whole.records(stream)]
            loaded = table_rows(database, stream)
            assert len(loaded) == len(expected) > 0, stream
            assert by_key(loaded, "_record_id") == by_key(expected, "_record_id"), stream
        merged = json.loads((root / MERGED_STATE).read_text())
        for stream in ("batch_push_campaign_events", "batch_reachability_events"):
            entry = merged["bookmarks"][stream]
            marks = [p["replication_key_value"] for p in entry.get("partitions", [entry])]
            assert marks, entry
            assert all(dt.datetime.fromisoformat(m) == end for m in marks), entry
        with instance_at(home) as instance:
            state_meta = materializations(instance, ["tap_event_exports", "backfill_state"])[None]
            assert state_meta["gaps"] == 0
            shards = materializations(instance, ["tap_event_exports", "batch_shards"])
            assert sorted(shards) == keys


def test_dagster_module_loads_its_definitions_from_the_environment(tmp_path):
    """What ``dagster dev -m tap_event_exports.backfill.dagster_defs`` loads, and the pools."""
    config = {
        "start_date": "2025-01-01T00:00:00Z",
        "dfinery": {"service_id": "svc", "api_token": "dfn-export-token"},
        "keen": {
            "project_id": "p",
            "api_key": "keen-read-key-0123456789",
            "collections": ["pageviews"],
            "window": "PT6H",
        },
    }
    path = write_config(tmp_path, config)
    env = {
        **os.environ,
        dagster_defs.ENV_CONFIG: str(path),
        dagster_defs.ENV_START: "2025-01-01T00:00:00+09:00",
        dagster_defs.ENV_END: "2025-01-03T00:00:00+09:00",
        dagster_defs.ENV_ROOT: str(tmp_path / "shards"),
        dagster_defs.ENV_DATABASE: str(tmp_path / "x.duckdb"),
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    (tmp_path / "home").mkdir()
    dagster = Path(sys.executable).with_name("dagster")
    validate = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", dagster_defs.MODULE],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    defs = dagster_defs.definitions_from_environment(env)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {
        "tap_event_exports/dfinery_shards",
        "tap_event_exports/keen_shards",
        "tap_event_exports/backfill_state",
        "tap_event_exports/backfill_warehouse",
    }
    days = defs.resolve_job_def("dfinery_backfill").partitions_def
    assert days.get_partition_keys() == ["2025-01-01", "2025-01-02"]
    hours = defs.resolve_job_def("keen_backfill").partitions_def
    six = hours.get_partition_keys()
    assert six[:2] == ["2024-12-31T12:00", "2024-12-31T18:00"], "UTC windows of 6 h"
    assert len(six) == 9, "to the end of the window holding the end"
    window = hours.time_window_for_partition_key(six[0])
    assert window.end - window.start == dt.timedelta(hours=6)

    pools = subprocess.run(
        [sys.executable, "-m", dagster_defs.MODULE, "pools", "--config", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    sizes = {p.name: p.size for p in credential_pools(config).values()}
    printed = dict(line.split()[:2] for line in pools.stdout.splitlines())
    assert {name: int(size) for name, size in printed.items()} == sizes
    with instance_at(tmp_path / "home") as instance:
        limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
    assert limits == sizes
    with pytest.raises(RuntimeError, match=dagster_defs.ENV_CONFIG):
        dagster_defs.definitions_from_environment({})
