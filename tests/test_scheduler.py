"""Run-wide export scheduling: limits never exceeded, emission order kept, disk bounded, and
every stream's and partition's jobs in flight at once (against the fake Batch over HTTP)."""

from __future__ import annotations

import collections
import datetime as dt
import threading
import time

import pytest

from tap_event_exports.engine.download import Download
from tap_event_exports.engine.scheduler import ExportScheduler, ExportUnit
from tests.harness import run_tap


class Recorder:
    """Works that take ``seconds``, counting how many run at once per group."""

    def __init__(self, seconds=0.05, size=100, fail=()):
        self.seconds = seconds
        self.size = size
        self.fail = set(fail)
        self.lock = threading.Lock()
        self.running = collections.Counter()
        self.peak = collections.Counter()
        self.total_peak = 0
        self.started: list[str] = []

    def unit(self, name, group="g"):
        def work():
            with self.lock:
                self.started.append(name)
                self.running[group] += 1
                self.peak[group] = max(self.peak[group], self.running[group])
                self.total_peak = max(self.total_peak, sum(self.running.values()))
            time.sleep(self.seconds)
            with self.lock:
                self.running[group] -= 1
            if name in self.fail:
                raise RuntimeError(f"{name} failed")
            return [Download(f"/nonexistent/{name}", self.size, self.size, 0.0)]

        return ExportUnit(key=name, group=group, work=work, label=name)


def scheduler(**kw):
    options = {
        "max_in_flight": 4,
        "group_limits": {},
        "max_buffered_bytes": 10**9,
        "stop": threading.Event(),
    } | kw
    return ExportScheduler(**options)


def test_limits_hold_and_results_come_in_emission_order():
    rec = Recorder()
    units = [rec.unit(f"a{i}", "a") for i in range(6)] + [rec.unit(f"b{i}", "b") for i in range(6)]
    run = scheduler(max_in_flight=5, group_limits={"a": 2, "b": 3})
    run.submit(units)
    taken = [run.take(u.key)[0].path.rsplit("/", 1)[1] for u in units]
    run.close()
    assert taken == [u.key for u in units]
    assert rec.peak["a"] == 2
    assert rec.peak["b"] == 3
    assert rec.total_peak == 5
    # b's exports did not wait for a's to be emitted: they started while a's were running
    assert rec.started.index("b0") < rec.started.index("a2")


def test_buffered_files_are_bounded_but_the_awaited_export_always_starts():
    rec = Recorder(seconds=0.01, size=1000)
    units = [rec.unit(f"u{i}") for i in range(8)]
    run = scheduler(max_in_flight=2, max_buffered_bytes=2500)
    run.submit(units)
    time.sleep(0.3)  # nobody takes anything: downloads stop once ~2,500 bytes would wait
    assert len(rec.started) == 3
    for unit in units:
        run.take(unit.key)
    run.close()
    assert len(rec.started) == 8
    assert run.peak_buffered_bytes <= 3000


def test_a_failed_export_is_raised_in_its_turn_and_nothing_after_it_starts():
    rec = Recorder(seconds=0.05, fail={"u1"})
    units = [rec.unit(f"u{i}") for i in range(10)]
    run = scheduler(max_in_flight=2)
    run.submit(units)
    assert run.take("u0")[0].path.endswith("u0")
    with pytest.raises(RuntimeError, match="u1 failed"):
        run.take("u1")
    run.close()
    assert len(rec.started) <= 3, rec.started  # u0, u1 and at most the one started beside u1


def test_waiting_consumers_run_their_callback():
    rec = Recorder(seconds=1.2)
    run = scheduler()
    run.submit([rec.unit("slow")])
    calls = []
    run.take("slow", while_waiting=lambda: calls.append(time.monotonic()))
    run.close()
    assert len(calls) >= 2


def test_close_deletes_files_nobody_took(tmp_path):
    paths = []

    def work():
        path = tmp_path / f"f{len(paths)}"
        path.write_text("x")
        paths.append(path)
        return [Download(str(path), 1, 1, 0.0)]

    run = scheduler()
    run.submit([ExportUnit(key=i, group="g", work=work) for i in range(3)])
    time.sleep(0.2)
    run.close()
    assert len(paths) == 3
    assert not any(p.exists() for p in paths)


# --- whole runs against the fake Batch ----------------------------------------------------


def many_campaigns(count, *, days=1, per_day=60, job_seconds=0.4, last_day_ago=0):
    from tap_event_exports.sandbox.batch import BatchFake, generate_data
    from tests.conftest import utc_midnight

    tokens = tuple(f"CAMPAIGN_{n:02d}" for n in range(count))
    start = utc_midnight(last_day_ago + days - 1)
    data = generate_data(start=start, days=days, per_day=per_day, campaigns=tokens)
    return BatchFake(data, job_seconds=job_seconds), tokens


def batch_run_config(fake, tokens, **top):
    from tests.conftest import utc_midnight

    return {
        "start_date": utc_midnight(0).isoformat(),
        "poll_interval": 0.05,
        "max_retries": 4,
        "batch": {
            "base_url": fake.base_url,
            "api_key": fake.api_key,
            "rest_api_key": fake.rest_key,
            "push_campaigns": list(tokens),
            "max_concurrent_jobs": top.pop("batch_jobs", 6),
        },
    } | top


def test_every_partitions_jobs_run_at_once_within_the_vendor_limit():
    from tests.conftest import utc_midnight

    # yesterday, whole: today's events so far may leave a campaign without any (after midnight)
    fake, tokens = many_campaigns(10, last_day_ago=1)
    with fake:
        started = time.monotonic()
        config = batch_run_config(fake, tokens, max_concurrent_jobs=12, batch_jobs=6)
        config |= {
            "start_date": utc_midnight(1).isoformat(),
            "end_date": utc_midnight(0).isoformat(),
        }
        run = run_tap(config)
        elapsed = time.monotonic() - started
    # 20 partitions (events + ids of 10 campaigns), one window each, 0.4 s jobs
    assert fake.max_jobs_in_flight == 6, "the provider's limit is reached and never exceeded"
    assert elapsed < 20 * 0.4, "partitions did not wait for each other"
    events = run.records("batch_push_campaign_events")
    assert {r["campaign_token"] for r in events} == set(tokens)


def test_records_still_come_stream_by_stream_and_window_by_window():
    fake, tokens = many_campaigns(3, days=3)
    with fake:
        config = batch_run_config(fake, tokens, max_concurrent_jobs=8, batch_jobs=8)
        config["start_date"] = (
            dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
            - dt.timedelta(days=2)
        ).isoformat()
        run = run_tap(config)
    order = []
    for message in run.messages:
        if message["type"] == "RECORD":
            record = message["record"]
            where = (message["stream"], record["campaign_token"])
            if not order or order[-1][0] != where:
                order.append((where, record.get("event_date")))
    blocks = [where for where, _ in order]
    assert len(blocks) == len(set(blocks)), "each stream's partition is emitted in one block"
    streams = [stream for stream, _ in blocks]
    assert streams == sorted(streams, key=streams.index), "streams do not interleave"
    # within a partition, event dates never go back (window order)
    dates = collections.defaultdict(list)
    for message in run.messages:
        if message["type"] == "RECORD" and message["stream"] == "batch_push_campaign_events":
            record = message["record"]
            dates[record["campaign_token"]].append(record["event_date"][:10])
    for values in dates.values():
        assert values == sorted(values)
