"""Keep configured secrets out of every log record and error message."""

from __future__ import annotations

import logging
import typing as t

MASK = "***"

_secrets: set[str] = set()
_installed = False


def redact(text: str) -> str:
    """Replace every known secret in ``text``."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def protect(secrets: t.Iterable[str]) -> None:
    """Register secrets and make sure every log record is redacted before it is handled."""
    global _installed  # noqa: PLW0603
    _secrets.update(s for s in secrets if s and len(s) >= 4)
    if _installed:
        return
    factory = logging.getLogRecordFactory()

    def redacting_factory(*args: t.Any, **kwargs: t.Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if _secrets:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return record

    logging.setLogRecordFactory(redacting_factory)
    _installed = True
