"""Run the tap in-process or as a process, and read back its Singer messages."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import typing as t
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from tap_event_exports.tap import TapEventExports


@dataclass
class TapRun:
    """What one run printed."""

    messages: list[dict]
    stderr: str = ""
    returncode: int = 0
    error: BaseException | None = None
    lines: list[str] = field(default_factory=list)
    stdout: str = ""

    def records(self, stream: str | None = None) -> list[dict]:
        return [
            m["record"]
            for m in self.messages
            if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)
        ]

    def states(self) -> list[dict]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def last_state(self) -> dict | None:
        states = self.states()
        return states[-1] if states else None

    def schemas(self, stream: str) -> list[dict]:
        return [m for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream]

    def bookmark(self, stream: str) -> str | None:
        state = self.last_state or {}
        return state.get("bookmarks", {}).get(stream, {}).get("replication_key_value")


def parse_lines(raw: bytes) -> tuple[list[dict], list[str]]:
    """Parse complete JSON lines; a torn last line (killed process) is dropped.

    Lines end at ``\n`` only: ``str.splitlines`` would also cut at U+2028 and friends, which
    JSON strings may hold as they are.
    """
    messages, lines = [], []
    for line in raw.decode().split("\n"):
        try:
            messages.append(json.loads(line, parse_float=Decimal))
            lines.append(line)
        except ValueError:
            continue
    return messages, lines


def run_tap(
    config: dict,
    *,
    state: dict | None = None,
    catalog: dict | None = None,
    raise_errors: bool = True,
) -> TapRun:
    """Sync in this process, capturing stdout as bytes."""
    sink = io.BytesIO()
    real = sys.stdout
    wrapper = io.TextIOWrapper(sink, encoding="utf-8", write_through=True)
    sys.stdout = wrapper
    error = None
    try:
        tap = TapEventExports(config=config, state=state, catalog=catalog)
        tap.sync_all()
    except Exception as exc:
        if raise_errors:
            raise
        error = exc
    finally:
        wrapper.flush()
        output = sink.getvalue()
        wrapper.detach()
        sys.stdout = real
    messages, lines = parse_lines(output)
    assert_no_secrets(output.decode())
    return TapRun(messages=messages, error=error, lines=lines)


def tap_command() -> list[str]:
    return [sys.executable, "-m", "tap_event_exports"]


def run_cli(
    args: list[str],
    *,
    config: dict | None = None,
    state: dict | None = None,
    timeout: float = 120,
    env: dict | None = None,
) -> TapRun:
    """Run the console entry point as a process."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = list(args)
        if config is not None:
            path = Path(tmp, "config.json")
            path.write_text(json.dumps(config))
            argv += ["--config", str(path)]
        if state is not None:
            path = Path(tmp, "state.json")
            path.write_text(json.dumps(state))
            argv += ["--state", str(path)]
        proc = subprocess.run(
            [*tap_command(), *argv],
            capture_output=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )
    messages, lines = parse_lines(proc.stdout)
    assert_no_secrets(proc.stdout.decode(), proc.stderr.decode())
    return TapRun(
        messages=messages,
        stderr=proc.stderr.decode(),
        returncode=proc.returncode,
        lines=lines,
        stdout=proc.stdout.decode(),
    )


def write_json(path: Path, value: t.Any) -> Path:
    path.write_text(json.dumps(value))
    return path


SECRETS = (
    "dfn-export-token",
    "batch-rest-key",
    "tok-SECRET-123",
    "mytracker-secret-key",
    "keen-read-key-0123456789",
)
"""Every secret the tests configure; none may ever be printed or logged."""


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"a configured secret leaked: {text[:300]}"


def run_until_sigterm(config: dict, tmp_path: Path, ready: t.Callable[[], bool]) -> dict:
    """Start the tap as a process, stop it with SIGTERM once ``ready()``; return its last STATE.

    The run must end with exit code 143 (stopped by a signal) and a STATE message.
    """
    import signal
    import time

    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "out.jsonl"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [*tap_command(), "--config", str(path)], stdout=sink, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    messages, _ = parse_lines(out.read_bytes())
    return [m["value"] for m in messages if m["type"] == "STATE"][-1]


def as_loaded(record: dict) -> dict:
    """A RECORD's values as the parquet files hold them (numbers as doubles)."""
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in record.items()}


def by_key(rows: list[dict], key: str) -> dict:
    """Rows by their key, so that two tables compare whatever their order; no key twice."""
    out: dict = {}
    for row in rows:
        assert row[key] not in out, f"duplicate key {row[key]}"
        out[row[key]] = row
    return out


def shard_taps(folder: Path) -> list[int]:
    """The tap processes of a shard folder (their command line names its config)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(folder / "config.json").encode() in argv and b"tap_event_exports" in argv:
            pids.append(int(entry))
    return pids


def at_once(count: int, send: t.Callable[[], t.Any]) -> list[t.Any]:
    """The answers of ``count`` calls of ``send`` released together (concurrency limits)."""
    barrier = threading.Barrier(count)
    answers: list[t.Any] = []

    def one() -> None:
        barrier.wait()
        answers.append(send())

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers
