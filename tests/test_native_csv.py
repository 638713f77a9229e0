"""The compiled CSV block parser: pyarrow's batch on every block it accepts, the common ones all.

pyarrow's reader, with the options the columnar reader gives it, is the reference: wherever
the compiled parser answers, its columns equal pyarrow's value for value and null for null
(and where pyarrow refuses a block, the compiled parser refuses it too).
"""

from __future__ import annotations

import ctypes

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tap_event_exports.engine import native_csv
from tap_event_exports.engine.columnar import ColumnarCsv
from tap_event_exports.engine.csv_blocks import NULL_SPELLINGS

pytestmark = pytest.mark.skipif(
    not native_csv.available(), reason="the compiled helpers were not built"
)


def arrow_batch(block: bytes, header: list[str], delimiter: str, *, nulls: bool):
    """pyarrow's reading of a block, as ``ColumnarCsv._blocks`` asks for it."""
    table = pcsv.read_csv(
        pa.py_buffer(block),
        read_options=pcsv.ReadOptions(
            column_names=header, block_size=len(block) + 1, use_threads=False
        ),
        parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()),
            null_values=NULL_SPELLINGS.to_pylist(),
            strings_can_be_null=nulls,
            quoted_strings_can_be_null=nulls,
        ),
    )
    return table.combine_chunks().to_batches()[0] if table.num_rows else None


def check(block: bytes, header: list[str], delimiter: str = ",", *, accepted: bool = False):
    """The compiled parser agrees with pyarrow on ``block`` (and accepts it if ``accepted``)."""
    parser = native_csv.BlockParser(header, delimiter)
    for nulls in (True, False):
        ours = parser.parse(bytearray(block), nulls=nulls)  # a buffer, as whole_rows gives
        try:
            theirs = arrow_batch(block, header, delimiter, nulls=nulls)
        except pa.ArrowInvalid:
            assert ours is None, block
            continue
        if accepted:
            assert ours is not None, block
        if ours is None:
            continue
        ours.validate(full=True)
        if theirs is None:
            assert ours.num_rows == 0
        else:
            assert ours.schema == theirs.schema
            assert ours.to_pydict() == theirs.to_pydict()
            assert ours.equals(theirs)


def written(
    rows: list[list[str]], delimiter: str, line_end: str, *, quote_all: bool = False
) -> bytes:
    """RFC 4180 CSV: a field is quoted when it holds the delimiter, a quote or a line break.

    A row of one empty field is written ``""``: unquoted it would be an empty line.
    """

    def field(value: str) -> str:
        if quote_all or any(c in value for c in (delimiter, '"', "\r", "\n")):
            return '"' + value.replace('"', '""') + '"'
        return value

    return "".join(
        ('""' if row == [""] else delimiter.join(map(field, row))) + line_end for row in rows
    ).encode()


