"""Value converters: export text to typed values, compiled once per column.

Column types are those of the contract (string, integer, number, boolean, date-time, array);
``converter_for`` gives the converter of one, and ``convert_column`` runs one over a column of
a block so that the loop stays in C where it can.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import typing as t
from decimal import Decimal
from zoneinfo import ZoneInfo

if t.TYPE_CHECKING:
    from collections.abc import Callable

from tap_event_exports.engine.lists import to_array

COLUMN_TYPES = ("string", "integer", "number", "boolean", "date-time", "array")
NULL_OR_SELF = {"": None, "null": None}.get
"""``NULL_OR_SELF(v, v)``: ``None`` for the null spellings, else the value itself (in C)."""
UTC = dt.timezone.utc
Result = t.TypeVar("Result")


def property_schema(column_type: str) -> dict[str, t.Any]:
    """The JSON schema of a nullable column of one of :data:`COLUMN_TYPES`."""
    if column_type == "date-time":
        return {"type": ["string", "null"], "format": "date-time"}
    if column_type == "array":
        return {"type": ["array", "null"], "items": {}}
    return {"type": [column_type, "null"]}


def column_type(prop: dict[str, t.Any]) -> str:
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


class CachedConverter:
    """A converter that remembers what it converted: exports repeat values endlessly."""

    CACHE_LIMIT = 1 << 13

    def __init__(self) -> None:
        """An empty cache."""
        self._cache: dict[str, t.Any] = {}
        self.cached = self._cache.get
        """The converted value of a value seen before, else ``None`` (a fast path for loops)."""

    def _remember(self, value: str, result: Result) -> Result:
        if len(self._cache) >= self.CACHE_LIMIT:
            self._cache.clear()
        self._cache[value] = result
        return result


class ArrayReader(CachedConverter):
    """:func:`to_array` with a cache: list columns repeat the same few values endlessly.

    A cached list is shared by the records that hold it; records are read-only downstream.
    Once full, the cache keeps what it holds (the frequent values come early) instead of
    starting again at every new value, and starts again only after many misses in a row
    (the values have moved on): lists with many distinct values thrashed it before.
    """

    CACHE_LIMIT = 1 << 14
    MISSES_BEFORE_RESTART = 4 * CACHE_LIMIT

    def __init__(self, syntax: str = "json") -> None:
        """Read lists written in ``syntax`` (see ``engine.lists.LIST_SYNTAXES``)."""
        super().__init__()
        self.syntax = syntax
        self._misses = 0

    def _remember_list(self, value: str, result: list[t.Any]) -> list[t.Any]:
        cache = self._cache
        if len(cache) < self.CACHE_LIMIT:
            cache[value] = result
        else:
            self._misses += 1
            if self._misses > self.MISSES_BEFORE_RESTART:
                cache.clear()
                self._misses = 0
        return result

    def __call__(self, value: str) -> list[t.Any]:
        """Convert one value (raises ``ValueError`` when it is not a list)."""
        hit: list[t.Any] | None = self._cache.get(value)
        if hit is not None:
            return hit
        return self._remember_list(value, to_array(value, self.syntax))


_DATETIME = re.compile(
    r"^\s*(\d{4})[-./](\d{1,2})[-./](\d{1,2})"
    r"(?:[T ]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"(?:\s*(Z|[+-]\d{2}(?::?\d{2})?))?\s*$",  # one optional run of spaces next to another
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
        cached: str | None = self._cache.get(value)
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


BUILTINS: dict[t.Any, t.Any] = {to_integer: int}
"""Builtins that read the common values of a converter's type exactly as it does (to_integer
tries int() first)."""


def convert_column(
    column: list[str | None],
    convert: Callable[[str], t.Any],
    cached: Callable[[str | None], t.Any] | None,
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
    builtin = BUILTINS.get(convert)
    if builtin is not None:
        try:
            return list(map(builtin, column))
        except ValueError:
            pass  # e.g. "12.0" for an integer: the converter decides
    return list(map(convert, t.cast("list[str]", column)))  # no nulls: checked above
