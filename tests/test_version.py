"""The version is written once, in pyproject.toml, and read from the installed metadata."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import tap_event_exports
from tap_event_exports.tap import TapEventExports

ROOT = Path(__file__).resolve().parent.parent


def pyproject_version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    return re.search(r'^version\s*=\s*"([^"]+)"', project, re.MULTILINE).group(1)


def test_package_version_is_pyprojects():
    assert tap_event_exports.__version__ == pyproject_version()
    assert TapEventExports.plugin_version == pyproject_version()


def test_about_and_version_flag_show_it():
    about = subprocess.run(
        [sys.executable, "-m", "tap_event_exports", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(about)["version"] == pyproject_version()
    shown = subprocess.run(
        [sys.executable, "-m", "tap_event_exports", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"tap-event-exports v{pyproject_version()}," in shown


def test_not_installed_falls_back(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    tap_event_exports.package_version.cache_clear()
    try:
        assert tap_event_exports.__version__ == "0.0.0+unknown"
        assert TapEventExports.get_plugin_version() == "0.0.0+unknown"
    finally:
        monkeypatch.undo()
        tap_event_exports.package_version.cache_clear()
    assert tap_event_exports.__version__ == pyproject_version()
