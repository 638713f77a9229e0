"""CSV export files to typed records: the converters, and the record reader (Python's csv).

Columns are mapped by header name, never by position. Values are typed by converters compiled
once per file header from the stream's schema, a block of rows at a time and column by column,
so the loops run in C. The Arrow reader (:mod:`.columnar`) uses the same converters; this
reader takes over wherever that one cannot, and names the line of any bad value.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import gzip
import hashlib
import io
import itertools
import json
import math
import operator
import re
import sys
import typing as t
from decimal import Decimal
from zoneinfo import ZoneInfo

from tap_event_exports.engine.errors import DataError

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

COLUMN_TYPES = ("string", "integer", "number", "boolean", "date-time", "array")
_NULL_OR_SELF = {"": None, "null": None}.get
"""``_NULL_OR_SELF(v, v)``: ``None`` for the null spellings, else the value itself (in C)."""
UTC = dt.timezone.utc


def property_schema(column_type: str) -> dict:
    """The JSON schema of a nullable column of one of :data:`COLUMN_TYPES`."""
    if column_type == "date-time":
        return {"type": ["string", "null"], "format": "date-time"}
    if column_type == "array":
        return {"type": ["array", "null"], "items": {}}
    return {"type": [column_type, "null"]}


def column_type(prop: dict) -> str:
    """The column type a property schema stands for (the inverse of :func:`property_schema`)."""
    types = prop.get("type", "string")
    types = [types] if isinstance(types, str) else list(types)
    if prop.get("format") == "date-time":
        return "date-time"
    for name in ("array", "boolean", "integer", "number"):
        if name in types:
            return name
    return "string"


# --- value converters ----------------------------------------------------------------------

_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "t": True, "f": False}


def to_boolean(value: str) -> bool:
    """``TRUE``/``false``/``1``/``0`` to a bool."""
    try:
        return _BOOLEANS[value]
    except KeyError:
        return _BOOLEANS[value.strip().lower()]


def to_integer(value: str) -> int:
    """An integer; ``12.0`` is accepted, ``12.5`` is not."""
    try:
        return int(value)
    except ValueError:
        number = Decimal(value)
        if number != number.to_integral_value():
            raise
        return int(number)


def to_number(value: str) -> int | float | Decimal:
    """A number that prints back exactly as the export wrote it.

    Up to 15 significant digits a float round-trips exactly; longer values stay ``Decimal``
    (emitted as JSON numbers with every digit).
    """
    if "." not in value and "e" not in value and "E" not in value:
        return int(value)
    if len(value) <= 16:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
        return number
    decimal = Decimal(value)
    if not decimal.is_finite():
        raise ValueError(value)
    return decimal


_QUOTED = r"(?:'[^'\\\n\r]*'|\"[^\"\\\n\r]*\")"
_SIMPLE_LIST = re.compile(rf"\[\s*(?:{_QUOTED}\s*(?:,\s*{_QUOTED}\s*)*,?\s*)?\]")
_SIMPLE_ITEM = re.compile(r"'([^'\\\n\r]*)'|\"([^\"\\\n\r]*)\"")
_SPACE = frozenset(" \t\r\n")
_QUOTES = frozenset("'\"")
LIST_SYNTAXES = ("json", "quoted")
"""How a vendor writes list values: JSON text (``["1","2"]``), or quoted items
(myTracker's ``['a','b']``: items written as they are, in single quotes, or in double quotes
when they hold a single quote; no escapes, so items may hold real line breaks)."""
_PARSE_BUDGET = 1 << 16
"""Candidate item ends tried before a value is refused (hostile text cannot loop for long)."""


def to_array(value: str, syntax: str = "json") -> list:
    """A list from a vendor's list text (see :data:`LIST_SYNTAXES`).

    ``json`` values that are not JSON are read as quoted items, as earlier versions did.
    Raises ``ValueError`` when the value is not a list.
    """
    if _SIMPLE_LIST.fullmatch(value):  # quoted strings without escapes: read them directly
        return [single or double for single, double in _SIMPLE_ITEM.findall(value)]
    if syntax == "json":
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
    items = quoted_items(value)
    if items is None:
        raise ValueError(value)
    return items


def quoted_items(value: str) -> list[str] | None:
    """The items of ``['a', "it's", 'b, c']``, or ``None`` when it is not such a list.

    An item ends at its closing quote only where a comma and the next item's opening quote,
    or the closing bracket, follow; if the rest does not parse, a later quote is tried.
    """
    text = value.strip(" \t\r\n")
    end = len(text) - 1
    if end < 1 or text[0] != "[" or text[end] != "]":
        return None
    start = _skip_space(text, 1)
    if start == end:
        return []
    items: list[str] = []
    choices: list[tuple[int, int]] = []
    """(start, next quote to try) of every item taken, to go back to when the rest fails."""
    search, budget = start + 1, _PARSE_BUDGET
    while budget > 0:
        quote = text[start]
        close = text.find(quote, search, end) if quote in _QUOTES else -1
        while close != -1 and budget > 0:
            budget -= 1
            after = _skip_space(text, close + 1)
            if after == end:
                items.append(text[start + 1 : close])
                return items
            if text[after] == ",":
                following = _skip_space(text, after + 1)
                if following == end:  # a trailing comma
                    items.append(text[start + 1 : close])
                    return items
                if text[following] in _QUOTES:
                    choices.append((start, close + 1))
                    items.append(text[start + 1 : close])
                    start, search = following, following + 1
                    break
            close = text.find(quote, close + 1, end)
        else:
            if not choices:
                return None
            start, search = choices.pop()
            items.pop()
    return None


def _skip_space(text: str, position: int) -> int:
    while text[position] in _SPACE:
        position += 1
    return position


class CachedConverter:
    """A converter that remembers what it converted: exports repeat values endlessly."""

    CACHE_LIMIT = 1 << 13

    def __init__(self) -> None:
        """An empty cache."""
        self._cache: dict[str, t.Any] = {}
        self.cached = self._cache.get
        """The converted value of a value seen before, else ``None`` (a fast path for loops)."""

    def _remember(self, value: str, result: t.Any) -> t.Any:
        if len(self._cache) >= self.CACHE_LIMIT:
            self._cache.clear()
        self._cache[value] = result
        return result


class ArrayReader(CachedConverter):
    """:func:`to_array` with a cache: list columns repeat the same few values endlessly.

    A cached list is shared by the records that hold it; records are read-only downstream.
    """

    CACHE_LIMIT = 1 << 12

    def __init__(self, syntax: str = "json") -> None:
        """Read lists written in ``syntax`` (see :data:`LIST_SYNTAXES`)."""
        super().__init__()
        self.syntax = syntax

    def __call__(self, value: str) -> list:
        """Convert one value (raises ``ValueError`` when it is not a list)."""
        hit = self._cache.get(value)
        if hit is not None:
            return hit
        return self._remember(value, to_array(value, self.syntax))


_DATETIME = re.compile(
    r"^\s*(\d{4})[-./](\d{1,2})[-./](\d{1,2})"
    r"(?:[T ]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?\s*$",
    re.IGNORECASE,
)


_MINUTES_SECONDS = [f"{minute:02d}:{second:02d}" for minute in range(60) for second in range(60)]


class DateTimeReader(CachedConverter):
    """Reads the date-time forms exports use and renders RFC 3339 in UTC.

    ``2025-01-06T10:38:10.036Z``, ``2025-01-06 10:38:10.036``, ``2025.1.6 10:35``, ``2025-01-06``
    and unix seconds or milliseconds. Values without an offset are read in ``timezone``.
    Results are cached: exports repeat the same timestamps many times.
    """

    def __init__(self, timezone: str = "UTC") -> None:
        """Naive values are local times in ``timezone``."""
        super().__init__()
        self.tz = ZoneInfo(timezone)
        self._hours: dict[int, str] = {}

    def __call__(self, value: str) -> str:
        """Convert one value (raises ``ValueError`` when it is not a date-time)."""
        cached = self._cache.get(value)
        if cached is not None:
            return cached
        if value.isdigit():  # unix time: nearly every value distinct, rendered without a cache
            return self._unix(value)
        return self._remember(value, self.parse(value).isoformat())

    def _unix(self, value: str) -> str:
        """Unix seconds or milliseconds as ``parse(value).isoformat()`` renders them.

        The date and hour come from a per-hour cache, minutes and seconds from a table.
        """
        number = int(value)
        millis = 0
        if number > 100_000_000_000:  # milliseconds
            number, millis = divmod(number, 1000)
        hour, rest = divmod(number, 3600)
        prefix = self._hours.get(hour)
        if prefix is None:
            try:
                prefix = dt.datetime.fromtimestamp(hour * 3600, tz=UTC).isoformat()[:14]
            except (OverflowError, OSError) as exc:
                raise ValueError(value) from exc
            if len(self._hours) >= self.CACHE_LIMIT:
                self._hours.clear()
            self._hours[hour] = prefix
        if millis:
            return f"{prefix}{_MINUTES_SECONDS[rest]}.{millis:03d}000+00:00"
        return prefix + _MINUTES_SECONDS[rest] + "+00:00"

    def parse(self, value: str) -> dt.datetime:
        """The aware UTC datetime a value stands for."""
        if len(value) >= 19 and value[4] == "-" and value[10] in "T ":
            try:  # ISO 8601, the common case: parsed in C
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=self.tz)
                return parsed.astimezone(UTC)
        if value.isdigit():
            number = int(value)
            millis = 0
            if number > 100_000_000_000:  # milliseconds
                number, millis = divmod(number, 1000)
            try:
                moment = dt.datetime.fromtimestamp(number, tz=UTC)
            except (OverflowError, OSError) as exc:
                raise ValueError(value) from exc
            return moment.replace(microsecond=millis * 1000)
        match = _DATETIME.match(value)
        if not match:
            raise ValueError(value)
        year, month, day, hour, minute, second, fraction, offset = match.groups()
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        tz: dt.tzinfo = self.tz
        if offset:
            if offset.upper() == "Z":
                tz = UTC
            else:
                sign = -1 if offset[0] == "-" else 1
                digits = offset[1:].replace(":", "")
                hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
                tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
        local = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=tz,
        )
        return local.astimezone(UTC)


def converter_for(kind: str, timezone: str, lists: str = "json") -> Callable[[str], t.Any] | None:
    """The converter of a column type; ``None`` for strings, which need none.

    ``timezone`` is where naive date-times are read, ``lists`` the vendor's list syntax.
    """
    if kind == "integer":
        return to_integer
    if kind == "number":
        return to_number
    if kind == "boolean":
        return to_boolean
    if kind == "date-time":
        return DateTimeReader(timezone)
    if kind == "array":
        return ArrayReader(lists)
    return None


# --- synthetic keys --------------------------------------------------------------------------


class SyntheticKeys:
    """``_record_id`` values for exports without a vendor id.

    A key is a hash of the row's raw values and its window, so extracting the same data again
    gives the same key; the n-th repetition of an identical row in one export gets ``~n``
    appended, so identical rows stay distinct.
    """

    def __init__(self, scope: str) -> None:
        """``scope`` names the export the rows come from (stream, partition and window)."""
        self._scope = hashlib.blake2b(scope.encode() + b"\x1e", digest_size=16)
        self._seen: dict[bytes, int] = {}

    def __call__(self, row: list[str]) -> str:
        """The key of one raw row."""
        return self.of_text("\x1f".join(row))

    def of_text(self, joined: str) -> str:
        """The key of one raw row given as its values joined by the unit separator."""
        hasher = self._scope.copy()
        hasher.update(joined.encode())
        digest = hasher.digest()
        repeat = self._seen.get(digest)
        self._seen[digest] = 1 if repeat is None else repeat + 1
        key = digest.hex()
        return key if repeat is None else f"{key}~{repeat}"


# --- CSV files ----------------------------------------------------------------------------------

ROWS_PER_BLOCK = 2048
"""Rows typed together, column by column."""
_READ_ERRORS = (UnicodeDecodeError, csv.Error, EOFError, OSError)
_VALUE_ERRORS = (ValueError, KeyError, SyntaxError, ArithmeticError)
Typed = tuple[int, "Callable[[str], t.Any]", str, "Callable[[str], t.Any] | None"]
"""A typed column: its position in the row, converter, name and cache lookup (if any)."""


_BUILTIN: dict[t.Any, t.Any] = {to_integer: int}
"""Builtins that read the common values of a converter's type exactly as it does (to_integer
tries int() first)."""


class _Irregular(Exception):
    """A block with a blank or ragged row: it is read again row by row."""


def _type_block(
    block: list[list[str]], width: int, picked: list[int] | None, typed: list[Typed]
) -> list[list[t.Any]]:
    """Typed value rows of a block of raw rows (``picked`` columns, or all)."""
    if set(map(len, block)) != {width}:
        raise _Irregular
    sources: list[t.Sequence[str]] = block
    if picked is not None:
        sources = list(map(operator.itemgetter(*picked), block))
        if len(picked) == 1:
            sources = [(value,) for value in sources]
    nulls = _NULL_OR_SELF
    rows = [list(map(nulls, source, source)) for source in sources]
    for position, convert, _name, cached in typed:
        column = list(map(operator.itemgetter(position), rows))
        converted = convert_column(column, convert, cached)
        collections.deque(map(operator.setitem, rows, itertools.repeat(position), converted), 0)
    return rows


def convert_column(
    column: list[str | None],
    convert: Callable[[str], t.Any],
    cached: Callable[[str], t.Any] | None,
) -> list[t.Any]:
    """Convert one column of a block (``None`` for nulls); raises what the converter raises."""
    if cached is not None:
        hits = list(map(cached, column))  # None for nulls and for values not seen yet
        if None in hits:
            for index, (value, hit) in enumerate(zip(column, hits, strict=True)):
                if hit is None and value is not None:
                    hits[index] = convert(value)
        return hits
    if None in column:
        return [None if value is None else convert(value) for value in column]
    builtin = _BUILTIN.get(convert)
    if builtin is not None:
        try:
            return list(map(builtin, column))
        except ValueError:
            pass  # e.g. "12.0" for an integer: the converter decides
    return list(map(convert, column))


class CsvExport:
    """One downloaded CSV file: its header, then its rows as typed records."""

    def __init__(self, path: str, *, delimiter: str = ",", what: str) -> None:
        """Open ``path`` (UTF-8, optional BOM, any line ends) and read its header."""
        self.what = what
        self.path = path
        self.delimiter = delimiter
        raw: t.BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            raw = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
        else:
            raw.seek(0)
        self._text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        self._rows = csv.reader(self._text, delimiter=delimiter, strict=True)
        self._passed = 0
        """CSV records (blank lines too) after the header passed over by :meth:`_skip`."""
        first = self._next_row()
        self.header: list[str] = [name.strip() for name in first] if first else []
        duplicates = sorted({name for name in self.header if self.header.count(name) > 1})
        if duplicates:
            self.close()
            msg = f"{what}: the CSV header repeats column(s) {', '.join(duplicates)}"
            raise DataError(msg)

    def _next_row(self) -> list[str] | None:
        try:
            row = next(self._rows, None)
        except UnicodeDecodeError as exc:
            msg = f"{self.what}: line {self._rows.line_num + 1} is not valid UTF-8 ({exc.reason})"
            raise DataError(msg) from None
        except (csv.Error, EOFError, OSError) as exc:
            msg = f"{self.what}: malformed CSV near line {self._rows.line_num}: {exc}"
            raise DataError(msg) from None
        return row

    def close(self) -> None:
        """Release the file."""
        self._text.close()

    def rows(
        self,
        types: dict[str, str],
        *,
        timezone: str,
        lists: str = "json",
        keep: Callable[[str], bool] | None = None,
        extra: dict[str, t.Any] | None = None,
        key: tuple[str, SyntheticKeys] | None = None,
        skip: int = 0,
    ) -> tuple[list[str], Iterator[list[t.Any]]]:
        """The record column names, and an iterator of typed value lists in that order.

        Args:
            types: column type per header name (every header name must be present).
            timezone: where naive date-times are read.
            lists: how list values are written (see :data:`LIST_SYNTAXES`).
            keep: which columns to deliver (catalog selection); all when ``None``.
            extra: constant columns added to every record (partition columns).
            key: name and generator of a synthetic key column.
            skip: rows (not counting blank lines) already delivered by another reader; they
                are passed over untyped and unkeyed.
        """
        header = self.header
        picked = [i for i, name in enumerate(header) if keep is None or keep(name)]
        typed = []
        for position, index in enumerate(picked):
            convert = converter_for(types[header[index]], timezone, lists)
            if convert is not None:
                cached = getattr(convert, "cached", None)
                typed.append((position, convert, header[index], cached))
        names = self.names(keep=keep, extra=extra, key=key)
        self._skip(skip)
        return names, self._typed_rows(picked, typed, types, extra, key)

    def names(
        self,
        *,
        keep: Callable[[str], bool] | None = None,
        extra: dict[str, t.Any] | None = None,
        key: tuple[str, SyntheticKeys] | None = None,
    ) -> list[str]:
        """The record column names :meth:`rows` delivers for these arguments, in order."""
        names = [name for name in self.header if keep is None or keep(name)]
        if key is not None:
            names.append(key[0])
        if extra:
            names.extend(extra)
        return names

    def _skip(self, count: int) -> None:
        """Pass over ``count`` rows (blank lines do not count)."""
        while count > 0:
            row = self._next_row()
            if row is None:
                return
            self._passed += 1
            if row:
                count -= 1

    def _typed_rows(
        self,
        picked: list[int],
        typed: list[Typed],
        types: dict[str, str],
        extra: dict[str, t.Any] | None,
        key: tuple[str, SyntheticKeys] | None,
    ) -> Iterator[list[t.Any]]:
        """Rows typed a block at a time, column by column (the loops run in C).

        A block with anything unusual (a blank or ragged row, a value a converter refuses, a
        decoding error) is read again from its first row, one row at a time, so that the rows
        before the problem are delivered and the error names its exact line.
        """
        width = len(self.header)
        subset = len(picked) != width
        extra_values = list(extra.values()) if extra else []
        keyer = key[1] if key is not None else None
        done = self._passed  # CSV records read so far, blank lines included
        try:
            while True:
                try:
                    block = list(itertools.islice(self._rows, ROWS_PER_BLOCK))
                    if not block:
                        return
                    rows = _type_block(block, width, picked if subset else None, typed)
                except (_Irregular, *_READ_ERRORS, *_VALUE_ERRORS):
                    self.close()
                    yield from self._row_by_row(done, picked, typed, types, extra_values, keyer)
                    return
                if keyer is not None:
                    collections.deque(map(list.append, rows, map(keyer, block)), 0)
                if extra_values:
                    collections.deque(map(list.extend, rows, itertools.repeat(extra_values)), 0)
                done += len(block)
                yield from rows
        finally:
            self.close()

    def _row_by_row(  # noqa: PLR0917 - the parts of one read
        self,
        skip: int,
        picked: list[int],
        typed: list[Typed],
        types: dict[str, str],
        extra_values: list[t.Any],
        keyer: SyntheticKeys | None,
    ) -> Iterator[list[t.Any]]:
        """The rows after the first ``skip`` of a fresh read of the file, one at a time."""
        again = CsvExport(self.path, delimiter=self.delimiter, what=self.what)
        try:
            for _ in range(skip):
                again._next_row()
            yield from again._typed_row_by_row(picked, typed, types, extra_values, keyer)
        finally:
            again.close()

    def _typed_row_by_row(
        self,
        picked: list[int],
        typed: list[Typed],
        types: dict[str, str],
        extra_values: list[t.Any],
        keyer: SyntheticKeys | None,
    ) -> Iterator[list[t.Any]]:
        width = len(self.header)
        subset = len(picked) != width
        nulls = _NULL_OR_SELF
        rows = self._rows
        next_row = self._next_row
        while True:
            row = next_row()
            if row is None:
                return
            if len(row) != width:
                if not row:
                    continue  # blank line
                msg = (
                    f"{self.what}: line {rows.line_num} has {len(row)} fields, "
                    f"the header has {width}"
                )
                raise DataError(msg)
            source = [row[i] for i in picked] if subset else row
            values = list(map(nulls, source, source))
            for position, convert, name, _cached in typed:
                value = values[position]
                if value is not None:
                    try:
                        values[position] = convert(value)
                    except _VALUE_ERRORS:
                        raise DataError(
                            f"{self.what}: line {rows.line_num}, column {name!r}: cannot read "
                            f"{value!r} as {types[name]} (set column_types to override)"
                        ) from None
            if keyer is not None:
                values.append(keyer(row))
            if extra_values:
                values.extend(extra_values)
            yield values

    def records(
        self,
        types: dict[str, str],
        *,
        timezone: str,
        lists: str = "json",
        keep: Callable[[str], bool] | None = None,
        extra: dict[str, t.Any] | None = None,
        key: tuple[str, SyntheticKeys] | None = None,
    ) -> Iterator[dict[str, t.Any]]:
        """Yield typed records (dicts); the arguments are those of :meth:`rows`."""
        names, rows = self.rows(
            types, timezone=timezone, lists=lists, keep=keep, extra=extra, key=key
        )
        for values in rows:
            yield dict(zip(names, values, strict=True))
