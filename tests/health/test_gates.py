"""``modelfn publish --eval/--gate`` and protected aliases, through the real CLI on file:// and S3 (moto)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from function.cli import main
from function.gating import EXIT_GATE_FAILED
from function.settings import Settings
from loader.manifest import Evaluation, GateResult, Manifest
from loader.stores import open_store
from tests.models import expected_logits, publish_model


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def publish(onnx_file: Path, store: str, version: str, *extra: str):
    return cli("publish", str(onnx_file), "--name", "lin", "--version", version, "--to", store, *extra)


def keys(store: str) -> list[str]:
    return sorted(open_store(store, Settings().store_options()).list_keys(""))


def test_passing_gates_record_the_evaluation(store_dir, onnx_file, eval_set):
    path, accuracy = eval_set
    store = store_dir.as_uri()
    gates = ["--gate", f"accuracy>={accuracy}", "--gate", "p99_ms<=100000", "--gate", "peak_rss_mb<=100000"]
    result = publish(onnx_file, store, "1.0.0", "--eval", str(path), *gates)
    assert result.exit_code == 0, result.output
    evaluation = Manifest.from_json((store_dir / "lin/1.0.0/manifest.json").read_bytes()).provenance.evaluation
    assert evaluation is not None and evaluation.passed and evaluation.examples == 200
    assert evaluation.metrics["accuracy"] == pytest.approx(0.75) == accuracy
    assert [g.gate for g in evaluation.gates] == ["accuracy>=0.75", "p99_ms<=100000", "peak_rss_mb<=100000"]
    # Latency and memory really measured (in the evaluating child), not defaulted.
    assert 0 < evaluation.metrics["p50_ms"] <= evaluation.metrics["p99_ms"]
    assert evaluation.metrics["peak_rss_mb"] > 10


def test_string_labels_match_the_manifest_labels(store_dir, onnx_file, tmp_path, labels_file):
    x = np.random.default_rng(3).normal(size=(40, 4)).astype(np.float32)
    names = np.array(["a", "b", "c"])[expected_logits(x).argmax(axis=1)]
    np.savez(tmp_path / "named.npz", features=x, labels=names)
    result = publish(
        onnx_file, store_dir.as_uri(), "1.0.0", "--labels", str(labels_file), "--eval", str(tmp_path / "named.npz"),
        "--gate", "accuracy>=1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("gate", "failed"),
    [("accuracy>=0.76", "accuracy>=0.76 (measured 0.75)"), ("p99_ms<=0", "p99_ms<=0"), ("peak_rss_mb<=1", "peak_rss")],
)
def test_a_failing_gate_publishes_nothing(store_dir, onnx_file, eval_set, gate, failed):
    store = store_dir.as_uri()
    result = publish(onnx_file, store, "1.0.0", "--eval", str(eval_set[0]), "--gate", "accuracy>=0.5", "--gate", gate)
    assert result.exit_code == EXIT_GATE_FAILED
    assert failed in result.output and "nothing was published" in result.output and "Traceback" not in result.output
    assert keys(store) == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--gate", "accuracy>=0.5"], "needs an evaluation set"),
        (["--eval", "{eval}", "--gate", "acuracy>=0.5"], "unknown gate metric"),
        (["--eval", "{eval}", "--gate", "accuracy=>0.5"], "not METRIC OP NUMBER"),
        (["--eval", "{bad}", "--gate", "accuracy>=0.5"], "not a readable .npz"),
        (["--eval", "{nolabels}", "--gate", "accuracy>=0.5"], "needs a 'labels'"),
        (["--eval", "{wrongname}", "--gate", "accuracy>=0.5"], "lacks input array(s) ['features']"),
    ],
)
def test_bad_evaluation_input_is_a_clear_usage_error(store_dir, onnx_file, eval_set, tmp_path, args, words):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    np.savez(tmp_path / "nolabels.npz", features=np.zeros((3, 4), np.float32))
    np.savez(tmp_path / "wrongname.npz", x=np.zeros((3, 4), np.float32), labels=np.zeros(3))
    subst = {f"{{{n}}}": str(tmp_path / f"{n}.npz") for n in ("bad", "nolabels", "wrongname")}
    subst["{eval}"] = str(eval_set[0])
    result = publish(onnx_file, store_dir.as_uri(), "1.0.0", *[subst.get(a, a) for a in args])
    assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output
    assert keys(store_dir.as_uri()) == []


def test_protected_alias_needs_passed_gates(store_dir, onnx_file, eval_set, monkeypatch):
    store = store_dir.as_uri()
    assert publish(onnx_file, store, "1.0.0").exit_code == 0  # no gates
    assert publish(onnx_file, store, "1.1.0", "--eval", str(eval_set[0]), "--gate", "accuracy>=0.7").exit_code == 0
    refused = cli("promote", "lin@1.0.0", "--alias", "prod", "--store", store, "--protected")
    assert refused.exit_code == EXIT_GATE_FAILED and "without gates" in refused.output
    monkeypatch.setenv("PROTECTED_ALIASES", "staging, prod")
    assert cli("promote", "lin@1.0.0", "--alias", "prod", "--store", store).exit_code == EXIT_GATE_FAILED
    assert not (store_dir / "lin/aliases/prod.json").exists()
    assert cli("promote", "lin@1.0.0", "--alias", "canary", "--store", store).exit_code == 0  # not protected
    ok = cli("promote", "lin@1.1.0", "--alias", "prod", "--store", store)
    assert ok.exit_code == 0, ok.output
    assert json.loads((store_dir / "lin/aliases/prod.json").read_text())["version"] == "1.1.0"
    # publish --alias to a protected alias is checked before anything is uploaded
    ungated = publish(onnx_file, store, "1.2.0", "--alias", "staging")
    assert ungated.exit_code == EXIT_GATE_FAILED and not (store_dir / "lin/1.2.0").exists()


def test_promote_refuses_a_version_whose_recorded_gates_failed(store_dir, onnx_file, monkeypatch):
    # A version published with a failed evaluation on record (e.g. by a library caller that did not gate).
    failed = Evaluation(
        dataset_sha256="0" * 64,
        examples=10,
        metrics={"accuracy": 0.5},
        gates=[GateResult(gate="accuracy>=0.9", value=0.5, passed=False)],
        passed=False,
    )
    manifest = publish_model(store_dir.as_uri(), onnx_file, version="2.0.0", aliases=())
    data = manifest.model_dump(mode="json")
    data["provenance"]["evaluation"] = failed.model_dump(mode="json")
    (store_dir / "lin/2.0.0/manifest.json").write_bytes(Manifest.model_validate(data).to_json())
    monkeypatch.setenv("PROTECTED_ALIASES", "prod")
    result = cli("promote", "lin@2.0.0", "--alias", "prod", "--store", store_dir.as_uri())
    assert result.exit_code == EXIT_GATE_FAILED and "failed its gates: accuracy>=0.9" in result.output


def test_manifests_without_gates_stay_byte_compatible(store_dir, onnx_file):
    # Older readers forbid unknown keys: the new optional fields are omitted when unset.
    assert publish(onnx_file, store_dir.as_uri(), "1.0.0").exit_code == 0
    raw = json.loads((store_dir / "lin/1.0.0/manifest.json").read_text())
    assert "reference" not in raw and "evaluation" not in raw["provenance"]


def test_gates_against_the_s3_emulator(s3_emulator, monkeypatch, onnx_file, eval_set):
    for name, value in s3_emulator.env.items():
        monkeypatch.setenv(name, value)
    store = f"s3://{s3_emulator.create_bucket(f't-{uuid.uuid4().hex[:16]}')}/models"
    path, accuracy = eval_set
    failing = publish(onnx_file, store, "1.0.0", "--eval", str(path), "--gate", f"accuracy>{accuracy}")
    assert failing.exit_code == EXIT_GATE_FAILED and keys(store) == []
    passing = publish(onnx_file, store, "1.0.0", "--eval", str(path), "--gate", f"accuracy>={accuracy}")
    assert passing.exit_code == 0, passing.output
    raw = open_store(store, Settings().store_options()).read_bytes("lin/1.0.0/manifest.json")
    evaluation = Manifest.from_json(raw).provenance.evaluation
    assert evaluation is not None and evaluation.passed and evaluation.metrics["accuracy"] == accuracy
    monkeypatch.setenv("PROTECTED_ALIASES", "prod")
    assert cli("promote", "lin@1.0.0", "--alias", "prod", "--store", store).exit_code == 0
