"""One shard run: the tap over a shard's bounds, BATCH parquet into the shard's folder.

Everything a shard needs to be resumed, merged and loaded lives in ``root/<shard id>/``:

- ``shard.json``: the shard (provider, streams, bounds);
- ``state.json``: its last STATE, rewritten atomically at every STATE the tap emits, so a
  killed shard run again resumes from it (pending asynchronous export jobs included) and the
  merge knows how far it got;
- ``manifest.jsonl``: one line per BATCH message (stream and files), the files the load reads;
- ``schemas.json``: each stream's schema and key properties;
- ``files/``: the parquet files; ``tap.log``: the tap's log (secrets are redacted by the tap);
- ``catalog.json``: the streams the tap ran; ``config.json``, its config, exists only while
  the tap runs (it holds the credentials: readable by its owner only, removed at the end).

The folder is the shard's own state, never the incremental job's: only the merge
(:func:`merge_shards`) hands a backfill over to it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import typing as t
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from tap_event_exports.engine.windows import utc
from tap_event_exports.shards import (
    Merged,
    Plan,
    Shard,
    export_streams,
    merge_states,
    plan_shards,
    shard_config,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


class ShardFailed(RuntimeError):
    """A shard's tap run ended with an error (the message is one line)."""


@dataclass
class ShardRun:
    """What a finished shard run left in its folder."""

    shard: Shard
    folder: Path
    state: dict[str, t.Any]
    files: dict[str, list[str]] = field(default_factory=dict)
    """Stream name -> the BATCH parquet files the shard wrote (absolute paths), all runs."""


def shard_for(
    config: dict[str, t.Any], provider: str, start: dt.datetime, end: dt.datetime
) -> Shard:
    """The one shard of ``provider`` over ``[start, end)``, whose bounds lie on its window grid."""
    streams = [s for s in export_streams(config) if s.spec.vendor == provider]
    windowed = [s for s in streams if s.spec.windowing is not None]
    if not windowed:
        msg = f"backfill: provider {provider!r} has no windowed stream in the config"
        raise ValueError(msg)
    plan = plan_shards(windowed, start=start, end=end, windows_per_shard=10**9)
    if len(plan.shards) != 1 or plan.shards[0].start != utc(start).isoformat():
        msg = f"backfill: [{start}, {end}) does not start on {provider}'s window grid"
        raise ValueError(msg)
    shard = plan.shards[0]
    if shard.end != utc(end).isoformat():
        msg = f"backfill: [{start}, {end}) does not end on {provider}'s window grid"
        raise ValueError(msg)
    return shard


def shard_from_plan(plan: Plan, shard_id: str) -> Shard:
    """The shard ``shard_id`` of a plan."""
    for shard in plan.shards:
        if shard.id == shard_id:
            return shard
    msg = f"backfill: no shard {shard_id!r} in the plan"
    raise ValueError(msg)


def run_config(config: dict[str, t.Any], shard: Shard, files: Path) -> dict[str, t.Any]:
    """The tap config of a shard run: its bounds, one export at a time, parquet into ``files``.

    One export at a time because the orchestrator's pool slot is the unit of a vendor's
    concurrency: a pool of 5 slots is 5 exports at once, however many shards are queued.
    """
    out = shard_config(config, shard)
    out[shard.provider] = {**out[shard.provider], "max_concurrent_jobs": 1}
    out["max_concurrent_jobs"] = 1
    out["batch_config"] = {
        "encoding": {"format": "parquet", "compression": "none"},
        "storage": {"root": files.as_uri(), "prefix": f"{shard.id}-"},
    }
    return out


