"""End to end with real components: Meltano, target-postgres, target-jsonl, the sandbox vendors.

Needs what `bash scripts/test` sets up: Meltano with the plugins of meltano.yml (E2E_MELTANO) and
a throwaway PostgreSQL on 127.0.0.1:55432 (E2E_PG_BIN). Skipped when they are missing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tap_event_exports.sandbox.__main__ import build
from tests.harness import run_tap, tap_command

ROOT = Path(__file__).resolve().parent.parent
MELTANO = os.environ.get("E2E_MELTANO")
PG_BIN = os.environ.get("E2E_PG_BIN")
PG_PORT = os.environ.get("E2E_PG_PORT", "55432")
SANDBOX_PORT = 18081  # the ports meltano.yml's sandbox environment points at

pytestmark = pytest.mark.skipif(not MELTANO, reason="Meltano not set up (bash scripts/test does)")


@pytest.fixture
def sandbox():
    started = []

    def start(*, through_today: bool) -> dict:
        for server in started:
            server.stop()
        started.clear()
        servers, config = build(3, 40, SANDBOX_PORT, through_today=through_today)
        started.extend(servers)
        return config

    yield start
    for server in started:
        server.stop()


def expected_keys(config: dict) -> dict[str, tuple[str, set]]:
    """Each stream's primary key and the distinct key values one direct run delivers."""
    run = run_tap(config)
    out = {}
    for message in run.messages:
        if message["type"] == "SCHEMA":
            out[message["stream"]] = (message["key_properties"][0], set())
    for message in run.messages:
        if message["type"] == "RECORD":
            key, values = out[message["stream"]]
            values.add(message["record"][key])
    return out


