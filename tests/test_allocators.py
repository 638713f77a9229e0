"""The tap command sets Arrow's allocators before pyarrow loads, and a user's settings win.

Peak memory depends on them (bench/README.md): without ``ARROW_DEFAULT_MEMORY_POOL`` the parts of
Arrow's C++ that do not take pyarrow's pool (the parquet writer's encoders) use mimalloc, which
kept about 20 MiB of freed pages in a 1M-row parquet run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = (
    "import json, os, sys\n"
    "from tap_event_exports import __main__ as m\n"
    "m._limit_malloc_arenas()\n"
    "os.environ.setdefault('JE_ARROW_MALLOC_CONF', m.ARROW_ALLOCATOR)\n"
    "import pyarrow as pa\n"
    "print(json.dumps({'pool': os.environ.get('ARROW_DEFAULT_MEMORY_POOL'),"
    " 'backend': pa.default_memory_pool().backend_name}))\n"
)


def probe(env: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=clean | env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="set on Linux only")
def test_arrow_uses_jemalloc_everywhere():
    assert probe({}) == {"pool": "jemalloc", "backend": "jemalloc"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="set on Linux only")
def test_a_users_pool_setting_wins():
    assert probe({"ARROW_DEFAULT_MEMORY_POOL": "system"}) == {"pool": "system", "backend": "system"}
