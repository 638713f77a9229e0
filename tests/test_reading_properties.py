"""Property-based tests of the reading path: generated CSV exports, read by both readers and
written by every sink, give the records their documented meaning (README "Records", contract §4).

Each example is an export: a header of typed columns and rows whose cells are drawn from the
documented forms of their type, written with Python's csv module in one of the dialects vendors
use. The expected records come from a reference decoding written here from the documented
meaning of each form (Python's csv, ``Decimal``, ``zoneinfo``, a small tokenizer for myTracker's
lists), independent of the tap's converters. The Arrow reader, the record reader, and every sink
(RECORD messages on the fast and the SDK path, JSONL and parquet BATCH files) must all give those
records, with the same synthetic keys.

``HYPOTHESIS_PROFILE=explore`` (see conftest.py) searches with random seeds and ten times the
examples; the default profile is derandomized, so CI runs the same examples every time.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import functools
import gzip
import io
import json
import logging
import re
import shutil
import sys
import tempfile
import typing as t
from decimal import Decimal
from pathlib import Path
from unittest import mock
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from tap_event_exports import batch_files
from tap_event_exports.engine import columnar, csv_reader
from tap_event_exports.engine.columnar import rows_to_batch
from tap_event_exports.engine.contract import ExportSpec, Limits, SnapshotRequest
from tap_event_exports.engine.csv_reader import CsvExport
from tap_event_exports.engine.download import Download
from tap_event_exports.engine.lists import LIST_SYNTAXES
from tap_event_exports.engine.reading import ReadPlan, read_export
from tap_event_exports.engine.synthetic_keys import SyntheticKeys
from tap_event_exports.engine.typed_columns import values_of
from tap_event_exports.streams import ExportStream
from tap_event_exports.tap import TapEventExports
from tests.properties import (
    Unexpected,
    clickhouse_list,
    json_meaning,
    plain_items,
    quoted_items,
    scaled,
)

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
KEY = "_record_id"
PARTITION = {"campaign_token": "C-1"}
RESERVED = {KEY, *PARTITION}
COLUMN_TYPES = ("string", "integer", "number", "boolean", "date-time", "array")
ZONES = (
    "UTC",
    "Asia/Seoul",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",  # +05:30
    "America/St_Johns",  # -03:30 / -02:30
    "Australia/Lord_Howe",  # a 30-minute clock change
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/Sao_Paulo",  # clocks changed at midnight (until 2019): some dates had no 00:00
)
assert set(LIST_SYNTAXES) == {"json", "quoted"}
"""``json`` (Dfinery, Keen, Batch: JSON lists, myTracker's older unescaped form read too) and
``quoted`` (myTracker: ClickHouse's escaped strings, or items as written; never JSON)."""


# --- exports ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Export:
    """One generated export file: what it holds and how it is written."""

    names: list[str]
    """The header as written (the tap strips spaces around names)."""
    kinds: list[str]
    rows: list[list[str]]
    """The cells as written."""
    timezone: str
    lists: str
    delimiter: str = ","
    quote_all: bool = False
    line_end: str = "\r\n"
    bom: bool = False
    final_newline: bool = True
    gzip_members: int = 0
    """0: plain text; 1: gzip; 2: two concatenated gzip members (split at ``split``)."""
    split: float = 0.5

    @property
    def columns(self) -> list[str]:
        return [name.strip() for name in self.names]

    @property
    def types(self) -> dict[str, str]:
        return dict(zip(self.columns, self.kinds, strict=True))

    def text(self) -> str:
        """The CSV text. Rows are written with CRLF and then given their line end, because
        Python's csv does not quote a lone CR when the line terminator is LF."""
        quoting = csv.QUOTE_ALL if self.quote_all else csv.QUOTE_MINIMAL
        lines = []
        for row in [self.names, *self.rows]:
            buffer = io.StringIO()
            csv.writer(
                buffer, delimiter=self.delimiter, quoting=quoting, lineterminator="\r\n"
            ).writerow(row)
            line = buffer.getvalue()
            lines.append(line[:-2] + self.line_end)
        text = "".join(lines)
        if not self.final_newline:
            text = text[: -len(self.line_end)]
        return ("\ufeff" if self.bom else "") + text

    def data(self) -> bytes:
        raw = self.text().encode()
        if self.gzip_members == 1:
            return gzip.compress(raw, mtime=0)
        if self.gzip_members == 2:
            cut = int(len(raw) * self.split)
            return gzip.compress(raw[:cut], mtime=0) + gzip.compress(raw[cut:], mtime=0)
        return raw

    def write(self, folder: str, name: str = "export.csv") -> str:
        path = Path(folder, name)
        path.write_bytes(self.data())
        return str(path)


# --- the forms of each type ---------------------------------------------------------------------

NULLS = st.sampled_from(["", "null"])
HOSTILE = [
    *",;\"'\r\n\t \\[]{}",
    "\r\n",
    '""',
    "\x00",
    "\x1f",  # the separator synthetic keys join raw values with
    "\x85",  # NEL and LINE SEPARATOR: line ends to some readers, not to CSV
    "\u2028",
    "\ufeff",  # a byte order mark inside the data
    "é",
    "日本語",
    "🙂",
    "null",
    "NULL",
]
PIECES = st.one_of(st.sampled_from(HOSTILE), st.text(st.characters(codec="utf-8"), max_size=4))
FREE_TEXT = st.lists(PIECES, max_size=8).map("".join)
LONG_TEXT = st.builds(
    lambda piece, times: piece * times, st.sampled_from(HOSTILE[:20]), st.integers(500, 5000)
)
INT64 = st.integers(-(2**63), 2**63 - 1)
INTEGERS = st.one_of(
    st.integers(-1000, 1000).map(str),
    INT64.map(str),
    st.integers(-1000, 1000).map(lambda n: f"{n}.0"),
    INT64.map(lambda n: f"{n}.0"),
)
DIGITS = st.text("0123456789", min_size=1, max_size=25)


@st.composite
def numbers(draw: st.DrawFn) -> str:
    """Integers (long ones too), decimals with many digits, exponent forms, float reprs."""
    sign = draw(st.sampled_from(["", "-"]))
    whole = str(draw(st.integers(0, 22).flatmap(lambda digits: st.integers(0, 10**digits))))
    form = draw(st.sampled_from(["integer", "decimal", "exponent", "float"]))
    if form == "integer":
        return sign + whole
    if form == "float":
        return repr(draw(st.floats(allow_nan=False, allow_infinity=False)))
    mantissa = f"{sign}{whole}.{draw(DIGITS)}"
    if form == "decimal":
        return mantissa
    if draw(st.booleans()):
        mantissa = sign + whole
    marker = draw(st.sampled_from(["e", "E", "e+", "e-", "E-"]))
    return f"{mantissa}{marker}{draw(st.integers(0, 30))}"


@st.composite
def booleans(draw: st.DrawFn) -> str:
    """``TRUE``, ``false``, ``1``, ``0``, ``t``, ``f`` in any case."""
    word = draw(st.sampled_from(["true", "false", "t", "f", "1", "0"]))
    upper = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if u else c for c, u in zip(word, upper, strict=True))


@functools.cache
def clock_changes(zone: str) -> list[dt.datetime]:
    """Wall-clock times around the zone's clock changes of 2018 and 2025 (gaps, repeats)."""
    tz = ZoneInfo(zone)
    walls: list[dt.datetime] = []
    for year in (2018, 2025):
        walls += _clock_changes(tz, year)
    return walls


def _clock_changes(tz: ZoneInfo, year: int) -> list[dt.datetime]:
    walls: list[dt.datetime] = []
    moment = dt.datetime(year, 1, 1, tzinfo=UTC)
    while moment.year == year:
        later = moment + dt.timedelta(hours=1)
        if moment.astimezone(tz).utcoffset() != later.astimezone(tz).utcoffset():
            for side in (moment, later):
                wall = side.astimezone(tz).replace(tzinfo=None)
                walls += [wall + dt.timedelta(minutes=m) for m in range(-90, 91, 15)]
        moment = later
    return walls


def wall_times(zone: str) -> st.SearchStrategy[dt.datetime]:
    anywhen = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 12, 31))
    changes = clock_changes(zone)
    return st.one_of(anywhen, st.sampled_from(changes)) if changes else anywhen


