"""The export job engine on its own: recreate, split, resume and the ledger."""

from __future__ import annotations

import datetime as dt
import http.server
import threading
from pathlib import Path

import pytest

from tap_event_exports.engine.contract import ExportJobs, JobStatus, Phase, VendorDialect
from tap_event_exports.engine.errors import VendorError
from tap_event_exports.engine.http import HttpPolicy, RequestSpec
from tap_event_exports.engine.jobs import JobFailedError, JobLedger, JobRunner
from tap_event_exports.engine.windows import DayGranularity, Window

UTC = dt.timezone.utc


def day(n: int) -> dt.datetime:
    return dt.datetime(2025, 1, 1, tzinfo=UTC) + dt.timedelta(days=n)


class ScriptedJobs(ExportJobs):
    """Jobs whose fate is decided by a function of their window."""

    vendor = "scripted"

    def __init__(self, fate):
        self.fate = fate
        self.created: list[Window | None] = []
        self.windows: dict[str, Window | None] = {}
        self.polls: dict[str, int] = {}

    def create(self, window, partition):
        job_id = f"job-{len(self.created)}"
        self.created.append(window)
        self.windows[job_id] = window
        return job_id

    def status(self, job_id, partition):
        self.polls[job_id] = self.polls.get(job_id, 0) + 1
        if self.polls[job_id] < 2:
            return JobStatus(Phase.RUNNING, progress="50%")
        return self.fate(job_id, self.windows.get(job_id))


class NoDialect(VendorDialect):
    name = "scripted"


def runner(jobs, **kw) -> JobRunner:
    policy = HttpPolicy(NoDialect(), timeout=1, max_retries=1, base_url="http://127.0.0.1:9")
    return JobRunner(
        jobs,
        policy,
        stream="s",
        poll_interval=0.001,
        max_poll_time=kw.pop("max_poll_time", 5),
        granularity=DayGranularity("UTC"),
        **kw,
    )


def test_too_large_windows_split_down_to_what_the_vendor_accepts():
    def fate(job_id, window):
        if window.end - window.start > dt.timedelta(days=1):
            return JobStatus(Phase.TOO_LARGE, message="Too many lines in export")
        return JobStatus(Phase.DONE)

    jobs = ScriptedJobs(fate)
    state: dict = {}
    ledger = JobLedger(state)
    assert runner(jobs).fetch(Window(day(0), day(4)), None, ledger) == []
    created = [(w.start.day, w.end.day) for w in jobs.created]
    assert created == [(1, 5), (1, 3), (1, 2), (2, 3), (3, 5), (3, 4), (4, 5)]
    assert state["pending_jobs"]["2025-01-01T00:00:00+00:00/2025-01-05T00:00:00+00:00"] == {
        "split": True
    }
    # a later run resumes from the ledger: the split is remembered, finished pieces are polled
    again = ScriptedJobs(fate)
    again.windows = dict(jobs.windows)
    runner(again).fetch(Window(day(0), day(4)), None, JobLedger(state))
    assert again.created == []
    ledger.drop_within(Window(day(0), day(4)))
    assert state["pending_jobs"] == {}


def test_one_unit_too_large_fails_clearly():
    jobs = ScriptedJobs(lambda j, w: JobStatus(Phase.TOO_LARGE, message="Too many lines"))
    with pytest.raises(JobFailedError, match=r"job job-0 is too large .* cannot be split further"):
        runner(jobs).fetch(Window(day(0), day(1)), None, JobLedger({}))


def test_retriable_failures_recreate_a_bounded_number_of_times():
    jobs = ScriptedJobs(lambda j, w: JobStatus(Phase.RETRY, message="Error occurred"))
    with pytest.raises(
        JobFailedError, match=r"job job-3 retry again after 3 new jobs: Error occurred"
    ):
        runner(jobs).fetch(Window(day(0), day(1)), None, JobLedger({}))
    assert len(jobs.created) == 4

    flaky = ScriptedJobs(
        lambda j, w: JobStatus(Phase.RETRY) if j == "job-0" else JobStatus(Phase.DONE)
    )
    runner(flaky).fetch(Window(day(0), day(1)), None, JobLedger({}))
    assert len(flaky.created) == 2


def test_resumed_job_is_polled_not_created():
    jobs = ScriptedJobs(lambda j, w: JobStatus(Phase.DONE))
    window = Window(day(0), day(1))
    state = {"pending_jobs": {JobLedger.key(window): {"job": "job-77"}}}
    runner(jobs).fetch(window, None, JobLedger(state))
    assert jobs.created == []
    assert jobs.polls == {"job-77": 2}


def test_expired_resumed_job_is_recreated():
    jobs = ScriptedJobs(
        lambda j, w: JobStatus(Phase.EXPIRED) if j == "old" else JobStatus(Phase.DONE)
    )
    window = Window(day(0), day(1))
    state = {"pending_jobs": {JobLedger.key(window): {"job": "old"}}}
    runner(jobs).fetch(window, None, JobLedger(state))
    assert jobs.created == [window]
    assert state["pending_jobs"][JobLedger.key(window)] == {"job": "job-0"}


def test_max_poll_time_names_the_job():
    jobs = ScriptedJobs(lambda j, w: JobStatus(Phase.RUNNING))
    with pytest.raises(
        JobFailedError, match=r"scripted: s: window .*: job job-0 still not finished"
    ):
        runner(jobs, max_poll_time=0.05).fetch(Window(day(0), day(1)), None, JobLedger({}))


