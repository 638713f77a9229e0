"""CSV reading and typing."""

from __future__ import annotations

import datetime as dt
import gzip
import re
from decimal import Decimal

import pytest

from tap_event_exports.engine import csv_reader as records
from tap_event_exports.engine.converters import (
    ArrayReader,
    DateTimeReader,
    to_boolean,
    to_integer,
    to_number,
)
from tap_event_exports.engine.csv_reader import CsvExport
from tap_event_exports.engine.errors import DataError
from tap_event_exports.engine.lists import to_array
from tap_event_exports.engine.synthetic_keys import SyntheticKeys


def write(tmp_path, data: bytes, name="f.csv"):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def read(path, types, **kw):
    export = CsvExport(path, what="test", delimiter=kw.pop("delimiter", ","))
    return export.header, list(export.records(types, timezone=kw.pop("timezone", "UTC"), **kw))


def test_header_mapped_quoted_bom_crlf(tmp_path):
    data = '\ufeffb,a,c\r\n"x, ""y""\r\nz",1,\r\nplain,null,TRUE\r\n'.encode()
    header, rows = read(write(tmp_path, data), {"a": "integer", "b": "string", "c": "boolean"})
    assert header == ["b", "a", "c"]
    assert rows == [
        {"b": 'x, "y"\r\nz', "a": 1, "c": None},
        {"b": "plain", "a": None, "c": True},
    ]


def test_semicolon_delimiter(tmp_path):
    path = write(tmp_path, b"install_id;event_type\nI1;push_sent\n")
    _, rows = read(path, {"install_id": "string", "event_type": "string"}, delimiter=";")
    assert rows == [{"install_id": "I1", "event_type": "push_sent"}]


def test_numbers_keep_every_digit():
    assert to_number("1000") == 1000
    assert isinstance(to_number("1000"), int)
    assert to_number("3000.5") == 3000.5
    assert to_number("12345678901234567.25") == Decimal("12345678901234567.25")
    assert to_number("0.1") == 0.1
    with pytest.raises(ValueError):
        to_number("NaN")
    assert to_integer("12.0") == 12
    with pytest.raises(ValueError):
        to_integer("12.5")


def test_booleans_and_arrays():
    assert [to_boolean(v) for v in ("TRUE", "false", "True", "1", "0")] == [
        True,
        False,
        True,
        True,
        False,
    ]
    assert to_array('["1","2"]') == ["1", "2"]
    assert to_array("['a','b\n c']", "quoted") == ["a", "b\n c"]  # a real line break
    assert to_array("['a','b\\n c']", "quoted") == ["a", "b\n c"]  # ClickHouse's \n escape
    assert to_array("['a','b\\\\n c']", "quoted") == ["a", "b\\n c"]  # \\ then n
    assert to_array("['a','b\\n c']", "json") == ["a", "b\\n c"]  # JSON syntax: as written
    # long runs of spaces where a list is refused: refused at once (the patterns never try
    # every split of a run between two optional runs)
    for syntax in ("json", "quoted"):
        for text in ("['a\\n'" + " " * 50_000 + "x", "['a'" + "\n" * 50_000 + "x"):
            with pytest.raises(ValueError):
                to_array(text, syntax)
    with pytest.raises(ValueError):
        to_array('{"a": 1}')
    cached = ArrayReader()
    assert cached('["1","2"]') == ["1", "2"] == cached('["1","2"]')
    assert cached.cached('["1","2"]') == ["1", "2"]
    assert cached.cached('["3"]') is None
    with pytest.raises(ValueError):
        cached("[1,")


@pytest.mark.parametrize(
    ("value", "timezone", "expected"),
    [
        ("2025.1.6 10:35", "Asia/Seoul", "2025-01-06T01:35:00+00:00"),
        ("2025-01-06 10:38:10.036", "Asia/Seoul", "2025-01-06T01:38:10.036000+00:00"),
        ("2025-01-06T10:38:10Z", "Asia/Seoul", "2025-01-06T10:38:10+00:00"),
        ("2025-01-06T10:38:10+09:00", "UTC", "2025-01-06T01:38:10+00:00"),
        ("2025-01-06", "Asia/Seoul", "2025-01-05T15:00:00+00:00"),
        ("1736127307", "Asia/Seoul", "2025-01-06T01:35:07+00:00"),
        ("1736127307268", "UTC", "2025-01-06T01:35:07.268000+00:00"),
    ],
)
def test_datetimes_to_rfc3339_utc(value, timezone, expected):
    assert DateTimeReader(timezone)(value) == expected
    assert dt.datetime.fromisoformat(expected).tzinfo is not None


