"""The tap's output is valid Singer, checked by singer-tools' singer-check-tap."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tap_event_exports.sandbox.__main__ import build
from tests.harness import tap_command

CHECKER = os.environ.get("SINGER_CHECK_TAP") or shutil.which("singer-check-tap")


@pytest.mark.skipif(not CHECKER, reason="singer-check-tap not installed (bash scripts/test does)")
def test_singer_check_tap_accepts_output_and_resume(tmp_path):
    servers, config = build(days=3, per_day=20)
    try:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        wrapper = tmp_path / "tap"
        # singer-check-tap reads the tap's stdout on a thread but takes its summary as soon as
        # the tap exits, without joining that thread: the wrapper closes its stdout (EOF for
        # the reader) and pauses before exiting, so the reader finishes first.
        wrapper.write_text(
            "#!/bin/sh\n"
            + " ".join(tap_command())
            + ' "$@"\nstatus=$?\nexec >/dev/null\nsleep 1\nexit $status\n'
        )
        wrapper.chmod(0o755)
        proc = subprocess.run(
            [CHECKER, "--tap", str(wrapper), "--config", str(path)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
            check=False,
        )
    finally:
        for server in servers:
            server.stop()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "The output is valid" in proc.stdout
    for stream in ("dfinery_events", "dfinery_user_profiles", "batch_push_campaign_events"):
        assert stream in proc.stdout
