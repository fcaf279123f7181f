"""The Open Inference Protocol's binary tensor extension through Flask's test client."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tests.models import expected_logits

V2 = "/v2/models/lin/infer"
HEADER = "Inference-Header-Content-Length"
X = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]], dtype=np.float32)


def post_binary(client, document: dict[str, Any], *blobs: bytes, header_length: str | None = None):
    head = json.dumps(document).encode()
    headers = {HEADER: header_length if header_length is not None else str(len(head))}
    return client.post(V2, data=head + b"".join(blobs), headers=headers, content_type="application/octet-stream")


def binary_input(array: np.ndarray = X, **overrides: Any) -> dict[str, Any]:
    tensor = {"name": "features", "shape": list(array.shape), "datatype": "FP32"}
    return {**tensor, "parameters": {"binary_data_size": array.nbytes}, **overrides}


def split_response(response) -> tuple[dict[str, Any], bytes]:
    length = int(response.headers[HEADER])
    raw = response.get_data()
    return json.loads(raw[:length]), raw[length:]


def test_binary_in_binary_out(client):
    r = post_binary(
        client, {"id": "b1", "inputs": [binary_input()], "parameters": {"binary_data_output": True}}, X.tobytes()
    )
    assert r.status_code == 200 and r.mimetype == "application/octet-stream", r.get_data()[:300]
    header, blob = split_response(r)
    [out] = header["outputs"]
    assert header["id"] == "b1" and "data" not in out and out["shape"] == [2, 3]
    assert out["parameters"]["binary_data_size"] == len(blob) == 2 * 3 * 4
    logits = np.frombuffer(blob, dtype="<f4").reshape(out["shape"])
    np.testing.assert_allclose(logits, expected_logits(X), rtol=1e-6)


def test_an_outputs_own_choice_wins_over_the_request_default(client):
    document = {
        "inputs": [binary_input()],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "logits", "parameters": {"binary_data": False}}],
    }
    r = post_binary(client, document, X.tobytes())
    assert r.status_code == 200 and HEADER not in r.headers  # nothing binary left: a plain JSON response
    np.testing.assert_allclose(
        np.array(r.get_json()["outputs"][0]["data"]).reshape(2, 3), expected_logits(X), rtol=1e-6
    )


def test_json_request_may_ask_for_binary_outputs(client):
    document = {
        "inputs": [{"name": "features", "shape": [2, 4], "datatype": "FP32", "data": X.tolist()}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    }
    r = client.post(V2, json=document)
    header, blob = split_response(r)
    assert header["outputs"][0]["parameters"]["binary_data_size"] == len(blob)
    np.testing.assert_allclose(np.frombuffer(blob, "<f4").reshape(2, 3), expected_logits(X), rtol=1e-6)


BAD_BINARY = [
    ("header-not-int", {"inputs": [binary_input()]}, X.tobytes(), "abc", "must be an integer"),
    ("header-zero", {"inputs": [binary_input()]}, X.tobytes(), "0", "between 1 and"),
    ("header-past-body", {"inputs": [binary_input()]}, X.tobytes(), "100000", "between 1 and"),
    ("header-cuts-json", {"inputs": [binary_input()]}, X.tobytes(), "5", "not valid JSON"),
    (
        "size-too-small",
        {"inputs": [binary_input(parameters={"binary_data_size": 8})]},
        X.tobytes()[:8],
        None,
        "do not fill",
    ),
    ("size-past-data", {"inputs": [binary_input()]}, X.tobytes()[:16], None, "runs past"),
    ("unclaimed-bytes", {"inputs": [binary_input()]}, X.tobytes() + b"\0" * 4, None, "not claimed"),
    ("size-not-int", {"inputs": [binary_input(parameters={"binary_data_size": "32"})]}, X.tobytes(), None, "integer"),
    ("size-negative", {"inputs": [binary_input(parameters={"binary_data_size": -1})]}, b"", None, "integer"),
    ("data-and-size", {"inputs": [binary_input(data=[1, 2, 3, 4])]}, X.tobytes(), None, "not both"),
    ("neither", {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32"}]}, b"", None, "send data"),
    ("bytes-binary", {"inputs": [binary_input(datatype="BYTES")]}, X.tobytes(), None, "BYTES"),
    (
        "wrong-datatype",
        {"inputs": [binary_input(datatype="FP64", parameters={"binary_data_size": 64})]},
        X.astype(np.float64).tobytes(),
        None,
        "must be FP32",
    ),
]


@pytest.mark.parametrize(
    ("document", "blob", "header_length", "words"), [b[1:] for b in BAD_BINARY], ids=[b[0] for b in BAD_BINARY]
)
def test_bad_binary_requests_get_400(client, document, blob, header_length, words):
    r = post_binary(client, document, blob, header_length=header_length)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert words.lower() in r.get_json()["error"].lower()


def test_a_binary_body_over_the_limit_is_413(make_settings, published):
    from function.app import create_app
    from tests.conftest import wait_ready

    client = create_app(make_settings(model_uri=f"{published}/lin", max_body_bytes=1000)).test_client()
    wait_ready(client)
    big = np.zeros((100, 4), dtype=np.float32)
    r = post_binary(client, {"inputs": [binary_input(big)]}, big.tobytes())
    assert r.status_code == 413 and "error" in r.get_json()
