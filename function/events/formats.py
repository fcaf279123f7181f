"""Streaming readers for batch inputs (JSON Lines and .npy): bounded memory whatever the file size."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from loader.errors import InferenceInputError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
NPY_SUFFIXES = (".npy",)


@dataclass(frozen=True)
class Line:
    """One non-blank JSON Lines record: its 1-based line number and parsed value."""

    number: int
    value: Any


def input_format(key: str) -> str:
    """``jsonl`` or ``npy`` from the key's suffix; anything else is a permanent input error."""
    lowered = key.lower()
    if lowered.endswith(NPY_SUFFIXES):
        return "npy"
    if lowered.endswith(JSONL_SUFFIXES):
        return "jsonl"
    raise InferenceInputError("unsupported input format: use .jsonl/.ndjson/.json (JSON Lines) or .npy")


def iter_lines(chunks: Iterable[bytes], max_line: int) -> Iterator[Line]:
    """Split a chunk stream into parsed JSON lines; holds at most one chunk plus one partial line."""
    buffer = bytearray()
    number = 0
    for chunk in chunks:
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            number += 1
            if line := _parse(bytes(buffer[start:end]), number):
                yield line
            start = end + 1
        del buffer[:start]
        if len(buffer) > max_line:
            raise InferenceInputError(f"line {number + 1} is longer than {max_line} bytes")
    if buffer and (line := _parse(bytes(buffer), number + 1)):
        yield line


def _parse(raw: bytes, number: int) -> Line | None:
    if not raw.strip():
        return None
    try:
        return Line(number, json.loads(raw))
    except (ValueError, UnicodeDecodeError):
        raise InferenceInputError(f"line {number} is not valid JSON") from None


class ChunkReader:
    """A minimal file-like ``read(n)`` over a chunk iterator (what numpy's header parser needs)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (fewer only at the end of the stream)."""
        if size < 0:
            raise ValueError("unbounded reads would defeat streaming")
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


def iter_npy_rows(chunks: Iterable[bytes], batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first_row_index, rows)`` batches along axis 0 of a C-order .npy stream."""
    reader = ChunkReader(chunks)
    shape, dtype = _npy_header(reader)
    row_shape = shape[1:]
    row_bytes = dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
    for start in range(0, shape[0], batch_size):
        count = min(batch_size, shape[0] - start)
        data = reader.read(count * row_bytes)
        if len(data) != count * row_bytes:
            raise InferenceInputError(".npy file is truncated: fewer rows than its header declares")
        yield start, np.frombuffer(data, dtype=dtype).reshape((count, *row_shape))


def _npy_header(reader: ChunkReader) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    try:
        major, _ = fmt.read_magic(reader)
        read = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
        shape, fortran, dtype = read(reader)
    except (ValueError, TypeError, SyntaxError):
        raise InferenceInputError("not a valid .npy file (bad magic or header)") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise InferenceInputError(".npy arrays must hold numbers (no object, string or structured dtypes)")
    if not shape:
        raise InferenceInputError(".npy array must have at least one dimension (one row per instance)")
    if fortran and len(shape) > 1:
        raise InferenceInputError(".npy array must be C-ordered (rows contiguous); save with np.ascontiguousarray")
    return tuple(shape), dtype
