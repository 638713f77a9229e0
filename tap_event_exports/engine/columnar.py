"""CSV export files to typed Arrow batches, for parquet output with no per-row Python.

A file is parsed one whole-row block at a time (constant memory) by the compiled parser
(:mod:`.native_csv`) or, for blocks it leaves, pyarrow's CSV reader, keeping every value as
text with the null spellings (empty, ``null``) read as nulls. Columns are then
typed in bulk: strings pass through, integers and numbers are read in the forms the record
reader accepts by the compiled helpers (:mod:`.native_numbers`; else checked and cast by Arrow
kernels), booleans checked and cast by Arrow kernels, date-times in the common forms are
parsed and rendered by Arrow (:mod:`.arrow_datetimes`), and other date-times and lists are
converted once per distinct value by the record reader's own converters (exports repeat them
endlessly). Anything outside those forms stops the columnar reader with :class:`NotColumnar`,
and the caller continues the file from that batch with the record reader, which either types
the value or names the line that is wrong: both readers always give the same values.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import typing as t

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from singer_sdk.contrib.msgspec import encoder

from tap_event_exports.engine import native_csv
from tap_event_exports.engine.arrow_datetimes import REPEATS_FROM, ArrowDateTimes
from tap_event_exports.engine.block_keys import block_digests, block_keys
from tap_event_exports.engine.concurrency import read_ahead
from tap_event_exports.engine.converters import convert_column, converter_for
from tap_event_exports.engine.csv_blocks import (
    BOM,
    NULL_SPELLINGS,
    first_row_end,
    stray_quote,
    whole_rows,
    with_nulls,
)
from tap_event_exports.engine.errors import NotColumnar
from tap_event_exports.engine.native_csv import BlockParser
from tap_event_exports.engine.native_lists import json_lists
from tap_event_exports.engine.native_numbers import number_json, read_numbers
from tap_event_exports.engine.synthetic_keys import SyntheticKeys
from tap_event_exports.engine.typed_columns import SpreadJson, values_of

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

    from tap_event_exports.engine.typed_columns import TypedColumn

BLOCK_SIZE = 1 << 20
"""Bytes of CSV per batch: fewer kernel calls per row as it grows, more memory held (1 MiB
against 768 KiB: about 5 % less time, 6 MiB more peak memory in a parquet run; 1.5 MiB came
within 5 MiB of the 150 MiB bound)."""
INTEGER = r"^-?[0-9]{1,18}$"
NUMBER = r"^-?[0-9]{1,20}(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?$"
TRUE = pa.array(["true", "1", "t"])
FALSE = pa.array(["false", "0", "f"])
NO_BOOLEAN = pa.scalar(None, pa.bool_())
ZERO = pa.scalar(0.0)
"""Arrow scalars are made once: a Python value given to a kernel costs a failed numpy import."""
ARROW_TYPES = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "date-time": pa.string(),  # RFC 3339 text, as in RECORD messages
}


def _use_jemalloc() -> None:
    """Arrow's jemalloc pool: peak memory stays flat over long files (mimalloc's grows)."""
    with contextlib.suppress(NotImplementedError, pa.ArrowNotImplementedError):  # no jemalloc
        pa.set_memory_pool(pa.jemalloc_memory_pool())


_use_jemalloc()


def arrow_type(kind: str) -> pa.DataType | None:
    """The Arrow type of a column type; ``None`` for lists (inferred from their items)."""
    return ARROW_TYPES.get(kind)


def rows_to_batch(names: list[str], kinds: list[str], rows: list[list[t.Any]]) -> pa.RecordBatch:
    """Typed value rows of the record reader as an Arrow batch with the columnar reader's types."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = []
    for kind, column in zip(kinds, columns, strict=True):
        if kind == "array":
            arrays.append(_list_array(column))
            continue
        values = column
        if kind == "number":  # doubles, as the columnar reader gives them (zero without sign)
            values = tuple(None if v is None else float(v) + 0.0 for v in column)
        arrays.append(pa.array(values, arrow_type(kind)))
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _list_array(values: t.Sequence[t.Any]) -> pa.Array:
    """Lists with their items' type; lists mixing item types get their items as JSON text."""
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        texts = [
            None if items is None else [i if isinstance(i, str) else json.dumps(i) for i in items]
            for items in values
        ]
        array = pa.array(texts, pa.list_(pa.string()))
    if array.type == pa.null() or (
        pa.types.is_list(array.type) and pa.types.is_null(array.type.value_type)
    ):  # no item anywhere (nulls, or only empty lists): lists of strings, as elsewhere
        return array.cast(pa.list_(pa.string()))
    return array


