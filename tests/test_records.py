"""CSV reading and typing."""

from __future__ import annotations

import datetime as dt
import gzip
from decimal import Decimal

import pytest

from tap_event_exports.engine.errors import DataError
from tap_event_exports.engine.records import (
    CsvExport,
    DateTimeReader,
    SyntheticKeys,
    to_array,
    to_boolean,
    to_integer,
    to_number,
)


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
    assert to_array("['a','b\\n c']") == ["a", "b\n c"]
    with pytest.raises(ValueError):
        to_array('{"a": 1}')


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
