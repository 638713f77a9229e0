"""Rewrite the tap's `settings:` in meltano.yml from the settings the code declares.

    .venv/bin/python scripts/update_meltano_settings.py

tests/test_meltano_yml.py fails when the two disagree.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tap_event_exports.settings import GLOBAL_SETTINGS, meltano_settings
from tap_event_exports.tap import PROVIDERS

PATH = Path(__file__).resolve().parent.parent / "meltano.yml"


def main() -> None:
    """Regenerate and write the settings list."""
    project = yaml.safe_load(PATH.read_text())
    settings = meltano_settings(GLOBAL_SETTINGS)
    for provider in PROVIDERS:
        settings += meltano_settings(provider.settings, prefix=f"{provider.key}.")
    for plugin in project["plugins"]["extractors"]:
        if plugin["name"] == "tap-event-exports":
            plugin["settings"] = settings
    PATH.write_text(yaml.safe_dump(project, sort_keys=False, width=100, allow_unicode=True))


if __name__ == "__main__":
    main()
