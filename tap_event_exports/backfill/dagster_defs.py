"""Backfills on Dagster: one partitioned asset per provider, vendor limits as concurrency pools.

Needs the extra ``tap-event-exports[dagster]``. :func:`backfill_definitions` builds, from a tap
config:

- per windowed provider, an asset ``tap_event_exports/<provider>_shards`` whose partitions are
  the provider's export windows (``DailyPartitionsDefinition`` in the provider's timezone for
  day windows, a cron ``TimeWindowPartitionsDefinition`` in UTC for sub-day windows); a
  partition (or a range of them, with ``partitions_per_run``) is one shard run
  (:func:`~tap_event_exports.backfill.runner.run_shard`) over the partition's time window, into
  ``root/<shard id>/``, in the Dagster pool of the provider's credential
  (:func:`~tap_event_exports.backfill.pools.credential_pools`);
- ``tap_event_exports/backfill_state``: the merge of every shard folder under ``root``, written
  to ``root/merged-state.json`` (the state the incremental job continues from), with its gaps;
- ``tap_event_exports/backfill_warehouse`` (when a ``database`` is given): every shard's BATCH
  parquet files loaded into DuckDB, one table per stream, de-duplicated on its key;
- jobs ``<provider>_backfill`` (partitioned) and ``backfill_merge``.

A pool's size is an instance setting, not a definition: set it once per Dagster instance with
:func:`apply_pools` (``python -m tap_event_exports.backfill.dagster_defs pools --config c.json``)
or ``dagster instance concurrency set <pool> <size>``.

For ``dagster dev -m tap_event_exports.backfill.dagster_defs``, the module's ``defs`` are built
from environment variables: ``TAP_EVENT_EXPORTS_BACKFILL_CONFIG`` (the tap config file,
required), ``TAP_EVENT_EXPORTS_BACKFILL_START`` (default: the config's ``start_date``),
``TAP_EVENT_EXPORTS_BACKFILL_END`` (default: none, partitions up to the last complete window),
``TAP_EVENT_EXPORTS_BACKFILL_ROOT`` (default ``backfill``) and
``TAP_EVENT_EXPORTS_BACKFILL_DATABASE`` (default: no DuckDB asset).
"""

# No `from __future__ import annotations`: Dagster reads the `context` annotation as an object.
import datetime as dt
import json
import os
import typing as t
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
from dagster import AssetExecutionContext

from tap_event_exports.backfill.dagster_partitions import instant, partitions_for
from tap_event_exports.backfill.grid import Grid, provider_grids
from tap_event_exports.backfill.pools import Pool, credential_pools
from tap_event_exports.backfill.runner import (
    ShardFailed,
    merge_shards,
    run_shard,
    shard_for,
    write_merged,
)

if t.TYPE_CHECKING:
    from dagster._core.definitions.reconstruct import ReconstructableJob

ENV_CONFIG = "TAP_EVENT_EXPORTS_BACKFILL_CONFIG"
ENV_START = "TAP_EVENT_EXPORTS_BACKFILL_START"
ENV_END = "TAP_EVENT_EXPORTS_BACKFILL_END"
ENV_ROOT = "TAP_EVENT_EXPORTS_BACKFILL_ROOT"
ENV_DATABASE = "TAP_EVENT_EXPORTS_BACKFILL_DATABASE"
PREFIX = "tap_event_exports"
MODULE = "tap_event_exports.backfill.dagster_defs"


def load_config(config: dict[str, t.Any] | str | Path) -> dict[str, t.Any]:
    """A tap config given as a dict, or read from its JSON file."""
    if isinstance(config, dict):
        return config
    with Path(config).open() as handle:
        loaded = json.load(handle)
    if not isinstance(loaded, dict):
        msg = f"backfill: {config} does not hold a JSON object"
        raise TypeError(msg)
    return loaded


def _rows(files: dict[str, list[str]]) -> dict[str, int]:
    import pyarrow.parquet as pq  # noqa: PLC0415 - a dependency of the tap

    return {
        stream: sum(pq.read_metadata(path).num_rows for path in paths)
        for stream, paths in sorted(files.items())
    }


def _pool_limit(instance: dg.DagsterInstance, pool: Pool) -> int | None:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return None
    for limit in storage.get_pool_limits():
        if limit.name == pool.name:
            return limit.limit
    return storage.get_pool_config().default_pool_limit


