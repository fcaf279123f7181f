"""Runtime thread pools sized from the container's CPU quota (a fake cgroup), overridable by settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from function import cpus
from function.app import create_app
from loader.runtimes import DeviceChoice, RuntimeOptions, create_runtime
from tests.conftest import wait_ready

AFFINITY = len(os.sched_getaffinity(0))


def fake_cgroup(tmp_path: Path, cpu_max: str) -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cpu.max").write_text(f"{cpu_max}\n")
    return root


def session_threads(app) -> tuple[int, int]:
    wait_ready(app.test_client())
    options = app.extensions["modelfn"].holder.model.runtime._session.get_session_options()
    return options.intra_op_num_threads, options.inter_op_num_threads


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("50000 100000", 1), ("150000 100000", min(AFFINITY, 2)), ("max 100000", AFFINITY)],
)
def test_onnx_session_threads_follow_the_cgroup_quota(
    monkeypatch, tmp_path, make_settings, published, cpu_max, expected
):
    monkeypatch.setattr(cpus, "CGROUP_ROOT", fake_cgroup(tmp_path, cpu_max))
    app = create_app(make_settings(model_uri=f"{published}/lin"))
    assert session_threads(app) == (expected, 1)  # one pool, never cores x workers


def test_runtime_threads_setting_overrides_the_quota(monkeypatch, tmp_path, make_settings, published):
    monkeypatch.setattr(cpus, "CGROUP_ROOT", fake_cgroup(tmp_path, "50000 100000"))
    app = create_app(make_settings(model_uri=f"{published}/lin", runtime_threads=3))
    assert session_threads(app) == (3, 1)


def test_runtime_threads_reads_the_env_through_settings(monkeypatch):
    from function.settings import load_settings

    monkeypatch.setenv("RUNTIME_THREADS", "5")
    assert cpus.runtime_threads(load_settings().runtime_threads) == 5


def test_torch_uses_the_thread_budget(tmp_path):
    torch = pytest.importorskip("torch")
    from loader.artifacts import fetch
    from loader.cache import ArtifactCache
    from loader.manifest import Framework
    from loader.stores import open_store
    from loader.uri import parse_model_uri
    from tests.models import TORCH_IO, linear_torchscript, publish_model

    store = tmp_path / "store"
    store.mkdir()
    publish_model(store.as_uri(), linear_torchscript(tmp_path / "m.pt"), framework=Framework.TORCHSCRIPT, **TORCH_IO)
    uri = parse_model_uri(f"{store.as_uri()}/lin@1.0.0")
    artifact = fetch(open_store(uri.store, {}), uri, ArtifactCache(tmp_path / "cache", 0))
    before = torch.get_num_threads()
    try:
        runtime = create_runtime(Framework.TORCHSCRIPT, DeviceChoice.CPU, RuntimeOptions(intra_op_threads=1))
        runtime.load(artifact)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("spin", "entry"), [(True, ""), (False, "0")])
def test_spin_wait_reaches_the_onnx_session(tmp_path, spin, entry):
    from loader.cache import FetchStats
    from loader.manifest import Framework
    from tests.models import linear_onnx

    class Artifact:
        model_path = linear_onnx(tmp_path / "m.onnx")
        manifest = None
        stats = FetchStats()

    runtime = create_runtime(Framework.ONNX, DeviceChoice.CPU, RuntimeOptions(1, spin_wait=spin))
    runtime.load(Artifact())  # type: ignore[arg-type]
    options = runtime._session.get_session_options()
    got = options.get_session_config_entry("session.intra_op.allow_spinning") if entry else ""
    assert got == entry  # unset means ORT's default: spinning allowed
