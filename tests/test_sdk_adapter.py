"""The singer-sdk members the adapter relies on still exist, with the shapes it uses.

An SDK release that renames, removes or reshapes one of them fails here, before a sync does.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from singer_sdk import Stream, Tap

from tap_event_exports import sdk

PACKAGE = Path(sdk.__file__).parent

EXPECTED_PARAMETERS = {
    (Stream, "_sync_records"): ["self", "context", "write_messages"],
    (Stream, "_write_record_message"): ["self", "record"],
    (Stream, "_write_state_message"): ["self"],
    (Stream, "_write_schema_message"): ["self"],
    (Stream, "_check_max_record_limit"): ["self", "current_record_index"],
    (Tap, "_validate_config"): ["self", "raise_errors"],
    (Tap, "_handle_termination"): ["self", "signum", "frame"],
    (Tap, "sync_all"): ["self"],
}


@pytest.mark.parametrize(
    ("owner", "name"), list(EXPECTED_PARAMETERS), ids=[n for _, n in EXPECTED_PARAMETERS]
)
def test_sdk_methods_keep_their_signatures(owner, name):
    member = getattr(owner, name)
    assert list(inspect.signature(member).parameters) == EXPECTED_PARAMETERS[(owner, name)]


def test_every_private_member_the_adapter_names_is_checked_or_an_attribute():
    methods = {name for _, name in EXPECTED_PARAMETERS}
    attributes = {"_stream_maps", "_tap"}
    named = set(sdk.PRIVATE_STREAM_MEMBERS) | set(sdk.PRIVATE_TAP_MEMBERS)
    assert named | set(sdk.FINAL_TAP_MEMBERS) <= methods | attributes


def test_sdk_attributes_the_adapter_uses_exist_on_a_stream():
    from tap_event_exports.tap import TapEventExports
    from tests.conftest import dfinery_config

    class Fake:
        base_url, service_id, token = "http://127.0.0.1:9", "svc", "dfn-export-token"

    tap = TapEventExports(config=dfinery_config(Fake()), validate_config=True)
    stream = tap.streams["dfinery_events"]
    assert hasattr(stream, "_stream_maps")
    assert stream._tap is tap
    assert hasattr(stream.state_manager, "is_flushed")
    assert stream.ABORT_AT_RECORD_COUNT is None
    assert stream.stream_maps  # the property the adapter refreshes through _stream_maps
    assert tap.state_writer is not None


def test_no_module_but_the_adapter_touches_sdk_private_members():
    names = (
        set(sdk.PRIVATE_STREAM_MEMBERS)
        | set(sdk.PRIVATE_TAP_MEMBERS)
        | {
            "_state_writer",
            "_abort_sync",
            "_reset_state_progress_markers",
        }
    )
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "sdk.py" or "sandbox" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in names:
                offenders.append(f"{path.name}:{node.lineno} {node.attr}")
            if isinstance(node, ast.FunctionDef) and node.name in names:
                offenders.append(f"{path.name}:{node.lineno} def {node.name}")
    assert offenders == []