OFFSETS = ["Z", "+09:00", "-05:00", "+05:30", "+00:00", "-03:30", "+13:45"]


@st.composite
def datetimes(draw: st.DrawFn, zone: str) -> str:
    """Dfinery's ``2025.1.6 10:35``, ISO with or without offset, dates, unix s and ms."""
    form = draw(st.sampled_from(["dotted", "local", "offset", "date", "seconds", "millis"]))
    if form == "seconds":
        return str(draw(st.integers(0, 9_999_999_999)))  # up to 10 digits (year 2286)
    if form == "millis":  # 12 digits and more (from 1973 on), to the end of year 9999
        return str(draw(st.integers(100_000_000_001, 253_402_300_799_999)))
    wall = draw(wall_times(zone))
    if form == "date":
        return f"{wall:%Y-%m-%d}"
    if form == "dotted":
        padded = draw(st.booleans())
        month, day, hour = (
            f"{v:02d}" if padded else str(v) for v in (wall.month, wall.day, wall.hour)
        )
        return f"{wall.year}.{month}.{day} {hour}:{wall.minute:02d}"
    digits = draw(st.integers(0, 6))
    text = f"{wall:%Y-%m-%d}{draw(st.sampled_from('T '))}{wall:%H:%M:%S}"
    if digits:
        text += "." + f"{wall.microsecond:06d}"[:digits]
    if form == "offset":
        text += draw(st.sampled_from(OFFSETS))
    return text