def _shard_asset(
    config: dict[str, t.Any],
    grid: Grid,
    pool: Pool,
    partitions: dg.TimeWindowPartitionsDefinition,
    *,
    root: Path,
    partitions_per_run: int,
    tap: Sequence[str] | None,
    env: dict[str, str] | None,
    retries: int,
) -> dg.AssetsDefinition:
    provider = grid.provider

    @dg.asset(
        key=dg.AssetKey([PREFIX, f"{provider}_shards"]),
        partitions_def=partitions,
        pool=pool.name,
        backfill_policy=(
            dg.BackfillPolicy.multi_run(partitions_per_run) if partitions_per_run > 1 else None
        ),
        retry_policy=dg.RetryPolicy(max_retries=retries, delay=30) if retries else None,
        group_name=PREFIX,
        kinds={"python", "parquet"},
        description=(
            f"{provider}'s raw events, one shard run per partition: BATCH parquet files and "
            f"the shard's own state in {root}/<shard id>/. Runs in pool {pool.name} "
            f"(size it {pool.size}: one export at the vendor per running shard)."
        ),
        metadata={"pool": pool.name, "pool_size": pool.size, "root": str(root)},
    )
    def shards(context: AssetExecutionContext) -> dg.MaterializeResult:
        window = context.partition_time_window
        shard = shard_for(config, provider, instant(window.start), instant(window.end))
        limit = _pool_limit(context.instance, pool)
        if limit is None or limit > pool.size:
            context.log.warning(
                f"pool {pool.name} allows {limit or 'any number of'} shards at once, more than "
                f"the {pool.size} exports {provider} allows this credential: run "
                f"`dagster instance concurrency set {pool.name} {pool.size}`"
            )
        context.log.info(f"shard {shard.id}: [{shard.start}, {shard.end}) into {root}")
        try:
            run = run_shard(config, shard, root, tap=tap, env=env)
        except ShardFailed as exc:
            raise dg.Failure(
                description=str(exc),
                metadata={
                    "shard": shard.id,
                    "folder": dg.MetadataValue.path(str(root.resolve() / shard.id)),
                    "log": dg.MetadataValue.path(str(root.resolve() / shard.id / "tap.log")),
                },
            ) from exc
        rows = _rows(run.files)
        return dg.MaterializeResult(
            metadata={
                "shard": shard.id,
                "start": shard.start,
                "end": shard.end,
                "export_requests": shard.export_requests,
                "rows": sum(rows.values()),
                "rows_per_stream": dg.MetadataValue.json(rows),
                "files": sum(len(paths) for paths in run.files.values()),
                "folder": dg.MetadataValue.path(str(run.folder)),
                "state": dg.MetadataValue.json(run.state),
            }
        )

    return shards


def backfill_definitions(
    config: dict[str, t.Any] | str | Path,
    *,
    start: dt.datetime | str | None = None,
    root: str | Path = "backfill",
    database: str | Path | None = None,
    end: dt.datetime | str | None = None,
    providers: Sequence[str] | None = None,
    partitions_per_run: int = 1,
    retries: int = 0,
    tap: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
) -> dg.Definitions:
    """Dagster definitions of a backfill of ``config`` from ``start`` (see the module doc).

    ``config`` is the tap config (a dict, or a JSON file's path); ``start`` defaults to its
    ``start_date``. ``root`` holds one folder per shard; ``database`` adds the DuckDB load.
    ``providers`` limits the assets to some windowed providers; ``partitions_per_run`` makes a
    Dagster backfill run that many partitions per run (one shard over their range);
    ``retries`` re-runs a failed shard (it resumes from its own state); ``tap`` and ``env``
    go to :func:`~tap_event_exports.backfill.runner.run_shard`.
    """
    settings = load_config(config)
    first = instant(start if start is not None else settings["start_date"])
    last = None if end is None else instant(end)
    folder = Path(root)
    grids = provider_grids(settings)
    pools = credential_pools(settings)
    chosen = list(grids) if providers is None else list(providers)
    unknown = [p for p in chosen if p not in grids]
    if unknown:
        msg = f"backfill: no windowed streams for {', '.join(unknown)} in the config"
        raise ValueError(msg)
    assets: list[dg.AssetsDefinition] = []
    jobs: list[dg.UnresolvedAssetJobDefinition] = []
    for provider in chosen:
        partitions = partitions_for(grids[provider], first, last)
        asset = _shard_asset(
            settings,
            grids[provider],
            pools[provider],
            partitions,
            root=folder,
            partitions_per_run=partitions_per_run,
            tap=tap,
            env=env,
            retries=retries,
        )
        assets.append(asset)
        jobs.append(dg.define_asset_job(f"{provider}_backfill", selection=[asset]))

    @dg.asset(
        key=dg.AssetKey([PREFIX, "backfill_state"]),
        deps=assets,
        group_name=PREFIX,
        kinds={"json"},
        description=(
            f"The state the incremental job continues from, merged from every shard under "
            f"{folder}: per stream and partition, the end of the contiguous finished range."
        ),
    )
    def backfill_state(context: AssetExecutionContext) -> dg.MaterializeResult:
        merged = merge_shards(folder, start=first, end=last, providers=chosen)
        path = write_merged(folder, merged)
        for gap in merged.gaps:
            context.log.warning(f"gap: {gap}")
        missing: dict[str, list[str]] = {}
        for provider, asset in zip(chosen, assets, strict=True):
            partitions = asset.partitions_def
            assert partitions is not None  # noqa: S101 - every shard asset is partitioned
            done = context.instance.get_materialized_partitions(asset.key)
            missing[provider] = [k for k in partitions.get_partition_keys() if k not in done]
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path.resolve())),
                "gaps": len(merged.gaps),
                "gap_list": dg.MetadataValue.json(merged.gaps),
                "missing_partitions": dg.MetadataValue.json(
                    {provider: len(keys) for provider, keys in missing.items()}
                ),
                "first_missing": dg.MetadataValue.json(
                    {provider: keys[:10] for provider, keys in missing.items() if keys}
                ),
                "bookmarks": dg.MetadataValue.json(merged.state.get("bookmarks", {})),
            }
        )

    merge_assets: list[dg.AssetsDefinition] = [backfill_state]
    if database is not None:
        target = Path(database)

        @dg.asset(
            key=dg.AssetKey([PREFIX, "backfill_warehouse"]),
            deps=assets,
            group_name=PREFIX,
            kinds={"duckdb"},
            description=(
                f"Every shard's BATCH files under {folder} in {target}: one table per "
                "stream, de-duplicated on the stream's key properties."
            ),
        )
        def backfill_warehouse() -> dg.MaterializeResult:
            from tap_event_exports.backfill.warehouse import load_duckdb  # noqa: PLC0415

            counts = load_duckdb(folder, target)
            return dg.MaterializeResult(
                metadata={
                    "database": dg.MetadataValue.path(str(target.resolve())),
                    "rows": sum(counts.values()),
                    "rows_per_table": dg.MetadataValue.json(counts),
                }
            )

        merge_assets.append(backfill_warehouse)
    jobs.append(dg.define_asset_job("backfill_merge", selection=merge_assets))
    return dg.Definitions(assets=[*assets, *merge_assets], jobs=jobs)


