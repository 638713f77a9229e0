"""Builds the compiled JSON-lines encoder into the wheel (and into editable installs).

The encoder is a plain shared library loaded with ctypes (no Python C API), so one build serves
every Python version on the platform. Without a C compiler the wheel is built without it and the
tap encodes with msgspec, which writes the same bytes more slowly.
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

SOURCE = "tap_event_exports/engine/json_lines.c"
LIBRARY = "tap_event_exports/engine/libjsonlines.so"


class NativeEncoderHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compile ``json_lines.c`` with ``$CC`` (``cc`` by default)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, t.Any]) -> None:
        """Compile next to the source and ship the library as a build artifact."""
        if self.target_name != "wheel" or os.environ.get("TAP_EVENT_EXPORTS_NATIVE") == "0":
            return
        root = Path(self.root)
        digest = hashlib.sha256((root / SOURCE).read_bytes()).hexdigest()
        command = [
            *shlex.split(os.environ.get("CC", "cc")),
            "-O3",
            "-std=c99",
            f'-DJSON_LINES_SOURCE="{digest}"',
            "-shared",
            "-fPIC",
            "-o",
            str(root / LIBRARY),
            str(root / SOURCE),
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            self.app.display_warning(
                f"the JSON-lines encoder was not compiled ({detail.strip()}); "
                "the tap will encode with msgspec"
            )
            return
        build_data["artifacts"].append(LIBRARY)
        build_data["pure_python"] = False
        # any Python 3 on this platform: the library does not use the Python C API
        platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["tag"] = f"py3-none-{platform}"
