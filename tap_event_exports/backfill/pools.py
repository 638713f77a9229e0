"""One orchestrator pool per vendor credential, sized by the vendor's documented concurrency.

Shards run under an orchestrator each make one export at a time, so a pool of a credential's
size keeps every shard run together within what the vendor allows that credential (Dfinery:
5 exports at once per service; the others: the provider block's ``max_concurrent_jobs``).
"""

from __future__ import annotations

import hashlib
import typing as t
from dataclasses import dataclass

from tap_event_exports.shards import export_streams


@dataclass(frozen=True)
class Pool:
    """The pool every shard of one credential runs in."""

    name: str
    """``tap-event-exports-<provider>-<8 hex digits>``: the digits hash the credential's
    group (``dfinery:<service_id>``, ``batch:<api key>``…), so no secret is shown."""
    size: int
    provider: str


def pool_name(provider: str, group: str) -> str:
    """The pool name of a credential group (a hash: some groups hold an API key)."""
    digest = hashlib.sha256(group.encode()).hexdigest()[:8]
    return f"tap-event-exports-{provider}-{digest}"


def credential_pools(config: dict[str, t.Any]) -> dict[str, Pool]:
    """Each windowed provider of ``config`` and the pool its shards run in."""
    pools: dict[str, Pool] = {}
    for stream in export_streams(config):
        spec = stream.spec
        if spec.windowing is None or spec.vendor in pools:
            continue
        pools[spec.vendor] = Pool(
            pool_name(spec.vendor, spec.limits.group), spec.limits.max_jobs, spec.vendor
        )
    return pools
