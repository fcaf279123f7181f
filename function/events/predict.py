"""Turn streamed input records into output records, one ``predict()`` per batch of instances."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from function.errors import RequestError
from function.events.formats import Line
from function.holder import LoadedModel
from function.metrics import Metrics
from function.schemas import V2InferRequest, parse
from function.serving import infer_v2, instances_to_arrays, predictions, run
from loader.errors import InferenceInputError


def is_v2_request(value: Any) -> bool:
    """A JSON line that is a whole Open Inference Protocol request rather than one instance."""
    return isinstance(value, dict) and isinstance(value.get("inputs"), list)


class Predictor:
    """Batches instances (up to ``batch_size``) and runs V2 request lines one by one, in input order."""

    def __init__(self, model: LoadedModel, metrics: Metrics, batch_size: int) -> None:
        self._model = model
        self._metrics = metrics
        self._batch_size = batch_size

    def jsonl(self, lines: Iterable[Line]) -> Iterator[list[dict[str, Any]]]:
        """Output records per batch: ``{"line", "prediction"}`` or ``{"line", ...V2 response}``."""
        pending: list[Line] = []
        for line in lines:
            if is_v2_request(line.value):
                if pending:
                    yield self._instances(pending)
                    pending = []
                yield [self._v2(line)]
                continue
            pending.append(line)
            if len(pending) >= self._batch_size:
                yield self._instances(pending)
                pending = []
        if pending:
            yield self._instances(pending)

    def npy(self, batches: Iterable[tuple[int, np.ndarray]]) -> Iterator[list[dict[str, Any]]]:
        """Output records per batch of rows: ``{"row", "prediction"}`` (rows are 0-based)."""
        for start, rows in batches:
            preds = self._predict(list(rows), f"rows {start}-{start + len(rows) - 1}")
            yield [{"row": start + i, "prediction": p} for i, p in enumerate(preds)]

    def _instances(self, lines: list[Line]) -> list[dict[str, Any]]:
        preds = self._predict([line.value for line in lines], f"lines {lines[0].number}-{lines[-1].number}")
        return [{"line": line.number, "prediction": p} for line, p in zip(lines, preds, strict=True)]

    def _predict(self, instances: list[Any], where: str) -> list[Any]:
        try:
            arrays = instances_to_arrays(self._model, instances)
            return list(predictions(self._model, run(self._model, arrays, self._metrics)))
        except InferenceInputError as exc:
            raise InferenceInputError(f"{where}: {exc}") from None

    def _v2(self, line: Line) -> dict[str, Any]:
        try:
            body, _ = infer_v2(self._model, parse(V2InferRequest, line.value), self._metrics)  # JSON only
        except (InferenceInputError, RequestError) as exc:
            raise InferenceInputError(f"line {line.number}: {exc}") from None
        return {"line": line.number, **body}
