"""Idempotency: one marker per source object version, claimed with a conditional create.

The marker lives at ``<output prefix>/_modelfn/markers/<relative key>/<version>.json`` and moves
through ``processing`` (a lease, refreshed while a job runs) to ``done``, ``failed`` or ``superseded``
(the object was overwritten before its job read it). A duplicate delivery finds a final state and writes
nothing; one that arrives while another instance holds a fresh lease gets a 503 (the platform
retries); an expired or released lease is taken over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from typing import Any

from function.errors import EventInProgress
from function.events.model import ObjectCreated
from loader.errors import AlreadyExists, ArtifactNotFound, ModelfnError
from loader.stores import Store

MARKER_DIR = "_modelfn/markers"
FINAL_STATES = ("done", "failed", "superseded")
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
log = logging.getLogger("modelfn.events")


def version_token(version: str) -> str:
    """A key-safe name for a source version (quoted Azure eTags, long S3 ids are hashed)."""
    token = version.strip('"')
    return token if _SAFE_TOKEN.match(token) else hashlib.sha256(version.encode()).hexdigest()[:32]


class Marker:
    """The claim on one source object version."""

    def __init__(self, store: Store, relative: str, event: ObjectCreated, lease_seconds: float) -> None:
        self.store = store
        self.key = f"{MARKER_DIR}/{relative}/{version_token(event.version)}.json"
        self._event = event
        self._lease = lease_seconds
        self._beat = 0.0

    def claim(self) -> bool:
        """True when this delivery should run the job; False for a finished duplicate."""
        # Read first (cheap, and correct on stores that ignore preconditions, like the GCS emulator),
        # then create conditionally so two racing first deliveries cannot both win.
        record = self._existing()
        if record is None:
            try:
                self.store.put_bytes(self.key, self._record("processing"), if_absent=True)
            except AlreadyExists:
                record = self._existing() or {}
            else:
                self._beat = time.monotonic()
                return True
        if record.get("state") in FINAL_STATES:
            return False
        if record.get("state") == "processing" and time.time() - float(record.get("since", 0)) < self._lease:
            raise EventInProgress("another delivery of this object version is being processed")
        # Released, or a lease whose holder died: take it over (last writer wins; see README "Storage events").
        self.store.put_bytes(self.key, self._record("processing"))
        self._beat = time.monotonic()
        return True

    def heartbeat(self) -> None:
        """Refresh the lease while a long job runs (at most every third of the lease)."""
        if time.monotonic() - self._beat > self._lease / 3:
            self.store.put_bytes(self.key, self._record("processing"))
            self._beat = time.monotonic()

    def finish(self, state: str, **details: Any) -> None:
        """Record the final outcome; later deliveries of this version are duplicates."""
        self.store.put_bytes(self.key, self._record(state, **details))

    def release(self) -> None:
        """Give the claim back after a transient failure so the retry need not wait for the lease."""
        try:
            self.store.put_bytes(self.key, self._record("released"))
        except ModelfnError as exc:  # storage is down: the lease expires on its own
            log.warning("could not release claim", extra={"fields": {"marker": self.key, "reason": str(exc)}})

    def _existing(self) -> dict[str, Any] | None:
        try:
            record = json.loads(self.store.read_bytes(self.key))
        except ArtifactNotFound:
            return None
        except ValueError:
            return {}  # unreadable marker: treat as released so the job runs again
        return record if isinstance(record, dict) else {}

    def _record(self, state: str, **details: Any) -> bytes:
        body = {
            "state": state,
            "since": time.time(),
            "source": self._event.uri,
            "source_version": self._event.version,
            **details,
        }
        return json.dumps(body).encode()
