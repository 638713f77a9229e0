"""Put the settings table of `tap-event-exports --about --format=markdown` into the README.

    .venv/bin/python scripts/update_readme_settings.py

tests/test_readme.py fails when the README's table and the tap's settings disagree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def about_table() -> str:
    """The settings table the tap prints about itself."""
    about = subprocess.run(
        [sys.executable, "-m", "tap_event_exports", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = about.split("## Settings", 1)[1].strip().splitlines()
    table = [line for line in lines if line.startswith("|")]
    return "\n".join(table)


def main() -> None:
    """Rewrite the table between the README's markers."""
    text = README.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{about_table()}\n{END}{tail}")


if __name__ == "__main__":
    main()
