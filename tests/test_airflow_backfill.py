"""Backfills on Airflow: ``dag.test()`` of the DAG factory against the sandbox vendors.

Runs in the virtualenv with the ``airflow`` extra (``bash scripts/test`` builds ``.venv-airflow``
and runs ``pytest -k airflow`` there); elsewhere the module is skipped. Airflow's metadata
database is SQLite in a temporary AIRFLOW_HOME made for this module, removed afterwards.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

if importlib.util.find_spec("airflow") is not None:
    # Airflow reads its home when first imported: a temporary one, so nothing lands elsewhere.
    _HOME = Path(tempfile.mkdtemp(prefix="tap-event-exports-airflow-"))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(_HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(_HOME / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(_HOME / "logs"),
        }
    )
    (_HOME / "dags").mkdir()

pytest.importorskip("airflow")
from tap_event_exports.backfill.airflow_dag import airflow_pools, create_pools, main
from tap_event_exports.backfill.pools import credential_pools
from tap_event_exports.backfill.warehouse import table_rows
from tests.conftest import (
    SEOUL,
    batch_config,
    dfinery_config,
    seoul_today,
    utc_midnight,
)
from tests.harness import as_loaded, by_key, run_tap, shard_taps

# Airflow's in-process task runner imports starlette's test client, which warns about httpx
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def airflow_cli(*args: str) -> str:
    """Run the ``airflow`` command of this virtualenv in the temporary home."""
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def airflow_home():
    """Airflow's metadata database (SQLite in the temporary home), as ``airflow db migrate``
    makes it."""
    from airflow.utils.db import initdb

    initdb()
    yield _HOME
    shutil.rmtree(_HOME, ignore_errors=True)


def write_dag(home: Path, name: str, config: dict, tmp_path: Path, **arguments) -> Path:
    """The DAG file a user drops in the dags folder: the factory's import and one call."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    call = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    path = home / "dags" / f"{name}.py"
    path.write_text(
        "from tap_event_exports.backfill.airflow_dag import backfill_dag\n"
        f"dag = backfill_dag({name!r}, {str(config_path)!r}, {call})\n"
    )
    return path