class ColumnarCsv:
    """One downloaded CSV file read as typed Arrow batches."""

    def __init__(
        self,
        path: str,
        header: list[str],
        *,
        delimiter: str,
        timezone: str,
        lists: str = "json",
    ) -> None:
        """``header`` is the file's header as the record reader read it (names stripped).

        ``timezone`` and ``lists`` are those of :func:`~.records.converter_for`.
        """
        self.path = path
        self.header = header
        self.delimiter = delimiter
        self.timezone = timezone
        self.lists = lists

    def batches(
        self,
        types: dict[str, str],
        *,
        keep: Callable[[str], bool] | None = None,
        extra: dict[str, t.Any] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Typed batches of the selected columns plus constant ``extra`` columns.

        Raises :class:`NotColumnar` (with the number of rows delivered) at the first batch it
        cannot type exactly as the record reader would.
        """
        names = [name for name in self.header if keep is None or keep(name)]
        converters = {
            name: converter_for(types[name], self.timezone, self.lists)
            for name in names
            if types[name] in ("date-time", "array")
        }
        bulk_datetimes = ArrowDateTimes(self.timezone)
        for done, raw, _ in self._counted_blocks():
            arrays = []
            for name in names:
                kind = types[name]
                column = raw.column(name)
                typed = None
                if kind == "date-time":
                    typed = bulk_datetimes(column)
                if typed is None:
                    typed = _typed(column, kind, converters.get(name))
                if typed is None:
                    raise NotColumnar(done, _outside(name, kind))
                arrays.append(typed)
            for value in (extra or {}).values():
                arrays.append(pa.array([value] * raw.num_rows, pa.string()))
            yield pa.RecordBatch.from_arrays(arrays, names=names + list(extra or {}))

    def value_columns(
        self,
        types: dict[str, str],
        *,
        keep: Callable[[str], bool] | None = None,
        extra: dict[str, t.Any] | None = None,
        key: tuple[str, SyntheticKeys] | None = None,
    ) -> Iterator[list[list[t.Any]]]:
        """Typed Python values, a block at a time, as columns in the record reader's order.

        :meth:`typed_columns` with every column as Python values.
        """
        for columns in self.typed_columns(types, keep=keep, extra=extra, key=key):
            yield [values_of(column) for column in columns]

    def typed_columns(
        self,
        types: dict[str, str],
        *,
        keep: Callable[[str], bool] | None = None,
        extra: dict[str, t.Any] | None = None,
        key: tuple[str, SyntheticKeys] | None = None,
    ) -> Iterator[list[TypedColumn]]:
        """Typed values, a block at a time, as columns in the record reader's order.

        The columns are those of :meth:`CsvExport.rows` (selected columns, synthetic key,
        ``extra``) with exactly its values: bulk typing where Arrow or the compiled helpers
        read a column exactly (integers, booleans, the common date-time forms and synthetic
        keys, which stay Arrow arrays; lists, as ``JsonText``), and the record reader's
        converters for the rest, which give lists of Python values (``SpreadJson`` where a
        block repeats its values). Raises :class:`NotColumnar` (with the rows delivered)
        where it cannot.
        """
        names = [name for name in self.header if keep is None or keep(name)]
        converters = {name: converter_for(types[name], self.timezone, self.lists) for name in names}
        bulk_datetimes = ArrowDateTimes(self.timezone)
        keyer = key[1] if key is not None else None
        prefix = keyer.prefix if keyer is not None and not keyer.by_name else None
        for done, raw, digests in self._counted_blocks(
            as_written=keyer is not None, digests_after=prefix
        ):
            columns = []
            for name in names:
                column = raw.column(name)
                if keyer is not None:  # read as written: the null spellings become nulls here
                    column = with_nulls(column)
                values = _typed_values(column, types[name], converters[name], bulk_datetimes)
                if values is None:
                    raise NotColumnar(done, _outside(name, types[name]))
                columns.append(values)
            if keyer is not None:
                columns.append(block_keys(keyer, raw, digests))
            for value in (extra or {}).values():
                columns.append([value] * raw.num_rows)
            yield columns

    def _counted_blocks(
        self, *, as_written: bool = False, digests_after: bytes | None = None
    ) -> Iterator[tuple[int, pa.RecordBatch, t.Any]]:
        """Text blocks, each with the rows delivered before it, parsed one block ahead.

        ``as_written`` keeps every value's text (no nulls), as synthetic keys need. With
        ``digests_after`` (a synthetic key's prefix), blocks come with their rows' digests
        (:func:`block_digests`), hashed on the parsing thread too.
        A block that cannot be parsed raises :class:`NotColumnar`; the caller must have
        delivered every block it was given before asking for the next.
        """
        done = 0
        source = _with_digests(self._blocks(as_written=as_written), digests_after)
        with contextlib.closing(read_ahead(source, name="csv-blocks")) as blocks:
            while True:
                try:
                    entry = next(blocks, None)
                except (pa.ArrowException, OSError, EOFError) as exc:
                    raise NotColumnar(done, f"CSV: {exc}") from None
                if entry is None:
                    return
                raw, digests = entry
                yield done, raw, digests
                done += raw.num_rows

    def _header_end(self, block: bytes) -> int:
        """Where the header row ends in the first block, checked against the header as read.

        Exactly one row, the header, must come before the cut: a file whose rows end in lone
        carriage returns has no such cut, and its rows are left to the record reader rather
        than lost with the header.
        """
        end = first_row_end(block)
        try:
            rows = list(
                csv.reader(io.StringIO(block[:end].decode("utf-8-sig")), delimiter=self.delimiter)
            )
        except (UnicodeDecodeError, csv.Error):
            raise _header_end_error() from None
        if len(rows) != 1 or [name.strip() for name in rows[0]] != self.header:
            raise _header_end_error()
        return end

    def _blocks(self, *, as_written: bool = False) -> Generator[pa.RecordBatch, None, None]:
        """The file's rows as text batches, parsed one whole-row block at a time.

        The compiled parser takes the blocks it can, pyarrow the rest, with the same result.
        pyarrow's streaming reader reads several blocks ahead (memory grows with the block
        size); cutting the file here keeps one block in memory, and a block of about a megabyte
        keeps the per-batch cost of the kernels small.
        """
        parse = pcsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True)
        convert = pcsv.ConvertOptions(
            column_types=dict.fromkeys(self.header, pa.string()),
            null_values=NULL_SPELLINGS.to_pylist(),
            strings_can_be_null=not as_written,  # every value as written, for synthetic keys
            quoted_strings_can_be_null=not as_written,
        )
        compiled = BlockParser(self.header, self.delimiter) if native_csv.available() else None
        with open(self.path, "rb") as raw:
            source: io.BufferedIOBase = raw
            if raw.read(2) == b"\x1f\x8b":
                raw.seek(0)
                source = gzip.GzipFile(fileobj=raw)
            else:
                raw.seek(0)
            header = True
            for whole in whole_rows(source, BLOCK_SIZE):
                block = whole
                if header:  # the first row is the header, already read by the record reader
                    header = False
                    block = whole[self._header_end(bytes(whole)) :]
                    if not block:
                        continue
                if block[: len(BOM)] == BOM:
                    msg = "a row that begins with U+FEFF (pyarrow drops it at a block's start)"
                    raise pa.ArrowInvalid(msg)
                if stray_quote(block, self.delimiter):
                    msg = "a quote inside a field, next to other characters (not RFC 4180 CSV)"
                    raise pa.ArrowInvalid(msg)
                if compiled is not None:
                    batch = compiled.parse(block, nulls=not as_written)
                    if batch is not None:
                        if batch.num_rows:
                            yield batch
                        continue
                table = pcsv.read_csv(
                    pa.py_buffer(block),
                    read_options=pcsv.ReadOptions(
                        column_names=self.header, block_size=len(block) + 1, use_threads=False
                    ),
                    parse_options=parse,
                    convert_options=convert,
                )
                if table.num_rows:
                    yield table.combine_chunks().to_batches()[0]


def _with_digests(
    blocks: Generator[pa.RecordBatch, None, None], prefix: bytes | None
) -> Iterator[tuple[pa.RecordBatch, t.Any]]:
    """Each block with its rows' digests after ``prefix`` (``None`` without a prefix)."""
    with contextlib.closing(blocks):
        for raw in blocks:
            yield raw, None if prefix is None else block_digests(prefix, raw)


def _header_end_error() -> pa.ArrowInvalid:
    return pa.ArrowInvalid("the header row does not end with a newline the blocks can cut at")


def _outside(name: str, kind: str) -> str:
    return f"column {name!r} has values outside the {kind} forms"


def _typed(column: pa.Array, kind: str, convert: Callable[[str], t.Any] | None) -> pa.Array | None:
    """A text column typed as ``kind``; ``None`` when a value is outside the bulk forms."""
    if kind == "string":
        return column
    present = len(column) - column.null_count
    if present == 0:
        if kind == "array":
            return _list_array([None] * len(column))
        return column.cast(arrow_type(kind))
    if kind in ("integer", "number"):
        read = read_numbers(column, kind)
        if read is not None:
            return read
        form = INTEGER if kind == "integer" else NUMBER
        values = pc.drop_null(column) if column.null_count else column  # often mostly nulls
        if pc.sum(pc.match_substring_regex(values, form)).as_py() != present:
            return None
        try:
            typed = column.cast(arrow_type(kind))
        except pa.ArrowInvalid:  # out of range
            return None
        return pc.add(typed, ZERO) if kind == "number" else typed  # -0 is 0
    if kind == "boolean":
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(column))
        truth = pc.is_in(lowered, TRUE)
        if pc.sum(truth).as_py() + pc.sum(pc.is_in(lowered, FALSE)).as_py() != present:
            return None
        return pc.if_else(pc.is_null(column), NO_BOOLEAN, truth)
    assert convert is not None  # noqa: S101 - date-time and array columns have converters
    return _per_distinct_value(column, kind, convert)


