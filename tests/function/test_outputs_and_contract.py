"""Outputs are strict JSON (#10.6), integer pre-processing (#10.8), V2 server metadata (#10.14), and the OpenAPI
document describing what the server accepts (#10.29)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner

from function.app import create_app
from function.cli import main
from function.publishing import build_manifest
from loader.manifest import PreProcessing
from loader.publish import publish
from loader.stores import open_store
from tests.conftest import wait_ready
from tests.events.cloud import deliver, upload
from tests.events.conftest import events_client  # noqa: F401 (fixture)

HUGE = [[3e38, 3e38, 3e38, 3e38]]  # valid FP32 inputs whose logits overflow to inf (softmax: NaN)


def strict_json(raw: bytes):
    """Parse refusing NaN/Infinity, which Python's json accepts by default."""

    def refuse(token):
        raise ValueError(f"non-JSON constant {token}")

    return json.loads(raw, parse_constant=refuse)


def test_v1_non_finite_predictions_are_null(client):
    r = client.post("/v1/models/lin:predict", json={"instances": HUGE})
    assert r.status_code == 200
    [prediction] = strict_json(r.data)["predictions"]
    assert [p["score"] for p in prediction] == [None, None]


def test_v2_non_finite_outputs_are_null_in_json_and_raw_in_binary(client):
    tensor = {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": HUGE[0]}
    r = client.post("/v2/models/lin/infer", json={"inputs": [tensor]})
    assert r.status_code == 200
    data = strict_json(r.data)["outputs"][0]["data"]
    assert None in data
    assert all(v is None or np.isfinite(v) for v in data)
    r = client.post("/v2/models/lin/infer", json={"inputs": [tensor], "parameters": {"binary_data_output": True}})
    length = int(r.headers["Inference-Header-Content-Length"])
    assert np.isinf(np.frombuffer(r.data[length:], "<f4")).any()  # raw bytes keep the IEEE value


@pytest.mark.parametrize("cloud_backend", ["s3"], indirect=True)
def test_batch_jsonl_output_is_strict_json_with_null_for_non_finite(cloud_backend, events_client):  # noqa: F811
    base = f"{cloud_backend.scheme}://{cloud_backend.bucket}"
    client = events_client(input_uri=f"{base}/inputs", output_uri=f"{base}/outputs")
    v2_line = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": HUGE[0]}]}
    body = (json.dumps(HUGE[0]) + "\n" + json.dumps(v2_line) + "\n").encode()
    version = upload(cloud_backend, "inputs/huge.jsonl", body)
    r = deliver(client, cloud_backend, "inputs/huge.jsonl", version)
    assert r.status_code == 200 and r.get_json()["results"][0]["status"] == "processed", r.get_json()
    lines = cloud_backend.open("outputs").read_bytes("huge.jsonl").decode().splitlines()
    _, instance, v2 = (strict_json(line.encode()) for line in lines)
    assert [p["score"] for p in instance["prediction"]] == [None, None]
    assert None in v2["outputs"][0]["data"]


def test_v2_server_metadata_lists_the_binary_tensor_extension(client):
    body = client.get("/v2").get_json()
    assert "binary_tensor_data" in body["extensions"]


# --- pre-processing on an integer input: refused at publish, computed in floating point for older manifests ---


def int_identity_onnx(path: Path) -> Path:
    """ONNX: y[N] = Identity(x[N]), INT32."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "int_identity",
        [helper.make_tensor_value_info("x", TensorProto.INT32, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, ["N"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def test_publish_refuses_pre_processing_on_an_integer_input(tmp_path, store_dir):
    model = int_identity_onnx(tmp_path / "int.onnx")
    args = ["publish", str(model), "--name", "ints", "--version", "1", "--to", store_dir.as_uri()]
    result = CliRunner().invoke(main, [*args, "--scale", "0.5"])
    assert result.exit_code != 0 and "floating-point" in result.output and "Traceback" not in result.output
    assert CliRunner().invoke(main, args).exit_code == 0  # without pre-processing it publishes


def test_v1_pre_processing_of_an_older_integer_manifest_is_computed_in_float(tmp_path, store_dir, make_settings):
    model = int_identity_onnx(tmp_path / "int.onnx")
    args = {"framework": None, "inputs": [], "outputs": [], "extra_files": [], "postprocess": {}, "metadata": {}}
    manifest, sources = build_manifest(model, "ints", "1", preprocess={}, **args)
    # As an older modelfn published it, before the publish-time check existed.
    legacy = manifest.model_copy(update={"preprocess": PreProcessing(scale=0.5, mean=[1.0], std=[2.0])})
    publish(open_store(store_dir.as_uri()), legacy, sources, ["latest"])
    client = create_app(make_settings(model_uri=f"{store_dir.as_uri()}/ints")).test_client()
    wait_ready(client)
    r = client.post("/v1/models/ints:predict", json={"instances": [10, 14, 18]})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["predictions"] == [2, 3, 4]  # (x * 0.5 - 1) / 2, not truncated at every step
    r = client.post("/v1/models/ints:predict", json={"instances": [2**31 - 1]})
    assert r.status_code == 200  # (2**31 - 1) * 0.5 fits INT32 again
    assert client.post("/v1/models/ints:predict", json={"instances": [1.5]}).status_code == 400


# --- the OpenAPI document against real requests ---


def request_schema(client, path: str, content_type: str):
    spec = client.get("/openapi.json").get_json()
    content = spec["paths"][path]["post"]["requestBody"]["content"]
    if content_type not in content:
        return None
    schema = {**content[content_type]["schema"], "components": spec["components"]}
    return jsonschema.Draft202012Validator(schema)


GOOD_V2 = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
SCHEMA_CASES = [
    ("good", GOOD_V2, True),
    ("no-data", {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32"}]}, False),
    ("null-data", {"inputs": [{**GOOD_V2["inputs"][0], "data": None}]}, False),
    ("negative-dim", {"inputs": [{**GOOD_V2["inputs"][0], "shape": [-1, 4]}]}, False),
    ("bytes", {"inputs": [{**GOOD_V2["inputs"][0], "datatype": "BYTES"}]}, False),
]


@pytest.mark.parametrize(("body", "valid"), [c[1:] for c in SCHEMA_CASES], ids=[c[0] for c in SCHEMA_CASES])
def test_openapi_json_body_matches_what_the_server_accepts(client, body, valid):
    validator = request_schema(client, "/v2/models/{name}/infer", "application/json")
    assert validator.is_valid(body) is valid
    r = client.post("/v2/models/lin/infer", json=body)
    assert (r.status_code == 200) is valid, r.get_json()


def test_openapi_offers_no_binary_body_without_its_header(client):
    # An octet-stream body without Inference-Header-Content-Length is refused (415): the document must not offer it.
    r = client.post("/v2/models/lin/infer", data=b"\0" * 16, content_type="application/octet-stream")
    assert r.status_code == 415
    assert request_schema(client, "/v2/models/{name}/infer", "application/octet-stream") is None
    spec = client.get("/openapi.json").get_json()
    extension = spec["paths"]["/v2/models/{name}/infer"]["post"]["x-binary-tensor-extension"]
    assert extension["required-header"] == "Inference-Header-Content-Length"


def test_openapi_v1_body_matches_what_the_server_accepts(client):
    validator = request_schema(client, "/v1/models/{name}:predict", "application/json")
    for body, status in (({"instances": [[1, 2, 3, 4]]}, 200), ({"instances": []}, 400), ({"rows": []}, 400)):
        assert validator.is_valid(body) is (status == 200)
        assert client.post("/v1/models/lin:predict", json=body).status_code == status


def test_v1_predictions_built_in_slices_equal_one_pass_over_all_rows(client, app):
    from function.codec import ROWS_PER_FRAGMENT
    from loader.prepost import postprocess
    from tests.models import expected_logits

    rows = np.random.default_rng(1).standard_normal((ROWS_PER_FRAGMENT * 2 + 17, 4)).astype(np.float32)
    r = client.post("/v1/models/lin:predict", json={"instances": rows.tolist()})
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(r.data)
    body = strict_json(r.data)
    spec = app.extensions["modelfn"].holder.model.artifact.manifest.postprocess
    expected = postprocess(expected_logits(rows), spec)
    assert [[p["label"] for p in row] for row in body["predictions"]] == [[p["label"] for p in row] for row in expected]
    got = np.array([[p["score"] for p in row] for row in body["predictions"]])
    np.testing.assert_allclose(got, [[p["score"] for p in row] for row in expected], rtol=1e-5)
