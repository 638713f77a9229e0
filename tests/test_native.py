"""The compiled helpers: built where a compiler is, refused when stale, equal to Python's work."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from unittest import mock

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tap_event_exports.engine import csv_blocks, native, native_csv


def test_the_library_is_built_where_a_compiler_is():
    """The package's build compiles the helpers (CI has a compiler, so this must hold there)."""
    if os.environ.get("TAP_EVENT_EXPORTS_NATIVE") == "0":
        pytest.skip("the compiled helpers are turned off")
    assert native.PATH.exists(), "pip install -e . compiles tap_event_exports/engine/*.c"
    assert native.LIBRARY is not None
    assert csv_blocks._STRAY_QUOTE is not None
    assert native_csv.available()


@pytest.fixture
def turned_on(monkeypatch):
    """Loading is tested even where the suite runs with the helpers turned off."""
    monkeypatch.delenv("TAP_EVENT_EXPORTS_NATIVE", raising=False)


def build(folder, digest):
    compiler = shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler")
    for source in sorted(native.FOLDER.glob("*.c")):
        shutil.copy(source, folder / source.name)
    library = folder / "libtapnative.so"
    flags = ["-std=c99", "-shared", "-fPIC", f'-DTAP_NATIVE_SOURCE="{digest}"']
    sources = sorted(map(str, folder.glob("*.c")))
    subprocess.run([compiler, *flags, "-o", str(library), *sources], check=True)
    return library


@pytest.mark.usefixtures("turned_on")
def test_a_library_built_from_its_sources_is_loaded(tmp_path):
    digest = native.sources_digest(sorted(native.FOLDER.glob("*.c")))
    library = build(tmp_path, digest)
    assert native.load(library, tmp_path) is not None


@pytest.mark.usefixtures("turned_on")
def test_a_library_built_from_other_sources_is_refused(tmp_path, caplog):
    library = build(tmp_path, "0" * 64)
    assert native.load(library, tmp_path) is None
    assert "built from other sources" in caplog.text
    # an installed wheel without the sources beside it trusts its library
    assert native.load(library, tmp_path / "no sources here") is not None
    (tmp_path / "csv_scan.c").write_text("/* changed */\n", encoding="utf-8")
    assert native.load(library, tmp_path) is None


@pytest.mark.usefixtures("turned_on")
def test_a_file_that_is_no_library_is_refused(tmp_path, caplog):
    library = tmp_path / "libtapnative.so"
    library.write_bytes(b"not a library")
    assert native.load(library, tmp_path) is None
    assert "cannot be loaded" in caplog.text


def test_the_helpers_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("TAP_EVENT_EXPORTS_NATIVE", "0")
    assert native.load() is None


BYTES = st.binary(max_size=40) | st.lists(
    st.sampled_from([b'"', b",", b";", b"\r", b"\n", b"a", b"\xc3\xa9", b" "]), max_size=30
).map(b"".join)


@pytest.mark.skipif(csv_blocks._STRAY_QUOTE is None, reason="the compiled helpers were not built")
@settings(max_examples=2000)
@given(BYTES, st.sampled_from([",", ";", "\t", "|"]))
@example(b'a"b', ",")
@example(b'"a"', ",")
@example(b'a""b', ",")
@example(b'x,"a"b,y', ",")
@example(b'\xe9"\xe9', ",")
def test_the_compiled_stray_quote_scan_equals_re2(block, delimiter):
    assert csv_blocks.stray_quote(block, delimiter) == csv_blocks.stray_quote_by_regex(
        block, delimiter
    )


def python_row_end(block: bytes) -> int:
    """The last newline an even number of quotes precede, by the definition (plus one)."""
    ends = [i + 1 for i, byte in enumerate(block) if byte == 10 and block[:i].count(b'"') % 2 == 0]
    return ends[-1] if ends else 0


@settings(max_examples=1000)
@given(st.lists(st.sampled_from([b'"', b"\n", b"\r", b"a", b",", b'""', b"\xe9"]), max_size=60))
@example([b'a,"b\nc"\n', b'"d'])
@example([b'"', b"\n"])
def test_row_ends_compiled_and_python_equal_the_definition(pieces):
    block = b"".join(pieces)
    expected = python_row_end(block)
    assert csv_blocks.row_end(memoryview(bytearray(block))) == expected
    with mock.patch.object(csv_blocks, "_ROW_END", None):
        assert csv_blocks.row_end(memoryview(bytearray(block))) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b'"', b"\n", b"x", b",", b'"q\nq"', b"\xe9\xe9"]), max_size=80),
    st.sampled_from([1, 2, 3, 5, 16]),
)
def test_whole_rows_hand_out_every_byte_in_blocks_that_end_at_row_ends(pieces, size):
    data = b"".join(pieces)
    blocks = [bytes(block) for block in csv_blocks.whole_rows(io.BytesIO(data), size)]
    assert b"".join(blocks) == data
    for block in blocks[:-1]:  # the last one may be a row without its newline
        assert python_row_end(block) == len(block)


@pytest.mark.skipif(
    csv_blocks._NULL_SPELLINGS is None, reason="the compiled helpers were not built"
)
@settings(max_examples=500)
@given(
    st.lists(
        st.none() | st.sampled_from(["", "null", "NULL", "nul", "null ", "x", "é"]), max_size=40
    ),
    st.integers(0, 5),
)
def test_the_null_spellings_become_nulls_as_arrows_kernels_make_them(values, start):
    column = pa.array(values, pa.string())
    for part in (column, column.slice(min(start, len(values)))):
        by_kernels = pc.if_else(pc.is_in(part, csv_blocks.NULL_SPELLINGS), csv_blocks.NO_TEXT, part)
        compiled = csv_blocks.with_nulls(part)
        compiled.validate(full=True)
        assert compiled.to_pylist() == by_kernels.to_pylist()
        assert compiled.null_count == by_kernels.null_count
