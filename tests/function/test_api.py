"""The HTTP API through Flask's test client: V1, V2, probes, OpenAPI, and a table of bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.models import expected_logits

X = [[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]]


def test_v1_predict_applies_postprocessing(client):
    r = client.post("/v1/models/lin:predict", json={"instances": X})
    assert r.status_code == 200
    body = r.get_json()
    assert body["model_name"] == "lin" and body["model_version"] == "1.0.0"
    logits = expected_logits(np.array(X))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    for row, prediction in zip(probs, body["predictions"], strict=True):
        order = np.argsort(-row)[:2]
        assert [p["label"] for p in prediction] == [["a", "b", "c"][i] for i in order]
        assert [p["score"] for p in prediction] == pytest.approx(row[order].tolist(), rel=1e-5)


def test_v2_infer_returns_raw_tensors(client):
    body = {"id": "req-1", "inputs": [{"name": "features", "shape": [2, 4], "datatype": "FP32", "data": X}]}
    r = client.post("/v2/models/lin/versions/1.0.0/infer", json=body)
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    assert out["id"] == "req-1" and out["model_version"] == "1.0.0"
    [tensor] = out["outputs"]
    assert tensor["name"] == "logits" and tensor["datatype"] == "FP32" and tensor["shape"] == [2, 3]
    assert tensor["data"] == pytest.approx(expected_logits(np.array(X)).ravel().tolist(), rel=1e-6)


def test_v2_metadata_and_health(client):
    assert client.get("/v2").get_json()["name"] == "modelfn"
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2/models/lin").get_json()
    assert meta["platform"] == "onnxruntime_onnx" and meta["versions"] == ["1.0.0"]
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert client.get("/v2/models/lin/ready").get_json() == {"name": "lin", "ready": True}
    assert client.get("/v2/models/lin/versions/1.0.0/ready").status_code == 200


def test_probes(client):
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["version"] == "1.0.0"


def test_every_route_is_in_openapi(app, client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = set(spec["paths"])
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        assert path in documented, f"{path} missing from /openapi.json"
    assert "PredictRequest" in spec["components"]["schemas"]


def test_request_id_and_json_log_line(client, capsys):
    assert client.get("/readyz").status_code == 200  # probes log at DEBUG: not in the info-level stream
    r = client.post(
        "/v1/models/lin:predict",
        json={"instances": X},
        headers={
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "X-Request-Id": "abc-123",
        },
    )
    assert r.headers["X-Request-Id"] == "abc-123"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [entry] = [e for e in lines if e.get("route") == "/v1/models/<name>:predict"]
    assert entry["severity"] == "INFO" and entry["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert entry["model_version"] == "1.0.0" and entry["httpRequest"]["status"] == 200
    assert not [e for e in lines if e.get("route") == "/readyz"]
    assert "instances" not in json.dumps(entry) and "1.0, 2.0" not in json.dumps(entry)


V2 = "/v2/models/lin/infer"
V1 = "/v1/models/lin:predict"


def _v2(**tensor):
    base = {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    base.update(tensor)
    return {"inputs": [base]}


BAD_REQUESTS = [
    # (id, method, path, body (bytes or JSON), content type, expected status, words in the error)
    ("malformed-json", "POST", V1, b'{"instances": [1,', "application/json", 400, "not valid JSON"),
    ("json-array-body", "POST", V1, [1, 2], "application/json", 400, "JSON object"),
    ("wrong-content-type", "POST", V1, b"instances=1", "text/plain", 415, "application/json"),
    ("no-instances", "POST", V1, {"rows": X}, "application/json", 400, "instances"),
    ("empty-instances", "POST", V1, {"instances": []}, "application/json", 400, "instances"),
    (
        "ragged-instances",
        "POST",
        V1,
        {"instances": [[1, 2, 3, 4], [1, 2]]},
        "application/json",
        400,
        "same shape",
    ),
    (
        "string-instances",
        "POST",
        V1,
        {"instances": [["a", "b", "c", "d"]]},
        "application/json",
        400,
        "numbers",
    ),
    ("wrong-width", "POST", V1, {"instances": [[1, 2, 3]]}, "application/json", 400, "shape"),
    (
        "unknown-model-v1",
        "POST",
        "/v1/models/other:predict",
        {"instances": X},
        "application/json",
        404,
        "unknown model",
    ),
    ("unknown-model-v2", "POST", "/v2/models/other/infer", _v2(), "application/json", 404, "unknown model"),
    (
        "unknown-version",
        "POST",
        "/v2/models/lin/versions/9.9.9/infer",
        _v2(),
        "application/json",
        404,
        "unknown version",
    ),
    ("wrong-tensor-name", "POST", V2, _v2(name="pixels"), "application/json", 400, "unknown input"),
    ("wrong-shape", "POST", V2, _v2(shape=[2, 4]), "application/json", 400, "do not fill shape"),
    ("wrong-rank", "POST", V2, _v2(shape=[4]), "application/json", 400, "must have shape"),
    ("wrong-datatype", "POST", V2, _v2(datatype="INT64"), "application/json", 400, "must be FP32"),
    ("unknown-datatype", "POST", V2, _v2(datatype="FP8"), "application/json", 400, "datatype"),
    ("bytes-datatype", "POST", V2, _v2(datatype="BYTES", data=["x"] * 4), "application/json", 400, "BYTES"),
    (
        "float-for-int",
        "POST",
        V2,
        _v2(datatype="INT64", data=[1.5, 2, 3, 4]),
        "application/json",
        400,
        "INT64",
    ),
    ("negative-dim", "POST", V2, _v2(shape=[-1, 4]), "application/json", 400, ">= 0"),
    (
        "duplicate-input",
        "POST",
        V2,
        {"inputs": _v2()["inputs"] * 2},
        "application/json",
        400,
        "more than once",
    ),
    ("no-inputs", "POST", V2, {"inputs": []}, "application/json", 400, "inputs"),
    (
        "unknown-output",
        "POST",
        V2,
        {**_v2(), "outputs": [{"name": "nope"}]},
        "application/json",
        400,
        "unknown output",
    ),
    (
        "extra-field",
        "POST",
        V2,
        {"inputs": [{**_v2()["inputs"][0], "bogus": 1}]},
        "application/json",
        400,
        "unknown field",  # the field's name is request data: never echoed
    ),
    ("v2-wrong-content-type", "POST", V2, b"{}", "text/csv", 415, "application/json"),
    ("method-not-allowed", "GET", V1, None, None, 405, "method"),
    ("unknown-route", "GET", "/nope", None, None, 404, "not found"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "ctype", "status", "words"),
    [b[1:] for b in BAD_REQUESTS],
    ids=[b[0] for b in BAD_REQUESTS],
)
def test_bad_requests_get_4xx_json(client, method, path, body, ctype, status, words):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    r = client.open(path, method=method, data=data, content_type=ctype)
    assert r.status_code == status, r.get_data(as_text=True)
    error = r.get_json()["error"]
    assert words.lower() in error.lower()


def test_too_large_body_is_413(make_settings, published):
    from function.app import create_app
    from tests.conftest import wait_ready

    client = create_app(make_settings(model_uri=f"{published}/lin", max_body_bytes=200)).test_client()
    wait_ready(client)
    r = client.post(V1, json={"instances": [[1.0, 2.0, 3.0, 4.0]] * 50})
    assert r.status_code == 413 and "error" in r.get_json()


def test_error_bodies_do_not_echo_request_data(client):
    r = client.post(V2, json=_v2(name="SECRET-NAME-123"))
    assert r.status_code == 400 and "SECRET-NAME-123" not in r.get_data(as_text=True)


def test_untyped_json_is_accepted_by_v2_only_and_binary_by_v2_only(client):
    r = client.post(V2, data=json.dumps(_v2()).encode())  # V2 clients send JSON without a Content-Type
    assert r.status_code == 200
    assert client.post(V1, data=json.dumps({"instances": X}).encode()).status_code == 415
    body = json.dumps({"instances": X}).encode()
    r = client.post(V1, data=body, headers={"Inference-Header-Content-Length": str(len(body))})
    assert r.status_code == 415 and "V2 infer endpoint only" in r.get_json()["error"]
