"""Bounded memory: readers pull chunks lazily; claims are exclusive (against the atomic file store)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from function.errors import EventInProgress
from function.events.formats import input_format, iter_lines, iter_npy_rows
from function.events.marker import Marker, version_token
from function.events.model import ObjectCreated
from loader.errors import InferenceInputError
from loader.stores import open_store


class Counting:
    """A chunk source that counts how many chunks have been pulled."""

    def __init__(self, data: bytes, size: int) -> None:
        self.chunks = [data[i : i + size] for i in range(0, len(data), size)]
        self.pulled = 0

    def __iter__(self):
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk


def test_jsonl_reader_is_lazy():
    source = Counting(b"".join(json.dumps([i, i]).encode() + b"\n" for i in range(1000)), 64)
    lines = iter_lines(source, max_line=1024)
    first = next(lines)
    assert first.number == 1 and first.value == [0, 0]
    assert source.pulled == 1 < len(source.chunks)
    assert sum(1 for _ in lines) == 999


def test_npy_reader_is_lazy_and_exact():
    rows = np.arange(4000, dtype=np.float32).reshape(1000, 4)
    buffer = io.BytesIO()
    np.save(buffer, rows)
    source = Counting(buffer.getvalue(), 256)
    batches = iter_npy_rows(source, batch_size=10)
    start, first = next(batches)
    assert start == 0 and first.shape == (10, 4)
    assert source.pulled < len(source.chunks) // 10  # one batch needs a handful of chunks, not the file
    rest = [b for _, b in batches]
    assert np.array_equal(np.concatenate([first, *rest]), rows)


def test_overlong_line_is_a_permanent_input_error():
    with pytest.raises(InferenceInputError, match="longer than"):
        list(iter_lines([b"[" + b"1," * 100], max_line=50))


@pytest.mark.parametrize(
    "array, words",
    [
        (np.asfortranarray(np.ones((3, 4), dtype=np.float32)), "C-ordered"),
        (np.array(["a", "b"]), "numbers"),
        (np.float32(1.0), "at least one dimension"),
    ],
)
def test_npy_shapes_we_refuse(array, words):
    buffer = io.BytesIO()
    np.save(buffer, array)
    with pytest.raises(InferenceInputError, match=words):
        list(iter_npy_rows([buffer.getvalue()], 4))


def test_truncated_npy():
    buffer = io.BytesIO()
    np.save(buffer, np.ones((10, 4), dtype=np.float32))
    with pytest.raises(InferenceInputError, match="truncated"):
        list(iter_npy_rows([buffer.getvalue()[:-8]], 4))


def test_input_formats():
    assert input_format("a/b.JSONL") == "jsonl" and input_format("a.ndjson") == "jsonl"
    assert input_format("x.npy") == "npy"
    with pytest.raises(InferenceInputError):
        input_format("x.csv")


def test_version_tokens_are_key_safe():
    assert version_token("1588778055917163") == "1588778055917163"
    assert version_token('"0x8D4BCC2E4835CD0"') == "0x8D4BCC2E4835CD0"
    assert "/" not in version_token("a/../b") and len(version_token("x" * 500)) == 32


def test_racing_first_deliveries_claim_once(store_dir):
    store = open_store(store_dir.as_uri())
    event = ObjectCreated("s3", "b", "inputs/a.jsonl", "v1", 1, None, "test")
    first, second = Marker(store, "a.jsonl", event, 60), Marker(store, "a.jsonl", event, 60)
    assert first.claim() is True
    with pytest.raises(EventInProgress):
        second.claim()
    first.finish("done")
    assert second.claim() is False  # a finished duplicate
    other = ObjectCreated("s3", "b", "inputs/a.jsonl", "v2", 1, None, "test")
    assert Marker(store, "a.jsonl", other, 60).claim() is True  # a new version runs again
