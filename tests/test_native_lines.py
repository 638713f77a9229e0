"""The compiled JSON-lines encoder writes exactly what msgspec writes for the same values."""

from __future__ import annotations

import ctypes
import datetime as dt
import io
import re
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_event_exports import emit
from tap_event_exports.engine import native_lines
from tap_event_exports.engine.typed_columns import values_of
from tests.conftest import batch_config, dfinery_config, keen_config, mytracker_config
from tests.harness import run_tap

CONFIGS = {
    "dfinery": dfinery_config,
    "mytracker": mytracker_config,
    "keen": keen_config,
    "batch": lambda fake: batch_config(
        fake,
        push_campaigns=["CAMPAIGN_A"],
        transactional_groups=["welcome"],
        in_app_campaigns=["INAPP_1"],
        reachability=True,
        userbase=True,
    ),
}

needs_library = pytest.mark.skipif(
    not native_lines.available(), reason="the compiled encoder was not built"
)

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
INT64 = st.integers(-(2**63), 2**63 - 1)
NAMES = st.one_of(TEXT, st.text('ab_"é', min_size=26, max_size=34))
"""Names of every length, those whose encoded keys are about the library's fixed key move
(32 bytes) among them."""
PYTHON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    INT64,
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    TEXT,
    st.lists(TEXT, max_size=3),
    st.dictionaries(TEXT, TEXT, max_size=2),
)


@st.composite
def blocks(draw):
    """Columns of every kind the readers hand over, with names, as Arrow and as Python values."""
    rows = draw(st.integers(0, 40))
    names = draw(st.lists(NAMES, min_size=1, max_size=6, unique=True))
    arrow, python = [], []
    for _ in names:
        kind = draw(st.sampled_from(["string", "large_string", "int64", "bool", "list", "float"]))
        element = {
            "string": TEXT,
            "large_string": TEXT,
            "int64": INT64,
            "bool": st.booleans(),
            "list": PYTHON_VALUES,
            "float": st.floats(allow_nan=False, allow_infinity=False),
        }[kind]
        values = draw(st.lists(st.one_of(st.none(), element), min_size=rows, max_size=rows))
        if kind == "list":
            arrow.append(values)
        else:
            kind = {"float": "float64", "bool": "bool_"}.get(kind, kind)
            arrow.append(pa.array(values, getattr(pa, kind)()))
        python.append(values)
    start = draw(st.integers(0, rows))
    stop = draw(st.integers(start, rows))
    return names, [c[start:stop] for c in arrow], [c[start:stop] for c in python]


def lines_of(names, columns, writer_type=emit.LineWriter):
    """What a writer writes for one block: Python lists go to msgspec, Arrow arrays to C."""
    out = io.BytesIO()
    writer = writer_type(out)
    writer.columns(names)
    writer.write_columns(columns)
    writer.flush()
    return out.getvalue()


@needs_library
@settings(max_examples=300)
@given(blocks())
def test_jsonl_lines_equal_msgspecs(block):
    names, arrow, python = block
    expected = lines_of(names, python)
    assert lines_of(names, arrow) == expected


@needs_library
@settings(max_examples=150)
@given(blocks(), TEXT)
def test_record_messages_equal_msgspecs(block, stream):
    names, arrow, python = block
    stamp = dt.datetime(2026, 12, 6, 14, 0, 1, 234567, tzinfo=dt.timezone.utc)

    def writer(out):
        record_writer = emit.FastRecordWriter(stream, out)
        record_writer.stamp(stamp)
        return record_writer

    expected = lines_of(names, python, writer)
    assert lines_of(names, arrow, writer) == expected
    if python[0]:
        assert expected.startswith(b'{"type":"RECORD","stream":')


@needs_library
def test_the_encoder_is_what_encodes_arrow_columns(monkeypatch):
    """Arrow columns go to the library, not to a Python fallback (the path can fail)."""
    calls = []
    real = native_lines.EncodedBlock.fill

    def counted(self, *args):
        calls.append(args)
        return real(self, *args)

    monkeypatch.setattr(native_lines.EncodedBlock, "fill", counted)
    lines = lines_of(["a", "b"], [pa.array(["x", None]), pa.array([1, 2])])
    assert lines == b'{"a":"x","b":1}\n{"a":null,"b":2}\n'
    assert calls


