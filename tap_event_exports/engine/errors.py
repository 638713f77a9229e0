"""The tap's error vocabulary.

Every error a user can meet is a :class:`TapError` whose message is one line that names what is
wrong (the setting, or the vendor, stream and window). The CLI prints that line and exits 1.
"""

from __future__ import annotations


class TapError(Exception):
    """An error reported to the user as one line, without a traceback."""


class ConfigError(TapError):
    """A setting is missing or invalid."""


class VendorError(TapError):
    """The vendor refused a request in a way that retrying will not fix (400, 401, 404...).

    ``status`` is the HTTP status of the refusal (``None`` for a refusal in a 2xx body), so
    callers decide on it rather than on the message's text.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        """Keep the HTTP status next to the message."""
        super().__init__(message)
        self.status = status


class RetriableError(Exception):
    """A failure worth retrying: 429, 5xx, timeouts, resets, cut bodies.

    ``wait`` is the vendor's own hint in seconds (reset header, quota body, ``Retry-After``), if
    it gave one; ``rate_limited`` says the answer was a rate limit or quota, which pauses every
    request of the run to that vendor, not only this one.
    """

    def __init__(
        self, message: str, *, wait: float | None = None, rate_limited: bool = False
    ) -> None:
        """Keep the vendor's wait hint next to the message."""
        super().__init__(message)
        self.wait = wait
        self.rate_limited = rate_limited


class LinkGoneError(TapError):
    """A file link the vendor handed out says the file is gone (expired or deleted).

    Asking the same link again cannot help; only a new export of the window brings the file
    back, so the job engine creates the job again.
    """


class RetriesExhaustedError(TapError):
    """A retriable failure kept happening ``max_retries`` times."""


class RateLimitedError(TapError):
    """The vendor asks for a longer pause than a run should sit through."""


class DataError(TapError):
    """An export file could not be read as the CSV it should be."""


class NotColumnar(Exception):
    """The columnar reader cannot type a block; ``done`` rows were delivered before it.

    The record reader continues the file from there.
    """

    def __init__(self, done: int, reason: str) -> None:
        """Say how far the file was delivered and why the rest is not columnar."""
        super().__init__(reason)
        self.done = done