def test_a_date_time_with_a_long_run_of_spaces_is_refused_at_once():
    """The pattern has no two optional runs of spaces side by side to try every split of."""
    reader = DateTimeReader("UTC")
    with pytest.raises(ValueError):
        reader("2025-01-06" + " " * 100_000 + "x")
    assert reader(" 2025-01-06T10:38:10 Z ") == "2025-01-06T10:38:10+00:00"


def test_unix_times_are_exact_over_the_whole_range():
    """Seconds and milliseconds are rendered by integer arithmetic, equal to datetime's."""
    reader = DateTimeReader("UTC")
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    for seconds in (0, 59, 3599, 3600, 1_736_127_307, 99_999_999_999):
        assert reader(str(seconds)) == (epoch + dt.timedelta(seconds=seconds)).isoformat()
    for millis in (100_000_000_001, 1_736_127_307_000, 1_736_127_307_999, 253_402_300_799_999):
        expected = (epoch + dt.timedelta(milliseconds=millis)).isoformat()
        assert reader(str(millis)) == expected == reader.parse(str(millis)).isoformat()
    assert reader("182618331652835") == "7756-12-11T02:20:52.835000+00:00"  # no float rounding
    for beyond in ("1000000000000000000", "100000000000000000000"):
        with pytest.raises(ValueError):
            reader(beyond)


def test_a_unix_time_beyond_year_9999_names_its_line(tmp_path):
    path = write(tmp_path, b"a,t\nx,1736127307\ny,100000000000000000000\n")
    with pytest.raises(DataError, match=r"line 3, column 't': cannot read '1000"):
        read(path, {"a": "string", "t": "date-time"})


def test_bad_value_names_column_and_line(tmp_path):
    path = write(tmp_path, b"a,n\nx,1\ny,abc\n")
    with pytest.raises(DataError, match=r"line 3, column 'n': cannot read 'abc' as integer"):
        read(path, {"a": "string", "n": "integer"})


def test_ragged_row_is_an_error(tmp_path):
    path = write(tmp_path, b"a,b\n1,2\n1,2,3\n")
    with pytest.raises(DataError, match="line 3 has 3 fields, the header has 2"):
        read(path, {"a": "string", "b": "string"})


def test_bad_utf8_is_an_error(tmp_path):
    path = write(tmp_path, b"a,b\n1,\xff\xfe\n")
    with pytest.raises(DataError, match="not valid UTF-8"):
        read(path, {"a": "string", "b": "string"})


def test_empty_file_has_no_header(tmp_path):
    export = CsvExport(write(tmp_path, b""), what="t")
    assert export.header == []
    export.close()


def test_selection_extra_columns_and_synthetic_keys(tmp_path):
    path = write(tmp_path, b"a,b\n1,x\n1,x\n2,y\n")
    keys = SyntheticKeys("s|w")
    _, rows = read(
        path,
        {"a": "integer", "b": "string"},
        keep=lambda name: name != "b",
        extra={"campaign_token": "C1"},
        key=("_record_id", keys),
    )
    assert [r["a"] for r in rows] == [1, 1, 2]
    assert all(set(r) == {"a", "_record_id", "campaign_token"} for r in rows)
    ids = [r["_record_id"] for r in rows]
    assert len(set(ids)) == 3
    assert ids[1] == ids[0] + "~1"
    again = SyntheticKeys("s|w")
    assert [again(["1", "x"]), again(["1", "x"]), again(["2", "y"])] == ids
    other_window = SyntheticKeys("s|w2")
    assert other_window(["1", "x"]) != ids[0]


def test_gzip_file(tmp_path):
    path = write(tmp_path, gzip.compress(b"a\r\n1\r\n") + gzip.compress(b"2\r\n"))
    assert read(path, {"a": "integer"})[1] == [{"a": 1}, {"a": 2}]


def test_truncated_gzip_file(tmp_path):
    path = write(tmp_path, gzip.compress(b"a\n" + b"1\n" * 5000)[:-20])
    with pytest.raises(DataError, match="malformed CSV"):
        read(path, {"a": "integer"})


# --- typing a block at a time -----------------------------------------------------------------

BLOCK_TYPES = {
    "s": "string",
    "i": "integer",
    "n": "number",
    "b": "boolean",
    "d": "date-time",
    "l": "array",
}


def varied_rows(count: int) -> list[str]:
    """Rows with every type, nulls, quoted newlines, repeated and distinct values."""
    rows = []
    for n in range(count):
        text = f'"multi\nline {n}"' if n % 7 == 0 else ("null" if n % 5 == 0 else f"s{n % 3}")
        rows.append(
            ",".join(
                [
                    text,
                    "" if n % 4 == 0 else str(n - 50),
                    f"{n}.25" if n % 3 else "12.0",
                    ("TRUE", "false", "")[n % 3],
                    (f"2025.1.{n % 28 + 1} 10:{n % 60:02d}", str(1_736_127_307 + n), "")[n % 3],
                    ('"[""a"",""b""]"', "null", '"[1, 2]"')[n % 3],
                ]
            )
        )
    return rows


