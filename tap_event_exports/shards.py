"""Backfills past one machine: a shard plan any engine can run, and the merge of shard states.

A shard is one run of the tap over ``[start, end)`` of one provider, with a state of its own.
Shard bounds lie on the provider's window grid (midnights in the provider's timezone for day
windows), so neighbouring shards never overlap and together they export exactly the windows of
one run over the whole range. Once shards are done, :func:`merge_states` builds the state from
which the normal incremental job continues: per stream and partition, the bookmark at the end
of the contiguous finished range; a failed shard is a gap, reported, never jumped over.

The command line is ``tap-event-exports-shards`` (:mod:`tap_event_exports.backfill.cli`).
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import asdict, dataclass, field

from tap_event_exports.engine.state import read_bookmark
from tap_event_exports.engine.windows import rfc3339, utc

if t.TYPE_CHECKING:
    from tap_event_exports.streams import ExportStream


@dataclass
class Shard:
    """One run of the tap: one provider's streams over ``[start, end)``."""

    id: str
    provider: str
    streams: list[str]
    start: str
    end: str
    windows: int
    export_requests: int
    """Exports the shard makes: windows times partitions, over its streams."""
    state_id_suffix: str = ""


@dataclass
class Plan:
    """The shards of a backfill, in order per provider."""

    start: str
    end: str
    windows_per_shard: int
    shards: list[Shard] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    """Full-table streams: not sharded, the incremental job exports them."""

    def to_json(self) -> dict[str, t.Any]:
        """The plan as JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, t.Any]) -> Plan:
        """A plan read back from :meth:`to_json`."""
        shards = [Shard(**shard) for shard in data.get("shards", [])]
        return cls(
            start=data["start"],
            end=data["end"],
            windows_per_shard=int(data["windows_per_shard"]),
            shards=shards,
            snapshots=list(data.get("snapshots", [])),
        )


def plan_shards(
    streams: list[ExportStream],
    *,
    start: dt.datetime,
    end: dt.datetime,
    windows_per_shard: int,
) -> Plan:
    """Cut ``[start, end)`` into shards of ``windows_per_shard`` windows per provider.

    The first shard starts at the grid window holding ``start``; the last ends at ``end``
    rounded up to the grid, so every event of the range is in exactly one shard.
    """
    plan = Plan(rfc3339(start), rfc3339(end), windows_per_shard)
    by_provider: dict[str, list[ExportStream]] = {}
    for stream in streams:
        if stream.spec.windowing is None:
            plan.snapshots.append(stream.name)
        else:
            by_provider.setdefault(stream.spec.vendor, []).append(stream)
    for provider, members in by_provider.items():
        windowing = members[0].spec.windowing
        assert windowing is not None  # noqa: S101 - windowed streams only
        granularity, step = windowing.granularity, windowing.step
        partitions = sum(len(s.spec.partitions) or 1 for s in members)
        cursor = granularity.align(utc(start), step)
        while cursor < utc(end):
            shard_end, windows = cursor, 0
            while windows < windows_per_shard and shard_end < utc(end):
                shard_end = granularity.advance(shard_end, step)
                windows += 1
            shard_id = shard_name(provider, cursor)
            plan.shards.append(
                Shard(
                    id=shard_id,
                    provider=provider,
                    streams=[s.name for s in members],
                    start=rfc3339(cursor),
                    end=rfc3339(shard_end),
                    windows=windows,
                    export_requests=windows * partitions,
                    state_id_suffix=f"shard-{shard_id}",
                )
            )
            cursor = shard_end
    return plan


def shard_name(provider: str, start: dt.datetime) -> str:
    """A shard's id: its provider and its start in UTC (stable when a range is planned again)."""
    return f"{provider}-{utc(start):%Y%m%dT%H%M%SZ}"


def shard_config(config: dict[str, t.Any], shard: Shard) -> dict[str, t.Any]:
    """The tap config of one shard: its provider only, its bounds, no lookback."""
    from tap_event_exports.tap import PROVIDERS  # noqa: PLC0415 - the tap imports this module

    out = {k: v for k, v in config.items() if k not in {p.key for p in PROVIDERS}}
    block = dict(config[shard.provider])
    block["lookback"] = "PT0S"  # a shard exports its range, not what lies before it
    out[shard.provider] = block
    out["start_date"], out["end_date"] = shard.start, shard.end
    return out


@dataclass
class Merged:
    """The merged state, and the gaps that stopped a stream short of the plan's end."""

    state: dict[str, t.Any]
    gaps: list[str]


def _contexts(state: dict[str, t.Any], stream: str) -> list[tuple[dict | None, dict]]:
    entry = (state.get("bookmarks") or {}).get(stream) or {}
    partitions = entry.get("partitions")
    if partitions:
        return [(p.get("context"), p) for p in partitions]
    return [(None, entry)]


def merge_states(plan: Plan, states: dict[str, dict[str, t.Any]]) -> Merged:
    """The state the incremental job continues from, given each finished shard's state.

    A shard counts as finished for a stream (and partition) when its bookmark reached the
    shard's end; the merged bookmark is the end of the last finished shard before the first
    one that is not (a gap, reported).
    """
    bookmarks: dict[str, t.Any] = {}
    gaps: list[str] = []
    streams = sorted({name for shard in plan.shards for name in shard.streams})
    for stream in streams:
        shards = [s for s in plan.shards if stream in s.streams]
        reached: dict[str, tuple[dict | None, str | None, str]] = {}
        stopped: set[str] = set()
        for shard in shards:
            state = states.get(shard.id)
            contexts = _contexts(state, stream) if state is not None else []
            if not contexts:
                contexts = [(c, {}) for c, _, _ in reached.values()] or [(None, {})]
            for context, entry in contexts:
                key = repr(sorted((context or {}).items()))
                if key in stopped:
                    continue
                mark = read_bookmark(entry, stream=stream) if entry else None
                if mark is not None and mark >= utc(dt.datetime.fromisoformat(shard.end)):
                    reached[key] = (context, entry.get("replication_key"), shard.end)
                else:
                    stopped.add(key)
                    where = f"{stream}{'' if context is None else context}"
                    gaps.append(f"{where}: shard {shard.id} [{shard.start}, {shard.end}) not done")
        entries = []
        for context, replication_key, end in reached.values():
            entry = {"replication_key_value": end}
            if replication_key:
                entry["replication_key"] = replication_key
            entries.append((context, entry))
        if not entries:
            continue
        if entries[0][0] is None:
            bookmarks[stream] = entries[0][1]
        else:
            bookmarks[stream] = {"partitions": [{"context": c, **e} for c, e in entries]}
    return Merged({"bookmarks": bookmarks}, gaps)


def export_streams(config: dict[str, t.Any]) -> list[ExportStream]:
    """The export streams a config enables (validated, as the tap builds them)."""
    from tap_event_exports.streams import ExportStream  # noqa: PLC0415 - loads the SDK
    from tap_event_exports.tap import TapEventExports  # noqa: PLC0415

    tap = TapEventExports(config=config, validate_config=True, setup_mapper=False)
    return [s for s in tap.streams.values() if isinstance(s, ExportStream)]
