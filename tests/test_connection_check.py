"""``--test`` checks every provider's credentials and objects in seconds, one line each."""

from __future__ import annotations

import time

from tests.conftest import batch_config, dfinery_config, keen_config, mytracker_config
from tests.harness import run_cli


def lines(run):
    return [line for line in run.stderr.splitlines() if line.startswith("tap-event-exports: ")]


def test_every_provider_passes_against_the_sandbox(dfinery, keen, mytracker, batch):
    config = (
        dfinery_config(dfinery, user_profiles={})
        | {k: v for k, v in keen_config(keen).items() if k == "keen"}
        | {k: v for k, v in mytracker_config(mytracker).items() if k == "mytracker"}
        | {
            k: v
            for k, v in batch_config(
                batch, reachability=True, userbase=True, push_campaigns=["CAMPAIGN_A"]
            ).items()
            if k == "batch"
        }
    )
    started = time.monotonic()
    run = run_cli(["--test"], config=config)
    assert time.monotonic() - started < 20
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    found = {line.split(":")[1].strip(): line for line in lines(run)}
    assert set(found) == {"dfinery", "keen", "mytracker", "batch"}
    assert all(": ok: credentials accepted; checked " in line for line in found.values())
    assert "dfinery_events" in found["dfinery"]
    assert "keen_pageviews" in found["keen"]
    assert "batch_push_campaign_events[campaign_token=CAMPAIGN_A]" in found["batch"]
    assert "batch_reachability_events" in found["batch"]
    assert run.stdout == "", "no Singer messages in a connection check"
    # probes are small: no job was polled to its end, myTracker's probe exports were canceled
    assert not batch.requests_to("/storage/")
    assert mytracker.exports
    assert all(e.canceled for e in mytracker.exports.values())


def test_a_wrong_token_fails_in_one_line_naming_the_vendor(dfinery, batch):
    config = dfinery_config(dfinery) | {
        k: v for k, v in batch_config(batch, reachability=True).items() if k == "batch"
    }
    config["dfinery"]["api_token"] = "tok-SECRET-123"
    run = run_cli(["--test"], config=config)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    found = lines(run)
    assert any(
        line.startswith("tap-event-exports: dfinery: FAILED: ") and "unauthorized_token" in line
        for line in found
    ), run.stderr[-2000:]
    assert any(line.startswith("tap-event-exports: batch: ok: ") for line in found)
    assert len(dfinery.requests_to("/export/event")) == 1, "one refused request, no retries"


def test_an_unknown_campaign_fails_with_batchs_message(batch):
    config = batch_config(batch, push_campaigns=["CAMPAIGN_A", "NO_SUCH_CAMPAIGN"])
    run = run_cli(["--test"], config=config)
    assert run.returncode == 1
    (line,) = lines(run)
    assert line.startswith("tap-event-exports: batch: FAILED: ")
    assert "ROUTE_NOT_FOUND" in line or "404" in line
