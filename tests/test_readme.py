"""The README's first lines and settings table stay true."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_settings_table_is_the_taps_own():
    spec = importlib.util.spec_from_file_location(
        "update_readme_settings", ROOT / "scripts/update_readme_settings.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    inside = readme.split(module.START, 1)[1].split(module.END, 1)[0].strip()
    assert inside == module.about_table()
    for name in ("dfinery.api_token", "keen.api", "mytracker.exports", "batch.rest_api_key"):
        assert f"| {name} |" in inside


def test_first_lines_are_the_two_commands():
    first = (ROOT / "README.md").read_text().splitlines()[:6]
    assert any(line.startswith("bash scripts/demo") for line in first)
    assert any(line.startswith("bash scripts/test") for line in first)
    ci = (ROOT / ".ci/run").read_text()
    assert "bash scripts/test" in ci
