"""V2 JSON bodies whose tensors are flat lists of numbers, decoded without one Python float per value.

orjson builds a Python float per element and numpy then walks them again: ~95 µs for a 2,048-float tensor,
about a third of what the event loop spends on such a request (and ~40 bytes of Python objects per value in a
large body). simdjson (pysimdjson) parses the body into its own tape and copies each ``data`` array straight
into a float64 buffer: ~40 µs. Only what this path can decide exactly is taken: tensors whose datatype is a float
type and whose ``data`` is one flat array of numbers. Anything else returns None and the general path (orjson,
then ``function.tensors``) decodes the body, so every other request gets exactly the answer or the error it got
before: nested data, booleans, strings, nulls, numbers simdjson refuses, duplicate keys, or a ``[`` anywhere the
envelope does not account for (which is how a flat array is told from one that nests, e.g. ``[1, [2]]``).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import simdjson

from function import jsonio

FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})
REUSE_BYTES = 1024 * 1024  # a thread keeps one parser for bodies up to this; larger ones get a parser of their own
_local = threading.local()


def loads_v2(body: bytes) -> Any:
    """A V2 request body: through simdjson when it can decide it exactly, else ``jsonio.loads`` (ValueError)."""
    return v2_document(body) or jsonio.loads(body)


def v2_document(body: bytes) -> dict[str, Any] | None:
    """The V2 request object with each tensor's ``data`` as a float64 array, or None (use the general path)."""
    parser = _parser(len(body))
    try:
        document = _decode(parser.parse(body), body)
    except (ValueError, TypeError, RuntimeError, KeyError, IndexError):
        # A proxy into the failed document could outlive this call (simdjson then refuses to reuse the parser).
        _local.parser = None
        return None
    return document


def _parser(size: int) -> Any:
    if size > REUSE_BYTES:
        return simdjson.Parser()  # freed with this request: a large body's buffers are not kept by the thread
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = simdjson.Parser()
    return parser


def _decode(root: Any, body: bytes) -> dict[str, Any] | None:
    """Every proxy into the parser's document stays local to this function (the parser is reused after it)."""
    if not isinstance(root, simdjson.Object) or not _unique(keys := list(root.keys())):
        return None
    document = {k: _plain(root[k]) for k in keys if k != "inputs"}
    tensors = root.get("inputs")
    if not isinstance(tensors, simdjson.Array) or len(tensors) == 0:
        return None
    inputs, arrays = [], 1  # the '[' of "inputs"
    for index in range(len(tensors)):
        tensor = _tensor(tensors[index])
        if tensor is None:
            return None
        inputs.append(tensor)
        arrays += 1 + _arrays_in([v for k, v in tensor.items() if k != "data"])
    if arrays + _arrays_in(list(document.values())) != _brackets(body):
        return None  # a nested data array, or a '[' inside a string: the general path judges it
    document["inputs"] = inputs
    return document


def _tensor(node: Any) -> dict[str, Any] | None:
    if not isinstance(node, simdjson.Object) or not _unique(keys := list(node.keys())):
        return None
    data = node.get("data")
    if node.get("datatype") not in FLOAT_DATATYPES or not isinstance(data, simdjson.Array):
        return None
    tensor = {k: _plain(node[k]) for k in keys if k != "data"}
    # as_buffer flattens nested arrays; the '[' count in _decode is what refuses them.
    tensor["data"] = np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)
    return tensor


def _plain(value: Any) -> Any:
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    if isinstance(value, simdjson.Array):
        return value.as_list()
    return value


def _unique(keys: list[str]) -> bool:
    # orjson keeps the last of duplicate keys and simdjson's lookup finds the first: leave those to orjson.
    return len(set(keys)) == len(keys)


def _arrays_in(values: list[Any]) -> int:
    """How many JSON arrays these plain values hold (each wrote one '[')."""
    count = 0
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            count += 1
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
    return count


def _brackets(body: bytes) -> int:
    # replace() finds the few '[' of a flat body with memchr: ~4 µs for 42 KB, where a numpy compare and count
    # took ~18 and bytes.count ~45.
    return len(body) - len(body.replace(b"[", b""))