ITEM_TEXT = st.lists(
    st.one_of(
        st.sampled_from([*",;\"'\r\n\\[] \t", "\r\n", "\\n", "\\'", "é", "🙂", ", '", "', '"]),
        st.text(st.characters(codec="utf-8"), max_size=3),
    ),
    max_size=5,
).map("".join)
JSON_LISTS = st.builds(
    lambda items, ascii_only, compact: json.dumps(
        items, ensure_ascii=ascii_only, separators=(",", ":") if compact else None
    ),
    st.lists(ITEM_TEXT, max_size=4),
    st.booleans(),
    st.booleans(),
)


@st.composite
def mytracker_lists(draw: st.DrawFn, *, escaped: bool | None = None) -> str:
    """``['a','b\\n c']`` as the documents show it (ClickHouse's escaped strings, providers.md
    §3.4), or the older unescaped style: items as written, in single quotes, or in double
    quotes when they hold a single quote (an item holding both quotes has no such form; none
    is drawn)."""
    separator = draw(st.sampled_from([", ", ","]))
    if escaped is None:
        escaped = draw(st.booleans())
    if escaped:
        return clickhouse_list(draw(st.lists(ITEM_TEXT, max_size=4)), separator)
    items = draw(st.lists(ITEM_TEXT.filter(lambda i: not ("'" in i and '"' in i)), max_size=4))
    return "[" + separator.join(f'"{i}"' if "'" in i else f"'{i}'" for i in items) + "]"


def arrays(syntax: str) -> st.SearchStrategy[str]:
    if syntax == "quoted":
        return st.one_of(mytracker_lists(), st.just("[]"))
    # JSON lists, and myTracker's older form where it does not also read as another JSON list
    older = mytracker_lists(escaped=False)
    unambiguous = older.filter(lambda v: json_list(v) in (None, plain_items(v)))
    return st.one_of(JSON_LISTS, unambiguous, st.just("[]"))


def forms(kind: str, zone: str, syntax: str) -> st.SearchStrategy[str]:
    if kind == "integer":
        return INTEGERS
    if kind == "number":
        return numbers()
    if kind == "boolean":
        return booleans()
    if kind == "date-time":
        return datetimes(zone)
    if kind == "array":
        return arrays(syntax)
    # strings: hostile free text, now and then a very long field or another type's form
    others = st.one_of(INTEGERS, numbers(), booleans(), datetimes(zone), arrays(syntax))
    return st.one_of(*[FREE_TEXT] * 5, others, LONG_TEXT)


def cells(kind: str, zone: str, syntax: str) -> st.SearchStrategy[str]:
    values = forms(kind, zone, syntax)
    return st.one_of(NULLS, values, values)


HEADER_NAME = st.text(st.sampled_from("abcxyz_.0123 é,;\"'\\"), min_size=1, max_size=6).filter(
    lambda name: name.strip() and name.strip() not in RESERVED
)


