"""``tap-event-exports-shards``: plan, configure, run, merge and load backfill shards.

    tap-event-exports-shards plan --config c.json --start 2025-01-01T00:00:00Z --end ... > plan.json
tap-event-exports-shards config --config c.json --plan plan.json --shard ID
tap-event-exports-shards merge --plan plan.json --state ID=s1.json ... > state.json
tap-event-exports-shards run --config c.json --plan plan.json --shard ID --root shards/
tap-event-exports-shards merge --root shards/ > state.json
tap-event-exports-shards load --root shards/ --database backfill.duckdb

``run`` writes ``ROOT/<shard id>/`` (see :mod:`tap_event_exports.backfill.runner`); ``merge``
exits 3 when there are gaps, naming them on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import typing as t

from tap_event_exports.backfill.runner import ShardFailed, merge_shards, run_shard, shard_from_plan
from tap_event_exports.backfill.warehouse import load_duckdb
from tap_event_exports.engine.windows import utc
from tap_event_exports.shards import Plan, export_streams, merge_states, plan_shards, shard_config


def _when(text: str) -> dt.datetime:
    return utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


def main(argv: list[str] | None = None) -> None:
    """``tap-event-exports-shards plan | config | merge`` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="tap-event-exports-shards", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    plan_cmd = commands.add_parser("plan", help="print the shard plan of a range as JSON")
    plan_cmd.add_argument("--config", required=True)
    plan_cmd.add_argument("--start", required=True, type=_when)
    plan_cmd.add_argument("--end", required=True, type=_when)
    plan_cmd.add_argument("--windows-per-shard", type=int, default=7)
    config_cmd = commands.add_parser("config", help="print the tap config of one shard")
    config_cmd.add_argument("--config", required=True)
    config_cmd.add_argument("--plan", required=True)
    config_cmd.add_argument("--shard", required=True)
    run_cmd = commands.add_parser("run", help="run one shard: BATCH parquet into ROOT/<shard>")
    run_cmd.add_argument("--config", required=True)
    run_cmd.add_argument("--plan", required=True)
    run_cmd.add_argument("--shard", required=True)
    run_cmd.add_argument("--root", required=True)
    merge_cmd = commands.add_parser("merge", help="print the state the incremental job resumes")
    merge_cmd.add_argument("--plan", help="the plan, with each shard's --state")
    merge_cmd.add_argument("--state", action="append", default=[], metavar="SHARD=PATH")
    merge_cmd.add_argument("--root", help="or: the shard folders written by `run`")
    merge_cmd.add_argument("--start", type=_when, help="with --root: where the backfill starts")
    merge_cmd.add_argument("--end", type=_when, help="with --root: where it must reach")
    load_cmd = commands.add_parser("load", help="load the shards' files into DuckDB tables")
    load_cmd.add_argument("--root", required=True)
    load_cmd.add_argument("--database", required=True)
    args = parser.parse_args(argv)

    def load(path: str) -> t.Any:
        with open(path) as handle:
            return json.load(handle)

    if args.command == "plan":
        streams = export_streams(load(args.config))
        plan = plan_shards(
            streams, start=args.start, end=args.end, windows_per_shard=args.windows_per_shard
        )
        print(json.dumps(plan.to_json(), indent=2))
        now = dt.datetime.now(dt.timezone.utc)
        for future in plan.shards:
            if _when(future.end) > now:
                print(
                    f"tap-event-exports-shards: warning: shard {future.id} ends at {future.end},"
                    " after now: it cannot finish until then (the merge reports it as a gap)",
                    file=sys.stderr,
                )
    elif args.command == "config":
        plan = Plan.from_json(load(args.plan))
        chosen = next((s for s in plan.shards if s.id == args.shard), None)
        if chosen is None:
            sys.exit(f"tap-event-exports-shards: error: no shard {args.shard!r} in the plan")
        print(json.dumps(shard_config(load(args.config), chosen), indent=2))
    elif args.command == "run":
        try:
            shard = shard_from_plan(Plan.from_json(load(args.plan)), args.shard)
            done = run_shard(load(args.config), shard, args.root)
        except (ShardFailed, ValueError) as exc:
            sys.exit(f"tap-event-exports-shards: error: {exc}")
        files = sum(len(paths) for paths in done.files.values())
        print(f"shard {shard.id}: done, {files} file(s) in {done.folder}", file=sys.stderr)
    elif args.command == "load":
        for stream, rows in load_duckdb(args.root, args.database).items():
            print(f"{stream}: {rows} rows")
    else:
        if args.root:
            merged = merge_shards(args.root, start=args.start, end=args.end)
        elif args.plan:
            plan = Plan.from_json(load(args.plan))
            states = {}
            for item in args.state:
                shard_id, _, path = item.partition("=")
                states[shard_id] = load(path)
            merged = merge_states(plan, states)
        else:
            sys.exit("tap-event-exports-shards: error: merge needs --root or --plan")
        print(json.dumps(merged.state, indent=2))
        for gap in merged.gaps:
            print(f"tap-event-exports-shards: gap: {gap}", file=sys.stderr)
        sys.exit(3 if merged.gaps else 0)
