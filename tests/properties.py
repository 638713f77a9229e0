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
    """myTracker's list ``['a', "it's"]``: each item runs from its quote to the next quote of
    the same kind (README "Records")."""
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