VALUES = st.one_of(
    st.sampled_from(["", "null", "NULL", "x", '"', '""', "a,b", "a;b", "l1\nl2", "r\r\nn", " "]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(
    columns=st.integers(1, 5),
    data=st.data(),
    form=st.tuples(
        st.sampled_from([",", ";"]), st.sampled_from(["\n", "\r\n"]), st.booleans(), st.booleans()
    ),
)
def test_any_rfc4180_block_is_parsed_as_pyarrow_parses_it(columns, data, form):
    delimiter, line_end, last_line_end, quote_all = form
    rows = data.draw(st.lists(st.lists(VALUES, min_size=columns, max_size=columns), max_size=30))
    block = written(rows, delimiter, line_end, quote_all=quote_all)
    if not last_line_end and block.endswith(line_end.encode()):
        block = block[: -len(line_end)]
    check(block, [f"c{i}" for i in range(columns)], delimiter, accepted=bool(rows))


@settings(max_examples=500, deadline=None)
@given(
    block=st.binary(max_size=80).map(lambda raw: raw.replace(b"\x00", b"")),
    pieces=st.lists(
        st.sampled_from([b",", b'"', b'""', b"\n", b"\r", b"\r\n", b"null", b"\xc3\xa9", b"a"]),
        max_size=40,
    ),
    columns=st.integers(1, 4),
)
@example(block=b"", pieces=[b'"', b"a", b'"', b"b", b"\n"], columns=1)  # text after a quote
@example(block=b"", pieces=[b"a", b"\r", b"b", b"\n"], columns=1)  # a lone carriage return
@example(block=b"\xff", pieces=[b"\n"], columns=1)  # not UTF-8
@example(block=b"\xed\xa0\x80", pieces=[b"\n"], columns=1)  # a surrogate
@example(block=b"\xe0\x80\xaf", pieces=[b"\n"], columns=1)  # an overlong form
@example(block=b"\xf4\x90\x80\x80", pieces=[b"\n"], columns=1)  # above U+10FFFF
@example(block=b"\xc3", pieces=[], columns=1)  # cut at the end
@example(block=b"", pieces=[b"a", b",", b"b", b"\n", b"c", b"\n"], columns=2)  # a short row
@example(block=b"", pieces=[b'"', b"a", b"\n"], columns=1)  # an open quote
def test_any_bytes_are_refused_or_parsed_as_pyarrow_parses_them(block, pieces, columns):
    check(block + b"".join(pieces), [f"c{i}" for i in range(columns)])


def test_blocks_larger_than_the_field_table_grow_it(monkeypatch):
    monkeypatch.setattr(native_csv, "FIRST_CAPACITY", 4)
    block = written([[str(i), "null" if i % 3 else "", f"v{i}"] for i in range(1000)], ",", "\n")
    parser = native_csv.BlockParser(["a", "b", "c"], ",")
    got = parser.parse(block, nulls=True)
    assert got is not None
    assert got.column(0).to_pylist() == [str(i) for i in range(1000)]
    assert got.column(1).null_count == 1000
    assert got.column(2).to_pylist()[-1] == "v999"
    again = parser.parse(block[: block.index(b"v3\n") + 3], nulls=False)  # the table is kept
    assert again is not None
    assert again.to_pydict() == {
        "a": ["0", "1", "2", "3"],
        "b": ["", "null", "null", ""],
        "c": [
            "v0",
            "v1",
            "v2",
            "v3",
        ],
    }


def test_values_are_exact_with_quotes_nulls_and_line_breaks():
    block = b'1,"say ""hi"",\r\nthen go",null\r\n\r\n2,"",""\n3,"null",\xed\x95\x9c\n'
    parser = native_csv.BlockParser(["n", "text", "other"], ",")
    got = parser.parse(block, nulls=True)
    assert got is not None
    assert got.to_pydict() == {
        "n": ["1", "2", "3"],
        "text": ['say "hi",\r\nthen go', None, None],
        "other": [None, None, "한"],
    }
    as_written = parser.parse(block, nulls=False)
    assert as_written is not None
    assert as_written.to_pydict() == {
        "n": ["1", "2", "3"],
        "text": ['say "hi",\r\nthen go', "", "null"],
        "other": ["null", "", "한"],
    }


def test_the_columnar_reader_gives_the_same_batches_either_way(tmp_path, monkeypatch):
    rows = [["id", "name", "when"]] + [
        [str(i), f'n "{i}"' if i % 2 else "", "2025-01-06 10:38:10" if i % 5 else "null"]
        for i in range(5000)
    ]
    path = tmp_path / "export.csv"
    path.write_bytes(written(rows, ",", "\r\n"))
    types = {"id": "integer", "name": "string", "when": "date-time"}
    reader = ColumnarCsv(str(path), rows[0], delimiter=",", timezone="Asia/Seoul", lists="json")
    compiled = list(reader.batches(types))
    monkeypatch.setattr(native_csv, "_PARSE", None)
    monkeypatch.setattr(native_csv, "available", lambda: False)
    by_pyarrow = list(reader.batches(types))
    assert [batch.num_rows for batch in compiled] == [batch.num_rows for batch in by_pyarrow]
    assert pa.Table.from_batches(compiled).equals(pa.Table.from_batches(by_pyarrow))
    assert sum(batch.num_rows for batch in compiled) == 5000


def test_a_delimiter_beyond_ascii_leaves_every_block_to_pyarrow():
    assert native_csv.BlockParser(["a", "b"], "§").parse(b"x\xc2\xa7y\n", nulls=True) is None
    assert native_csv.BlockParser(["a", "b"], ";").parse(b"x;y\n", nulls=True) is not None


def test_a_wide_file_keeps_a_field_table_near_its_block_size():
    columns = 3000
    block = b"".join(
        b",".join(b"%d" % (row * i) for i in range(columns)) + b"\n" for row in range(40)
    )
    parser = native_csv.BlockParser([f"c{i}" for i in range(columns)], ",")
    got = parser.parse(block, nulls=True)
    assert got is not None
    assert got.num_rows == 40
    assert got.column(2999).to_pylist()[-1] == str(39 * 2999)
    assert parser._spans is not None
    assert ctypes.sizeof(parser._spans) <= 8 * (len(block) + columns)


def test_a_small_first_block_does_not_hold_back_the_next():
    parser = native_csv.BlockParser(["a", "b"], ",")
    assert parser.parse(b"1,2\n", nulls=True) is not None
    small = parser._capacity
    block = b"".join(b"%d,x\n" % i for i in range(10000))
    got = parser.parse(block, nulls=True)
    assert got is not None
    assert got.column(0).to_pylist() == [str(i) for i in range(10000)]
    assert small < native_csv.FIRST_CAPACITY <= parser._capacity
