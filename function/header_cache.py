"""Binary-extension requests whose JSON header repeats: parsed and checked once, then reused.

A client of the binary extension sends the same header with every request (same names, shapes, sizes), and
decoding it (orjson, the pydantic envelope, the signature checks, the byte layout) was ~25 µs of the event
loop's ~100 µs per one-row request. The header's bytes decide all of that, so a header that was accepted once
is accepted again: the validated envelope is kept by header bytes (``split``), and each model keeps a ``Plan``
(where each input's bytes lie, as which dtype and shape) by header bytes (``inputs``). Only the tensor bytes
are read anew.

The answer's JSON header to a kept header is kept too (``answer``), by output layout: the same request header
and the same output names, dtypes and shapes make the same answer header byte for byte (one that carries JSON
output values is never kept).

Nothing is cached for a header that failed (every request gets its own error), for JSON ``data`` inside the
header (the envelope then holds request values), for BOOL inputs (their bytes must be checked), or for
headers longer than ``MAX_HEADER``; a body whose tensor bytes do not fit the plan takes the full path and
gets the full path's error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import numpy as np

from function import binary, jsonio
from function.codec import v2_inputs
from function.holder import LoadedModel
from function.schemas import V2InferRequest, parse

MAX_HEADER = 4096  # bytes; a real binary header is ~200
MAX_ENTRIES = 64  # distinct headers kept (per process for envelopes, per model for plans)


class Slot(NamedTuple):
    """Where one input lies in the tensor bytes, and what it is."""

    name: str
    start: int
    items: int
    wire: np.dtype  # little-endian, as the extension sends it
    native: np.dtype
    shape: tuple[int, ...]


class Head(NamedTuple):
    """An answer's JSON header, and the outputs whose raw bytes follow it (name, little-endian dtype)."""

    header: bytes
    blobs: tuple[tuple[str, np.dtype], ...]


class Plan(NamedTuple):
    """A header's inputs in signature order, and the tensor bytes they take in all."""

    slots: tuple[Slot, ...]
    size: int


_parsed: dict[bytes, V2InferRequest] = {}
_lock = threading.Lock()  # inserts only (the pool threads of the WSGI front insert too); lookups need none


def _remember(table: dict[Any, Any], key: Hashable, value: Any) -> None:
    with _lock:
        if len(table) >= MAX_ENTRIES:  # oldest first: a client that varies its header cannot grow the table
            table.pop(next(iter(table)), None)
        table[key] = value


def split(raw: bytes, header_length: str) -> tuple[bytes | None, V2InferRequest, memoryview]:
    """(header bytes, validated envelope, tensor bytes) of a binary-extension body; 400 as ``binary.split_body``.

    The header bytes are None for a header too long to keep.
    """
    length = binary.header_size(raw, header_length)
    key = bytes(memoryview(raw)[:length]) if length <= MAX_HEADER else None
    request = _parsed.get(key) if key is not None else None
    if request is not None:
        return key, request, memoryview(raw)[length:]
    document, blob = binary.split_body(raw, header_length)
    return key, parse(V2InferRequest, document), blob


def inputs(model: LoadedModel, key: bytes | None, request: V2InferRequest, blob: memoryview) -> dict[str, np.ndarray]:
    """The request's input arrays in signature order, by the model's plan for this header when it has one."""
    plan = model.header_plans.get(key) if key is not None else None
    if plan is not None and len(blob) == plan.size:
        return {
            s.name: np.frombuffer(blob, s.wire, s.items, s.start).astype(s.native).reshape(s.shape) for s in plan.slots
        }
    # Decided before v2_inputs, which drops JSON data from the envelope once decoded.
    keep = key is not None and plan is None and all(t.data is None for t in request.inputs)
    arrays = v2_inputs(model, request, blob)  # every check, and every error, of the full path
    if keep and (plan := _plan(request, arrays)) is not None:
        assert key is not None
        _remember(_parsed, key, request)  # accepted in full: the envelope and its layout are kept together
        _remember(model.header_plans, key, plan)
    return arrays


def _plan(request: V2InferRequest, arrays: dict[str, np.ndarray]) -> Plan | None:
    """The layout the full path just accepted (binary inputs in request order), or None if it cannot be reused."""
    starts, offset = {}, 0
    for tensor in request.inputs:
        starts[tensor.name] = offset
        offset += (tensor.parameters or {})["binary_data_size"]
    slots = []
    for name, array in arrays.items():  # signature order, as v2_inputs returns them
        if array.dtype.kind == "b":
            return None
        wire = array.dtype.newbyteorder("<")
        slots.append(Slot(name, starts[name], array.size, wire, array.dtype, array.shape))
    return Plan(tuple(slots), offset)


Encode = Callable[[], tuple[dict[str, Any], list[bytes]]]


def answer(
    model: LoadedModel, key: bytes | None, outputs: dict[str, np.ndarray], encode: Encode
) -> tuple[bytes, list[bytes]]:
    """(JSON header, raw output tensors) of the answer: ``encode()`` once per request header and output layout."""
    kept = key is not None and key in _parsed  # a header accepted in full, with no values in it
    layout = (key, *((n, a.dtype.str, a.shape) for n, a in outputs.items())) if kept else None
    head = model.answer_heads.get(layout) if layout is not None else None
    if head is not None:
        return head.header, [np.ascontiguousarray(outputs[n], dtype=wire).tobytes() for n, wire in head.blobs]
    body, blobs = encode()
    header = jsonio.dumps(body)
    if layout is not None and len(blobs) == len(body["outputs"]):  # every output raw: no values in the header
        wires = tuple((t["name"], outputs[t["name"]].dtype.newbyteorder("<")) for t in body["outputs"])
        _remember(model.answer_heads, layout, Head(header, wires))
    return header, blobs
