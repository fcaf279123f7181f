"""One shard of one input object -> batches of output records, through the serving path's Predictor."""

from __future__ import annotations

import importlib
import io
import json
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import numpy as np

from function.events.formats import ChunkReader, Line, _npy_header
from function.events.predict import Predictor
from function.jobs.objects import ObjectInfo, iter_range
from function.jobs.shards import Shard, owned_lines
from loader.errors import InferenceInputError, StoreConfigError
from loader.stores import Store

Records = Iterator[list[dict[str, Any]]]
NPY_HEADER_MAX = 1024 * 1024  # numpy's own header size limit is far below this


class Source:
    """One pinned object version in a store, read by byte ranges."""

    def __init__(self, store: Store, key: str, info: ObjectInfo) -> None:
        self.store, self.key, self.info = store, key, info

    def chunks(self, start: int, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``[start, end)`` (to the end of the object when ``end`` is None)."""
        stop = self.info.size if end is None else min(end, self.info.size)
        return iter_range(self.store, self.key, start, stop, self.info.version)


def jsonl(source: Source, shard: Shard, predictor: Predictor, max_line: int) -> Records:
    """``{"offset", "prediction"}`` (or a V2 response) per line; offsets are bytes into the source."""
    lines = (Line(o, _json(raw, o)) for o, raw in _lines(source, shard, max_line) if raw.strip())
    for batch in _located(predictor.jsonl(lines)):
        yield [_rekey(r, "offset") for r in batch]


def csv(
    source: Source, shard: Shard, predictor: Predictor, names: list[str], max_line: int, batch_size: int
) -> Records:
    """``{"offset", "prediction"}`` per CSV record (header row first; no newlines inside values)."""
    header = next(owned_lines(source.chunks(0), 0, 0, 1, max_line), (0, b""))[1]
    if not header.strip():
        raise InferenceInputError("CSV input needs a header row")
    records = ((o, raw) for o, raw in _lines(source, shard, max_line) if o > 0 and raw.strip())
    while batch := list(islice(records, batch_size)):
        table = _read_csv(header, [raw for _, raw in batch])
        lines = [Line(o, v) for (o, _), v in zip(batch, table_instances(table, names), strict=True)]
        for out in _located(predictor.jsonl(lines)):
            yield [_rekey(r, "offset") for r in out]


def npy(source: Source, shard: Shard, predictor: Predictor, batch_size: int) -> Records:
    """``{"row", "prediction"}`` per row of the shard's row range, exactly as the inline job writes them."""
    header = _CountingReader(source.chunks(0, NPY_HEADER_MAX))
    shape, dtype = _npy_header(header)
    row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    first, last = shard.span(shape[0])
    if header.consumed + shape[0] * row_bytes > source.info.size:
        raise InferenceInputError(".npy file is truncated: fewer rows than its header declares")
    reader = ChunkReader(source.chunks(header.consumed + first * row_bytes, header.consumed + last * row_bytes))

    def batches() -> Iterator[tuple[int, np.ndarray]]:
        for start in range(first, last, batch_size):
            count = min(batch_size, last - start)
            rows = np.frombuffer(reader.read(count * row_bytes), dtype=dtype)
            yield start, rows.reshape((count, *shape[1:]))

    yield from predictor.npy(batches())


def parquet(source: Source, shard: Shard, predictor: Predictor, names: list[str], batch_size: int) -> Records:
    """``{"row", "prediction"}`` per row of the shard's row groups (rows are 0-based in the file)."""
    pq = pyarrow_module("pyarrow.parquet")

    try:
        meta = pq.ParquetFile(RangeFile(source)).metadata
    except (OSError, ValueError) as exc:
        raise InferenceInputError(f"not a valid Parquet file: {exc}") from None
    first, last = shard.span(meta.num_row_groups)
    row = sum(meta.row_group(g).num_rows for g in range(first))
    if first == last:
        return
    parquet_file = pq.ParquetFile(RangeFile(source))
    for batch in parquet_file.iter_batches(batch_size=batch_size, row_groups=range(first, last)):
        lines = [Line(row + i, v) for i, v in enumerate(table_instances(batch, names))]
        row += len(lines)
        for out in _located(predictor.jsonl(lines)):
            yield [_rekey(r, "row") for r in out]


def table_instances(table: Any, inputs: list[str]) -> list[Any]:
    """Rows of an Arrow table as instances: by input name when the columns are named so, else one vector."""
    columns = table.column_names
    if set(inputs) <= set(columns) and (len(inputs) > 1 or len(columns) == 1):
        rows = table.select(inputs).to_pylist()
        return rows if len(inputs) > 1 else [r[inputs[0]] for r in rows]
    if len(inputs) > 1:
        raise InferenceInputError(f"this model takes inputs {inputs}: name a column after each")
    return [list(r.values()) for r in table.to_pylist()]


class RangeFile(io.RawIOBase):
    """A seekable read-only file over ranged reads (what pyarrow's Parquet reader needs)."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._source.info.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        for chunk in self._source.chunks(self._pos, self._pos + len(view)):
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        self._pos += filled
        return filled


class _CountingReader(ChunkReader):
    """A ChunkReader that counts the bytes handed out (the .npy header's length)."""

    consumed = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.consumed += len(data)
        return data


def _lines(source: Source, shard: Shard, max_line: int) -> Iterator[tuple[int, bytes]]:
    start, end = shard.span(source.info.size)
    if start >= end:
        return iter(())
    base = max(start - 1, 0)
    return owned_lines(source.chunks(base), base, start, end, max_line)


def _json(raw: bytes, offset: int) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InferenceInputError(f"the line at byte {offset} is not valid JSON") from None


def pyarrow_module(name: str) -> Any:
    """A pyarrow module, or a clear configuration error when the ``batch`` extra is missing."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise StoreConfigError("CSV and Parquet need pyarrow: pip install 'modelfn[batch]'") from None


def _read_csv(header: bytes, rows: list[bytes]) -> Any:
    pa, pacsv = pyarrow_module("pyarrow"), pyarrow_module("pyarrow.csv")

    try:
        table = pacsv.read_csv(io.BytesIO(b"\n".join([header, *rows])))
    except pa.ArrowInvalid as exc:
        raise InferenceInputError(f"CSV records could not be parsed: {exc}") from None
    if table.num_rows != len(rows):
        raise InferenceInputError("a CSV record spans lines (newlines inside quoted values are not supported)")
    return table


def _located(batches: Iterable[list[dict[str, Any]]]) -> Records:
    """Predictor errors name ``line N``; in batch jobs N is the record's position (byte offset or row)."""
    try:
        yield from batches
    except InferenceInputError as exc:
        if str(exc).startswith("line"):
            raise InferenceInputError(f"{exc} (line = byte offset or row index)") from None
        raise


def _rekey(record: dict[str, Any], key: str) -> dict[str, Any]:
    return {key: record.pop("line"), **record}