def apply_pools(instance: dg.DagsterInstance, config: dict[str, t.Any] | str | Path) -> list[Pool]:
    """Size each credential's pool on ``instance``; returns the pools.

    The same as ``dagster instance concurrency set <pool> <size>`` for every pool.
    """
    pools = list(credential_pools(load_config(config)).values())
    for pool in pools:
        instance.event_log_storage.set_concurrency_slots(pool.name, pool.size)
    return pools


def job(
    name: str,
    config: str | Path,
    *,
    start: str | None = None,
    root: str | Path = "backfill",
    database: str | Path | None = None,
    end: str | None = None,
    tap: Sequence[str] | None = None,
) -> dg.JobDefinition:
    """Job ``name`` of :func:`backfill_definitions` (the arguments of :func:`reconstructable`)."""
    defs = backfill_definitions(
        config,
        start=start,
        root=root,
        database=None if database is None else database,
        end=end,
        tap=tap,
    )
    return defs.resolve_job_def(name)


def reconstructable(
    name: str,
    config: str | Path,
    *,
    start: dt.datetime | str | None = None,
    root: str | Path = "backfill",
    database: str | Path | None = None,
    end: dt.datetime | str | None = None,
    tap: Sequence[str] | None = None,
) -> "ReconstructableJob":
    """Job ``name``, for ``execute_job`` with the multiprocess executor.

    Each step process rebuilds the job from these arguments. ``config`` is a file: only its
    path is kept in the run's record, never the credentials in it.
    """
    kwargs: dict[str, t.Any] = {"config": str(Path(config).resolve()), "root": str(root)}
    if start is not None:
        kwargs["start"] = start if isinstance(start, str) else start.isoformat()
    if end is not None:
        kwargs["end"] = end if isinstance(end, str) else end.isoformat()
    if database is not None:
        kwargs["database"] = str(database)
    if tap is not None:
        kwargs["tap"] = list(tap)
    return dg.build_reconstructable_job(
        MODULE, "job", reconstructable_args=(name,), reconstructable_kwargs=kwargs
    )


def definitions_from_environment(environ: t.Mapping[str, str] | None = None) -> dg.Definitions:
    """The definitions that ``TAP_EVENT_EXPORTS_BACKFILL_*`` variables describe."""
    environ = os.environ if environ is None else environ
    path = environ.get(ENV_CONFIG)
    if not path:
        msg = (
            f"{__name__}: set {ENV_CONFIG} to the tap config file"
            f" (and optionally {ENV_START}, {ENV_END}, {ENV_ROOT}, {ENV_DATABASE})"
        )
        raise RuntimeError(msg)
    return backfill_definitions(
        path,
        start=environ.get(ENV_START) or None,
        end=environ.get(ENV_END) or None,
        root=environ.get(ENV_ROOT) or "backfill",
        database=environ.get(ENV_DATABASE) or None,
    )


_FROM_ENVIRONMENT: dict[str, dg.Definitions] = {}


def __getattr__(name: str) -> t.Any:
    """``defs``, built from the environment on first use (``dagster dev -m`` loads it)."""
    if name != "defs":
        raise AttributeError(name)
    if "defs" not in _FROM_ENVIRONMENT:
        _FROM_ENVIRONMENT["defs"] = definitions_from_environment()
    return _FROM_ENVIRONMENT["defs"]


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])


if __name__ == "__main__":
    from tap_event_exports.backfill.dagster_cli import main

    main()
