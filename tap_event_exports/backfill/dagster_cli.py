"""``python -m tap_event_exports.backfill.dagster_defs pools | partitions PROVIDER``."""

import os

import dagster as dg

from tap_event_exports.backfill.dagster_defs import (
    ENV_CONFIG,
    MODULE,
    apply_pools,
    definitions_from_environment,
    load_config,
)
from tap_event_exports.backfill.pools import credential_pools


def main(argv: list[str] | None = None) -> None:
    """``python -m tap_event_exports.backfill.dagster_defs pools | partitions PROVIDER``."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="Pools and partitions of a backfill ($TAP_EVENT_EXPORTS_BACKFILL_*).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    pools_cmd = commands.add_parser(
        "pools", help="size each credential's pool on the instance of $DAGSTER_HOME"
    )
    pools_cmd.add_argument("--config", help=f"the tap config (default: ${ENV_CONFIG})")
    pools_cmd.add_argument("--dry-run", action="store_true", help="only print the pools")
    keys_cmd = commands.add_parser("partitions", help="print a provider's partition keys")
    keys_cmd.add_argument("provider")
    args = parser.parse_args(argv)
    if args.command == "partitions":
        defs = definitions_from_environment()
        partitions = defs.resolve_job_def(f"{args.provider}_backfill").partitions_def
        for key in partitions.get_partition_keys():
            print(key)
        return
    config = args.config or os.environ.get(ENV_CONFIG)
    if not config:
        parser.error(f"pools: give --config or set {ENV_CONFIG}")
    if args.dry_run:
        pools = list(credential_pools(load_config(config)).values())
    else:
        with dg.DagsterInstance.get() as instance:
            pools = apply_pools(instance, config)
    for pool in pools:
        print(f"{pool.name} {pool.size}  # {pool.provider}")


if __name__ == "__main__":
    main()