@st.composite
def exports(draw: st.DrawFn, *, max_rows: int = 8, kinds: str | None = None) -> Export:
    names = draw(st.lists(HEADER_NAME, min_size=1, max_size=6, unique_by=str.strip))
    kind = st.just(kinds) if kinds else st.sampled_from(COLUMN_TYPES)
    column_kinds = draw(st.lists(kind, min_size=len(names), max_size=len(names)))
    # a column may repeat another one (a correction time copying the event time, say)
    copies = draw(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=1))
    copies = [(a, b) for a, b in copies if a != b and max(a, b) < len(names)]
    for source, target in copies:
        column_kinds[target] = column_kinds[source]
    zone = draw(st.sampled_from(ZONES))
    syntax = draw(st.sampled_from(LIST_SYNTAXES))
    row = st.tuples(*(cells(k, zone, syntax) for k in column_kinds)).map(list)
    rows = draw(st.lists(row, min_size=draw(st.sampled_from([0, 1, 1, 1])), max_size=max_rows))
    for source, target in copies:
        for values in rows:
            values[target] = values[source]
    for _ in range(draw(st.integers(0, 2)) if rows else 0):  # identical rows
        copy = list(rows[draw(st.integers(0, len(rows) - 1))])
        rows.insert(draw(st.integers(0, len(rows))), copy)
    # now and then many rows repeating a few values, as real exports do (Arrow reads columns
    # of 64 rows and more once per distinct value)
    rows = [list(values) for values in rows * draw(st.sampled_from([1, 1, 1, 1, 9, 25]))]
    return Export(names, column_kinds, rows, zone, syntax, **draw(dialects()))


@st.composite
def dialects(draw: st.DrawFn) -> dict[str, t.Any]:
    return {
        "delimiter": draw(st.sampled_from([",", ";"])),
        "quote_all": draw(st.booleans()),
        "line_end": draw(st.sampled_from(["\r\n", "\n"])),
        "bom": draw(st.booleans()),
        "final_newline": draw(st.booleans()),
        "gzip_members": draw(st.sampled_from([0, 0, 1, 2])),
        "split": draw(st.floats(0, 1)),
    }


BLOCK_BYTES = st.sampled_from([16, 128, 1024, columnar.BLOCK_SIZE])
"""Arrow blocks this big: small ones cut files into many blocks (some typed, some not)."""
BLOCK_ROWS = st.sampled_from([1, 3, csv_reader.ROWS_PER_BLOCK])
"""Rows the record reader types at a time."""


@contextlib.contextmanager
def block_sizes(arrow_bytes: int, record_rows: int) -> t.Iterator[None]:
    with (
        mock.patch.object(columnar, "BLOCK_SIZE", arrow_bytes),
        mock.patch.object(csv_reader, "ROWS_PER_BLOCK", record_rows),
    ):
        yield


# --- the reference decoding ---------------------------------------------------------------------

DOTTED = re.compile(r"(\d{4})\.(\d{1,2})\.(\d{1,2}) (\d{1,2}):(\d{2})")
DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})?"
)
BOOLEANS = {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}


def local_time(wall: dt.datetime, zone: str) -> dt.datetime:
    """A naive time read in ``zone`` (``fold=0``: the first reading of a repeated hour, the
    offset before a gap)."""
    return wall.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def reference_datetime(text: str, zone: str) -> dt.datetime:
    if match := DOTTED.fullmatch(text):
        return local_time(dt.datetime(*map(int, match.groups())), zone)
    if match := DATE.fullmatch(text):
        return local_time(dt.datetime(*map(int, match.groups())), zone)
    if match := ISO.fullmatch(text):
        *parts, fraction, offset = match.groups()
        wall = dt.datetime(*map(int, parts), int((fraction or "").ljust(6, "0")))
        if offset is None:
            return local_time(wall, zone)
        if offset == "Z":
            return wall.replace(tzinfo=UTC)
        sign = -1 if offset[0] == "-" else 1
        delta = dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
        return wall.replace(tzinfo=dt.timezone(sign * delta)).astimezone(UTC)
    if text.isdigit():  # unix seconds have up to 10 digits here, milliseconds 12 and more
        if len(text) <= 11:
            return EPOCH + dt.timedelta(seconds=int(text))
        return EPOCH + dt.timedelta(milliseconds=int(text))
    raise AssertionError(f"not a date-time form: {text!r}")


def json_list(text: str) -> list | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def reference_array(text: str, syntax: str) -> list[str]:
    if syntax == "json":
        parsed = json_list(text)
        return plain_items(text) if parsed is None else parsed
    return quoted_items(text)


