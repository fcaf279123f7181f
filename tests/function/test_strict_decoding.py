"""Hostile tensor values and shapes (#10.4, #10.5, #10.27): every one is a 400 whose body echoes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from function.app import create_app
from tests.conftest import wait_ready
from tests.models import publish_model

# One Identity per V2 datatype: the value sent for each input comes back unchanged, or the request is refused.
DTYPES = {
    "b": ("BOOL", np.bool_),
    "u8": ("UINT8", np.uint8),
    "u16": ("UINT16", np.uint16),
    "u32": ("UINT32", np.uint32),
    "u64": ("UINT64", np.uint64),
    "i8": ("INT8", np.int8),
    "i16": ("INT16", np.int16),
    "i32": ("INT32", np.int32),
    "i64": ("INT64", np.int64),
    "f16": ("FP16", np.float16),
    "f32": ("FP32", np.float32),
    "f64": ("FP64", np.float64),
}
V2 = "/v2/models/ident/infer"
V1 = "/v1/models/ident:predict"


def identity_onnx(path: Path) -> Path:
    """ONNX: out_<name> = Identity(<name>) for one [N] input of every datatype."""
    from onnx import helper

    kinds = {name: helper.np_dtype_to_tensor_dtype(np.dtype(dt)) for name, (_, dt) in DTYPES.items()}
    graph = helper.make_graph(
        [helper.make_node("Identity", [n], [f"out_{n}"]) for n in DTYPES],
        "identity",
        [helper.make_tensor_value_info(n, k, ["N"]) for n, k in kinds.items()],
        [helper.make_tensor_value_info(f"out_{n}", k, ["N"]) for n, k in kinds.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


GOOD = {n: [True, False] if n == "b" else [1, 2] for n in DTYPES}


@pytest.fixture
def ident(tmp_path, store_dir, make_settings):
    publish_model(store_dir.as_uri(), identity_onnx(tmp_path / "ident.onnx"), name="ident")
    client = create_app(make_settings(model_uri=f"{store_dir.as_uri()}/ident")).test_client()
    wait_ready(client)
    return client


def v2_body(**values):
    data = {**GOOD, **values}
    return {"inputs": [{"name": n, "datatype": DTYPES[n][0], "shape": [len(data[n])], "data": data[n]} for n in DTYPES]}


def post(client, path, body):
    """POST with Python's json (the app's own encoder refuses ints past 64 bits, as a client's might not)."""
    return client.post(path, data=json.dumps(body).encode(), content_type="application/json")


def strict_json(raw: bytes):
    """Parse refusing NaN/Infinity, which Python's json accepts by default."""

    def refuse(token):
        raise ValueError(f"non-JSON constant {token}")

    return json.loads(raw, parse_constant=refuse)


def test_in_range_values_of_every_datatype_round_trip(ident):
    edges = {n: [np.iinfo(dt).min, np.iinfo(dt).max] for n, (_, dt) in DTYPES.items() if n[0] in "iu"}
    edges["u64"] = [1, 2**63 + 5]  # numpy alone would read this pair as float64 and lose the 5
    r = post(ident, V2, v2_body(**edges))
    assert r.status_code == 200, r.get_json()
    outputs = {o["name"]: o["data"] for o in strict_json(r.data)["outputs"]}
    for name, values in edges.items():
        assert outputs[f"out_{name}"] == values


OUT_OF_RANGE = [
    ("i8", [300, -129]),
    ("i8", [-129]),
    ("u8", [-1, 256]),
    ("u8", [256]),
    ("i16", [2**15]),
    ("u16", [-1]),
    ("i32", [2**40]),
    ("u32", [2**32]),
    ("i64", [2**63]),
    ("u64", [-1]),
    ("u64", [2**64]),
    ("u64", [-1, 2**63]),
    ("i32", [True, False]),  # bools for an int type
    ("i32", [1.0, 2.5]),  # fractional for an int type
    ("u8", [1.5]),
    ("b", [0, 1]),  # numbers for BOOL
    ("f16", [70000.0]),  # overflows FP16 to inf
    ("f32", [1e39]),  # overflows FP32 to inf
    ("f32", [None, 1.0]),
    ("f32", ["1", "2"]),
]


@pytest.mark.parametrize(("name", "values"), OUT_OF_RANGE, ids=[f"{n}-{v}" for n, v in OUT_OF_RANGE])
def test_v2_values_a_cast_would_change_are_400(ident, name, values):
    r = post(ident, V2, v2_body(**{name: values}))
    assert r.status_code == 400, r.get_data(as_text=True)
    error = r.get_json()["error"]
    assert f"'{name}'" in error and DTYPES[name][0] in error
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2:
            assert str(value) not in error


@pytest.mark.parametrize(("name", "values"), OUT_OF_RANGE[:12], ids=[f"{n}-{v}" for n, v in OUT_OF_RANGE[:12]])
def test_v1_values_a_cast_would_change_are_400(ident, name, values):
    instances = [{n: (GOOD[n][i % 2] if n != name else v) for n in DTYPES} for i, v in enumerate(values)]
    r = post(ident, V1, {"instances": instances})
    assert r.status_code == 400, r.get_data(as_text=True)
    assert DTYPES[name][0] in r.get_json()["error"]


