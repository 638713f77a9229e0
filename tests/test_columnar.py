"""The columnar reader (parquet BATCH path) gives exactly the values of the record reader."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from tap_event_exports.engine import columnar, csv_blocks
from tap_event_exports.engine.columnar import ColumnarCsv, NotColumnar, rows_to_batch
from tap_event_exports.engine.csv_reader import CsvExport
from tap_event_exports.engine.errors import DataError
from tap_event_exports.engine.synthetic_keys import SyntheticKeys

TYPES = {
    "s": "string",
    "i": "integer",
    "n": "number",
    "b": "boolean",
    "d": "date-time",
    "l": "array",
}
ROWS = [
    # every column's null spellings, quoted delimiters and newlines, both Dfinery date forms
    '"x, ""y""\r\nz",12,12.50,TRUE,2025.1.6 10:35,"[""1"",""2""]"',
    "null,-7,1e5,false,2025-01-06 10:38:10.036,\"['a', 'b']\"",
    ",0,,f,,null",
    "plain,,123456789012345678.123,1,2025-10-26 02:30:00,[]",
    # an ambiguous local time (Berlin, the autumn change): the earlier instant, as in Python
    'é ü,9007199254740993,0.1,T ,2025-10-26T02:30:00Z,"[1, 2]"',
]


def write_csv(tmp_path, rows, name="f.csv", header="s,i,n,b,d,l"):
    path = tmp_path / name
    path.write_bytes(("\ufeff" + header + "\r\n" + "\r\n".join(rows) + "\r\n").encode())
    return str(path)


def record_reader_batch(path, types, timezone, **kw):
    export = CsvExport(path, what="test")
    names, rows = export.rows(types, timezone=timezone, **kw)
    rows = list(rows)
    kinds = [types.get(name, "string") for name in names]
    return rows_to_batch(names, kinds, rows)


def columnar_batch(path, types, timezone, **kw):
    export = CsvExport(path, what="test")
    export.close()
    reader = ColumnarCsv(path, export.header, delimiter=",", timezone=timezone)
    return pa.Table.from_batches(list(reader.batches(types, **kw)))


@pytest.mark.parametrize("timezone", ["UTC", "Europe/Berlin", "Asia/Seoul"])
def test_columnar_equals_record_reader(tmp_path, timezone):
    path = write_csv(tmp_path, ROWS)
    expected = record_reader_batch(path, TYPES, timezone)
    table = columnar_batch(path, TYPES, timezone)
    assert table.schema == expected.schema
    assert table.to_pylist() == expected.to_pylist()
    first = table.to_pylist()[0]
    assert first["s"] == 'x, "y"\r\nz'
    assert first["i"] == 12
    assert first["b"] is True
    assert first["l"] == ["1", "2"]
    if timezone == "Asia/Seoul":
        assert first["d"] == "2025-01-06T01:35:00+00:00"
    if timezone == "Europe/Berlin":
        # 02:30 happens twice that night; Python's fold=0 reading is the summer-time one
        assert table.to_pylist()[3]["d"] == "2025-10-26T00:30:00+00:00"


def test_selection_and_partition_columns(tmp_path):
    path = write_csv(tmp_path, ROWS)

    def keep(name):
        return name in ("i", "d")

    extra = {"token": "t-1"}
    expected = record_reader_batch(path, TYPES, "UTC", keep=keep, extra=extra)
    table = columnar_batch(path, TYPES, "UTC", keep=keep, extra=extra)
    assert table.column_names == ["i", "d", "token"]
    assert table.to_pylist() == expected.to_pylist()


@pytest.mark.parametrize(
    ("kind", "odd"),
    [
        ("integer", "+5"),  # int() reads it; the bulk form does not
        ("integer", "12.0"),
        ("number", ".5"),
        ("boolean", "yes"),
        ("integer", "99999999999999999999"),  # beyond 64 bits
    ],
)
def test_values_outside_the_bulk_forms_stop_the_columnar_reader(tmp_path, monkeypatch, kind, odd):
    monkeypatch.setattr(columnar, "BLOCK_SIZE", 64)
    good = {"integer": "7", "number": "7.5", "boolean": "true"}[kind]
    rows = [f"r{n},{good}" for n in range(40)] + [f"odd,{odd}"] + [f"r,{good}"] * 5
    path = write_csv(tmp_path, rows, header="s,v")
    reader = ColumnarCsv(path, ["s", "v"], delimiter=",", timezone="UTC")
    sizes: list[int] = []

    def drain():
        for batch in reader.batches({"s": "string", "v": kind}):
            sizes.append(batch.num_rows)

    with pytest.raises(NotColumnar) as stopped:
        drain()
    delivered = sum(sizes)
    assert stopped.value.done == delivered
    assert 0 < delivered <= 40, "batches before the odd value were delivered"


def test_a_ragged_row_stops_it_and_the_record_reader_names_the_line(tmp_path, monkeypatch):
    monkeypatch.setattr(columnar, "BLOCK_SIZE", 64)
    rows = [f"r{n},{n}" for n in range(30)] + ["r30,30,extra"]
    path = write_csv(tmp_path, rows, header="s,v")
    reader = ColumnarCsv(path, ["s", "v"], delimiter=",", timezone="UTC")
    with pytest.raises(NotColumnar):
        list(reader.batches({"s": "string", "v": "integer"}))
    with pytest.raises(DataError, match="line 32 has 3 fields, the header has 2"):
        record_reader_batch(path, {"s": "string", "v": "integer"}, "UTC")


def test_blocks_end_only_at_row_ends(tmp_path, monkeypatch):
    """Small blocks cut between rows, never inside a quoted newline or a doubled quote."""
    monkeypatch.setattr(columnar, "BLOCK_SIZE", 16)
    rows = [
        f'"line\r\nbreak {n}, ""quoted""",{n}' if n % 3 == 0 else f"plain {n},{n}"
        for n in range(60)
    ]
    path = write_csv(tmp_path, rows, header="s,i")
    types = {"s": "string", "i": "integer"}
    expected = record_reader_batch(path, types, "UTC")
    table = columnar_batch(path, types, "UTC")
    assert table.to_pylist() == expected.to_pylist()
    assert table.column("s")[0].as_py() == 'line\r\nbreak 0, "quoted"'
    assert table.num_rows == 60
    with open(path, "rb") as source:  # each block is valid until the next is asked for
        blocks = [bytes(block) for block in csv_blocks.whole_rows(source, 16)]
    assert b"".join(blocks) == open(path, "rb").read()
    assert all(block.endswith(b"\r\n") and block.count(b'"') % 2 == 0 for block in blocks)
    assert len(blocks) > 20


