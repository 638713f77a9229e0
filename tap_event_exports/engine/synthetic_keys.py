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
        return self.of_encoded([joined.encode()])[0]

    def of_encoded(self, rows: t.Iterable[bytes]) -> list[str]:
        """The keys of raw rows given as their UTF-8 values joined by the unit separator."""
        scope, seen = self._scope, self._seen
        get = seen.get
        keys: list[str] = []
        append = keys.append
        for joined in rows:
            hasher = scope.copy()
            hasher.update(joined)
            digest = hasher.digest()
            repeat = get(digest)
            if repeat is None:
                seen[digest] = 1
                append(digest.hex())
            else:
                seen[digest] = repeat + 1
                append(f"{digest.hex()}~{repeat}")
        return keys