def reference_value(kind: str, text: str, export: Export) -> t.Any:
    """What a cell means (README "Records", contract §4)."""
    if text in ("", "null"):
        return None
    if kind == "string":
        return text
    if kind == "integer":
        number = Decimal(text)
        assert number == number.to_integral_value(), text
        return int(number)
    if kind == "number":
        return Decimal(text)
    if kind == "boolean":
        return BOOLEANS[text.lower()]
    if kind == "date-time":
        return reference_datetime(text, export.timezone)
    return reference_array(text, export.lists)


def reference_records(export: Export) -> list[list[t.Any]]:
    """Every row's values, read from the file's text by Python's csv."""
    text = export.text().removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=export.delimiter, strict=True)
    parsed = list(reader)
    assert parsed == [export.names, *export.rows], "the file holds what was drawn"
    return [
        [reference_value(k, v, export) for k, v in zip(export.kinds, row, strict=True)]
        for row in parsed[1:]
    ]


def for_parquet(kind: str, value: t.Any) -> t.Any:
    """The documented parquet typing: numbers are doubles (the rest as in RECORD messages)."""
    return float(value) if kind == "number" and value is not None else value


# --- reading what the tap gives -----------------------------------------------------------------


def meaning(kind: str, value: t.Any, typing: str) -> t.Any:
    """The meaning of a value the tap gave, checking its type.

    ``typing``: ``python`` (the readers' values), ``json`` (RECORD lines and JSONL files, read
    with ``parse_float=Decimal``) or ``parquet`` (values read back with pyarrow).
    """
    if kind == "number" and value is not None:
        if typing == "parquet":
            return value if type(value) is float else Unexpected("not a double", repr(value))
        if type(value) is float and typing == "python":
            return Decimal(repr(value))  # the decimal the float prints as
    return json_meaning(kind, value)


def exact(value: t.Any) -> t.Any:
    """A value with its type, so that ``1``, ``1.0``, ``True`` and ``Decimal(1)`` differ."""
    if isinstance(value, list):
        return [exact(item) for item in value]
    return (type(value).__name__, repr(value))


def exact_rows(rows: t.Iterable[t.Sequence[t.Any]]) -> list[list[t.Any]]:
    return [[exact(value) for value in row] for row in rows]


class Collected:
    """A sink that keeps what :func:`read_export` delivers, in the form it asks for.

    ``rows``: the record reader alone; ``columns``: typed columns from Arrow blocks (as RECORD
    messages and JSONL files are written); ``arrow``: Arrow batches (as parquet files are
    written). Rows that reach ``write_rows`` in ``arrow`` form become a batch the way the
    parquet sink makes them (:func:`rows_to_batch`).
    """

    def __init__(self, form: str) -> None:
        self.form = form
        self.rows: list[list[t.Any]] = []
        self.batches: list[pa.RecordBatch] = []
        self.by: set[str] = set()

    def begin(self, plan: ReadPlan) -> None:
        self.names, self.kinds = plan.names, plan.kinds

    def write_batch(self, batch: pa.RecordBatch) -> int:
        self.by.add("Arrow batches")
        self.batches.append(batch)
        return batch.num_rows

    def write_columns(self, columns: list[t.Any]) -> int:
        self.by.add("Arrow columns")  # Arrow arrays and lists of Python values
        rows = [list(row) for row in zip(*map(values_of, columns), strict=True)]
        self.rows += rows
        return len(rows)

    def write_rows(self, rows: t.Iterator[list[t.Any]]) -> int:
        rows = [list(row) for row in rows]
        if rows:
            self.by.add("record reader")
        if self.form == "arrow" and rows:
            self.batches.append(rows_to_batch(self.names, self.kinds, rows))
        else:
            self.rows += rows
        return len(rows)


def read(path: str, export: Export, form: str, **options: t.Any) -> Collected:
    """One file through :func:`read_export`, as a stream reads it."""
    header = CsvExport(path, delimiter=export.delimiter, what="header")
    header.close()
    assert header.header == export.columns
    plan = ReadPlan(
        path=path,
        what="property test",
        header=header.header,
        types=export.types,
        delimiter=export.delimiter,
        timezone=export.timezone,
        lists=export.lists,
        **options,
    )
    sink = Collected(form)
    counted = []
    read_export(plan, sink, counted.append)
    assert sum(counted) == len(sink.rows) + sum(batch.num_rows for batch in sink.batches)
    event(f"{form} form: {' then '.join(sorted(sink.by)) or 'no rows'}")
    return sink


def key_column(scope: str = "stream|window") -> tuple[str, SyntheticKeys]:
    return (KEY, SyntheticKeys(scope))


