"""Failure reasons safe for anonymous callers: the typed message without store URIs, paths or digests."""

from __future__ import annotations

import re

from loader.errors import ModelfnError

# Order matters: URIs first (they contain paths), then absolute paths, then long hex digests.
_SCRUB = [
    (re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"(),]*"), "<store>"),
    (re.compile(r"(?<![\w/.])/[^\s'\"(),:]+"), "<path>"),
    (re.compile(r"\b[0-9a-fA-F]{32,}\b"), "<digest>"),
    (re.compile(r"\b(bucket|container) '[^']*'"), r"\1 <name>"),
]
MAX_LENGTH = 300


def public_message(exc: BaseException) -> str:
    """What a probe or 503 body may say about ``exc``; the full message belongs in the logs."""
    if not isinstance(exc, ModelfnError):
        return "model load failed with an internal error (details in the service logs)"
    message = str(exc)
    for pattern, replacement in _SCRUB:
        message = pattern.sub(replacement, message)
    return message[:MAX_LENGTH]
