"""The tap's compiled helpers (``*.c`` beside this module), when the package's build made them.

One shared library, loaded with ctypes: the functions need no Python C API, and ctypes releases
the GIL for each call, so other Python threads run meanwhile. A library built from other
sources than those beside it (an older checkout, say) is not used, nor one with another
interface version. Without it (no compiler when the package was built, or
``TAP_EVENT_EXPORTS_NATIVE=0``) :data:`LIBRARY` is ``None`` and callers do the same work in
Python, more slowly.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import typing as t
from pathlib import Path

logger = logging.getLogger("tap_event_exports.native")

ABI = 1
"""The interface version (``TAP_NATIVE_ABI`` in ``native_version.c``)."""
FOLDER = Path(__file__).parent
PATH = FOLDER / "libtapnative.so"


def sources_digest(sources: list[Path]) -> str:
    """The SHA-256 of the sources in name order, as the build computes it."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.read_bytes())
    return digest.hexdigest()


def load(path: Path = PATH, folder: Path = FOLDER) -> ctypes.CDLL | None:
    """The library at ``path`` if it was built from the ``*.c`` files in ``folder`` (if any)."""
    if os.environ.get("TAP_EVENT_EXPORTS_NATIVE", "1") == "0" or not path.exists():
        return None
    try:
        library = ctypes.CDLL(str(path))
        library.tap_native_abi.restype = ctypes.c_int64
        library.tap_native_source.restype = ctypes.c_char_p
        built = library.tap_native_source().decode()
    except (OSError, AttributeError) as exc:
        logger.warning("%s cannot be loaded (%s); the tap works without it", path, exc)
        return None
    sources = sorted(folder.glob("*.c"))
    if library.tap_native_abi() != ABI or (sources and built != sources_digest(sources)):
        logger.warning(
            "%s was built from other sources (reinstall the tap to build it again); "
            "the tap works without it",
            path,
        )
        return None
    return library


LIBRARY = load()

Signature = tuple[str, t.Any, list[t.Any]]
"""A function's name, result type and argument types (ctypes types; ``None``: no result)."""


def functions(*signatures: Signature, library: ctypes.CDLL | None = LIBRARY) -> list[t.Any] | None:
    """The library's functions with their signatures set; ``None`` without the library."""
    if library is None:
        return None
    found = []
    for name, result, arguments in signatures:
        function = getattr(library, name)
        function.restype, function.argtypes = result, arguments
        found.append(function)
    return found
