"""The sdist and wheel build from the checkout and pass `twine check --strict`."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("build") is None,
    reason="needs `build` (pip install -e '.[test]')",
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """Build both distributions once (in an isolated environment, as a release would)."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out


def only(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_twine_check_strict(dist):
    files = [str(only(dist, "*.whl")), str(only(dist, "*.tar.gz"))]
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_has_marker_license_and_metadata(dist):
    with zipfile.ZipFile(only(dist, "*.whl")) as wheel:
        names = wheel.namelist()
        assert "tap_event_exports/py.typed" in names
        licenses = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert licenses, names
        assert "Apache License" in wheel.read(licenses[0]).decode()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = wheel.read(meta_name).decode()
        entry_points = wheel.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    assert "License-Expression: Apache-2.0" in meta
    assert "Description-Content-Type: text/markdown" in meta
    assert "tap-event-exports = tap_event_exports.__main__:main" in entry_points
    # the sandbox ships too: `tap-event-exports-sandbox` and the demo need it
    assert any(n.startswith("tap_event_exports/sandbox/") for n in names)
    assert not any(n.startswith("tests/") for n in names)
    # the compiled helpers, with their sources (the loader compares the two)
    assert {
        "tap_event_exports/engine/libtapnative.so",
        "tap_event_exports/engine/json_lines.c",
        "tap_event_exports/engine/csv_scan.c",
        "tap_event_exports/engine/native_version.c",
    } <= set(names)


def test_wheel_is_tagged_for_any_python_3_on_this_platform(dist):
    name = only(dist, "*.whl").name
    assert name.startswith("tap_event_exports-"), name
    assert "-py3-none-" in name, name
    assert "any" not in name.rsplit("-", 1)[-1], name


def test_sdist_has_license_and_readme(dist):
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        names = {Path(*Path(n).parts[1:]).as_posix() for n in sdist.getnames()}
    assert {"LICENSE", "README.md", "pyproject.toml", "tap_event_exports/py.typed"} <= names
    assert not any(n.startswith((".venv", ".git/")) for n in names)
    # the wheel's build compiles the helpers from the sdist; no build of this machine ships
    assert {"hatch_build.py", "tap_event_exports/engine/json_lines.c"} <= names
    assert "tap_event_exports/engine/csv_scan.c" in names
    assert "tap_event_exports/engine/libtapnative.so" not in names


def test_without_a_compiler_the_wheel_is_built_pure_python(tmp_path):
    """An install on a machine without a C compiler still works: the tap runs without helpers."""
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CC": "/bin/false"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "the compiled helpers were not built" in result.stdout + result.stderr
    wheel = only(tmp_path, "*.whl")
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    with zipfile.ZipFile(wheel) as archive:
        assert not any(name.endswith(".so") for name in archive.namelist())
