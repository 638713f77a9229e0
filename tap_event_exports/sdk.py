"""The one place that touches singer-sdk's private members.

The tap owns its sync loop (records leave window by window, bookmarks move only when a window
is out), which singer-sdk does not offer as public hooks. Every private member used is named
here, marked ``@override`` where it is overridden, and checked against the installed SDK by
``tests/test_sdk_adapter.py``: an SDK release that renames or reshapes one fails that test
instead of failing a sync.
"""

from __future__ import annotations

import contextlib
import typing as t

from singer_sdk import Stream, Tap
from typing_extensions import override

if t.TYPE_CHECKING:
    from collections.abc import Generator, Iterator

    from singer_sdk.helpers import types

PRIVATE_STREAM_MEMBERS = (
    "_sync_records",
    "_write_record_message",
    "_write_state_message",
    "_write_schema_message",
    "_check_max_record_limit",
    "_stream_maps",
    "_tap",
)
PRIVATE_TAP_MEMBERS = ("_validate_config", "_handle_termination")
FINAL_TAP_MEMBERS = ("sync_all",)
"""Public but final in singer-sdk: wrapped (the SDK's own body still runs), never changed."""


class SdkStream(Stream):
    """A singer-sdk stream whose record loop is :meth:`sync_context` (see the module docstring)."""

    @override
    def _sync_records(
        self, context: types.Context | None = None, *, write_messages: bool = True
    ) -> Generator[dict, t.Any, t.Any]:
        """Hand the SDK's record loop to :meth:`sync_context`."""
        yield from self.sync_context(context, write_messages=write_messages)

    def sync_context(
        self, context: types.Context | None, *, write_messages: bool
    ) -> Iterator[dict]:
        """The stream's own record loop (BATCH manifests are yielded; records are written)."""
        raise NotImplementedError

    def write_record(self, record: dict) -> None:
        """A RECORD message through the SDK's stream maps."""
        self._write_record_message(record)

    def write_state(self) -> None:
        """A STATE message now, even if the SDK thinks nothing changed."""
        self.state_manager.is_flushed = False
        self._write_state_message()

    def write_schema(self) -> None:
        """The stream's SCHEMA message (after a column was added, say)."""
        self._write_schema_message()

    def check_record_limit(self, count: int) -> None:
        """Raise the SDK's own exception once a dry run (``--test``) has its records."""
        self._check_max_record_limit(count)

    @property
    def record_limit(self) -> int | None:
        """The dry run's record limit, or ``None`` in a normal run."""
        return self.ABORT_AT_RECORD_COUNT

    def reregister_schema(self) -> None:
        """Tell the SDK's mapper about a changed schema, and take its new stream maps."""
        mapper = self._tap.mapper
        if mapper is not None:
            mapper.register_raw_stream_schema(self.name, self.schema, self.primary_keys)
            self._stream_maps = mapper.stream_maps[self.name]


class SdkTap(Tap):
    """A singer-sdk tap with one-line config errors first and a clean stop on a signal."""

    @override  # type: ignore[misc]  # final in singer-sdk: wrapped, see FINAL_TAP_MEMBERS
    def sync_all(self) -> None:
        """Run the SDK's sync of every stream inside :meth:`sync_scope`."""
        with self.sync_scope():
            super().sync_all()

    def sync_scope(self) -> contextlib.AbstractContextManager[None]:
        """What the whole sync runs inside (a temp folder, a scheduler...)."""
        return contextlib.nullcontext()

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Run :meth:`check_config` before the SDK's JSON-schema validation."""
        if raise_errors:
            self.check_config()
        return super()._validate_config(raise_errors=raise_errors)

    def check_config(self) -> None:
        """Raise a one-line error for a bad config (the tap's own rules)."""

    @override
    def _handle_termination(self, signum: int, frame: t.Any) -> None:
        """Stop the run on SIGTERM/SIGINT through :meth:`on_termination`."""
        self.on_termination(signum)

    def on_termination(self, signum: int) -> None:
        """Stop workers and exit; the default is the SDK's own handling."""
        super()._handle_termination(signum, None)

    def write_state_now(self) -> None:
        """The tap's whole STATE, written at once (from the signal handler)."""
        self.state_writer.write_state(self.state)