PARQUET_TYPES = {
    "string": "string",
    "integer": "int64",
    "number": "double",
    "boolean": "bool",
    "date-time": "string",
    "array": "list<string>",
}


def type_name(arrow_type: pa.DataType) -> str:
    """``list<string>`` whatever the list's item field is called (parquet calls it element)."""
    if pa.types.is_list(arrow_type):
        return f"list<{type_name(arrow_type.value_type)}>"
    return str(arrow_type)


def check_parquet_types(schema: pa.Schema, kinds: dict[str, str]) -> None:
    """Columns follow the schema: strings, int64, doubles, bools, RFC 3339 text, string lists."""
    got = {field.name: type_name(field.type) for field in schema}
    expected = {name: PARQUET_TYPES[kinds.get(name, "string")] for name in got}
    assert got == expected


def check_keys(raw_rows: list[list[str]], keys: list[str]) -> None:
    """A key is a hash of the raw row: equal rows share it, the n-th repetition gets ``~n``."""
    assert all(type(key) is str for key in keys)
    seen: dict[tuple[str, ...], int] = {}
    bases: dict[str, tuple[str, ...]] = {}
    for raw, key in zip(raw_rows, keys, strict=True):
        row = tuple(raw)
        repeat = seen.get(row, 0)
        seen[row] = repeat + 1
        base, _, suffix = key.partition("~")
        assert suffix == (str(repeat) if repeat else ""), (key, repeat)
        assert bases.setdefault(base, row) == row, "two different rows with one key"
    assert len(set(keys)) == len(keys)


SELECTIONS = st.one_of(st.none(), st.lists(st.booleans(), min_size=6, max_size=6))
"""All columns, or those whose flag is set."""


def selection(export: Export, flags: list[bool] | None) -> t.Callable[[str], bool] | None:
    """All columns, or some of them (at least one), as a catalog selection would."""
    if flags is None:
        return None
    kept = {name for name, flag in zip(export.columns, flags, strict=False) if flag}
    return (kept or {export.columns[0]}).__contains__


# --- the readers --------------------------------------------------------------------------------


@settings(max_examples=scaled(200), deadline=None)
@given(
    export=exports(),
    sizes=st.tuples(BLOCK_BYTES, BLOCK_ROWS),
    flags=SELECTIONS,
    partitioned=st.booleans(),
)
def test_both_readers_give_the_documented_values(export, sizes, flags, partitioned):
    """Record reader, Arrow value columns and Arrow batches: the reference values, one key."""
    note(f"CSV text: {export.text()!r}")
    keep = selection(export, flags)
    extra = PARTITION if partitioned else None
    picked = [i for i, name in enumerate(export.columns) if keep is None or keep(name)]
    kinds = {export.columns[i]: export.kinds[i] for i in picked}
    expected = [[row[i] for i in picked] for row in reference_records(export)]
    with tempfile.TemporaryDirectory() as folder, block_sizes(*sizes):
        path = export.write(folder)
        options = {"keep": keep, "extra": extra}
        plain = read(path, export, "rows", **options).rows
        with_keys = read(path, export, "rows", key=key_column(), **options).rows
        columns = read(path, export, "columns", **options).rows
        columns_with_keys = read(path, export, "columns", key=key_column(), **options).rows
        batches = read(path, export, "arrow", **options).batches

    width = len(picked)
    got = [
        [meaning(k, v, "python") for k, v in zip(kinds.values(), row[:width], strict=True)]
        for row in plain
    ]
    assert got == expected, "record reader"
    assert all(row[width:] == list((extra or {}).values()) for row in plain)
    assert exact_rows(row[:width] + row[width + 1 :] for row in with_keys) == exact_rows(plain)
    check_keys(export.rows, [row[width] for row in with_keys])
    assert exact_rows(columns) == exact_rows(plain), "Arrow columns, record reader"
    assert exact_rows(columns_with_keys) == exact_rows(with_keys), "the same, with keys"

    names = list(kinds) + list(extra or {})
    record_batch = rows_to_batch(names, [*kinds.values(), *["string"] * len(extra or {})], plain)
    arrow_rows = [row for batch in batches for row in batch.to_pylist()]
    assert exact_rows(r.values() for r in arrow_rows) == exact_rows(
        r.values() for r in record_batch.to_pylist()
    ), "Arrow batches, record reader rows as a batch"
    for batch in batches:
        check_parquet_types(batch.schema, kinds)
    got = [[meaning(k, row[n], "parquet") for n, k in kinds.items()] for row in arrow_rows]
    assert got == [
        [for_parquet(k, v) for k, v in zip(kinds.values(), row, strict=True)] for row in expected
    ], "parquet typing"


