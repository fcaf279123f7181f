"""The ``modelfn`` CLI on a file:// store: happy paths and clear errors with non-zero exits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from function.cli import main
from loader.manifest import Manifest


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_publish_writes_a_complete_manifest(store_dir: Path, onnx_file: Path, tmp_path: Path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    result = run(
        "publish",
        str(onnx_file),
        "--name",
        "lin",
        "--version",
        "2.0.0",
        "--to",
        store_dir.as_uri(),
        "--alias",
        "prod",
        "--labels",
        str(labels),
        "--softmax",
        "--top-k",
        "2",
        "--mean",
        "0,0,0,0",
        "--std",
        "1,1,1,2",
        "--meta",
        "git_sha=abc",
        "--meta",
        "dataset=v3",
    )
    assert result.exit_code == 0, result.output
    manifest = Manifest.from_json((store_dir / "lin" / "2.0.0" / "manifest.json").read_bytes())
    assert manifest.framework == "onnx" and manifest.files[0].size == onnx_file.stat().st_size
    assert manifest.inputs[0].shape == [-1, 4] and manifest.postprocess.labels == ["a", "b", "c"]
    assert manifest.preprocess.std == [1, 1, 1, 2] and manifest.provenance.metadata == {
        "git_sha": "abc",
        "dataset": "v3",
    }
    aliases = {p.stem: json.loads(p.read_text())["version"] for p in (store_dir / "lin" / "aliases").iterdir()}
    assert aliases == {"prod": "2.0.0", "latest": "2.0.0"}


def test_predict_client_against_a_live_server(tmp_path: Path, published: str):
    from tests.function.test_server import start_server

    server = start_server(tmp_path, f"{published}/lin", WORKERS="1")
    try:
        result = run("predict", "[[1, 2, 3, 4]]", "--url", server.url, "--model", "lin")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["predictions"][0][0]["label"] in ("a", "b", "c")
        bad = run("predict", "[[1, 2]]", "--url", server.url, "--model", "lin")
        assert bad.exit_code == 1 and "shape" in bad.output
    finally:
        server.proc.terminate()
        server.proc.wait(30)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["publish", "{model}", "--name", "Bad Name", "--version", "1", "--to", "{store}"], "model name"),
        (["publish", "{model}", "--name", "m", "--version", "1", "--to", "ftp://x/y"], "unsupported scheme"),
        (
            ["publish", "{model}", "--name", "m", "--version", "1", "--to", "{store}", "--input", "x:FP32"],
            "NAME:DATATYPE",
        ),
        (
            ["publish", "{model}", "--name", "m", "--version", "1", "--to", "{store}", "--mean", "a,b"],
            "numbers",
        ),
        (["publish", "{model}", "--name", "m", "--version", "1", "--to", "{store}", "--top-k", "0"], "top-k"),
        (["publish", "{junk}", "--name", "m", "--version", "1", "--to", "{store}"], "not a loadable ONNX"),
        (["publish", "{txt}", "--name", "m", "--version", "1", "--to", "{store}"], "--framework"),
        (
            ["publish", "/nonexistent.onnx", "--name", "m", "--version", "1", "--to", "{store}"],
            "does not exist",
        ),
        (["promote", "lin", "--alias", "prod", "--store", "{store}"], "NAME@VERSION"),
        (["promote", "lin@9.9.9", "--alias", "prod", "--store", "{store}"], "not published"),
        (["predict", "not json", "--url", "http://127.0.0.1:9"], "not valid JSON"),
        (["predict", "[[1]]", "--url", "http://127.0.0.1:9"], "cannot reach"),
        (["predict", "[[1]]", "--url", "file:///etc/passwd"], "http://"),
    ],
)
def test_bad_input_exits_non_zero_with_a_message(args, words, store_dir, onnx_file, tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    (tmp_path / "model.txt").write_text("x")
    subst = {
        "{model}": str(onnx_file),
        "{store}": store_dir.as_uri(),
        "{junk}": str(tmp_path / "junk.onnx"),
        "{txt}": str(tmp_path / "model.txt"),
    }
    result = run(*[subst.get(a, a) for a in args])
    assert result.exit_code != 0
    assert words.lower() in result.output.lower()
    assert "Traceback" not in result.output


def test_list_and_console_script(published: str):
    out = subprocess.run(
        [sys.executable, "-m", "function.cli", "list", published], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "lin" in out.stdout and "latest -> 1.0.0" in out.stdout
