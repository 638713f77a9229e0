"""The record reader: CSV export files to typed rows with Python's csv module.

Columns are mapped by header name, never by position. Values are typed by the converters a
block of rows at a time and column by column, so the loops run in C. The Arrow reader
(:mod:`.columnar`) delivers the same values faster; this reader takes over wherever that one
cannot, and names the line and column of any bad value.
"""

from __future__ import annotations

import collections
import csv
import gzip
import io
import itertools
import operator
import sys
import typing as t

from tap_event_exports.engine.errors import DataError

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

from tap_event_exports.engine.converters import (
    NULL_OR_SELF,
    convert_column,
    converter_for,
)
from tap_event_exports.engine.synthetic_keys import SyntheticKeys

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

# --- CSV files ----------------------------------------------------------------------------------

ROWS_PER_BLOCK = 2048
"""Rows typed together, column by column."""
_READ_ERRORS = (UnicodeDecodeError, csv.Error, EOFError, OSError)
_VALUE_ERRORS = (ValueError, KeyError, SyntaxError, ArithmeticError)
Typed = tuple[int, "Callable[[str], t.Any]", str, "Callable[[str | None], t.Any] | None"]
"""A typed column: its position in the row, converter, name and cache lookup (if any; it
answers ``None`` for a null or a value not seen yet)."""


class _Irregular(Exception):
    """A block with a blank or ragged row: it is read again row by row."""


def _type_block(
    block: list[list[str]], width: int, picked: list[int] | None, typed: list[Typed]
) -> list[list[t.Any]]:
    """Typed value rows of a block of raw rows (``picked`` columns, or all)."""
    if set(map(len, block)) != {width}:
        raise _Irregular
    sources: t.Sequence[t.Sequence[str]] = block
    if picked is not None:
        # itemgetter of one position gives the value itself, of several a tuple of them
        values: list[t.Any] = list(map(operator.itemgetter(*picked), block))
        sources = [(value,) for value in values] if len(picked) == 1 else values
    nulls = NULL_OR_SELF
    rows = [list(map(nulls, source, source)) for source in sources]
    for position, convert, _name, cached in typed:
        column = list(map(operator.itemgetter(position), rows))
        converted = convert_column(column, convert, cached)
        collections.deque(map(operator.setitem, rows, itertools.repeat(position), converted), 0)
    return rows


class CsvExport:
    """One downloaded CSV file: its header, then its rows as typed records."""

    def __init__(self, path: str, *, delimiter: str = ",", what: str) -> None:
        """Open ``path`` (UTF-8, optional BOM, any line ends) and read its header."""
        self.what = what
        self.path = path
        self.delimiter = delimiter
        raw: t.BinaryIO | gzip.GzipFile = open(path, "rb")  # noqa: SIM115 - closed by close()
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            raw = gzip.GzipFile(fileobj=raw)
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
            lists: how list values are written (see ``engine.lists.LIST_SYNTAXES``).
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
                    collections.deque(map(list.append, rows, keyer.of_rows(block)), 0)
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
        nulls = NULL_OR_SELF
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