def test_a_file_without_row_ends_goes_to_the_record_reader(tmp_path, monkeypatch):
    """Lone CR line ends: no block ends within LONGEST_ROW, so the record reader takes it."""
    monkeypatch.setattr(columnar, "BLOCK_SIZE", 16)
    monkeypatch.setattr(csv_blocks, "LONGEST_ROW", 256)
    path = tmp_path / "cr.csv"
    path.write_bytes(b"s,i\r" + b"".join(f"r{n},{n}\r".encode() for n in range(100)))
    reader = ColumnarCsv(str(path), ["s", "i"], delimiter=",", timezone="UTC")
    with pytest.raises(NotColumnar) as stopped:
        list(reader.batches({"s": "string", "i": "integer"}))
    assert stopped.value.done == 0
    rows = record_reader_batch(str(path), {"s": "string", "i": "integer"}, "UTC").to_pylist()
    assert rows[99] == {"s": "r99", "i": 99}


# --- typed Python columns (RECORD messages) -----------------------------------------------------


def value_rows(path, types, timezone, **kw):
    export = CsvExport(path, what="test")
    export.close()
    reader = ColumnarCsv(path, export.header, delimiter=",", timezone=timezone)
    rows = []
    for columns in reader.value_columns(types, **kw):
        rows.extend(map(list, zip(*columns, strict=True)))
    return rows


