"""Alias moves with a history kept in the store: promote, canary, shadow, finish, rollback.

Every move is first a conditional create of ``<name>/aliases/<alias>/history/<seq>.json`` (the commit
point: of two racing promotes exactly one gets a sequence number, the other re-reads and retries), then
an overwrite of the alias record that servers read. A writer re-checks the history after its overwrite
and re-writes the newest entry's record until none is newer, so the record converges on the last move
even when two overwrites land out of order.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from loader.artifacts import read_alias
from loader.errors import AliasStateError, AlreadyExists, ArtifactNotFound, ManifestInvalid
from loader.keys import alias_key, manifest_key
from loader.manifest import AliasRecord, Candidate, _Strict
from loader.stores.base import Store
from loader.uri import validate_ref

Action = Literal["promote", "canary", "shadow", "finish", "rollback"]
MOVE_ATTEMPTS = 50  # racing writers each win one slot per round, so this bounds the wait, not correctness


class AliasConflict(AlreadyExists):
    """Concurrent moves of the same alias kept winning the next history slot."""


class AliasMove(_Strict):
    """One recorded move: who moved the alias when, from which target to which."""

    seq: int = Field(ge=1)
    action: Action
    at: datetime
    by: str = Field(max_length=256)
    previous: AliasRecord | None  # None: the alias did not exist
    record: AliasRecord


def history_key(name: str, alias: str, seq: int) -> str:
    """Key of one history entry (zero-padded, so a listing sorts in order)."""
    return f"{name}/aliases/{alias}/history/{seq:010d}.json"


def read_move(store: Store, name: str, alias: str, seq: int) -> AliasMove | None:
    """History entry ``seq``, or None when it does not exist."""
    try:
        raw = store.read_bytes(history_key(name, alias, seq))
    except ArtifactNotFound:
        return None
    try:
        return AliasMove.model_validate_json(raw)
    except ValueError:
        raise ManifestInvalid(f"alias history {name}@{alias} #{seq} is not valid JSON of the expected shape") from None


def current(store: Store, name: str, alias: str) -> AliasRecord | None:
    """The alias record, or None when the alias does not exist."""
    try:
        return read_alias(store, name, alias)
    except ArtifactNotFound:
        return None


def head(store: Store, name: str, alias: str) -> tuple[int, AliasRecord | None]:
    """The newest history entry's sequence number and record (the alias record only says where to start)."""
    record = current(store, name, alias)
    seq = record.seq if record is not None else 0
    while (move := read_move(store, name, alias, seq + 1)) is not None:
        seq, record = seq + 1, move.record
    return seq, record


def history(store: Store, name: str, alias: str) -> list[AliasMove]:
    """Every recorded move, oldest first (slots are taken in order from 1, so the first gap ends it)."""
    moves: list[AliasMove] = []
    while (move := read_move(store, name, alias, len(moves) + 1)) is not None:
        moves.append(move)
    return moves


Change = Callable[[AliasRecord | None, int], AliasRecord]


def move(store: Store, name: str, alias: str, action: Action, change: Change, by: str) -> AliasMove:
    """Record and apply one move; ``change(previous, seq)`` builds the new record (it may raise to refuse)."""
    validate_ref(alias)
    if store.exists(manifest_key(name, alias)):
        raise AlreadyExists(f"{alias!r} is a version of {name}; an alias cannot shadow it")
    for attempt in range(MOVE_ATTEMPTS):
        seq, previous = head(store, name, alias)
        record = change(previous, seq).model_copy(update={"seq": seq + 1, "updated_at": datetime.now(UTC)})
        entry = AliasMove(seq=seq + 1, action=action, at=record.updated_at, by=by, previous=previous, record=record)
        try:
            store.put_bytes(history_key(name, alias, seq + 1), entry.model_dump_json().encode(), if_absent=True)
        except AlreadyExists:
            time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # noqa: S311 jitter, not secrets; another move took this slot: re-read, retry
            continue
        _publish(store, name, alias, record)
        return entry
    raise AliasConflict(f"{name}@{alias} is being moved concurrently; try again")


def _publish(store: Store, name: str, alias: str, record: AliasRecord) -> None:
    """Write the record servers read, then follow any newer move until the record names the newest."""
    while True:
        store.put_bytes(alias_key(name, alias), record.model_dump_json().encode())
        seq, latest = head(store, name, alias)
        if latest is None or seq <= record.seq:
            return
        record = latest  # a later move's overwrite may have landed before ours: write its record again


def require_version(store: Store, name: str, version: str) -> str:
    """``version`` when it is published, else ArtifactNotFound."""
    validate_ref(version)
    if not store.exists(manifest_key(name, version)):
        raise ArtifactNotFound(f"{name}@{version} is not published in {store.location.uri}")
    return version


def promote(store: Store, name: str, alias: str, version: str, by: str) -> AliasMove:
    """Point the alias at ``version`` alone (any candidate is dropped)."""
    require_version(store, name, version)
    return move(store, name, alias, "promote", lambda _prev, _seq: AliasRecord(version=version), by)


def start_candidate(
    store: Store, name: str, alias: str, version: str, share: float, mode: Literal["canary", "shadow"], by: str
) -> AliasMove:
    """Keep the alias's primary and send ``share`` percent of requests to ``version`` as a canary or shadow."""
    require_version(store, name, version)
    candidate = Candidate(version=version, share=share, mode=mode)

    def change(previous: AliasRecord | None, _seq: int) -> AliasRecord:
        if previous is None:
            raise AliasStateError(f"{name}@{alias} does not exist; promote a primary before a {mode}")
        if previous.version == version:
            raise AliasStateError(f"{name}@{alias} already serves {version} as its primary")
        return AliasRecord(version=previous.version, candidate=candidate)

    return move(store, name, alias, mode, change, by)


def finish(store: Store, name: str, alias: str, by: str) -> AliasMove:
    """Make the candidate the primary and stop splitting."""

    def change(previous: AliasRecord | None, _seq: int) -> AliasRecord:
        if previous is None or previous.candidate is None:
            raise AliasStateError(f"{name}@{alias} has no canary or shadow to finish")
        return AliasRecord(version=previous.candidate.version)

    return move(store, name, alias, "finish", change, by)


def rollback(store: Store, name: str, alias: str, by: str) -> AliasMove:
    """Move the alias back to the target before its last move; repeated rollbacks walk further back."""

    def change(_previous: AliasRecord | None, seq: int) -> AliasRecord:
        target = rollback_target(store, name, alias, seq)
        return AliasRecord(version=target.version, candidate=target.candidate)

    return move(store, name, alias, "rollback", change, by)


def rollback_target(store: Store, name: str, alias: str, newest: int) -> AliasRecord:
    """The record a rollback restores: undo the newest move not already undone by a later rollback."""
    undone = 0
    for seq in range(newest, 0, -1):
        entry = read_move(store, name, alias, seq)
        if entry is None:
            break
        if entry.action == "rollback":
            undone += 1
        elif undone:
            undone -= 1
        elif entry.previous is not None:
            return entry.previous
        else:
            break
    raise AliasStateError(f"{name}@{alias} has no earlier target to roll back to")
