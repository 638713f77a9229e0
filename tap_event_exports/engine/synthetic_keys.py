"""Synthetic keys (``_record_id``) for exports without a vendor id."""

from __future__ import annotations

import hashlib
import typing as t

if t.TYPE_CHECKING:
    pass


# --- synthetic keys --------------------------------------------------------------------------


class SyntheticKeys:
    """``_record_id`` values for exports without a vendor id.

    A key is a hash of the row's raw values and its window, so extracting the same data again
    gives the same key; the n-th repetition of an identical row in one export gets ``~n``
    appended, so identical rows stay distinct.
    """

    def __init__(self, scope: str) -> None:
        """``scope`` names the export the rows come from (stream, partition and window)."""
        self._scope = hashlib.blake2b(scope.encode() + b"\x1e", digest_size=16)
        self._seen: dict[bytes, int] = {}

    def __call__(self, row: list[str]) -> str:
        """The key of one raw row."""
        return self.of_text("\x1f".join(row))

    def of_text(self, joined: str) -> str:
        """The key of one raw row given as its values joined by the unit separator."""
        hasher = self._scope.copy()
        hasher.update(joined.encode())
        digest = hasher.digest()
        repeat = self._seen.get(digest)
        self._seen[digest] = 1 if repeat is None else repeat + 1
        key = digest.hex()
        return key if repeat is None else f"{key}~{repeat}"
