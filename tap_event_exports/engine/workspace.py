"""The run's folder for export files, and the removal of what killed runs left behind.

Export files are raw user data: they must not outlive the run that needs them. Every run keeps
its files in a folder of its own under ``temp_dir`` and holds an exclusive lock on a file in it
for as long as it lives. A run killed with SIGKILL (or by the OOM killer) cannot clean up; the
lock dies with it, so the next run on the machine removes folders whose lock nobody holds, and
only those: runs alive beside it (sharded backfills on one host) keep theirs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass

if t.TYPE_CHECKING:
    from types import TracebackType

if sys.platform == "win32":  # pragma: no cover - Windows: no advisory locks, no sweeping
    fcntl = None
else:
    import fcntl

logger = logging.getLogger("tap_event_exports.workspace")

RUN_PREFIX = "tap-event-exports-run-"
LOCK_NAME = ".lock"
LEGACY_FILE_PREFIX = "tap-event-exports-"
"""Earlier versions put export files straight into the temp folder with this prefix."""
LEGACY_MIN_AGE_SECONDS = 3600.0
"""A loose file of an earlier version is removed once untouched this long (its run is over)."""
UNLOCKED_MIN_AGE_SECONDS = 60.0
"""A run folder without a lock file yet may be one being created right now: wait this long."""

_current: Workspace | None = None


def current_directory() -> str | None:
    """Where this run's export files go (``None``: no run is syncing; the system temp folder)."""
    return _current.path if _current is not None else None


@dataclass
class Swept:
    """What a sweep removed."""

    folders: int = 0
    files: int = 0
    size: int = 0


class Workspace:
    """The folder of one run, locked for its lifetime and removed at its end."""

    def __init__(self, root: str | None = None) -> None:
        """Sweep ``root`` (default: the system temp folder), then create this run's folder."""
        self.root = os.path.abspath(root or tempfile.gettempdir())
        os.makedirs(self.root, exist_ok=True)
        self.swept = sweep(self.root)
        if self.swept.folders or self.swept.files:
            logger.info(
                "Removed %d export file(s) (%.1f MB) that killed runs left in %s",
                self.swept.files,
                self.swept.size / 1e6,
                self.root,
            )
        self.path = tempfile.mkdtemp(prefix=RUN_PREFIX, dir=self.root)
        self._lock = _hold_lock(self.path)

    def __enter__(self) -> Workspace:
        """Make this the folder of the run's export files."""
        global _current  # noqa: PLW0603 - one run per process
        _current = self
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Remove the folder and everything in it."""
        self.close()

    def close(self) -> None:
        """Remove the folder (idempotent)."""
        global _current  # noqa: PLW0603 - one run per process
        if _current is self:
            _current = None
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _hold_lock(folder: str) -> t.IO[str] | None:
    """Create the folder's lock file already locked (written aside, then renamed into place)."""
    if fcntl is None:
        return None
    aside = os.path.join(folder, LOCK_NAME + ".new")
    handle = open(aside, "w")  # noqa: SIM115 - held open for the run's lifetime
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    os.replace(aside, os.path.join(folder, LOCK_NAME))
    return handle


def _owner_is_gone(folder: str, now: float) -> bool:
    """Whether no live run holds the folder's lock."""
    lock_path = os.path.join(folder, LOCK_NAME)
    try:
        handle = open(lock_path)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        try:
            return now - os.stat(folder).st_mtime > UNLOCKED_MIN_AGE_SECONDS
        except FileNotFoundError:
            return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # held: a live run
        return True


def sweep(root: str) -> Swept:
    """Remove the run folders (and loose files of earlier versions) dead runs left in ``root``."""
    swept = Swept()
    if fcntl is None:
        return swept
    now = time.time()
    try:
        entries = list(os.scandir(root))
    except OSError:
        return swept
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.name.startswith(RUN_PREFIX) and entry.is_dir(follow_symlinks=False):
                if _owner_is_gone(entry.path, now):
                    files, size = _measure(entry.path)
                    shutil.rmtree(entry.path, ignore_errors=True)
                    swept.folders += 1
                    swept.files += files
                    swept.size += size
            elif (
                entry.name.startswith(LEGACY_FILE_PREFIX)
                and entry.name.endswith(".csv")
                and entry.is_file(follow_symlinks=False)
                and now - entry.stat().st_mtime > LEGACY_MIN_AGE_SECONDS
            ):
                size = entry.stat().st_size
                os.unlink(entry.path)
                swept.files += 1
                swept.size += size
    return swept


def _measure(folder: str) -> tuple[int, int]:
    files = size = 0
    for path, _dirs, names in os.walk(folder):
        for name in names:
            if name.startswith(LOCK_NAME):
                continue
            files += 1
            with contextlib.suppress(OSError):
                size += os.path.getsize(os.path.join(path, name))
    return files, size
