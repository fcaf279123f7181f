"""Shard boundaries per input format: each record belongs to exactly one of N shards.

Text formats (JSON Lines, CSV) are split by byte ranges ``[size*I/N, size*(I+1)/N)``: a shard
owns every record whose first byte lies in its range, so it skips the partial record it starts
in and reads past its end to finish its last one. ``.npy`` splits rows, Parquet row groups.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from loader.errors import InferenceInputError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".npy": "npy", ".parquet": "parquet"}
_SHARD = re.compile(r"^(\d{1,5})/(\d{1,5})$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    @property
    def name(self) -> str:
        """``part-00001-of-00004``: sorts in shard order."""
        return f"part-{self.index:05d}-of-{self.count:05d}"

    def span(self, total: int) -> tuple[int, int]:
        """This shard's ``[start, end)`` of ``total`` units (bytes, rows or row groups)."""
        return total * self.index // self.count, total * (self.index + 1) // self.count


def parse_shard(text: str) -> Shard:
    """``"I/N"`` with ``0 <= I < N <= 10000`` (Cloud Run's task limit)."""
    match = _SHARD.match(text.strip())
    if not match:
        raise ValueError("expected I/N, e.g. 0/4")
    index, count = int(match[1]), int(match[2])
    if not 0 < count <= 10000 or not 0 <= index < count:
        raise ValueError("need 0 <= I < N <= 10000")
    return Shard(index, count)


def input_format(key: str) -> str:
    """The format from the key's suffix; anything else is a permanent input error."""
    lowered = key.lower()
    for suffix, fmt in FORMATS.items():
        if lowered.endswith(suffix):
            return fmt
    raise InferenceInputError("unsupported input format: use .jsonl/.ndjson/.json, .csv, .npy or .parquet")


def owned_lines(chunks: Iterable[bytes], base: int, start: int, end: int, max_line: int) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` for each line starting in ``[start, end)``; ``chunks`` begin at byte ``base``.

    ``base`` is ``start - 1`` (or 0 for the first shard): the byte before the range tells whether
    the range begins at a line start. Lines keep no terminator (``\\n``; a ``\\r`` before it is dropped).
    """
    buffer = bytearray()
    pos = base  # offset of buffer[0]
    skipping = start > 0  # until the first newline at or after start-1: that line is the previous shard's
    for chunk in chunks:
        buffer += chunk
        cut = 0
        while (nl := buffer.find(b"\n", cut)) >= 0:
            offset = pos + cut
            if not skipping:
                if offset >= end:
                    return
                yield offset, _strip_cr(buffer[cut:nl])
            skipping = False
            cut = nl + 1
        if skipping:  # the previous shard's line: nothing of it needs keeping
            cut = len(buffer)
        del buffer[:cut]
        pos += cut
        if len(buffer) > max_line:
            raise InferenceInputError(f"a line starting at byte {pos} is longer than {max_line} bytes")
        if not skipping and pos >= end:
            return
    if buffer and not skipping and pos < end:
        yield pos, _strip_cr(buffer)  # a last line without a newline


def _strip_cr(raw: bytearray) -> bytes:
    return bytes(raw[:-1] if raw.endswith(b"\r") else raw)
