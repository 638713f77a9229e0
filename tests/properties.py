"""What the property tests share: how many examples a profile runs, the text pieces they draw,
and what the tap's values mean, their types checked (the half of their reference decodings that
reads the tap's output; each test decodes its vendor's forms on its own)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import typing as t
from decimal import Decimal

from hypothesis import settings


def scaled(examples: int) -> int:
    """Examples of a property under the active profile (``explore`` runs ten times as many)."""
    return max(1, examples * settings.default.max_examples // 100)


RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(\+00:00|Z)")


@dataclasses.dataclass(frozen=True)
class Unexpected:
    """A value of the wrong type or form (shown as such in assertion diffs)."""

    what: str
    value: str


def json_meaning(kind: str, value: t.Any) -> t.Any:
    """The meaning of a RECORD or JSONL value (JSON read with ``parse_float=Decimal``), its JSON
    type checked: ``1``, ``1.0`` and ``true`` are told apart, date-times are RFC 3339 in UTC,
    arrays hold strings."""
    if value is None:
        return None
    wrong = Unexpected(f"{type(value).__name__} for {kind}", repr(value))
    if kind == "string":
        return value if type(value) is str else wrong
    if kind == "integer":
        return value if type(value) is int else wrong
    if kind == "number":
        return Decimal(value) if type(value) in (int, Decimal) else wrong
    if kind == "boolean":
        return value if type(value) is bool else wrong
    if kind == "date-time":
        if type(value) is not str or not RFC3339_UTC.fullmatch(value):
            return Unexpected("not RFC 3339 UTC", repr(value))
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if type(value) is not list or not all(type(item) is str for item in value):
        return wrong
    return value


def quoted_items(text: str) -> list[str]:
    r"""myTracker's list (``quoted`` syntax): ClickHouse's escaped strings where the value holds a
    backslash and reads strictly as such a list, items as written otherwise (README "Records").

    The documents' example is ``['param1','param2\n with line break','param3 with special
    characters\'\\"",' ]`` (a CSV cell, ``""`` a doubled quote) [providers.md §3.4, the
    selector dictionary]."""
    if "\\" in text:
        escaped = escaped_items(text)
        if escaped is not None:
            return escaped
    return plain_items(text)


def plain_items(text: str) -> list[str]:
    """``['a', "it's"]`` written without escapes: each item runs from its quote to the next
    quote of the same kind (the older style; JSON-syntax values that are not JSON)."""
    assert text.startswith("["), text
    assert text.endswith("]"), text
    items: list[str] = []
    position, end = 1, len(text) - 1
    while position < end:
        quote = text[position]
        assert quote in "'\"", text
        close = text.index(quote, position + 1)
        items.append(text[position + 1 : close])
        position = close + 1
        if text.startswith(",", position):
            position += 1
            position += text.startswith(" ", position)
    assert position == end, text
    return items


ESCAPES = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    "0": "\0",
    "a": "\a",
    "v": "\v",
}
"""ClickHouse's one-character escapes; any other keeps its backslash (``\\w`` stays)."""
HEX = frozenset("0123456789abcdefABCDEF")


def escaped_items(text: str) -> list[str] | None:
    """The items of ClickHouse's text form of an ``Array(String)``, or ``None`` when ``text`` is
    not strictly one: ``[``, items in single or double quotes with backslash escapes (``\\xHH``
    a byte of the UTF-8 text; bytes that are no UTF-8 stay as ``\\xhh``), commas, whitespace,
    an optional trailing comma, ``]``."""
    end = len(text)

    def skip(position: int) -> int:
        while position < end and text[position].isspace():
            position += 1
        return position

    position = skip(0)
    if not text.startswith("[", position):
        return None
    position = skip(position + 1)
    items: list[str] = []
    while not text.startswith("]", position):
        quote = text[position : position + 1]
        if quote not in ("'", '"'):
            return None
        item = bytearray()
        position += 1
        while True:
            if position >= end:
                return None
            char = text[position]
            if char == quote:
                position += 1
                break
            if char == "\\":
                if position + 1 >= end:
                    return None
                code, digits = text[position + 1], text[position + 2 : position + 4]
                if code == "x" and len(digits) == 2 and set(digits) <= HEX:
                    item.append(int(digits, 16))
                    position += 4
                    continue
                char = ESCAPES.get(code, "\\" + code)
                position += 1
            item += char.encode("utf-8", "surrogatepass")
            position += 1
        items.append(item.decode("utf-8", "backslashreplace"))
        position = skip(position)
        if text.startswith(",", position):
            position = skip(position + 1)
        elif not text.startswith("]", position):
            return None
    return items if skip(position + 1) == end else None


CLICKHOUSE_WRITES = {"\\": "\\\\", "'": "\\'", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
CLICKHOUSE_WRITES |= {"\t": "\\t", "\0": "\\0"}


def clickhouse_list(items: list[str], separator: str = ",") -> str:
    r"""Items written as ClickHouse writes an ``Array(String)``: single quotes, ``\\``, ``\'``
    and ``\b`` ``\f`` ``\n`` ``\r`` ``\t`` ``\0`` escaped, everything else raw (the reference's
    own writer, not the fake's)."""
    quoted = ("'" + "".join(CLICKHOUSE_WRITES.get(c, c) for c in item) + "'" for item in items)
    return "[" + separator.join(quoted) + "]"


TEXT_PIECES = [
    ",",
    ";",
    '"',
    '""',
    "'",
    "\r",
    "\n",
    "\r\n",
    "\t",
    " ",
    "  ",
    "\\",
    "[",
    "]",
    "null",
    "NULL",
    "TRUE",
    "123",
    "0042",
    "1.50",
    "[1]",
    "['a','b']",
    '["1","2"]',
    "2025-01-06 10:35",
    "é",
    "Чат",
    "한국 상품",
    "日本語",
    "🙂",
    "\ufeff",
    "\u2028",
]
"""Pieces of the text values property tests draw: delimiters, quotes, line breaks of every
kind, other types' look, and unicode (a byte order mark and a line separator included)."""
