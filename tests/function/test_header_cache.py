"""Repeated binary-extension headers: parsed once, laid out once per model, and never a wrong or stale answer."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from function import header_cache
from function.app import create_app
from function.binary import HEADER
from tests.conftest import wait_ready
from tests.function.test_v2_binary import BAD_BINARY, X, binary_input, post_binary, split_response
from tests.models import B, expected_logits, publish_linear_versions, publish_model, two_input_onnx


def _logits(response) -> np.ndarray:
    assert response.status_code == 200, response.get_data()[:300]
    header, blob = split_response(response)
    return np.frombuffer(blob, "<f4").reshape(header["outputs"][0]["shape"])


def _served(app) -> Any:
    return app.extensions["modelfn"].holder.model


DOCUMENT = {"inputs": [binary_input(np.zeros((2, 4), np.float32))], "parameters": {"binary_data_output": True}}


@pytest.fixture(autouse=True)
def _empty_envelopes():
    header_cache._parsed.clear()  # the envelopes are per process; each test starts from none
    yield
    header_cache._parsed.clear()


def test_a_repeated_header_reuses_its_plan_and_every_request_gets_its_own_rows(client, app):
    rng = np.random.default_rng(1)
    for _ in range(20):
        x = rng.standard_normal((2, 4)).astype(np.float32)
        np.testing.assert_allclose(_logits(post_binary(client, DOCUMENT, x.tobytes())), expected_logits(x), rtol=1e-6)
    head = json.dumps(DOCUMENT).encode()
    assert head in header_cache._parsed
    [slot] = _served(app).header_plans[head].slots
    assert (slot.name, slot.start, slot.items, slot.shape) == ("features", 0, 8, (2, 4))


@pytest.mark.parametrize(
    ("document", "blob", "header_length", "words"), [b[1:] for b in BAD_BINARY], ids=[b[0] for b in BAD_BINARY]
)
def test_bad_requests_get_the_same_400_after_good_ones_with_the_same_header(
    client, document, blob, header_length, words
):
    for _ in range(2):  # a good body first: whatever could be kept of this header is kept by now
        post_binary(client, document, X.tobytes(), header_length=header_length)
        r = post_binary(client, document, blob, header_length=header_length)
        assert r.status_code == 400, r.get_data(as_text=True)
        assert words.lower() in r.get_json()["error"].lower()
    assert len(header_cache._parsed) <= 1


def test_a_header_that_failed_is_not_kept(client):
    document = {"inputs": [binary_input(name="nope")]}
    for _ in range(3):
        assert post_binary(client, document, np.zeros(8, np.float32).tobytes()).status_code == 400
    assert header_cache._parsed == {}


def test_json_data_in_the_header_is_never_kept(client, app):
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    document = {**DOCUMENT, "inputs": [{"name": "features", "shape": [2, 4], "datatype": "FP32", "data": x.tolist()}]}
    for _ in range(3):
        np.testing.assert_allclose(_logits(post_binary(client, document)), expected_logits(x), rtol=1e-6)
    assert header_cache._parsed == {} and _served(app).answer_heads == {}


def test_inputs_sent_out_of_signature_order_take_their_own_bytes(make_settings, store_dir: Path, tmp_path: Path):
    publish_model(store_dir.as_uri(), two_input_onnx(tmp_path / "two.onnx"), name="two")
    client = create_app(make_settings(model_uri=f"{store_dir.as_uri()}/two")).test_client()
    wait_ready(client)
    count, b, a = (
        {"name": "count", "shape": [3], "datatype": "INT64", "parameters": {"binary_data_size": 24}},
        {"name": "b", "shape": [3, 2], "datatype": "FP32", "parameters": {"binary_data_size": 24}},
        {"name": "a", "shape": [3, 2], "datatype": "FP32", "parameters": {"binary_data_size": 24}},
    )
    document = {"inputs": [count, b, a], "parameters": {"binary_data_output": True}}
    rng = np.random.default_rng(2)
    for _ in range(5):
        xa, xb = rng.standard_normal((2, 3, 2)).astype(np.float32)
        n = rng.integers(-(2**40), 2**40, 3)
        r = client.post(
            "/v2/models/two/infer",
            data=json.dumps(document).encode() + n.astype("<i8").tobytes() + xb.tobytes() + xa.tobytes(),
            headers={"Inference-Header-Content-Length": str(len(json.dumps(document)))},
            content_type="application/octet-stream",
        )
        header, blob = split_response(r)
        sizes = {o["name"]: o["parameters"]["binary_data_size"] for o in header["outputs"]}
        dot = np.frombuffer(blob[: sizes["dot"]], "<f4")
        np.testing.assert_allclose(dot, (xa * xb).sum(axis=1), rtol=1e-5)
        np.testing.assert_array_equal(np.frombuffer(blob[sizes["dot"] :], "<i8"), n)
    assert len(header_cache._parsed) == 1


def test_distinct_headers_from_racing_threads_stay_bounded_and_correct(client, app):
    rounds, threads = 12, 8
    barrier, failures = threading.Barrier(threads), []

    def one(k: int) -> None:
        rng = np.random.default_rng(k)
        for i in range(rounds):
            barrier.wait()
            x = rng.standard_normal((2, 4)).astype(np.float32)
            document = {**DOCUMENT, "id": f"t{k}-{i}"}  # a header of its own: every insert races the others
            try:
                np.testing.assert_allclose(_logits(post_binary(client, document, x.tobytes())), expected_logits(x))
            except AssertionError as exc:
                failures.append(exc)

    workers = [threading.Thread(target=one, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert failures == []
    assert len(header_cache._parsed) == header_cache.MAX_ENTRIES
    assert len(_served(app).header_plans) == header_cache.MAX_ENTRIES


def test_a_new_version_lays_out_headers_anew(make_settings, store_dir: Path, tmp_path: Path):
    from function.app import create_app
    from loader import aliases
    from loader.stores import open_store

    bias = {"1.0.0": B, "2.0.0": B + 100}
    publish_linear_versions(store_dir.as_uri(), tmp_path, bias)
    store = open_store(store_dir.as_uri(), {})
    aliases.promote(store, "lin", "prod", "1.0.0", by="test")
    app = create_app(make_settings(model_uri=f"{store_dir.as_uri()}/lin@prod"))
    client = app.test_client()
    wait_ready(client)
    x = np.ones((2, 4), np.float32)
    for version in ("1.0.0", "2.0.0"):
        for _ in range(3):
            got = _logits(post_binary(client, DOCUMENT, x.tobytes()))
            np.testing.assert_allclose(got, expected_logits(x) - B + bias[version], rtol=1e-6)
        assert list(_served(app).header_plans) == [json.dumps(DOCUMENT).encode()]
        old = _served(app)
        aliases.promote(store, "lin", "prod", "2.0.0", by="test")
        if version == "1.0.0":
            assert app.extensions["modelfn.events"].updater.check() == "swapped"
            new = _served(app)
            assert new.version == "2.0.0" and new.header_plans == new.answer_heads == {}
            assert old.header_plans and old.answer_heads


def test_bool_bytes_are_checked_on_every_request(tmp_path, store_dir, make_settings):
    from tests.function.test_strict_decoding import DTYPES, GOOD, V2, identity_onnx

    publish_model(store_dir.as_uri(), identity_onnx(tmp_path / "ident.onnx"), name="ident")
    client = create_app(make_settings(model_uri=f"{store_dir.as_uri()}/ident")).test_client()
    wait_ready(client)
    blobs = {n: np.array(GOOD[n], dtype=t).tobytes() for n, (_, t) in DTYPES.items()}
    header = {
        "inputs": [
            {"name": n, "datatype": d, "shape": [2], "parameters": {"binary_data_size": len(blobs[n])}}
            for n, (d, _) in DTYPES.items()
        ]
    }
    head = json.dumps(header).encode()
    for bools, status in ((b"\x01\x00", 200), (b"\x01\x00", 200), (b"\x02\x01", 400), (b"\x00\x01", 200)):
        body = head + b"".join(bools if n == "b" else blobs[n] for n in DTYPES)
        r = client.post(V2, data=body, headers={"Inference-Header-Content-Length": str(len(head))})
        assert r.status_code == status, r.get_data(as_text=True)
    assert header_cache._parsed == {}  # a header with a BOOL input is decoded in full every time


def test_a_header_longer_than_the_limit_is_decoded_in_full_every_time(client, app):
    document = {**DOCUMENT, "parameters": {"binary_data_output": True, "note": "x" * header_cache.MAX_HEADER}}
    x = np.ones((2, 4), np.float32)
    for _ in range(3):
        np.testing.assert_allclose(_logits(post_binary(client, document, x.tobytes())), expected_logits(x), rtol=1e-6)
    assert header_cache._parsed == {} and _served(app).header_plans == {}


def _answer_header(response) -> bytes:
    assert response.status_code == 200, response.get_data()[:300]
    return response.get_data()[: int(response.headers[HEADER])]


def test_a_kept_header_reuses_its_answer_header_byte_for_byte_and_every_answer_carries_its_own_rows(client, app):
    document = {**DOCUMENT, "id": "req-7"}
    rng = np.random.default_rng(3)
    heads = []
    for _ in range(6):
        x = rng.standard_normal((2, 4)).astype(np.float32)
        r = post_binary(client, document, x.tobytes())
        np.testing.assert_allclose(_logits(r), expected_logits(x), rtol=1e-6)
        heads.append(_answer_header(r))
    assert len(set(heads)) == 1 and len(_served(app).answer_heads) == 1
    assert json.loads(heads[0]) == {
        "model_name": "lin",
        "model_version": "1.0.0",
        "id": "req-7",
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [2, 3], "parameters": {"binary_data_size": 24}}],
    }
    _served(app).answer_heads.clear()  # encoded anew: the same bytes
    assert _answer_header(post_binary(client, document, X.tobytes())) == heads[0]
    three = {**DOCUMENT, "inputs": [binary_input(np.zeros((3, 4), np.float32))]}  # another header, its own head
    r = post_binary(client, three, np.ones((3, 4), np.float32).tobytes())
    assert json.loads(_answer_header(r))["outputs"][0]["shape"] == [3, 3]
    assert len(_served(app).answer_heads) == 2


def test_an_output_asked_for_as_json_keeps_no_answer_header(client, app):
    document = {**DOCUMENT, "outputs": [{"name": "logits", "parameters": {"binary_data": False}}]}
    rng = np.random.default_rng(4)
    for _ in range(3):
        x = rng.standard_normal((2, 4)).astype(np.float32)
        r = post_binary(client, document, x.tobytes())
        assert r.status_code == 200 and r.mimetype == "application/json", r.get_data()[:300]
        np.testing.assert_allclose(np.array(r.get_json()["outputs"][0]["data"]), expected_logits(x).ravel(), rtol=1e-5)
    assert _served(app).answer_heads == {}