def record_rows(path, types, timezone, **kw):
    export = CsvExport(path, what="test")
    _, rows = export.rows(types, timezone=timezone, **kw)
    return [list(row) for row in rows]


VALUE_ROWS = [
    *ROWS,
    "12,12,12,false,1736127307,null",  # a whole number stays an integer, unix seconds
    "12,12,12,false,1736127307,null",  # the same row again: its key gets ~1
    "null,,12.0,TRUE,2025-01-06T10:38:10.5+09:00,[]",
    '"",-1,1E3,0,1736127307268,"[""x""]"',
]


@pytest.mark.parametrize("timezone", ["UTC", "Europe/Berlin", "Asia/Seoul"])
def test_value_columns_equal_the_record_reader(tmp_path, timezone):
    path = write_csv(tmp_path, VALUE_ROWS)
    expected = record_rows(path, TYPES, timezone)
    got = value_rows(path, TYPES, timezone)
    assert got == expected
    assert [type(v) for v in got[5]] == [type(v) for v in expected[5]]
    assert got[5][1:3] == [12, 12]
    assert isinstance(got[5][2], int)
    assert got[3][2] == Decimal("123456789012345678.123")


def test_value_columns_with_keys_selection_and_partition(tmp_path, monkeypatch):
    monkeypatch.setattr(columnar, "BLOCK_SIZE", 64)  # several blocks
    path = write_csv(tmp_path, VALUE_ROWS * 3)
    options = {"keep": lambda name: name in ("s", "d"), "extra": {"token": "t-1"}}
    expected = record_rows(path, TYPES, "UTC", key=("_record_id", SyntheticKeys("w")), **options)
    got = value_rows(path, TYPES, "UTC", key=("_record_id", SyntheticKeys("w")), **options)
    assert got == expected
    assert len({row[2] for row in got}) == len(got), "repeated rows get distinct keys"
    assert got[0][3] == "t-1"


def test_record_reader_continues_after_the_value_columns_with_the_same_keys(tmp_path, monkeypatch):
    """The record reader takes over where the columns stop, keys counting on unchanged."""
    monkeypatch.setattr(columnar, "BLOCK_SIZE", 64)
    good = ["a,1,1,true,2025.1.6 10:35,[]"] * 30 + ["", "b,2,2,false,,null"] * 5
    rows = [*good, "odd,+5,1,true,,[]", *good]
    path = write_csv(tmp_path, rows)
    expected = record_rows(path, TYPES, "UTC", key=("k", SyntheticKeys("w")))
    python_values = columnar._typed_values

    def refuse_odd(column, *args):  # a block the columns cannot take, whatever the reason
        return None if "odd" in column.to_pylist() else python_values(column, *args)

    monkeypatch.setattr(columnar, "_typed_values", refuse_odd)
    keys = SyntheticKeys("w")
    delivered = []
    export = CsvExport(path, what="test")
    export.close()
    reader = ColumnarCsv(path, export.header, delimiter=",", timezone="UTC")
    blocks = reader.value_columns(TYPES, key=("k", keys))
    with pytest.raises(NotColumnar) as stopped:
        delivered.extend(row for columns in blocks for row in zip(*columns, strict=True))
    delivered = [list(row) for row in delivered]
    assert 0 < stopped.value.done == len(delivered) < 40
    delivered += record_rows(path, TYPES, "UTC", key=("k", keys), skip=stopped.value.done)
    assert delivered == expected
    assert delivered[1][-1] == delivered[0][-1] + "~1"


@pytest.mark.parametrize(
    ("row", "outcome"),
    [
        ('"b"c,2', "refused"),  # Python's csv refuses it; pyarrow alone would read "bc"
        ('"b" ,2', "refused"),
        ('b"c,2', ['b"c', 2]),  # a literal quote in an unquoted field: read the same way
    ],
)
def test_stray_quotes_go_to_the_record_reader(tmp_path, row, outcome):
    path = write_csv(tmp_path, ["a,1", row, "z,3"], header="s,i")
    types = {"s": "string", "i": "integer"}
    with pytest.raises(NotColumnar) as stopped:
        value_rows(path, types, "UTC")
    assert stopped.value.done <= 1
    assert "quote inside a field" in str(stopped.value)
    if outcome == "refused":
        with pytest.raises(DataError, match="line 3"):
            record_rows(path, types, "UTC", skip=stopped.value.done)
    else:
        rest = record_rows(path, types, "UTC", skip=stopped.value.done)
        assert [["a", 1], outcome, ["z", 3]][stopped.value.done :] == rest