def _typed_values(
    column: pa.Array,
    kind: str,
    convert: Callable[[str], t.Any] | None,
    bulk_datetimes: ArrowDateTimes,
) -> TypedColumn | None:
    """A text column's values typed as the record reader types them; ``None`` if it cannot.

    Strings, integers, booleans and bulk-typed date-times stay Arrow arrays whose Python
    values are the record reader's, lists the compiled helpers read are ``JsonText``;
    the rest are Python values.
    """
    typed = None
    if kind in ("integer", "boolean"):
        typed = _typed(column, kind, None)
    elif kind == "date-time":
        typed = bulk_datetimes(column)
    elif kind == "array":
        typed = json_lists(column, getattr(convert, "syntax", "json"))
    elif kind == "number":
        typed = number_json(column)
    if typed is not None:
        return typed
    if convert is None:
        return column
    cached = getattr(convert, "cached", None)
    try:
        if len(column) >= REPEATS_FROM:
            encoded = pc.dictionary_encode(column)
            if len(encoded.dictionary) * 2 <= len(column):
                return _converted_per_distinct(encoded, convert, cached)
        return convert_column(column.to_pylist(), convert, cached)
    except (ValueError, KeyError, SyntaxError, ArithmeticError):
        return None


def _converted_per_distinct(
    encoded: pa.DictionaryArray,
    convert: Callable[[str], t.Any],
    cached: Callable[[str | None], t.Any] | None,
) -> SpreadJson:
    """Each distinct value of a block converted and encoded once, spread to the rows by Arrow.

    Numbers, lists and the like repeat within a block. Nulls index the ``None`` after the
    converted values. Raises what the converter raises.
    """
    distinct: list[str | None] = encoded.dictionary.to_pylist()
    converted = convert_column(distinct, convert, cached) if distinct else []
    texts = pa.array([encoder.encode(value) for value in converted], pa.binary()).view(pa.string())
    converted.append(None)
    indices = encoded.indices
    rows = texts.take(indices)  # nulls stay nulls
    if indices.null_count:
        indices = pc.fill_null(indices, pa.scalar(len(distinct), indices.type))
    return SpreadJson(rows, converted, indices)


def _per_distinct_value(
    column: pa.Array, kind: str, convert: Callable[[str], t.Any]
) -> pa.Array | None:
    """Convert each distinct value once with the record reader's converter, then spread."""
    encoded = pc.dictionary_encode(column)
    converted = []
    for value in encoded.dictionary.to_pylist():
        try:
            converted.append(convert(value))
        except (ValueError, KeyError, SyntaxError, ArithmeticError):
            return None
    values = _list_array(converted) if kind == "array" else pa.array(converted, pa.string())
    return pc.take(values, encoded.indices)
