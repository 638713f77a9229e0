"""The tap command's startup: the imports are kept out of the garbage collector's work."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = (
    "import gc, json, sys\n"
    "from tap_event_exports import __main__ as m\n"
    "keep = m._keep_imports_out_of_collections\n"
    "def observed():\n"
    "    full = gc.get_stats()[2]['collections']\n"
    "    keep()\n"
    "    seen = {'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count(), 'full': full}\n"
    "    print(json.dumps(seen))\n"
    "    sys.exit(0)\n"
    "m._keep_imports_out_of_collections = observed\n"
    "m._discover_without_sdk = lambda: None\n"
    "m.main()\n"
)


def test_imports_are_frozen_without_a_full_collection_and_collection_goes_on():
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "--config", "x.json"],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(done.stdout)
    assert seen["enabled"] is True, "collection is on again once the imports are done"
    assert seen["full"] == 0, "no full collection walked the imports"
    assert seen["frozen"] > 50_000, "the imports' objects are out of the collector's sight"
