"""tap-event-exports: raw event exports of analytics and engagement vendors as Singer records."""

from __future__ import annotations

import functools

DISTRIBUTION = "tap-event-exports"
"""The distribution name (pyproject.toml's ``name``) whose installed ``version`` is the tap's."""

UNKNOWN_VERSION = "0.0.0+unknown"


@functools.cache
def package_version() -> str:
    """The installed version: pyproject.toml's ``version``, the one place it is written.

    ``0.0.0+unknown`` when the package is not installed (a bare source tree on ``sys.path``).
    Read on first use, not at import: finding the metadata scans ``sys.path``.
    """
    from importlib import metadata  # noqa: PLC0415 - only when the version is asked for

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


def __getattr__(name: str) -> str:
    """``tap_event_exports.__version__``, read from the installed metadata when first asked."""
    if name == "__version__":
        return package_version()
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
