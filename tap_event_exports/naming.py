"""Stream names: lowercase snake case, as the contract spells them."""

from __future__ import annotations

import re


def snake_case(name: str) -> str:
    """``customEvents`` → ``custom_events``; ``Purchases v2`` → ``purchases_v2``."""
    spaced = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    return re.sub(r"[^a-z0-9]+", "_", spaced).strip("_")
