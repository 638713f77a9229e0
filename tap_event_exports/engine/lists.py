r"""List values as vendors write them: JSON text, or myTracker's quoted items.

myTracker documents ``params.name`` / ``params.value`` as "serialized like
``['param1','param2\n with line break',…]``". Its selector dictionary's example, as a public
client copies it (a secondary source), is
``['param1','param2\n with line break','param3 with special characters\'\\"",' ]`` (CSV cell
text, ``""`` a doubled quote): ClickHouse's text form of an ``Array(String)``. Items are
single-quoted with backslash escapes: ``\\`` a backslash, ``\'`` a quote, ``\n`` ``\r``
``\t`` ``\b`` ``\f`` ``\0`` ``\a`` ``\v`` control characters, ``\xHH`` a byte; an unknown
escape keeps its backslash (``\w`` stays ``\w``), as ClickHouse reads it.

Earlier versions read items as written, without escapes (an item with a single quote in
double quotes; an item ends at its closing quote only where a comma and the next item, or the
closing bracket, follow). A value holding a backslash that parses strictly as escaped items is
read with its escapes; any other value as before, so ``['it's']`` still reads.
"""

from __future__ import annotations

import json
import re
import typing as t

_QUOTED = r"(?:'[^'\\\n\r]*'|\"[^\"\\\n\r]*\")"
_SIMPLE_LIST = re.compile(rf"\[\s*(?:{_QUOTED}\s*(?:,\s*{_QUOTED}\s*)*(?:,\s*)?)?\]")
"""No two runs of spaces side by side: a value that does not match fails in linear time."""
_SIMPLE_ITEM = re.compile(r"'([^'\\\n\r]*)'|\"([^\"\\\n\r]*)\"")
_ESCAPED_ITEM = r"'([^'\\]*(?:\\.[^'\\]*)*)'|\"([^\"\\]*(?:\\.[^\"\\]*)*)\""
"""An item with backslash escapes: it ends at the first quote of its kind no backslash escapes."""
_ESCAPED_LIST = re.compile(
    rf"\s*\[\s*(?:(?:{_ESCAPED_ITEM})\s*(?:,\s*(?:{_ESCAPED_ITEM})\s*)*(?:,\s*)?)?\]\s*", re.DOTALL
)
_ESCAPED_ITEMS = re.compile(_ESCAPED_ITEM, re.DOTALL)
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)", re.DOTALL)
_ESCAPES = {
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
"""ClickHouse's escapes of one character; any other keeps its backslash."""
_SPACE = frozenset(" \t\r\n")
_QUOTES = frozenset("'\"")
LIST_SYNTAXES = ("json", "quoted")
"""How a vendor writes list values: JSON text (``["1","2"]``), or quoted items (myTracker's
``['a','b\\n c']``: ClickHouse's escaped strings, or items written as they are; see the
module's docstring)."""
_PARSE_BUDGET = 1 << 16
"""Candidate item ends tried before a value is refused (hostile text cannot loop for long)."""


def to_array(value: str, syntax: str = "json") -> list[t.Any]:
    """A list from a vendor's list text (see :data:`LIST_SYNTAXES`).

    ``json`` values that are not JSON are read as quoted items without escapes, as earlier
    versions did. Raises ``ValueError`` when the value is not a list.
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
    elif "\\" in value:
        escaped = escaped_items(value)
        if escaped is not None:
            return escaped
    items = quoted_items(value)
    if items is None:
        raise ValueError(value)
    return items


def escaped_items(value: str) -> list[str] | None:
    r"""The items of ``['it\'s','C:\\new']`` with their escapes read, else ``None``.

    ``None`` when the value is not strictly such a list: items in single or double quotes,
    commas and spaces between them, a trailing comma; real line breaks inside items are kept.
    """
    if not _ESCAPED_LIST.fullmatch(value):
        return None
    # outside the items there are only brackets, commas and spaces: each match is an item
    return [unescape(match.group(0)[1:-1]) for match in _ESCAPED_ITEMS.finditer(value)]


def unescape(text: str) -> str:
    r"""An item's text with ClickHouse's escapes read.

    ``\xHH`` escapes are bytes of the UTF-8 text; bytes that do not form UTF-8 stay written
    as ``\xhh`` rather than be lost.
    """
    if "\\x" not in text:
        return _ESCAPE.sub(_one_character, text)
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(text):
        out += text[position : match.start()].encode("utf-8", "surrogatepass")
        code = match.group(1)
        if len(code) == 3:  # x and two hex digits
            out.append(int(code[1:], 16))
        else:
            out += _ESCAPES.get(code, match.group(0)).encode("utf-8", "surrogatepass")
        position = match.end()
    out += text[position:].encode("utf-8", "surrogatepass")
    return out.decode("utf-8", "backslashreplace")


def _one_character(match: re.Match[str]) -> str:
    return _ESCAPES.get(match.group(1), match.group(0))


def quoted_items(value: str) -> list[str] | None:
    """The items of ``['a', "it's", 'b, c']`` as written (no escapes), or ``None``.

    ``None`` when the value is not such a list. An item ends at its closing quote only where a
    comma and the next item's opening quote, or the closing bracket, follow; if the rest does
    not parse, a later quote is tried.
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
