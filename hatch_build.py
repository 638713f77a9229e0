"""Builds the tap's compiled helpers into the wheel (and into editable installs).

``tap_event_exports/engine/*.c`` become one plain shared library loaded with ctypes (no Python
C API), so one build serves every Python 3 on the platform. Without a C compiler the wheel is
built without it and the tap does the same work in Python, more slowly
(``tap_event_exports/engine/native.py``).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sysconfig
import typing as t
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

FOLDER = "tap_event_exports/engine"
LIBRARY = f"{FOLDER}/libtapnative.so"


def sources_digest(sources: list[Path]) -> str:
    """The SHA-256 of the sources in name order (``native.py`` computes the same)."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.read_bytes())
    return digest.hexdigest()


class NativeHelpersHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compile the ``*.c`` files with ``$CC`` (``cc`` by default)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, t.Any]) -> None:
        """Compile next to the sources and ship the library as a build artifact."""
        if self.target_name != "wheel" or os.environ.get("TAP_EVENT_EXPORTS_NATIVE") == "0":
            return
        root = Path(self.root)
        sources = sorted((root / FOLDER).glob("*.c"))
        command = [
            *shlex.split(os.environ.get("CC", "cc")),
            "-O3",
            "-std=c99",
            "-shared",
            "-fPIC",
            f'-DTAP_NATIVE_SOURCE="{sources_digest(sources)}"',
            "-o",
            str(root / LIBRARY),
            *map(str, sources),
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            self.app.display_warning(
                f"the compiled helpers were not built ({detail.strip()}); "
                "the tap will do their work in Python"
            )
            return
        build_data["artifacts"].append(LIBRARY)
        build_data["pure_python"] = False
        # any Python 3 on this platform: the library does not use the Python C API
        platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["tag"] = f"py3-none-{platform}"