def load_dag(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def marks(state: dict, stream: str) -> set[str]:
    """A stream's bookmarks in a state, over its partitions."""
    entry = state["bookmarks"][stream]
    return {p.get("replication_key_value") for p in entry.get("partitions", [entry])}


def task_instances(run) -> dict[str, list]:
    out: dict[str, list] = {}
    for ti in sorted(run.get_task_instances(), key=lambda ti: (ti.task_id, ti.map_index)):
        out.setdefault(ti.task_id, []).append(ti)
    return out


class ShardKiller(threading.Thread):
    """Kills the tap of the first shard whose state names a pending job, then lets jobs end."""

    def __init__(self, fake, root: Path) -> None:
        super().__init__(daemon=True)
        self.fake, self.root = fake, root
        self.killed = False
        self.shard = self.job = self.error = ""

    def run(self) -> None:
        deadline = time.monotonic() + 300
        try:
            while time.monotonic() < deadline and not self.killed:
                for state in self.root.glob("*/state.json"):
                    text = state.read_text()
                    pending = [job for job in list(self.fake.jobs) if job in text]
                    pids = shard_taps(state.parent)
                    if pending and len(pids) == 1:
                        os.kill(pids[0], signal.SIGKILL)
                        self.shard, self.job, self.killed = state.parent.name, pending[0], True
                        break
                time.sleep(0.05)
            if not self.killed:
                self.error = "no shard state named a pending job"
        finally:
            self.fake.job_seconds = 0.1
            for job in list(self.fake.jobs.values()):
                job.duration = 0.0


def test_airflow_batch_backfill_retries_a_killed_shard_and_hands_over(
    airflow_home, batch, tmp_path
):
    """Batch (asynchronous jobs): three mapped shards, one killed mid-job and retried."""
    config = batch_config(batch, push_campaigns=["CAMPAIGN_A"], reachability=True)
    start, end = utc_midnight(4), utc_midnight(1)
    root = tmp_path / "shards"
    dag_file = write_dag(
        airflow_home,
        "batch_backfill",
        config,
        tmp_path,
        start=start.isoformat(),
        end=end.isoformat(),
        windows_per_shard=1,
        root=str(root),
        retries=2,
        retry_delay=1,
    )
    # the pools, as a deployment creates them: the file of `... airflow_dag pools`, imported
    pools_file = tmp_path / "pools.json"
    main_output = _capture(main, ["pools", "--config", str(tmp_path / "config.json")])
    pools_file.write_text(main_output)
    assert json.loads(main_output) == airflow_pools(config)
    airflow_cli("pools", "import", str(pools_file))
    pool = credential_pools(config)["batch"]
    assert batch.api_key not in pool.name
    assert batch.rest_key not in main_output
    from airflow.models.pool import Pool

    assert Pool.get_pool(pool.name).slots == pool.size == 4

    # the first shard's tap is killed (a lost worker) while its state names a pending job:
    # Airflow retries the shard, which resumes that job from its own state
    batch.job_seconds = 3600  # the first job stays pending until the kill
    killer = ShardKiller(batch, root)
    killer.start()
    dag = load_dag(dag_file)
    try:
        run = dag.test()
    finally:
        dag_file.unlink()
        killer.join(timeout=1)
    assert killer.killed, killer.error
    assert run.state == "success"
    tis = task_instances(run)
    shards = tis["shards_batch"]
    assert len(shards) == 3, "one mapped task instance per shard"
    assert {ti.pool for ti in shards} == {pool.name}
    assert sorted(ti.try_number for ti in shards) == [1, 1, 2], "one shard failed once"
    assert {ti.state for ti in [*shards, *tis["merge_and_load"]]} == {"success"}
    retried = next(ti for ti in shards if ti.try_number == 2)
    assert retried.rendered_map_index == killer.shard, "mapped instances are named by shard"
    log = (root / killer.shard / "tap.log").read_text()
    assert '"jobs_resumed":1' in log, "the retry resumed the pending job"
    assert batch.requests_to(f"/export/request/{killer.job}/results/"), "its file was fetched"
    creates = [r for r in batch.requests_to("/export/") if r.method == "POST"]
    asked = [(r.path, r.body) for r in creates]
    assert len(asked) == len(set(asked)), "no export was requested twice"

    # the union of the shards equals one plain run over the same range
    database = root / "backfill.duckdb"
    whole = run_tap(config | {"start_date": start.isoformat(), "end_date": end.isoformat()})
    streams = ["batch_push_campaign_events", "batch_push_campaign_ids", "batch_reachability_events"]
    for stream in streams:
        expected = [as_loaded(r) for r in whole.records(stream)]
        assert expected, stream
        loaded = table_rows(database, stream)
        assert by_key(loaded, "_record_id") == by_key(expected, "_record_id"), stream

    # the merged state hands over to the incremental job: only what came after the backfill
    state = json.loads((root / "merged-state.json").read_text())
    for stream in streams:
        assert marks(state, stream) == {end.isoformat()}, stream
    incremental = batch_config(batch, push_campaigns=["CAMPAIGN_A"], reachability=True)
    incremental["batch"]["lookback"] = "PT0S"
    after = run_tap(incremental, state=state)
    everything = run_tap(config)
    for stream in streams:
        later = after.records(stream)
        if stream != "batch_reachability_events":  # the sandbox's reachability ends earlier
            assert later, f"{stream}: the day after the backfill arrives"
        assert all(r.get("event_date", "9") >= end.isoformat() for r in later), stream
        backfilled = {r["_record_id"] for r in whole.records(stream)}
        assert {r["_record_id"] for r in later}.isdisjoint(backfilled), "nothing twice"
        assert {r["_record_id"] for r in later} | backfilled == {
            r["_record_id"] for r in everything.records(stream)
        }, f"{stream}: nothing missing"


def damage_days(fake, days: dict[str, int]) -> dict[str, int]:
    """Answer Dfinery's export of each ``from_date`` day with a ragged CSV row, that many times
    (the tap gives up on a malformed file: the shard fails); returns the tries left."""
    from tap_event_exports.sandbox.server import Fault

    left = dict(days)
    injected = fake.injected_fault

    def fault_for(request):
        if request.path.endswith("/export/event"):
            day = request.json().get("from_date")
            if left.get(day, 0) > 0:
                left[day] -= 1
                return Fault("ragged")
        return injected(request)

    fake.injected_fault = fault_for
    return left


def test_airflow_dfinery_backfill_reports_a_gap_and_a_rerun_fills_it(
    airflow_home, dfinery, tmp_path
):
    """Dfinery (day windows in Asia/Seoul), four shards: one fails once and is retried by
    Airflow; another fails on every try, the final task reports its gap, a new run fills it."""
    config = dfinery_config(dfinery)
    first = dt.datetime.combine(seoul_today() - dt.timedelta(days=5), dt.time(0), tzinfo=SEOUL)
    end = first + dt.timedelta(days=4)
    days = [(first + dt.timedelta(days=n)).date().isoformat() for n in range(4)]
    root = tmp_path / "shards"
    database = tmp_path / "warehouse.duckdb"
    arguments = {
        "start": first.isoformat(),
        "end": end.isoformat(),
        "windows_per_shard": 1,
        "root": str(root),
        "database": str(database),
        "retries": 1,
        "retry_delay": 1,
    }
    pools = create_pools(config)
    from airflow.models.pool import Pool

    assert [(p.provider, Pool.get_pool(p.name).slots) for p in pools] == [("dfinery", 5)]

    left = damage_days(dfinery, {days[1]: 1, days[2]: 2})  # day 3 fails on both tries
    dag_file = write_dag(airflow_home, "dfinery_backfill", config, tmp_path, **arguments)
    dag = load_dag(dag_file)
    try:
        run = dag.test()
    finally:
        dag_file.unlink()
    assert left == {days[1]: 0, days[2]: 0}
    assert run.state == "failed"
    tis = task_instances(run)
    shards = {ti.rendered_map_index: ti for ti in tis["shards_dfinery"]}
    assert len(shards) == 4
    by_day = dict(zip(days, sorted(shards), strict=True))
    assert [(shards[by_day[d]].state, shards[by_day[d]].try_number) for d in days] == [
        ("success", 1),
        ("success", 2),  # failed once, retried without loss (checked below)
        ("failed", 2),
        ("success", 1),
    ]
    assert tis["merge_and_load"][0].state == "failed", "a gap fails the final task"
    gap = json.loads((root / by_day[days[2]] / "shard.json").read_text())
    state = json.loads((root / "merged-state.json").read_text())
    mark = state["bookmarks"]["dfinery_events"]["replication_key_value"]
    assert mark == gap["start"], "the merged bookmark stops at the gap"
    key = "df_event_detail_log_id"
    partial = {r[key] for r in table_rows(database, "dfinery_events")}

    # a new run of the DAG: the finished shards have nothing left to do, the failed one runs
    dfinery.log.clear()
    dag = load_dag(write_dag(airflow_home, "dfinery_backfill", config, tmp_path, **arguments))
    try:
        run = dag.test()
    finally:
        (airflow_home / "dags" / "dfinery_backfill.py").unlink()
    assert run.state == "success"
    exported = [r.json()["from_date"] for r in dfinery.requests_to("/export/event")]
    assert exported == [days[2]], "only the shard that failed exported its day again"
    state = json.loads((root / "merged-state.json").read_text())
    mark = state["bookmarks"]["dfinery_events"]["replication_key_value"]
    assert dt.datetime.fromisoformat(mark) == end

    whole = run_tap(config | {"start_date": first.isoformat(), "end_date": end.isoformat()})
    expected = by_key([as_loaded(r) for r in whole.records("dfinery_events")], key)
    loaded = by_key(table_rows(database, "dfinery_events"), key)
    assert loaded == expected, "same rows, same values, same keys as one plain run"
    assert partial < set(loaded), "the new run added the missing day"

    after = run_tap(config | {"dfinery": {**config["dfinery"], "lookback": "PT0S"}}, state=state)
    later = {r[key] for r in after.records("dfinery_events")}
    assert later, "the days after the backfill arrive"
    assert later.isdisjoint(expected), "nothing twice"
    everything = {r[key] for r in run_tap(config).records("dfinery_events")}
    assert later | set(expected) == everything, "nothing missing"


def _capture(function, argv) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        function(argv)
    return out.getvalue()


def test_airflow_dag_has_a_plan_and_a_pooled_mapped_shard_task_per_provider(
    airflow_home, dfinery, batch, tmp_path
):
    """The DAG's shape (no run): per provider a plan task and a mapped shard task in the
    credential's pool, with retries; one final task run whatever the shards' outcome."""
    from airflow.sdk.exceptions import AirflowFailException

    config = dfinery_config(dfinery) | {"batch": batch_config(batch, reachability=True)["batch"]}
    now = dt.datetime.now(dt.timezone.utc)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    from tap_event_exports.backfill.airflow_dag import backfill_dag

    dag = backfill_dag(
        "shape", path, start=utc_midnight(3), end=utc_midnight(1), root=tmp_path / "s", retries=5
    )
    pools = credential_pools(config)
    assert sorted(dag.task_dict) == [
        "merge_and_load",
        "plan_batch",
        "plan_dfinery",
        "shards_batch",
        "shards_dfinery",
    ]
    for provider in ("batch", "dfinery"):
        shards = dag.task_dict[f"shards_{provider}"]
        assert shards.pool == pools[provider].name
        assert shards.pool_slots == 1
        assert shards.retries == 5
        assert shards.upstream_task_ids == {f"plan_{provider}"}
    final = dag.task_dict["merge_and_load"]
    assert final.trigger_rule == "all_done", "it reports the gaps of failed shards"
    assert final.upstream_task_ids == {"shards_batch", "shards_dfinery"}
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = json.dumps(DagSerialization.serialize_dag(dag), default=str)
    for secret in (batch.rest_key, dfinery.token):
        assert secret not in serialized, "the DAG Airflow stores holds no credential"

    # a range whose last window is not over yet is refused by the plan task, clearly
    today = backfill_dag("today", path, start=utc_midnight(1), end=now, root=tmp_path / "t")
    plan = today.task_dict["plan_dfinery"].python_callable
    with pytest.raises(AirflowFailException, match=r"dfinery's last shard would end at .* future"):
        plan("dfinery")
    with pytest.raises(ValueError, match="no windowed stream of provider"):
        backfill_dag(
            "x", path, start=utc_midnight(3), end=utc_midnight(1), root=tmp_path, providers=["keen"]
        )
