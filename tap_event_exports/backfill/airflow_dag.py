"""Backfills on Airflow: a DAG factory over the shard plan (extra ``tap-event-exports[airflow]``).

A file in the dags folder needs two lines::

    from tap_event_exports.backfill.airflow_dag import backfill_dag
    dag = backfill_dag("events_backfill", "/etc/tap/config.json", start="2025-01-01",
                       end="2025-04-01", windows_per_shard=7, root="/shared/backfill")

The DAG has, per windowed provider of the config:

- ``plan_<provider>``: the provider's shards over ``[start, end)`` on its window grid
  (:func:`tap_event_exports.shards.plan_shards`), as a list of shards;
- ``shards_<provider>``: one mapped task instance per shard (dynamic task mapping), each running
  :func:`tap_event_exports.backfill.runner.run_shard` (the tap as a subprocess, BATCH parquet
  files into ``root/<shard id>/``), in the Airflow pool of the provider's credential
  (:func:`tap_event_exports.backfill.pools.credential_pools`: one slot per shard, sized by the
  vendor's concurrency) and with retries: a retried shard resumes from its own state, pending
  asynchronous export jobs included;

and one final task, ``merge_and_load``, run once every shard is done or has failed for good:
it writes the merged state (:func:`~tap_event_exports.backfill.runner.merge_shards`) the
incremental job continues from, loads every shard's files into DuckDB
(:func:`~tap_event_exports.backfill.warehouse.load_duckdb`, de-duplicated on each stream's key)
and fails, naming them, if the shards leave gaps (the bookmark then stops before the first gap;
clearing the failed shard and this task fills it).

Pools must exist before the DAG runs (the scheduler never starts a task of a pool that does not
exist): ``python -m tap_event_exports.backfill.airflow_dag pools --config c.json > pools.json``
then ``airflow pools import pools.json``, or :func:`create_pools` where the metadata database is
at hand.

The config file is read when the DAG is parsed (providers and pool names, never secrets: pool
names hash the credential) and again by each task; credentials never go through XCom.
"""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from dataclasses import asdict
from pathlib import Path

from tap_event_exports.backfill.pools import Pool, credential_pools
from tap_event_exports.backfill.runner import (
    MERGED_STATE,
    merge_shards,
    run_shard,
    write_json,
    write_merged,
)
from tap_event_exports.backfill.warehouse import load_duckdb
from tap_event_exports.engine.windows import utc
from tap_event_exports.shards import Shard, export_streams, plan_shards

if t.TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import DAG

DATABASE_FILE = "backfill.duckdb"
"""The DuckDB database's file name in ``root`` unless ``database`` is given."""


def _instant(value: dt.datetime | dt.date | str) -> dt.datetime:
    """A bound as an aware datetime: ISO-8601 text or a date (UTC midnight if naive)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(0))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return utc(value)


def _read_config(path: str | Path) -> dict[str, t.Any]:
    with Path(path).open() as handle:
        config: dict[str, t.Any] = json.load(handle)
    return config


def airflow_pools(config: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    """The pools of a config's credentials, in the format ``airflow pools import`` reads."""
    return {
        pool.name: {
            "slots": pool.size,
            "description": f"tap-event-exports: {pool.provider} exports of one credential",
            "include_deferred": False,
        }
        for pool in credential_pools(config).values()
    }


def create_pools(config: dict[str, t.Any]) -> list[Pool]:
    """Create (or resize) the pools of a config's credentials in Airflow's metadata database.

    Needs the metadata database (a scheduler's or a test's environment, not a task's in
    Airflow 3); elsewhere, ``airflow pools import`` the file of :func:`airflow_pools`.
    """
    from airflow.models.pool import Pool as AirflowPool  # noqa: PLC0415 - airflow-core only

    pools = list(credential_pools(config).values())
    for name, spec in airflow_pools(config).items():
        AirflowPool.create_or_update_pool(
            name, spec["slots"], spec["description"], include_deferred=spec["include_deferred"]
        )
    return pools