@needs_library
def test_rows_larger_than_the_buffer_and_blocks_across_buffers_keep_their_order():
    big = 'é\n"\\' * (emit.FLUSH_AT // 2)  # escaped, about 3.5 times the buffer
    names = ["id", "text"]
    ids = list(range(5000))
    texts = [big if index in (0, 2500, 4999) else f"row {index}" for index in ids]
    arrow = [pa.array(ids), pa.array(texts)]
    out = io.BytesIO()
    writer = emit.LineWriter(out)
    writer.columns(names)
    writer.write({"before": 1})
    writer.write_columns(arrow)
    writer.write({"between": 2})
    writer.write_columns([pa.array(ids[:3]), [texts[0], "x", None]])
    writer.flush()
    expected = lines_of(["before"], [[1]])
    expected += lines_of(names, [ids, texts])
    expected += lines_of(["between"], [[2]])
    expected += lines_of(names, [ids[:3], [texts[0], "x", None]])
    assert out.getvalue() == expected


@needs_library
def test_columns_that_do_not_match_the_names_or_the_rows_are_refused():
    encoder = native_lines.encoder_for(["a", "b"])
    with pytest.raises(ValueError, match=r"a block of 1 rows for 2 names has columns of \[1\]"):
        encoder.block([pa.array([1])], 1)
    with pytest.raises(ValueError, match=r"columns of \[2, 1\]"):
        encoder.block([pa.array([1, 2]), pa.array([1])], 2)
    with pytest.raises(ValueError, match=r"columns of \[2, 3\]"):
        encoder.block([pa.array([1, 2]), [1, 2, 3]], 2)


@needs_library
def test_the_library_stops_where_a_column_of_lines_runs_out():
    encoder = native_lines.encoder_for(["a"])
    block = encoder.block([[1, 2]], 2)
    buffer = ctypes.create_string_buffer(64)
    assert block.fill(0, ctypes.addressof(buffer), 64) == (2, 16)
    assert buffer.raw[:16] == b'{"a":1}\n{"a":2}\n'
    block = encoder.block([[1, 2]], 2)
    room = 8 + native_lines.KEY_COPY  # whole rows only, each with room for a key's move
    assert block.fill(0, ctypes.addressof(buffer), room - 1) == (0, 0)
    assert block.fill(0, ctypes.addressof(buffer), room + 2) == (1, 8)
    assert block.fill(1, ctypes.addressof(buffer), room + 2) == (2, 8)
    block = encoder.block([[1, 2]], 2)
    with pytest.raises(ValueError, match="fewer values than the block has rows"):
        block.fill(0, ctypes.addressof(buffer), 64, rows=3)  # more rows than it was given


def test_without_the_library_arrow_columns_are_encoded_by_msgspec(monkeypatch):
    monkeypatch.setattr(native_lines, "_ENCODE", None)
    assert native_lines.encoder_for(["a"]) is None
    arrow = [pa.array(["x", None]), pa.array([10**15, None]), [Decimal("1.50"), [1]]]
    lines = lines_of(["a", "b", "c"], arrow)
    assert lines == b'{"a":"x","b":1000000000000000,"c":1.50}\n{"a":null,"b":null,"c":[1]}\n'
    assert values_of(arrow[0]) == ["x", None]


def records(lines: list[str]) -> list[str]:
    """A run's RECORD lines, without their extraction time (job ids in STATE differ by run)."""
    return [
        re.sub(r'"time_extracted":"[^"]*"', "", line)
        for line in lines
        if line.startswith('{"type":"RECORD"')
    ]


@needs_library
@pytest.mark.parametrize("vendor", ["dfinery", "mytracker", "keen", "batch"])
def test_every_vendors_records_are_the_same_with_and_without_the_encoder(
    vendor, request, monkeypatch
):
    fake = request.getfixturevalue(vendor)
    config = CONFIGS[vendor](fake)
    config["end_date"] = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    native = run_tap(config)
    with monkeypatch.context() as patch:
        patch.setattr(native_lines, "_ENCODE", None)
        python = run_tap(config)
    assert len(records(native.lines)) > 10
    assert records(native.lines) == records(python.lines)
