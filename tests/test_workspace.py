"""The run's export folder: locked while the run lives, removed by the next run once it died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tap_event_exports.engine import workspace
from tap_event_exports.engine.contract import VendorDialect
from tap_event_exports.engine.download import download, download_all
from tap_event_exports.engine.errors import VendorError
from tap_event_exports.engine.http import HttpPolicy, RequestSpec
from tap_event_exports.engine.workspace import RUN_PREFIX, Workspace, sweep
from tap_event_exports.sandbox.server import FakeResponse, FakeServer

HOLDER = """
import sys, time
from tap_event_exports.engine.workspace import Workspace
ws = Workspace(sys.argv[1])
open(ws.path + "/tap-event-exports-1.csv", "w").write("a,b\\n" * 1000)
print(ws.path, flush=True)
time.sleep(60)
"""


def start_holder(root):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root)], stdout=subprocess.PIPE, text=True
    )
    folder = proc.stdout.readline().strip()
    assert folder.startswith(str(root))
    return proc, folder


def test_a_live_runs_folder_is_kept_and_a_killed_runs_folder_removed(tmp_path):
    alive, alive_folder = start_holder(tmp_path)
    dead, dead_folder = start_holder(tmp_path)
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait(10)
        swept = sweep(str(tmp_path))
        assert (swept.folders, swept.files, swept.size) == (1, 1, 4000)
        assert not os.path.exists(dead_folder)
        assert os.path.exists(alive_folder + "/tap-event-exports-1.csv")
    finally:
        alive.kill()
        alive.wait(10)
    assert sweep(str(tmp_path)).folders == 1
    assert list(tmp_path.iterdir()) == []


def test_loose_files_of_earlier_versions_go_once_old_and_other_files_stay(tmp_path):
    old = tmp_path / "tap-event-exports-abc.csv"
    young = tmp_path / "tap-event-exports-def.csv"
    other = tmp_path / "someone-elses.csv"
    for path in (old, young, other):
        path.write_text("x")
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    os.utime(other, (hours_ago, hours_ago))
    assert sweep(str(tmp_path)).files == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([young.name, other.name])


def test_a_folder_being_created_is_not_taken_for_a_dead_one(tmp_path):
    fresh = tmp_path / f"{RUN_PREFIX}fresh"
    fresh.mkdir()  # no lock file yet: a run may be creating it right now
    assert sweep(str(tmp_path)).folders == 0
    stale = time.time() - 120
    os.utime(fresh, (stale, stale))
    assert sweep(str(tmp_path)).folders == 1


class Plain(VendorDialect):
    name = "plain"


class OneFile(FakeServer):
    def handle(self, request):
        return FakeResponse(200, b"a,b\n1,2\n")


def test_downloads_go_to_the_run_folder_which_is_removed_at_the_end(tmp_path):
    with OneFile() as server, Workspace(str(tmp_path / "exports")) as run:
        policy = HttpPolicy(Plain(), timeout=2, max_retries=1, base_url=server.base_url)
        got = download(policy, RequestSpec("GET", server.base_url + "/f"), what="f")
        assert os.path.dirname(got.path) == run.path
        assert workspace.current_directory() == run.path
    assert not os.path.exists(run.path)
    assert workspace.current_directory() is None
    assert list((tmp_path / "exports").iterdir()) == []


class Parts(FakeServer):
    """Parts ``/0`` to ``/5``; ``/3`` is gone (404), after the others had time to arrive."""

    def handle(self, request):
        if request.path == "/3":
            time.sleep(0.2)
            return FakeResponse(404, b"gone")
        return FakeResponse(200, f"part,{request.path}\n".encode())


def test_an_export_whose_file_fails_keeps_none_of_its_files(tmp_path):
    with Parts() as server, Workspace(str(tmp_path / "exports")) as run:
        policy = HttpPolicy(Plain(), timeout=2, max_retries=1, base_url=server.base_url)
        specs = [RequestSpec("GET", f"{server.base_url}/{n}") for n in range(6)]
        with pytest.raises(VendorError, match="404"):
            download_all(policy, specs, what="job 7")
        assert exports(run.path) == []
        del specs[3]
        got = download_all(policy, specs, what="job 7")
        assert [open(d.path).read() for d in got] == [f"part,/{n}\n" for n in (0, 1, 2, 4, 5)]
        assert exports(run.path) == sorted(os.path.basename(d.path) for d in got)


def exports(folder):
    """The export files in a run's folder (its lock file aside)."""
    return sorted(name for name in os.listdir(folder) if name != ".lock")


@pytest.mark.parametrize("setting", [None, "exports"])
def test_temp_dir_setting_chooses_the_folder(tmp_path, setting, monkeypatch):
    from tests.conftest import dfinery_config
    from tests.harness import run_tap

    monkeypatch.setenv("TMPDIR", str(tmp_path / "system"))
    (tmp_path / "system").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    seen = []
    original = Workspace.__init__

    def spy(self, root=None):
        original(self, root)
        seen.append(self.path)

    monkeypatch.setattr(Workspace, "__init__", spy)
    from tap_event_exports.sandbox.dfinery import DfineryFake, generate_events
    from tests.conftest import seoul_today

    with DfineryFake(events=generate_events(start=seoul_today(), days=1, per_day=3)) as fake:
        config = dfinery_config(fake)
        if setting:
            config["temp_dir"] = str(tmp_path / setting)
        result = run_tap(config)
    assert result.records("dfinery_events")
    expected_root = tmp_path / (setting or "system")
    assert len(seen) == 1
    assert os.path.dirname(seen[0]) == str(expected_root)
    assert list(expected_root.iterdir()) == []
