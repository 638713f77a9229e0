"""List values as vendors write them: JSON text, or myTracker's quoted items.

myTracker writes ``['param1','param2<line break> with line break']``: each item as it is,
between single quotes, or double quotes for an item that holds a single quote; no escapes, so
an item ends at its closing quote only where a comma and the next item, or the closing
bracket, follow.
"""

from __future__ import annotations

import json
import re
import typing as t

if t.TYPE_CHECKING:
    pass


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


def to_array(value: str, syntax: str = "json") -> list[t.Any]:
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
