"""Keys never appear in logs, events or error messages (SPEC §3): every text that leaves the
process through those goes through `redact`, which knows the configured keys' values."""

from __future__ import annotations

import logging
import re

MASK = "***"
_MIN_LENGTH = 6  # shorter values would mask ordinary words
_known: set[str] = set()
_BASE64URL = "[A-Za-z0-9_-]"
# Key-like tokens even when not configured here (a provider echoing another key back)
_KEY_PATTERN = re.compile(
    r"\b(?:sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|csk-[A-Za-z0-9]{8,})"
    # A JWT (or JWE): header and payload are base64url JSON objects, and '{"' + any byte encodes
    # as eyI, eyJ, eyK or eyL; then the signature (and JWE's further segments)
    rf"|ey[IJKL]{_BASE64URL}*\.ey[IJKL]{_BASE64URL}*(?:\.{_BASE64URL}*)+"
    r"|ya29\.[0-9A-Za-z_.\-]{20,}"  # a Google OAuth access token
    # A PEM private key, to its END line, or to the end of a text that cut it off
    r"|-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)


def register(*values: str | None) -> None:
    """Remember secret values so that `redact` removes them."""
    _known.update(value for value in values if value and len(value) >= _MIN_LENGTH)


def redact(text: str) -> str:
    for value in sorted(_known, key=len, reverse=True):
        text = text.replace(value, MASK)
    return _KEY_PATTERN.sub(MASK, text)


class RedactingFilter(logging.Filter):
    """Applied to a handler: the formatted message and traceback lose every known secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
