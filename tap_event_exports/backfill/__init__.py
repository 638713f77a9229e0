"""Backfills on orchestrators: shard runs, their merge, vendor pools and the DuckDB load.

The engine-neutral parts live here (``runner``, ``grid``, ``pools``, ``warehouse``); the
Dagster definitions and the Airflow DAG factory build on them and need their extras
(``tap-event-exports[dagster]``, ``tap-event-exports[airflow]``).
"""
