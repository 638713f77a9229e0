"""A backfill split into disjoint start_date/end_date shards yields exactly one run's records."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import subprocess

from tests.conftest import SEOUL, seoul_today
from tests.harness import parse_lines, tap_command

KEY = "df_event_detail_log_id"


def test_shards_as_separate_processes_equal_one_run(dfinery, tmp_path):
    days = [seoul_today() - dt.timedelta(days=n) for n in range(5, -1, -1)]
    bounds = [dt.datetime.combine(d, dt.time(0), tzinfo=SEOUL) for d in days] + [None]

    def config(start, end):
        block = {
            "service_id": dfinery.service_id,
            "api_token": dfinery.token,
            "base_url": dfinery.base_url,
        }
        out = {"start_date": start.isoformat(), "dfinery": block}
        if end is not None:
            out["end_date"] = end.isoformat()
        return out

    def launch(name, cfg):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(cfg))
        return subprocess.Popen(
            [*tap_command(), "--config", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    whole = launch("whole", config(bounds[0], None))
    cuts = [bounds[0], bounds[2], bounds[4], None]  # three shards: 2 days, 2 days, the rest
    shards = [
        launch(f"shard{i}", config(a, b)) for i, (a, b) in enumerate(itertools.pairwise(cuts))
    ]

    def keys(proc):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        messages, _ = parse_lines(out)
        return [m["record"][KEY] for m in messages if m["type"] == "RECORD"]

    one_run = keys(whole)
    sharded = [k for proc in shards for k in keys(proc)]
    assert sorted(sharded) == sorted(one_run), "the shards hold exactly the records of one run"
    assert len(sharded) == len(set(sharded)), "day-aligned shards do not overlap"