def test_v1_in_range_values_round_trip(ident):
    instances = [{n: GOOD[n][i] for n in DTYPES} for i in range(2)]
    instances[1]["i8"], instances[1]["u64"] = -128, 2**64 - 1
    r = post(ident, V1, {"instances": instances})
    assert r.status_code == 200, r.get_json()
    assert strict_json(r.data)["predictions"] == [True, False]  # the first output (out_b), unranked


def binary_request(name: str, dtype: str, shape: list[int], raw: bytes) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(
        {"inputs": [{"name": name, "datatype": dtype, "shape": shape, "parameters": {"binary_data_size": len(raw)}}]}
    ).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


HOSTILE_SHAPES = [
    ("product-wraps-int64", [2**32, 2**32], []),
    ("huge-dim", [2**70], []),
    ("zero-times-huge", [0, 2**62], []),
    ("negative", [-2, -2], [1, 2, 3, 4]),
    ("too-many-dims", [1] * 17, [1]),
]


@pytest.mark.parametrize(("shape", "data"), [c[1:] for c in HOSTILE_SHAPES], ids=[c[0] for c in HOSTILE_SHAPES])
def test_client_shapes_are_400_not_500(client, shape, data):
    body = {"inputs": [{"name": "features", "shape": shape, "datatype": "FP32", "data": data}]}
    r = post(client, "/v2/models/lin/infer", body)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert str(shape[0]) not in r.get_json()["error"] or shape[0] in (0, 1)


@pytest.mark.parametrize("shape", [[2**62, 4], [2**32, 2**32], [-1, -4], [0, 2**62]])
def test_binary_shapes_are_400_not_500(client, shape):
    body, headers = binary_request("features", "FP32", shape, b"")  # a wrapped product of 0 would "fit" it
    r = client.post("/v2/models/lin/infer", data=body, headers=headers)
    assert r.status_code == 400, r.get_data(as_text=True)


def test_binary_bool_bytes_other_than_0_and_1_are_400(ident):
    header = {"inputs": []}
    blob = b""
    for n, (dtype, np_dtype) in DTYPES.items():
        raw = bytes([2, 1]) if n == "b" else np.array(GOOD[n], dtype=np_dtype).tobytes()
        header["inputs"].append(
            {"name": n, "datatype": dtype, "shape": [2], "parameters": {"binary_data_size": len(raw)}}
        )
        blob += raw
    doc = json.dumps(header).encode()
    r = ident.post(V2, data=doc + blob, headers={"Inference-Header-Content-Length": str(len(doc))})
    assert r.status_code == 400 and "BOOL" in r.get_json()["error"]


@pytest.mark.parametrize("path", ["/v1/models/lin:predict", "/v2/models/lin/infer"])
def test_json_nested_5000_deep_is_400_json(client, path):
    body = b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = client.post(path, data=body, content_type="application/json")
    assert r.status_code == 400, r.status_code
    assert "not valid JSON" in r.get_json()["error"]


def test_binary_header_nested_5000_deep_is_400(client):
    doc = b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = client.post("/v2/models/lin/infer", data=doc, headers={"Inference-Header-Content-Length": str(len(doc))})
    assert r.status_code == 400 and "not valid JSON" in r.get_json()["error"]


T = {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
ECHOES = [
    ("v2-extra-field", "/v2/models/lin/infer", {"inputs": [{**T, "SECRET_TOKEN_abc123": 1}]}, "SECRET_TOKEN_abc123"),
    ("v1-extra-field", "/v1/models/lin:predict", {"instances": [[1, 2, 3, 4]], "SECRET_TOKEN_abc123": 1},
     "SECRET_TOKEN_abc123"),
    ("v2-inputs-type", "/v2/models/lin/infer", {"inputs": "SECRET_TOKEN_abc123"}, "SECRET_TOKEN_abc123"),
    ("v2-datatype-value", "/v2/models/lin/infer", {"inputs": [{**T, "datatype": "SECRET_TOKEN_abc123"}]},
     "SECRET_TOKEN_abc123"),
    ("v2-fill-shape", "/v2/models/lin/infer", {"inputs": [{**T, "shape": [987654321, 1], "data": [1]}]}, "987654321"),
    ("v2-rank", "/v2/models/lin/infer", {"inputs": [{**T, "shape": [3, 3, 3], "data": [1.0] * 27}]}, "[3, 3, 3]"),
    ("v1-width", "/v1/models/lin:predict", {"instances": [[1.0] * 97]}, "97"),
    ("v2-datatype", "/v2/models/lin/infer", {"inputs": [{**T, "datatype": "INT16"}]}, "INT16"),
    ("v2-binary-fill", "/v2/models/lin/infer", {"inputs": [{**T, "shape": [987654321, 1], "data": None,
                                                             "parameters": {"binary_data_size": 0}}]}, "987654321"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "secret"), [e[1:] for e in ECHOES], ids=[e[0] for e in ECHOES])
def test_error_bodies_never_echo_field_names_values_or_shapes(client, path, body, secret):
    tensor = (body.get("inputs") or [{}])[0] if isinstance(body.get("inputs"), list) else {}
    if isinstance(tensor, dict) and tensor.get("data", 0) is None:  # a binary request with no bytes
        del tensor["data"]
        doc = json.dumps(body).encode()
        r = client.post(path, data=doc, headers={"Inference-Header-Content-Length": str(len(doc))})
    else:
        r = post(client, path, body)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert secret not in r.get_data(as_text=True)
