"""The simdjson path for V2 JSON bodies decides only what it can decide exactly; everything else is orjson's.

Whatever it takes must equal what orjson + numpy would have made of the body, and every request must get the same
status and body through the service whether the fast path is on or off.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import orjson
import pytest

from function import fastjson
from function.app import create_app
from function.settings import Settings
from tests.conftest import wait_ready
from tests.models import linear_onnx, publish_model


def _tensor(data: Any, datatype: str = "FP32", shape: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    shape = shape if shape is not None else list(np.shape(data))
    return {"name": "features", "shape": shape, "datatype": datatype, "data": data, **extra}


def _body(*tensors: dict[str, Any], **top: Any) -> bytes:
    return json.dumps({"inputs": list(tensors), **top}).encode()


ROW = [1.0, 2.0, 3.0, 4.0]
TAKEN = {
    "fp32": _body(_tensor(ROW, shape=[1, 4])),
    "fp16 and fp64": _body(_tensor(ROW, "FP16", [1, 4]), {**_tensor(ROW, "FP64", [1, 4]), "name": "b"}),
    "integers as floats": _body(_tensor([1, 2, 3, 4], shape=[1, 4])),
    "exponents, negatives, -0, tiny": _body(_tensor([1e-300, -2.5e3, -0.0, 5e-324], shape=[1, 4])),
    "id, parameters, outputs": _body(
        _tensor(ROW, shape=[1, 4], parameters={"k": "v"}),
        id="r-1",
        parameters={"lists": [[1], []]},
        outputs=[{"name": "logits", "parameters": {"binary_data": False}}],
    ),
    "empty data": _body(_tensor([], shape=[0, 4])),
    "whitespace around": b"  " + _body(_tensor(ROW, shape=[1, 4])) + b"\n",
}
DECLINED = {
    "nested data": _body(_tensor([ROW])),
    "data nested unevenly, same count": _body(_tensor([1.0, [2.0], 3.0, 4.0], shape=[1, 4])),
    "a nested pair and an empty row": _body(_tensor([[1.0, 2.0], [], 3.0, 4.0], shape=[1, 4])),
    "booleans": _body(_tensor([True, 2.0, 3.0, 4.0], shape=[1, 4])),
    "a string": _body(_tensor(["1", 2.0, 3.0, 4.0], shape=[1, 4])),
    "a null": _body(_tensor([None, 2.0, 3.0, 4.0], shape=[1, 4])),
    "an integer datatype": _body(_tensor([1, 2, 3, 4], "INT32", [1, 4])),
    "BYTES": _body(_tensor(["a"], "BYTES", [1])),
    "no data": _body({"name": "features", "shape": [1, 4], "datatype": "FP32"}),
    "data not an array": _body(_tensor(1.0, shape=[1])),
    "a '[' in a string": _body(_tensor(ROW, shape=[1, 4]), id="a[b"),
    "a '[' in a key": _body(_tensor(ROW, shape=[1, 4]), parameters={"a[": 1}),
    "duplicate top-level keys": b'{"id": "a", "inputs": [{"name": "f", "shape": [1], "datatype": "FP32", "data": [1]}],'
    b' "id": "b"}',
    "duplicate tensor keys": b'{"inputs": [{"name": "f", "shape": [1], "datatype": "FP32", "data": [1], "data": [2]}]}',
    "no inputs": b'{"id": "x"}',
    "empty inputs": b'{"inputs": []}',
    "inputs not an array": b'{"inputs": {"name": "f"}}',
    "a tensor not an object": b'{"inputs": [[1, 2]]}',
    "not an object": b"[1, 2]",
    "malformed": b'{"inputs": [',
    "trailing content": _body(_tensor(ROW, shape=[1, 4])) + b"x",
    "a number past double": _body(_tensor([1e400], shape=[1])).replace(b"Infinity", b"1e400"),
    "an integer past 64 bits": _body(_tensor([2**70], shape=[1])),
    "invalid UTF-8": b'{"id": "\xff", "inputs": [{"name": "f", "shape": [1], "datatype": "FP32", "data": [1]}]}',
    "a lone surrogate": b'{"id": "\\ud800", "inputs": [{"name": "f", "shape": [1], "datatype": "FP32", "data": [1]}]}',
}


@pytest.mark.parametrize("case", list(TAKEN))
def test_what_the_fast_path_takes_equals_what_orjson_and_numpy_make_of_it(case):
    body = TAKEN[case]
    fast = fastjson.v2_document(body)
    assert fast is not None, "the fast path declined a body it exists for"
    slow = orjson.loads(body)
    for got, want in zip(fast["inputs"], slow["inputs"], strict=True):
        data = got.pop("data")
        expected = np.asarray(want.pop("data"), dtype=np.float64)
        assert data.dtype == np.float64 and data.shape == expected.shape
        np.testing.assert_array_equal(data, expected)
        assert np.signbit(data).tolist() == np.signbit(expected).tolist()  # -0.0 stays -0.0
        assert got == want
    assert {k: v for k, v in fast.items() if k != "inputs"} == {k: v for k, v in slow.items() if k != "inputs"}


@pytest.mark.parametrize("case", list(DECLINED))
def test_anything_else_is_left_to_the_general_path(case):
    assert fastjson.v2_document(DECLINED[case]) is None


def test_a_declined_body_does_not_disturb_the_next_ones():
    for _ in range(3):
        for body in DECLINED.values():
            assert fastjson.v2_document(body) is None
            assert fastjson.v2_document(TAKEN["fp32"]) is not None  # the thread's parser is usable again


def test_threads_each_get_their_own_values():
    threads, rounds = 8, 40
    barrier = threading.Barrier(threads)
    errors: list[str] = []

    def work(k: int) -> None:
        for r in range(rounds):
            values = [float(k * 1000 + r + i / 8) for i in range(512)]
            # Some rounds are large enough to get a parser of their own (REUSE_BYTES).
            big = r % 10 == 0
            data = values * (400 if big else 1)
            body = _body(_tensor(data, shape=[1, len(data)]))
            if big and len(body) <= fastjson.REUSE_BYTES:
                errors.append("the large body is not large")
            barrier.wait()
            doc = fastjson.v2_document(body)
            if doc is None or not np.array_equal(doc["inputs"][0]["data"], np.asarray(data)):
                errors.append(f"thread {k} round {r}")

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("fastjson")
    (tmp / "store").mkdir()
    publish_model((tmp / "store").as_uri(), linear_onnx(tmp / "m.onnx"))
    app = create_app(Settings(model_uri=f"{(tmp / 'store').as_uri()}/lin", cache_dir=str(tmp / "cache")))
    client = app.test_client()
    wait_ready(client)
    return client


SERVED = {
    **TAKEN,
    **DECLINED,
    "two rows": _body(_tensor(ROW + ROW, shape=[2, 4])),
    "values overflow FP32": _body(_tensor([1e39, 2.0, 3.0, 4.0], shape=[1, 4])),
    "values do not fill shape": _body(_tensor([1.0, 2.0], shape=[1, 4])),
    "wrong shape": _body(_tensor([1.0, 2.0], shape=[1, 2])),
    "wrong datatype": _body(_tensor(ROW, "FP64", [1, 4])),
    "unknown input": _body({**_tensor(ROW, shape=[1, 4]), "name": "other"}),
}


def test_the_service_answers_the_same_with_the_fast_path_on_or_off(client, monkeypatch):
    on = {
        name: client.post("/v2/models/lin/infer", data=body, content_type="application/json")
        for name, body in SERVED.items()
    }
    monkeypatch.setattr(fastjson, "v2_document", lambda body: None)
    for name, body in SERVED.items():
        off = client.post("/v2/models/lin/infer", data=body, content_type="application/json")
        assert (on[name].status_code, on[name].get_json()) == (off.status_code, off.get_json()), name
    statuses = {name: r.status_code for name, r in on.items()}
    assert statuses["fp32"] == statuses["two rows"] == statuses["integers as floats"] == 200
    assert statuses["values overflow FP32"] == statuses["data nested unevenly, same count"] == 400
