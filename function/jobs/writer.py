"""Part files: JSON Lines or Parquet, staged in TMPDIR and uploaded once; the same records give the same bytes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from function.jsonio import dumps_line

FORMATS = ("jsonl", "parquet")


def dumps(record: Any) -> str:
    """One JSON line, encoded exactly as the inline /events output and the HTTP bodies (non-finite as null)."""
    return dumps_line(record)


def _prediction(record: dict[str, Any]) -> str:
    """The prediction as JSON text; a V2 line's whole response when it has no single prediction."""
    rest = {k: v for k, v in record.items() if k not in ("object", "offset", "row")}
    value = rest["prediction"] if set(rest) == {"prediction"} else rest
    return dumps(value).rstrip("\n")


class PartWriter:
    """Streams records into a local file; ``path`` is complete once the context exits cleanly."""

    def __init__(self, fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"output format must be one of {FORMATS}")
        self.fmt = fmt
        self.suffix = ".jsonl" if fmt == "jsonl" else ".parquet"
        fd, name = tempfile.mkstemp(prefix="modelfn-part-", suffix=self.suffix)
        os.close(fd)
        self.path = Path(name)
        self.records = 0
        self._text = self.path.open("w", encoding="utf-8") if fmt == "jsonl" else None
        self._parquet: Any = None

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append one batch of records (in order)."""
        self.records += len(records)
        if self._text is not None:
            self._text.writelines(dumps(r) for r in records)
        elif records:
            self._write_parquet(records)

    def _write_parquet(self, records: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "object": pa.array([r.get("object") for r in records], pa.string()),
                "position": pa.array([r.get("offset", r.get("row")) for r in records], pa.int64()),
                "prediction": pa.array([_prediction(r) for r in records], pa.string()),
            }
        )
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._parquet.write_table(table)

    def close(self) -> None:
        """Finish the file (an empty Parquet part still gets a valid, empty file)."""
        if self._text is not None:
            self._text.close()
        elif self._parquet is not None:
            self._parquet.close()
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            empty = {"object": pa.string(), "position": pa.int64(), "prediction": pa.string()}
            pq.write_table(pa.table({k: pa.array([], t) for k, t in empty.items()}), self.path)

    def discard(self) -> None:
        """Remove the local file."""
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            if self._text is not None:
                self._text.close()
            self.discard()