def backfill_dag(
    dag_id: str,
    config_path: str | Path,
    *,
    start: dt.datetime | dt.date | str,
    end: dt.datetime | dt.date | str,
    windows_per_shard: int = 7,
    root: str | Path,
    database: str | Path | None = None,
    state_path: str | Path | None = None,
    providers: Sequence[str] | None = None,
    retries: int = 3,
    retry_delay: dt.timedelta | float = dt.timedelta(minutes=2),
    tap: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
    **dag_kwargs: t.Any,
) -> DAG:
    """A DAG that backfills ``[start, end)`` of a config's providers in shards.

    Args:
        dag_id: the DAG's id.
        config_path: the tap's config file (JSON), read at parse time and by every task.
        start: where the backfill starts (ISO-8601 text, a date or a datetime; naive is UTC);
            the first shard starts at the provider's window holding it.
        end: where it ends (rounded up to the provider's window grid, which must then lie in
            the past: Dfinery's days end at Seoul midnights, 15:00 UTC).
        windows_per_shard: windows of the provider's grid per shard (days, with daily windows).
        root: the folder of the shard folders; every worker must see the same one (a shared
            volume), as a retried shard resumes from the folder of its earlier try.
        database: the DuckDB database the shards are loaded into (default
            ``root/backfill.duckdb``).
        state_path: where the merged state is written (default ``root/merged-state.json``).
        providers: only these providers (default: every windowed provider of the config).
        retries: tries after the first of each shard.
        retry_delay: the wait before a shard's next try (a timedelta, or seconds).
        tap: the tap's command (default: the worker's Python, ``-m tap_event_exports``).
        env: variables added to the tap's environment.
        **dag_kwargs: passed to :class:`airflow.sdk.DAG` (``schedule``, ``tags``…).

    Returns:
        The DAG (also registered in the file that calls this, as Airflow's DAG context does).
    """
    # Airflow is imported here, not with the module: its pools command needs no Airflow
    # logging on stdout, and the rest of the package imports without the extra
    from airflow.sdk import DAG, TriggerRule, get_current_context, task  # noqa: PLC0415
    from airflow.sdk.exceptions import AirflowFailException  # noqa: PLC0415

    config_file = str(Path(config_path).resolve())
    first, last = _instant(start), _instant(end)
    if last <= first:
        msg = f"backfill: end {last.isoformat()} is not after start {first.isoformat()}"
        raise ValueError(msg)
    folder = Path(root).resolve()
    warehouse = str(Path(database).resolve() if database is not None else folder / DATABASE_FILE)
    merged_path = str(
        Path(state_path).resolve() if state_path is not None else folder / MERGED_STATE
    )
    pools = credential_pools(_read_config(config_file))
    if providers is not None:
        unknown = sorted(set(providers) - set(pools))
        if unknown:
            msg = f"backfill: no windowed stream of provider(s) {', '.join(unknown)} in the config"
            raise ValueError(msg)
        pools = {name: pool for name, pool in pools.items() if name in providers}
    if not pools:
        msg = "backfill: the config enables no provider with windowed streams"
        raise ValueError(msg)
    command = list(tap) if tap is not None else None  # None: the worker's own Python
    extra_env = dict(env or {})
    if not isinstance(retry_delay, dt.timedelta):
        retry_delay = dt.timedelta(seconds=retry_delay)

    dag_kwargs.setdefault("schedule", None)
    dag_kwargs.setdefault("catchup", False)
    dag_kwargs.setdefault("max_active_runs", 1)  # two runs would share the shard folders
    dag_kwargs.setdefault("tags", ["tap-event-exports", "backfill"])
    dag_kwargs.setdefault(
        "doc_md",
        f"Backfill of [{first.isoformat()}, {last.isoformat()}) in shards of "
        f"{windows_per_shard} window(s) into `{folder}`; merged state `{merged_path}`, "
        f"DuckDB `{warehouse}`.",
    )

    with DAG(dag_id, **dag_kwargs) as dag:

        @task
        def plan(provider: str) -> list[dict[str, t.Any]]:
            """The provider's shards, as JSON-ready dicts (also written to root/plan-*.json)."""
            streams = [
                s for s in export_streams(_read_config(config_file)) if s.spec.vendor == provider
            ]
            shards = plan_shards(
                streams, start=first, end=last, windows_per_shard=windows_per_shard
            )
            reach = max(_instant(shard.end) for shard in shards.shards)
            if reach > dt.datetime.now(dt.timezone.utc):
                msg = (
                    f"backfill: {provider}'s last shard would end at {reach.isoformat()}, in "
                    f"the future (end {last.isoformat()} rounded up to {provider}'s window "
                    "grid): a backfill covers complete windows, the incremental job the rest"
                )
                raise AirflowFailException(msg)
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / f"plan-{provider}.json", shards.to_json())
            return [asdict(shard) for shard in shards.shards]

        @task(map_index_template="{{ shard_id }}")
        def run(shard: dict[str, t.Any]) -> dict[str, t.Any]:
            """One shard: the tap over its bounds, resumed from its state on a retry."""
            one = Shard(**shard)
            get_current_context()["shard_id"] = one.id  # names the mapped task instance
            done = run_shard(_read_config(config_file), one, folder, tap=command, env=extra_env)
            return {
                "shard": one.id,
                "start": one.start,
                "end": one.end,
                "files": {stream: len(paths) for stream, paths in done.files.items()},
            }

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def merge_and_load() -> dict[str, t.Any]:
            """Write the merged state, load the shards into DuckDB; fail on gaps, naming them."""
            merged = merge_shards(folder, start=first, end=last, providers=list(pools))
            write_merged(folder, merged, merged_path)
            rows = load_duckdb(folder, warehouse) if any(folder.glob("*/shard.json")) else {}
            if merged.gaps:
                msg = (
                    f"backfill has {len(merged.gaps)} gap(s), the merged state stops before "
                    f"them (re-run the failed shards, then this task): {'; '.join(merged.gaps)}"
                )
                raise AirflowFailException(msg)
            return {"state": merged_path, "database": warehouse, "rows": rows}

        final = merge_and_load()
        for provider, pool in sorted(pools.items()):
            shards = plan.override(task_id=f"plan_{provider}")(provider)
            mapped = run.override(
                task_id=f"shards_{provider}",
                pool=pool.name,
                pool_slots=1,
                retries=retries,
                retry_delay=retry_delay,
            ).expand(shard=shards)
            mapped >> final
    return dag


def main(argv: list[str] | None = None) -> None:
    """``python -m tap_event_exports.backfill.airflow_dag pools --config c.json``."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="python -m tap_event_exports.backfill.airflow_dag",
        description="Airflow pools of a config's vendor credentials, for `airflow pools import`.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    pools_cmd = commands.add_parser("pools", help="print the pools as JSON")
    pools_cmd.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(airflow_pools(_read_config(args.config)), indent=2))


if __name__ == "__main__":
    main()
