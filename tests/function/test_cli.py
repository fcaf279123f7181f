"""The ``modelfn`` CLI on a file:// store: happy paths and clear errors with non-zero exits."""

from __future__ import annotations

import json
import re
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
    aliases = {p.stem: json.loads(p.read_text())["version"] for p in (store_dir / "lin" / "aliases").glob("*.json")}
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


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a fresh process."""
    import os

    argv = [sys.executable, "-m", "function.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def _publish_args(model: Path, store: str, version: str = "1.0.0") -> list[str]:
    return ["publish", str(model), "--name", "lin", "--version", version, "--to", store]


def test_exit_codes_name_the_kind_of_failure(published: str, store_dir: Path, onnx_file: Path, tmp_path: Path):
    from function.cli import EXIT_CONFIG, EXIT_CONFLICT, EXIT_INTEGRITY, EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_USAGE
    from tests.emulators import free_port
    from tests.models import stored_file

    dead_s3 = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    no_azure = {"AZURE_STORAGE_ACCOUNT_URL": "", "AZURE_STORAGE_CONNECTION_STRING": ""}
    cases = [
        (_cli("publish", str(onnx_file), "--name", "Bad Name", "--version", "1", "--to", published), EXIT_USAGE),
        (_cli("promote", "lin@9.9.9", "--alias", "prod", "--store", published), EXIT_NOT_FOUND),
        (_cli(*_publish_args(onnx_file, published)), EXIT_CONFLICT),
        (_cli(*_publish_args(onnx_file, published, version="latest")), EXIT_CONFLICT),
        (_cli("list", "s3://bucket/models", env=dead_s3), EXIT_UNAVAILABLE),
        (_cli("list", "az://container/models", env=no_azure), EXIT_CONFIG),
        (_cli("verify", "lin@latest", "--store", published), 0),
    ]
    model = stored_file(store_dir)
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    cases.append((_cli("verify", "lin@1.0.0", "--store", published), EXIT_INTEGRITY))
    for result, code in cases:
        assert result.returncode == code, (result.args, result.stderr)
        assert "Traceback" not in result.stderr
        if code:
            assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "sha256" in cases[-1][0].stderr  # the operator view keeps the full reason


def test_exit_codes_are_documented_in_the_readme():
    from function import exit_codes as cli

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    codes = {k: v for k, v in vars(cli).items() if k.startswith("EXIT_") and isinstance(v, int)}
    assert len(set(codes.values())) == len(codes)  # distinct
    for value in codes.values():
        assert re.search(rf"^\| `{value}` \|", readme, re.M), f"exit code {value} missing from the README table"


MISSING_SDK = """
import sys
for blocked in sys.argv[1].split(","):
    sys.modules[blocked] = None  # as if the extra were not installed
from function.cli import main
sys.argv = ["modelfn", "list", sys.argv[2]]
main()
"""


@pytest.mark.parametrize(
    ("blocked", "uri", "extra"),
    [
        ("boto3", "s3://bucket/models", "s3"),
        ("google.cloud.storage", "gs://bucket/models", "gcs"),
        ("azure.storage.blob", "az://container/models", "azure"),
    ],
)
def test_a_missing_sdk_names_both_install_forms(blocked: str, uri: str, extra: str):
    from function.cli import EXIT_CONFIG

    env = {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}
    out = subprocess.run(
        [sys.executable, "-c", MISSING_SDK, blocked, uri],
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, **env},
    )
    assert out.returncode == EXIT_CONFIG, out.stderr
    assert f"pip install 'modelfn[{extra}]'" in out.stderr  # from a package
    assert f"pip install -e '.[{extra}]'" in out.stderr  # from a source checkout
