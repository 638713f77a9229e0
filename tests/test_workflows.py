"""CI and developer tooling: actions pinned by SHA, the packaging check, hooks, Dependabot."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.y*ml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+){0,2}$")


def steps() -> list[tuple[str, dict]]:
    found = []
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        for job in workflow["jobs"].values():
            found += [(path.name, step) for step in job.get("steps", [])]
    return found


def test_every_action_is_pinned_by_commit_sha_with_its_tag():
    assert WORKFLOWS
    lines = [
        (path.name, line.split("uses:", 1)[1].strip())
        for path in WORKFLOWS
        for line in path.read_text().splitlines()
        if line.strip().lstrip("- ").startswith("uses:")
    ]
    assert lines
    for name, uses in lines:
        assert uses.startswith("./") or PINNED.match(uses), f"{name}: {uses}"


def test_ci_builds_and_checks_the_distributions():
    runs = "\n".join(step.get("run", "") for _, step in steps())
    assert "python -m build --sdist --wheel" in runs
    assert "twine check --strict" in runs
    assert "bash scripts/test" in runs


def test_pre_commit_runs_ruff_and_mypy():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff-check", "ruff-format", "mypy"} <= set(hooks)
    assert hooks["ruff-check"]["entry"].startswith("ruff check")
    assert hooks["ruff-format"]["entry"].startswith("ruff format")
    assert "mypy" in hooks["mypy"]["entry"]


def test_dependabot_updates_pip_and_actions_weekly():
    config = yaml.safe_load((ROOT / ".github/dependabot.yml").read_text())
    ecosystems = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(ecosystems) == {"pip", "github-actions"}
    assert all(u["schedule"]["interval"] == "weekly" for u in ecosystems.values())
