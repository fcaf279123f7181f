"""Manifests whose stored bytes failed verification, shared by every worker through the cache directory.

The same manifest is not downloaded again until a backoff passes (doubling per failure, capped), so a
store serving wrong bytes costs one download per window per container instead of one per retry.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from loader.errors import DigestMismatch

RECHECK_SECONDS = 60.0
RECHECK_MAX_SECONDS = 3600.0


class KnownBad:
    """``<root>/<manifest digest>`` records: failures so far, when to try again, and why it failed."""

    def __init__(self, root: Path, recheck_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.recheck_seconds = recheck_seconds
        self._clock = clock  # wall time: the records are shared between processes

    def refuse(self, digest: str) -> None:
        """Raise the remembered ``DigestMismatch`` while the manifest's backoff lasts."""
        record = self._read(digest)
        if record is not None and self._clock() < record["retry_at"]:
            wait = round(record["retry_at"] - self._clock())
            raise DigestMismatch(f"{record['message']} (same manifest: not downloaded again for {wait}s)")

    def record(self, digest: str, message: str) -> None:
        """Count one more failure of this manifest and push its next download out."""
        previous = self._read(digest)
        failures = (previous["failures"] if previous else 0) + 1
        delay = min(RECHECK_MAX_SECONDS, self.recheck_seconds * 2 ** (failures - 1))
        self._write(digest, {"failures": failures, "retry_at": self._clock() + delay, "message": message})

    def clear(self, digest: str) -> None:
        """The manifest verified: forget its failures."""
        with suppress(OSError):
            (self.root / digest).unlink()

    def _read(self, digest: str) -> dict | None:
        try:
            record = json.loads((self.root / digest).read_text())
            return record if isinstance(record.get("retry_at"), int | float) else None
        except (OSError, ValueError, AttributeError):
            return None

    def _write(self, digest: str, record: dict) -> None:
        with suppress(OSError):  # a read-only cache cannot remember; it just downloads again
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
            with os.fdopen(fd, "w") as out:
                json.dump(record, out)
            os.replace(tmp, self.root / digest)