def meltano(*args: str, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [MELTANO, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.skipif(not PG_BIN, reason="PostgreSQL not started (bash scripts/test does)")
def test_meltano_run_into_postgres_resumes_and_picks_up_new_data(sandbox, tmp_path):
    schema = f"e2e_{uuid.uuid4().hex[:8]}"
    config = sandbox(through_today=False)
    env = {
        "MELTANO_ENVIRONMENT": "sandbox",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path}/meltano.db",
        "DEMO_START_DATE": config["start_date"],
        "TARGET_POSTGRES_PASSWORD": "eco",
        "TARGET_POSTGRES_PORT": PG_PORT,
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
    }

    def psql(sql: str) -> str:
        proc = subprocess.run(
            [
                f"{PG_BIN}/psql",
                "-h",
                "127.0.0.1",
                "-p",
                PG_PORT,
                "-U",
                "eco",
                "-d",
                "eco",
                "-At",
                "-c",
                sql,
            ],
            env={**os.environ, "PGPASSWORD": "eco"},
            capture_output=True,
            text=True,
            check=True,
        )
        return proc.stdout.strip()

    def table_counts(expected: dict) -> dict[str, tuple[int, int]]:
        out = {}
        for stream, (key, _values) in expected.items():
            row = psql(f'select count(*), count(distinct "{key}") from {schema}."{stream}"')
            total, distinct = (int(v) for v in row.split("|"))
            out[stream] = (total, distinct)
        return out

    expected = expected_keys(config)
    assert len(expected) == 14
    meltano("run", "tap-event-exports", "target-postgres", env=env)
    first = table_counts(expected)
    for stream, (_key, values) in expected.items():
        assert first[stream] == (len(values), len(values)), stream

    meltano("run", "tap-event-exports", "target-postgres", env=env)
    assert table_counts(expected) == first, "a second run adds nothing"
    state = meltano("state", "get", "sandbox:tap-event-exports-to-target-postgres", env=env)
    assert "dfinery_events" in state.stdout

    config = sandbox(through_today=True)  # today's events arrive
    expected_now = expected_keys(config)
    meltano("run", "tap-event-exports", "target-postgres", env=env)
    third = table_counts(expected_now)
    grew = [s for s in third if third[s][0] > first[s][0]]
    assert len(grew) >= 8, "new sandbox data reached the warehouse"
    for stream, (_key, values) in expected_now.items():
        assert third[stream][1] == third[stream][0], f"{stream}: duplicate keys"
        assert third[stream][0] >= len(values), stream


def test_plain_pipe_with_state_fed_back(sandbox, tmp_path):
    config = sandbox(through_today=False)
    target = ROOT / ".meltano/loaders/target-jsonl/venv/bin/target-jsonl"
    assert target.exists(), "meltano install puts target-jsonl here"
    (tmp_path / "config.json").write_text(json.dumps(config))
    out_dir = tmp_path / "jsonl"
    (tmp_path / "target.json").write_text(
        json.dumps({"destination_path": str(out_dir), "do_timestamp_file": False})
    )
    tap = " ".join(tap_command())

    def pipe(extra: str = "") -> str:
        proc = subprocess.run(
            f"set -o pipefail; {tap} --config {tmp_path}/config.json {extra} 2>/dev/null"
            f" | {target} --config {tmp_path}/target.json",
            shell=True,
            executable="/bin/bash",
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout.strip().splitlines()[-1]

    def lines(stream: str) -> list[dict]:
        path = out_dir / f"{stream}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    state = pipe()
    expected = expected_keys(config)
    first = {s: len(lines(s)) for s in expected}
    for stream, (key, values) in expected.items():
        assert {r[key] for r in lines(stream)} == values, stream
    (tmp_path / "state.json").write_text(state)
    pipe(f"--state {tmp_path}/state.json")
    for stream, (key, values) in expected.items():
        rows = lines(stream)
        assert {r[key] for r in rows} == values, f"{stream}: the resumed run brings nothing new"
        if expected[stream][0] != "df_unified_id" and stream != "batch_userbase":
            assert len(rows) - first[stream] < first[stream], f"{stream}: only the lookback again"


def test_meltano_config_test_passes_against_the_sandbox(sandbox, tmp_path):
    """``meltano config test`` runs the tap until its first record; ``--test`` probes."""
    config = sandbox(through_today=False)
    env = {
        "MELTANO_ENVIRONMENT": "sandbox",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path}/meltano.db",
        "DEMO_START_DATE": config["start_date"],
    }
    proc = meltano("config", "test", "tap-event-exports", env=env)
    assert "Plugin configuration is valid" in proc.stdout + proc.stderr
    probe = meltano("invoke", "tap-event-exports", "--test", env=env)
    # meltano logs the tap's stderr lines with a prefix of its own
    found = re.findall(r"tap-event-exports: (\w+): (ok|FAILED): ", probe.stdout + probe.stderr)
    assert dict(found) == dict.fromkeys(("dfinery", "keen", "mytracker", "batch"), "ok")


def test_meltano_shards_with_state_id_suffix_then_the_merged_state_hands_over(sandbox, tmp_path):
    """Backfill through a target: one ``meltano run --state-id-suffix`` per shard, then merge."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from tap_event_exports.shards import merge_states, plan_shards
    from tests.test_shard_plan import streams_of

    config = sandbox(through_today=True)
    # on Dfinery's grid (Seoul days): the sandbox starts at a UTC midnight when that comes first,
    # which after 15:00 UTC is 09:00 in Seoul, and a plan from there has a third, partial shard
    seoul = ZoneInfo("Asia/Seoul")
    start = dt.datetime.fromisoformat(config["start_date"]).astimezone(seoul)
    if start.time() != dt.time(0):
        start = dt.datetime.combine(start.date() + dt.timedelta(days=1), dt.time(0), seoul)
    end = start + dt.timedelta(days=2)  # the last day and today are the incremental job's
    dfinery_only = {"start_date": start.isoformat(), "dfinery": config["dfinery"]}
    plan = plan_shards(streams_of(dfinery_only), start=start, end=end, windows_per_shard=1)
    shards = [s for s in plan.shards if s.provider == "dfinery"]
    assert len(shards) == 2
    env = {
        "MELTANO_ENVIRONMENT": "sandbox",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path}/meltano.db",
        "DEMO_START_DATE": config["start_date"],
        "TAP_EVENT_EXPORTS__SELECT": json.dumps(["dfinery_events.*"]),
        "TAP_EVENT_EXPORTS_DFINERY_LOOKBACK": "PT0S",
        "TARGET_JSONL_DO_TIMESTAMP_FILE": "false",
    }
    key = "df_event_detail_log_id"

    def rows(folder: Path) -> list[dict]:
        path = folder / "dfinery_events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    states, union = {}, []
    for shard in shards:
        out = tmp_path / shard.id
        out.mkdir()
        shard_env = env | {
            "TAP_EVENT_EXPORTS_START_DATE": shard.start,
            "TAP_EVENT_EXPORTS_END_DATE": shard.end,
            "TARGET_JSONL_DESTINATION_PATH": str(out),
        }
        meltano(
            "run",
            "--state-id-suffix",
            shard.state_id_suffix,
            "tap-event-exports",
            "target-jsonl",
            env=shard_env,
        )
        state_id = f"sandbox:tap-event-exports-to-target-jsonl:{shard.state_id_suffix}"
        got = json.loads(meltano("state", "get", state_id, env=env).stdout)
        states[shard.id] = got.get("singer_state", got)
        union += rows(out)
    listed = meltano("state", "list", env=env).stdout
    assert "sandbox:tap-event-exports-to-target-jsonl\n" not in listed + "\n", (
        "the shards never touch the incremental job's state"
    )
    whole = run_tap(dfinery_only | {"end_date": end.isoformat()}).records("dfinery_events")
    assert sorted(r[key] for r in union) == sorted(r[key] for r in whole), "each row once"

    merged = merge_states(plan, states)
    assert merged.gaps == []
    incremental = "sandbox:tap-event-exports-to-target-jsonl"
    meltano(
        "state",
        "set",
        "--force",
        incremental,
        json.dumps({"singer_state": merged.state}),
        env=env,
    )
    out = tmp_path / "incremental"
    out.mkdir()
    meltano(
        "run",
        "tap-event-exports",
        "target-jsonl",
        env=env
        | {
            "TARGET_JSONL_DESTINATION_PATH": str(out),
        },
    )
    later = rows(out)
    everything = run_tap(dfinery_only).records("dfinery_events")
    assert later, "the days after the backfill arrive"
    assert {r[key] for r in later}.isdisjoint({r[key] for r in union}), "nothing twice"
    assert {r[key] for r in later} | {r[key] for r in union} == {r[key] for r in everything}