# --- the sinks ----------------------------------------------------------------------------------

BASE_CONFIG = {
    "start_date": "2025-01-01T00:00:00Z",
    # any provider block makes the config valid; the test tap's only stream is the export's
    "dfinery": {"service_id": "property-test", "api_token": "property-test-token"},
}


def one_export_tap(spec: ExportSpec) -> type[TapEventExports]:
    class OneExportTap(TapEventExports):
        def discover_streams(self) -> list[ExportStream]:
            return [ExportStream(self, spec, self.runtime)]

    return OneExportTap


def export_spec(export: Export, path: str, *, keyed: bool, partitioned: bool) -> ExportSpec:
    """A snapshot stream of the export; each fetch hands over a fresh copy of the file."""

    def fetch(_partition: t.Any) -> list[Download]:
        copy = tempfile.mktemp(dir=Path(path).parent, suffix=".csv")  # noqa: S306 - test folder
        shutil.copyfile(path, copy)
        size = Path(copy).stat().st_size
        return [Download(path=copy, bytes_received=size, bytes_written=size, seconds=0.0)]

    return ExportSpec(
        name="export",
        vendor="property-test",
        columns=export.types,
        primary_keys=(KEY,) if keyed else (),
        source=SnapshotRequest(fetch=fetch),
        limits=Limits(group="property-test", max_jobs=1),
        timezone=export.timezone,
        lists=export.lists,
        delimiter=export.delimiter,
        synthetic_key=keyed,
        partitions=[dict(PARTITION)] if partitioned else [],
    )


def run_sink(spec: ExportSpec, config: dict) -> list[dict]:
    """Sync the export's stream in this process; the Singer messages it wrote."""
    sink = io.BytesIO()
    real = sys.stdout
    wrapper = io.TextIOWrapper(sink, encoding="utf-8", write_through=True)
    sys.stdout = wrapper
    try:
        one_export_tap(spec)(config=BASE_CONFIG | config).sync_all()
    finally:
        wrapper.flush()
        output = sink.getvalue()
        wrapper.detach()
        sys.stdout = real
    # lines end at b"\n" only (str.splitlines would also cut at U+0085, U+2028, ... in values)
    return [json.loads(line, parse_float=Decimal) for line in output.split(b"\n") if line]


def record_messages(messages: list[dict]) -> list[dict]:
    return [m["record"] for m in messages if m["type"] == "RECORD"]


def manifest_paths(messages: list[dict]) -> list[str]:
    return [urlparse(url).path for m in messages if m["type"] == "BATCH" for url in m["manifest"]]


def jsonl_records(messages: list[dict]) -> list[dict]:
    rows = []
    for path in manifest_paths(messages):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as lines:
            rows += [json.loads(line, parse_float=Decimal) for line in lines]
    return rows


def parquet_records(messages: list[dict], kinds: dict[str, str]) -> list[dict]:
    rows = []
    for path in manifest_paths(messages):
        table = pq.read_table(path)
        check_parquet_types(table.schema, kinds)
        rows += table.to_pylist()
    return rows


def batch_config(folder: str, encoding: str, compression: str, batch_size: int | None) -> dict:
    return {
        "batch_config": {
            "encoding": {"format": encoding, "compression": compression},
            "storage": {"root": f"file://{folder}", "prefix": f"{encoding}-"},
            "batch_size": batch_size,
        }
    }


def sdk_path(keyed: bool) -> dict:
    """A stream map that changes nothing but makes records go through the SDK's mapper."""
    return {"stream_maps": {"export": {"__key_properties__": [KEY] if keyed else []}}}