def test_ledger_is_replaced_never_mutated_in_place():
    state: dict = {}
    ledger = JobLedger(state)
    before = state["pending_jobs"]
    ledger.put(Window(day(0), day(1)), {"job": "a"})
    assert before == {}
    assert state["pending_jobs"] is not before

    def writer(n):
        for i in range(200):
            ledger.put(Window(day(n), day(n + 1)), {"job": f"{n}-{i}"})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {v["job"] for v in state["pending_jobs"].values()} >= {
        "0-199",
        "1-199",
        "2-199",
        "3-199",
    }


class FileHost:
    """Export files on 127.0.0.1: ``/<job>.csv`` answers ``gone[job]`` if set, else a CSV."""

    def __init__(self, gone: dict[str, int]):
        self.gone = gone
        self.hits: list[str] = []
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                job = self.path.strip("/").removesuffix(".csv")
                host.hits.append(job)
                status = host.gone.get(job)
                body = (
                    b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
                    if status
                    else f"id,job\n1,{job}\n".encode()
                )
                self.send_response(status or 200)
                self.send_header("Content-Type", "application/xml" if status else "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def file_host():
    hosts: list[FileHost] = []

    def make(gone: dict[str, int]) -> FileHost:
        hosts.append(FileHost(gone))
        return hosts[-1]

    yield make
    for host in hosts:
        host.close()


def linked_jobs(host: FileHost) -> ScriptedJobs:
    """Jobs that finish with one file each, ``/<job id>.csv`` on ``host``."""
    return ScriptedJobs(
        lambda j, w: JobStatus(
            Phase.DONE, files=[RequestSpec("GET", f"{host.url}/{j}.csv", auth=False)]
        )
    )


def read_downloads(downloads) -> list[str]:
    try:
        return [Path(d.path).read_text() for d in downloads]
    finally:
        for d in downloads:
            d.discard()


@pytest.mark.parametrize("status", [403, 404, 410])
def test_a_storage_link_gone_before_its_download_is_exported_again(file_host, caplog, status):
    """A handed-out storage link that refuses (expired) gets a new job, not 8 vain retries."""
    host = file_host({"job-0": status})
    jobs = linked_jobs(host)
    window = Window(day(0), day(1))
    state: dict = {}
    with caplog.at_level("WARNING", logger="tap_event_exports.jobs"):
        downloads = runner(jobs).fetch(window, None, JobLedger(state))
    assert read_downloads(downloads) == ["id,job\n1,job-1\n"]
    assert host.hits == ["job-0", "job-1"]  # the dead link was asked once
    assert jobs.created == [window, window]
    assert state["pending_jobs"] == {JobLedger.key(window): {"job": "job-1"}}
    assert f"job job-0 files gone (HTTP {status} from result link on 127.0.0.1" in (caplog.text)


def test_an_api_file_gone_before_its_download_is_exported_again(file_host):
    """A 404 from a file on the API's own host (myTracker's parts) also means a new job."""
    host = file_host({"job-0": 404})
    jobs = linked_jobs(host)
    policy = HttpPolicy(NoDialect(), timeout=1, max_retries=1, base_url=host.url)
    run = JobRunner(jobs, policy, stream="s", poll_interval=0.001, max_poll_time=5)
    assert read_downloads(run.fetch(Window(day(0), day(1)), None, JobLedger({}))) == [
        "id,job\n1,job-1\n"
    ]
    assert host.hits == ["job-0", "job-1"]


def test_files_gone_again_and_again_fail_clearly_after_the_new_jobs(file_host):
    host = file_host({f"job-{n}": 404 for n in range(10)})
    jobs = linked_jobs(host)
    with pytest.raises(
        JobFailedError,
        match=r"scripted: s: window .*: job job-3 files gone again after 3 new jobs: HTTP 404",
    ):
        runner(jobs).fetch(Window(day(0), day(1)), None, JobLedger({}))
    assert host.hits == ["job-0", "job-1", "job-2", "job-3"]


def test_other_refusals_of_a_file_on_the_api_stay_errors(file_host):
    """A 400 from the vendor's own host is no expired file: no new job, the error as it came."""
    host = file_host({"job-0": 400})
    jobs = linked_jobs(host)
    policy = HttpPolicy(NoDialect(), timeout=1, max_retries=1, base_url=host.url)
    run = JobRunner(jobs, policy, stream="s", poll_interval=0.001, max_poll_time=5)
    with pytest.raises(VendorError, match="HTTP 400"):
        run.fetch(Window(day(0), day(1)), None, JobLedger({}))
    assert jobs.created == [Window(day(0), day(1))]


def test_new_jobs_for_any_reason_count_toward_one_max_recreate(file_host):
    """A failed job and then files gone twice: four jobs in all (max_recreate 3), not more."""
    host = file_host({f"job-{n}": 404 for n in range(1, 10)})

    def fate(job_id, window):
        if job_id == "job-0":
            return JobStatus(Phase.RETRY, message="Error occurred")
        return JobStatus(Phase.DONE, files=[RequestSpec("GET", f"{host.url}/{job_id}.csv")])

    jobs = ScriptedJobs(fate)
    with pytest.raises(JobFailedError, match=r"job job-3 files gone again after 3 new jobs"):
        runner(jobs).fetch(Window(day(0), day(1)), None, JobLedger({}))
    assert len(jobs.created) == 4
    assert host.hits == ["job-1", "job-2", "job-3"]
