"""What a vendor module provides to the tap."""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from tap_event_exports.settings import Setting
    from tap_event_exports.streams import ExportSpec, Runtime


class Provider(t.Protocol):
    """A vendor: its settings block and the streams that block enables."""

    key: str
    """The config block that enables the provider (``dfinery``, ``keen``...)."""
    title: str
    description: str
    settings: tuple[Setting, ...]

    def build(self, block: dict[str, t.Any], runtime: Runtime) -> list[ExportSpec]:
        """Declare the streams of a validated settings block."""
        ...