def block_and_row_reads(path, monkeypatch, **kw):
    """The records of the block reader and of the row-by-row reader, for the same file."""
    monkeypatch.setattr(records, "ROWS_PER_BLOCK", 16)
    _, blocks = read(path, BLOCK_TYPES, **kw)
    monkeypatch.setattr(records, "_type_block", mock_irregular)
    _, row_by_row = read(path, BLOCK_TYPES, **kw)
    return blocks, row_by_row


def mock_irregular(*_args):
    raise records._Irregular


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"keep": lambda name: name in ("i", "d")},
        {"keep": lambda name: name == "l"},  # a single column
        {"extra": {"token": "t-1"}},
    ],
)
def test_block_reader_equals_row_by_row_reader(tmp_path, monkeypatch, options):
    path = write(tmp_path, ("s,i,n,b,d,l\n" + "\n".join(varied_rows(100)) + "\n").encode())
    blocks, row_by_row = block_and_row_reads(path, monkeypatch, **options)
    assert len(blocks) == 100
    assert blocks == row_by_row
    if not options:
        assert blocks[7] == {
            "s": "multi\nline 7",
            "i": -43,
            "n": 7.25,
            "b": False,
            "d": "2025-01-06T01:35:14+00:00",
            "l": None,
        }
        assert blocks[6]["d"] == "2025-01-07T10:06:00+00:00"
        assert blocks[6]["l"] == ["a", "b"]
        assert blocks[8]["l"] == [1, 2]
        assert blocks[10]["i"] == -40
        assert blocks[10]["s"] is None
        assert blocks[9]["n"] == 12


def test_block_reader_keys_equal_row_by_row_keys(tmp_path, monkeypatch):
    path = write(tmp_path, ("s,i,n,b,d,l\n" + "\n".join(varied_rows(40) * 2) + "\n").encode())
    monkeypatch.setattr(records, "ROWS_PER_BLOCK", 16)
    keys = []
    for force_rows in (False, True):
        if force_rows:
            monkeypatch.setattr(records, "_type_block", mock_irregular)
        _, rows = read(path, BLOCK_TYPES, key=("_record_id", SyntheticKeys("scope")))
        keys.append([row["_record_id"] for row in rows])
    assert keys[0] == keys[1]
    assert len(set(keys[0])) == 80
    assert keys[0][40] == keys[0][0] + "~1"  # the repeated row


def stream_until_error(path, types):
    """The records delivered before the reader's error, and the error."""
    export = CsvExport(path, what="test")
    delivered = []
    records_ = export.records(types, timezone="UTC")
    try:
        delivered.extend(records_)
    except DataError as failure:
        return delivered, str(failure)
    raise AssertionError("no DataError")


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("x,abc", r"line 4\d\d, column 'i': cannot read 'abc' as integer"),
        ("x,1,2", r"line 4\d\d has 3 fields, the header has 2"),
    ],
)
def test_a_bad_row_deep_in_a_block_delivers_every_row_before_it(tmp_path, bad_row, message):
    """Rows before the problem are delivered and the line counts the quoted newlines."""
    good = [f'"two\nlines {n}",{n}' if n % 10 == 0 else f"r{n},{n}" for n in range(400)]
    rows = [*good[:300], "", *good[300:], bad_row, *good[:50]]
    path = write(tmp_path, ("s,i\n" + "\n".join(rows) + "\n").encode())
    delivered, error = stream_until_error(path, {"s": "string", "i": "integer"})
    assert [record["i"] for record in delivered] == list(range(400))
    line = 1 + 400 + 40 + 1 + 1  # header, rows, their second lines, the blank line, the bad one
    assert re.search(message, error)
    assert f"line {line}" in error


def test_bad_utf8_deep_in_a_block_delivers_every_row_before_it(tmp_path):
    body = b"".join(f"r{n},{n}\n".encode() for n in range(500))
    path = write(tmp_path, b"s,i\n" + body + b"bad \xff,1\n" + body)
    delivered, error = stream_until_error(path, {"s": "string", "i": "integer"})
    # text is decoded 8 KiB at a time: rows sharing the bad byte's chunk are never parsed
    assert [record["i"] for record in delivered] == list(range(len(delivered)))
    assert len(delivered) > 400
    assert "is not valid UTF-8" in error
