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
