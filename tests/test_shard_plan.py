"""Shard plans on the window grid, shard runs that add up to one run, and the state merge."""

from __future__ import annotations

import datetime as dt
import json

from tap_event_exports.backfill.cli import main
from tap_event_exports.shards import Plan, merge_states, plan_shards, shard_config, shard_name
from tap_event_exports.streams import ExportStream
from tap_event_exports.tap import TapEventExports
from tests.conftest import SEOUL, batch_config, dfinery_config, seoul_today, utc_midnight
from tests.harness import run_tap

UTC = dt.timezone.utc


def streams_of(config):
    tap = TapEventExports(config=config, validate_config=True)
    return [s for s in tap.streams.values() if isinstance(s, ExportStream)]


def test_shards_lie_on_local_midnights_and_never_overlap(dfinery):
    config = dfinery_config(dfinery, user_profiles={})
    first = dt.datetime.combine(seoul_today() - dt.timedelta(days=10), dt.time(0), tzinfo=SEOUL)
    plan = plan_shards(
        streams_of(config),
        start=first + dt.timedelta(hours=5),  # inside a day: the first shard holds that day
        end=first + dt.timedelta(days=10),
        windows_per_shard=3,
    )
    assert plan.snapshots == ["dfinery_user_profiles"]
    assert [s.windows for s in plan.shards] == [3, 3, 3, 1]
    assert [s.export_requests for s in plan.shards] == [3, 3, 3, 1]
    starts = [dt.datetime.fromisoformat(s.start) for s in plan.shards]
    ends = [dt.datetime.fromisoformat(s.end) for s in plan.shards]
    assert starts[0] == first
    assert all(a.astimezone(SEOUL).time() == dt.time(0) for a in starts + ends)
    assert starts[1:] == ends[:-1], "each shard starts where the previous ends"
    assert ends[-1] == first + dt.timedelta(days=10)
    assert [s.id for s in plan.shards] == [shard_name("dfinery", start) for start in starts]
    assert plan.shards[0].id == f"dfinery-{first.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_export_requests_count_partitions(batch):
    config = batch_config(batch, push_campaigns=["CAMPAIGN_A", "CAMPAIGN_B"], reachability=True)
    plan = plan_shards(
        streams_of(config), start=utc_midnight(4), end=utc_midnight(0), windows_per_shard=2
    )
    # events + ids of 2 campaigns, and reachability: 5 exports per window
    assert [(s.windows, s.export_requests) for s in plan.shards] == [(2, 10), (2, 10)]
    assert set(plan.shards[0].streams) == {
        "batch_push_campaign_events",
        "batch_push_campaign_ids",
        "batch_reachability_events",
    }


def keyed(run):
    return sorted(
        (m["stream"], m["record"]["_record_id"]) for m in run.messages if m["type"] == "RECORD"
    )


def test_shard_runs_equal_one_run_and_the_merge_hands_over_to_the_incremental_job(batch):
    """Batch (asynchronous jobs, partitions): three shards, one failing first, then a merge."""
    config = batch_config(batch, push_campaigns=["CAMPAIGN_A", "CAMPAIGN_B"], reachability=True)
    start, end = utc_midnight(4), utc_midnight(1)
    plan = plan_shards(streams_of(config), start=start, end=end, windows_per_shard=1)
    assert len(plan.shards) == 3
    whole = run_tap(config | {"start_date": start.isoformat(), "end_date": end.isoformat()})

    states, union = {}, []
    second = plan.shards[1].id
    for shard in plan.shards:
        if shard.id == second:
            continue  # this shard "failed": it has no finished state
        run = run_tap(shard_config(config, shard))
        states[shard.id] = run.last_state
        union += keyed(run)
    merged = merge_states(plan, states)
    assert merged.gaps, "the missing shard is reported"
    assert all(second in gap for gap in merged.gaps)
    marks = merged.state["bookmarks"]["batch_reachability_events"]
    assert marks["replication_key_value"] == plan.shards[0].end, "stops before the gap"

    retry = run_tap(shard_config(config, plan.shards[1]))
    states[second] = retry.last_state
    union += keyed(retry)
    assert sorted(union) == keyed(whole), "the shards hold exactly the records of one run"
    merged = merge_states(plan, states)
    assert merged.gaps == []
    pushes = merged.state["bookmarks"]["batch_push_campaign_events"]["partitions"]
    assert {p["context"]["campaign_token"] for p in pushes} == {"CAMPAIGN_A", "CAMPAIGN_B"}
    assert all(p["replication_key_value"] == plan.shards[-1].end for p in pushes)

    # the incremental job continues from the merged state: only what follows the range
    after = run_tap(config | {"start_date": start.isoformat()}, state=merged.state)
    later = [r for r in after.records("batch_reachability_events")]
    lookback = dt.datetime.fromisoformat(plan.shards[-1].end) - dt.timedelta(days=1)
    assert later, "the days after the range arrive"
    assert all(r["event_date"] >= lookback.replace(tzinfo=None).isoformat() for r in later)


def test_the_command_line_plans_configures_and_merges(dfinery, tmp_path, capsys):
    config = dfinery_config(dfinery)
    (tmp_path / "c.json").write_text(json.dumps(config))
    first = dt.datetime.combine(seoul_today() - dt.timedelta(days=4), dt.time(0), tzinfo=SEOUL)
    main(
        [
            "plan",
            "--config",
            str(tmp_path / "c.json"),
            "--start",
            first.isoformat(),
            "--end",
            (first + dt.timedelta(days=4)).isoformat(),
            "--windows-per-shard",
            "2",
        ]
    )
    plan = json.loads(capsys.readouterr().out)
    assert [s["id"] for s in plan["shards"]] == [
        shard_name("dfinery", first),
        shard_name("dfinery", first + dt.timedelta(days=2)),
    ]
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    main(
        [
            "config",
            "--config",
            str(tmp_path / "c.json"),
            "--plan",
            str(tmp_path / "plan.json"),
            "--shard",
            plan["shards"][1]["id"],
        ]
    )
    shard = json.loads(capsys.readouterr().out)
    assert shard["start_date"] == plan["shards"][1]["start"]
    assert shard["end_date"] == plan["shards"][1]["end"]
    assert shard["dfinery"]["lookback"] == "PT0S"