def test_quoted_fields_with_doubled_quotes_stay_columnar(tmp_path):
    rows = ['"say ""hi"", then go",1', '"[""1"",""2""]",2', '"",3']
    path = write_csv(tmp_path, rows, header="s,i")
    types = {"s": "string", "i": "integer"}
    assert value_rows(path, types, "UTC") == record_rows(path, types, "UTC")
    assert value_rows(path, types, "UTC")[0][0] == 'say "hi", then go'


@pytest.mark.parametrize(
    "data",
    [
        b"s,i\rx,1\ry,2\r",  # lone carriage returns: no newline to cut at
        b"s,i\rx,1\ny,2\n",  # the header alone ends in a carriage return
    ],
)
def test_no_row_is_lost_with_the_header(tmp_path, data):
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    types = {"s": "string", "i": "integer"}
    with pytest.raises(NotColumnar) as stopped:
        value_rows(str(path), types, "UTC")
    assert stopped.value.done == 0
    assert record_rows(str(path), types, "UTC") == [["x", 1], ["y", 2]]


REPEATED = [
    "a,1,12.50,true,2025-01-06 10:38:10,[]",
    "b,+5,-0,false,2025-01-06T10:38:10.5+09:00,\"['x', 'y']\"",
    'c, 7 ,1E3,TRUE,1736127307,"[1, 2]"',
    "d,,123456789012345678.123,,,",
    "e,-7,-0.000,f,null,null",
]


def test_repeated_values_are_typed_once_and_spread_as_json_text(tmp_path):
    """Columns whose values repeat become JSON text per row with the typed values kept."""
    from singer_sdk.contrib.msgspec import encoder

    from tap_event_exports.engine.typed_columns import SpreadJson

    rows = REPEATED * 30  # 150 rows, five distinct values a column: typed per distinct value
    path = write_csv(tmp_path, rows)
    expected = record_rows(path, TYPES, "Asia/Seoul")
    export = CsvExport(path, what="test")
    export.close()
    reader = ColumnarCsv(path, export.header, delimiter=",", timezone="Asia/Seoul")
    (columns,) = list(reader.typed_columns(TYPES))
    by_name = dict(zip(TYPES, columns, strict=True))
    assert isinstance(by_name["n"], SpreadJson)  # numbers
    assert isinstance(by_name["i"], SpreadJson)  # integers outside the bulk form ("+5")
    for name, column in by_name.items():
        values = [row[list(TYPES).index(name)] for row in expected]
        if isinstance(column, SpreadJson):
            texts = column.texts.to_pylist()
            assert texts == [None if v is None else encoder.encode(v).decode() for v in values]
            assert column.to_pylist() == values
            assert [type(v) for v in column.to_pylist()] == [type(v) for v in values]
            part = column[7:19]
            assert part.to_pylist() == values[7:19]
            assert part.texts.to_pylist() == texts[7:19]
    assert expected[0][2] == Decimal("12.50")
    assert value_rows(path, TYPES, "Asia/Seoul") == expected


@pytest.mark.parametrize(
    ("block", "end"),
    [
        (b"a,b\n1,2\n", 4),
        (b'"a\nb",c\n1,2\n', 8),  # a line break inside a quoted name
        (b'"x""y",c\n"1\n2",3\n', 9),  # doubled quotes
        (b'a"b,c\n' + b"1,2\n" * 1000, 4006),  # a quote never closed: no row end in the block
        (b"a,b", 3),  # no line break: the whole block
        (b"", 0),
    ],
)
def test_where_the_first_row_of_a_block_ends(block, end):
    assert csv_blocks.first_row_end(block) == end