@settings(max_examples=scaled(60), deadline=None)
@given(
    export=exports(max_rows=6),
    arrow_bytes=BLOCK_BYTES,
    stream=st.fixed_dictionaries({"keyed": st.booleans(), "partitioned": st.booleans()}),
    files=st.tuples(st.sampled_from(["none", "gzip"]), st.sampled_from([None, 1, 7])),
    row_group=st.sampled_from([3, batch_files.ROW_GROUP_ROWS]),
)
def test_every_sink_gives_the_documented_records(export, arrow_bytes, stream, files, row_group):
    """RECORD messages (fast and SDK path), JSONL and parquet BATCH files of a real stream
    (files of ``batch_size`` rows, parquet row groups of ``row_group`` rows)."""
    note(f"CSV text: {export.text()!r}")
    expected = reference_records(export)
    kinds = export.types
    keyed = stream["keyed"]
    extra = PARTITION if stream["partitioned"] else {}
    with (
        tempfile.TemporaryDirectory() as folder,
        block_sizes(arrow_bytes, csv_reader.ROWS_PER_BLOCK),
        mock.patch.object(batch_files, "ROW_GROUP_ROWS", row_group),
    ):
        spec = export_spec(export, export.write(folder), **stream)
        fast = record_messages(run_sink(spec, {}))
        sdk = record_messages(run_sink(spec, sdk_path(keyed)))
        jsonl = jsonl_records(run_sink(spec, batch_config(folder, "jsonl", *files)))
        parquet = parquet_records(run_sink(spec, batch_config(folder, "parquet", *files)), kinds)

    names = list(kinds) + ([KEY] if keyed else []) + list(extra)

    def as_rows(found: list[dict]) -> list[list[t.Any]]:
        assert all(list(record) == names for record in found), "every column, in order"
        return [list(record.values()) for record in found]

    as_rows(parquet)
    assert exact_rows(as_rows(sdk)) == exact_rows(as_rows(fast)), "SDK path, fast path"
    assert exact_rows(as_rows(jsonl)) == exact_rows(as_rows(fast)), "JSONL files, RECORD lines"
    got = [[meaning(k, r[n], "json") for n, k in kinds.items()] for r in fast]
    assert got == expected, "RECORD messages"
    got = [[meaning(k, r[n], "parquet") for n, k in kinds.items()] for r in parquet]
    assert got == [
        [for_parquet(k, v) for k, v in zip(kinds.values(), row, strict=True)] for row in expected
    ], "parquet files"
    for found in (fast, parquet):
        assert all(all(r[n] == v for n, v in extra.items()) for r in found)
    if keyed:
        check_keys(export.rows, [r[KEY] for r in fast])
        assert [r[KEY] for r in parquet] == [r[KEY] for r in fast]


def test_the_sdk_sink_goes_through_the_sdk_mapper(caplog):
    """The stream map of the SDK sink above does take the SDK's path (and the plain run not)."""
    caplog.set_level(logging.INFO)
    export = Export(["a", "l"], ["integer", "array"], [["1", '["x"]']], "UTC", "json")
    with tempfile.TemporaryDirectory() as folder:
        spec = export_spec(export, export.write(folder), keyed=True, partitioned=False)
        fast = record_messages(run_sink(spec, {}))
        assert "records go through the SDK's mapper" not in caplog.text
        sdk = record_messages(run_sink(spec, sdk_path(keyed=True)))
        assert "records go through the SDK's mapper" in caplog.text
    assert fast == sdk
    assert [{k: v for k, v in r.items() if k != KEY} for r in fast] == [{"a": 1, "l": ["x"]}]


# --- synthetic keys -----------------------------------------------------------------------------


@settings(max_examples=scaled(40), deadline=None)
@given(
    export=exports(kinds="string"),
    other=dialects(),
    arrow_bytes=BLOCK_BYTES,
    record_rows=BLOCK_ROWS,
)
def test_synthetic_keys_depend_on_the_values_only(export, other, arrow_bytes, record_rows):
    """The same rows written in another dialect (delimiter, quoting, line ends, BOM, gzip) get
    the same keys from both readers; another window gets other keys."""
    again = dataclasses.replace(export, **other)
    note(f"CSV text: {export.text()!r}")
    note(f"the same rows: {again.text()!r}")
    keys = []
    with tempfile.TemporaryDirectory() as folder, block_sizes(arrow_bytes, record_rows):
        for number, written in enumerate((export, again)):
            path = written.write(folder, f"{number}.csv")
            for form in ("rows", "columns"):
                rows = read(path, written, form, key=key_column()).rows
                keys.append([row[-1] for row in rows])
        path = export.write(folder, "other-window.csv")
        other_window = read(path, export, "rows", key=key_column("stream|w2")).rows
    assert keys[1:] == keys[:1] * 3, "record reader, Arrow columns; two dialects"
    check_keys(export.rows, keys[0])
    assert not {row[-1] for row in other_window} & set(keys[0])