def _catalog(config: dict[str, t.Any], streams: list[str]) -> dict[str, t.Any]:
    from tap_event_exports.tap import TapEventExports  # noqa: PLC0415 - loads the SDK

    catalog = TapEventExports(config=config, validate_config=True, setup_mapper=False).catalog_dict
    for entry in catalog["streams"]:
        for item in entry.get("metadata", []):
            if item.get("breadcrumb") == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def write_json(path: Path, data: t.Any, *, private: bool = False) -> None:
    """Write ``path`` whole or not at all (a kill never leaves half a state)."""
    part = path.with_name(path.name + ".part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    with os.fdopen(os.open(part, flags, 0o600 if private else 0o644), "w") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    part.replace(path)


def _read_json(path: Path) -> t.Any:
    with path.open() as handle:
        return json.load(handle)


def _path_of(url: str) -> str:
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" else url


def listed_files(folder: Path) -> dict[str, list[str]]:
    """Stream -> the files a shard folder's BATCH messages named, in order, all runs."""
    files: dict[str, list[str]] = {}
    manifest = folder / "manifest.jsonl"
    if manifest.exists():
        for line in manifest.read_text().splitlines():
            entry = json.loads(line)
            files.setdefault(entry["stream"], []).extend(entry["files"])
    return files


def _drop_unlisted(folder: Path) -> None:
    """Remove files a killed run wrote but never named in a BATCH message (never loaded)."""
    listed = {path for paths in listed_files(folder).values() for path in paths}
    for path in (folder / "files").glob("*"):
        if str(path) not in listed:
            path.unlink()


class ShardOutput:
    """What the tap writes on stdout, kept in the shard's folder as it arrives."""

    def __init__(self, folder: Path) -> None:
        """Continue what earlier runs of the shard kept."""
        self.folder = folder
        self.state_path = folder / "state.json"
        schemas = folder / "schemas.json"
        self.schemas: dict[str, t.Any] = _read_json(schemas) if schemas.exists() else {}
        self.state: dict[str, t.Any] = (
            _read_json(self.state_path) if self.state_path.exists() else {}
        )

    def consume(self, lines: t.Iterable[bytes]) -> None:
        """Keep SCHEMA key properties, BATCH files and the last STATE of the tap's messages."""
        with (self.folder / "manifest.jsonl").open("a") as manifest:
            for raw in lines:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "SCHEMA":
                    self.schemas[message["stream"]] = {
                        "schema": message["schema"],
                        "key_properties": message.get("key_properties") or [],
                    }
                    write_json(self.folder / "schemas.json", self.schemas)
                elif kind == "BATCH":
                    paths = [_path_of(url) for url in message["manifest"]]
                    manifest.write(json.dumps({"stream": message["stream"], "files": paths}))
                    manifest.write("\n")
                    manifest.flush()
                    os.fsync(manifest.fileno())
                elif kind == "STATE":
                    self.state = message["value"]
                    write_json(self.state_path, self.state)


STOP_GRACE = 30.0
"""Seconds a stopped shard's tap gets to write its last STATE (pending job ids) and exit."""


def run_shard(
    config: dict[str, t.Any],
    shard: Shard,
    root: str | Path,
    *,
    tap: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
) -> ShardRun:
    """Run the tap over one shard, resuming from the shard's own state if it has one.

    If this process is interrupted (an orchestrator stopping the task), the tap is sent
    SIGTERM and its last STATE is still kept, so the next run resumes its pending jobs.
    """
    folder = Path(root).resolve() / shard.id
    files = folder / "files"
    files.mkdir(parents=True, exist_ok=True)
    write_json(folder / "shard.json", asdict(shard))
    _drop_unlisted(folder)
    settings = run_config(config, shard, files)
    write_json(folder / "config.json", settings, private=True)
    write_json(folder / "catalog.json", _catalog(settings, shard.streams))
    command = [*(tap or [sys.executable, "-m", "tap_event_exports"])]
    command += ["--config", str(folder / "config.json"), "--catalog", str(folder / "catalog.json")]
    output = ShardOutput(folder)
    if output.state_path.exists():
        command += ["--state", str(output.state_path)]
    tail: deque[str] = deque(maxlen=20)
    with (folder / "tap.log").open("a") as log:
        process = subprocess.Popen(  # noqa: S603 - the tap's own command
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        assert process.stdout is not None  # noqa: S101 - piped above
        assert process.stderr is not None  # noqa: S101
        errors, messages = process.stderr, process.stdout

        def copy_log() -> None:
            for raw in errors:
                line = raw.decode("utf-8", "replace")
                log.write(line)
                tail.append(line.rstrip())
            log.flush()

        logger = threading.Thread(target=copy_log, name=f"log-{shard.id}", daemon=True)
        logger.start()
        try:
            output.consume(messages)
        except BaseException:
            process.terminate()
            keeper = threading.Thread(target=output.consume, args=(messages,), daemon=True)
            keeper.start()
            keeper.join(STOP_GRACE)
            process.kill()
            raise
        finally:
            code = process.wait()
            logger.join()
            (folder / "config.json").unlink(missing_ok=True)  # credentials: not kept at rest
    if code != 0:
        last = next((line for line in reversed(tail) if line.strip()), "no error output")
        msg = f"shard {shard.id}: the tap exited with code {code}: {last}"
        raise ShardFailed(msg)
    return ShardRun(shard, folder, output.state, listed_files(folder))


MERGED_STATE = "merged-state.json"
"""The merged state's file name under the shards' root (not a shard folder: no ``shard.json``)."""


def write_merged(root: str | Path, merged: Merged, path: str | Path | None = None) -> Path:
    """Write the merged state to ``path`` (default ``root/merged-state.json``); returns it.

    Only ``merged.state`` is written, whole or not at all: the file is what the incremental job
    reads with ``--state``, so a kill never hands it half a state (the gaps are the caller's).
    """
    target = Path(path) if path is not None else Path(root) / MERGED_STATE
    target.parent.mkdir(parents=True, exist_ok=True)
    write_json(target, merged.state)
    return target


def shard_folders(root: str | Path) -> list[Path]:
    """The shard folders under ``root`` (those with a ``shard.json``), by name."""
    return sorted(p.parent for p in Path(root).glob("*/shard.json"))


def merge_shards(
    root: str | Path,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    providers: Iterable[str] | None = None,
) -> Merged:
    """The state the incremental job continues from, built from the shard folders under ``root``.

    Per provider, shards are chained by their bounds from ``start`` (default: the earliest
    shard); a hole between shards, a shard that did not reach its end, or a chain that stops
    before ``end`` is a gap, and the bookmark stays before it.

    ``providers`` are those the backfill expects (they need ``start``): one without any shard
    folder (its plan failed, nothing ran yet) is a gap over ``[start, end)``, or from ``start``
    on without an ``end``, rather than passing unnoticed.
    """
    expected = set(providers) if providers is not None else set()
    if providers is not None and start is None:
        msg = "backfill: merge_shards needs a start with providers (a provider may have no shard)"
        raise ValueError(msg)
    shards = [Shard(**_read_json(folder / "shard.json")) for folder in shard_folders(root)]
    states = {
        shard.id: _read_json(Path(root) / shard.id / "state.json")
        for shard in shards
        if (Path(root) / shard.id / "state.json").exists()
    }
    chain: list[Shard] = []
    gaps: list[str] = []
    for provider in sorted({s.provider for s in shards} | expected):
        mine = sorted(
            (s for s in shards if s.provider == provider),
            key=lambda s: (_instant(s.start), -_instant(s.end).timestamp()),
        )
        reached = utc(start) if start is not None else _instant(mine[0].start)
        if not mine:  # an expected provider: start is given (checked above)
            until = utc(end).isoformat() if end is not None else "..."
            gaps.append(f"{provider}: no shard covers [{reached.isoformat()}, {until})")
            continue
        for shard in mine:
            if _instant(shard.end) <= reached:
                continue  # covered by a wider shard already chained
            if _instant(shard.start) > reached:
                gaps.append(f"{provider}: no shard covers [{reached.isoformat()}, {shard.start})")
                break
            chain.append(shard)
            reached = _instant(shard.end)
        else:
            if end is not None and reached < utc(end):
                hole = f"[{reached.isoformat()}, {utc(end).isoformat()})"
                gaps.append(f"{provider}: no shard covers {hole}")
    first = min((s.start for s in chain), default="")
    last = max((s.end for s in chain), default="")
    merged = merge_states(Plan(first, last, 0, chain), states)
    return Merged(merged.state, merged.gaps + gaps)


def _instant(text: str) -> dt.datetime:
    return utc(dt.datetime.fromisoformat(text))
