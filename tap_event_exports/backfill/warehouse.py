"""Shard BATCH parquet files into DuckDB, one table per stream, de-duplicated on its key.

Shards never overlap, so duplicates come only from a shard run again after a kill (the
window it was in is exported again); rows with the same key are the same event, and the one
in the file whose name sorts last is kept.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

from tap_event_exports.backfill.runner import listed_files, shard_folders


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def stream_files(root: str | Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Stream -> every file of every shard under ``root``, and stream -> key properties."""
    files: dict[str, list[str]] = {}
    keys: dict[str, list[str]] = {}
    for folder in shard_folders(root):
        for stream, paths in listed_files(folder).items():
            files.setdefault(stream, []).extend(paths)
        schemas = folder / "schemas.json"
        if schemas.exists():
            for stream, entry in json.loads(schemas.read_text()).items():
                keys[stream] = entry["key_properties"]
    return files, keys


def load_duckdb(root: str | Path, database: str | Path) -> dict[str, int]:
    """Replace each stream's table in ``database`` with its shards' rows; stream -> rows."""
    import duckdb  # noqa: PLC0415 - an optional dependency (extras dagster, airflow, test)

    files, keys = stream_files(root)
    missing = [path for paths in files.values() for path in paths if not Path(path).exists()]
    if missing:
        msg = f"backfill: {len(missing)} BATCH file(s) of the shards are gone, first {missing[0]}"
        raise FileNotFoundError(msg)
    counts: dict[str, int] = {}
    with duckdb.connect(str(database)) as db:
        for stream, paths in sorted(files.items()):
            if not paths:
                continue
            source = "read_parquet($files, union_by_name = true, filename = true)"
            key = ", ".join(_quote(k) for k in keys.get(stream, []))
            if key:
                rows = (
                    f"SELECT * EXCLUDE (filename, __row) FROM"  # noqa: S608 - names quoted
                    f" (SELECT *, row_number() OVER "
                    f"(PARTITION BY {key} ORDER BY filename DESC) AS __row FROM {source}) "
                    "WHERE __row = 1"
                )
            else:
                rows = f"SELECT * EXCLUDE (filename) FROM {source}"  # noqa: S608
            table = f"CREATE OR REPLACE TABLE {_quote(stream)} AS {rows}"
            db.execute(table, {"files": paths})
            result = db.execute(f"SELECT count(*) FROM {_quote(stream)}").fetchone()  # noqa: S608
            counts[stream] = int(result[0]) if result else 0
    return counts


def table_rows(database: str | Path, stream: str) -> list[dict[str, t.Any]]:
    """A loaded stream's rows as dicts (for checks and examples)."""
    import duckdb  # noqa: PLC0415

    with duckdb.connect(str(database), read_only=True) as db:
        cursor = db.execute(f"SELECT * FROM {_quote(stream)}")  # noqa: S608
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
