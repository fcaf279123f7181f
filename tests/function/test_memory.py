"""Memory of the model's process: freed weight-sized blocks go back to the system; weights go onto huge pages."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from function import memory
from function.app import create_app
from function.settings import Settings
from tests.conftest import wait_ready
from tests.logs import captured
from tests.models import publish_model

ROOT = Path(__file__).resolve().parents[2]
# A 16 MB block freed raises glibc's dynamic mmap threshold to 16 MB; the 8 MB blocks allocated after it then
# come from the heap, which keeps them once freed (as a model load's initializers and their prepacked copies).
PROBE = """
import sys, numpy as np
def rss_mb():
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')) // 1024
if sys.argv[1] == 'tuned':
    from function import memory
    assert memory.tune_malloc({})
elif sys.argv[1] == 'gunicorn':
    import function.gunicorn_conf  # what the image's command loads before the worker forks
a = np.ones(2 * 1024 * 1024); del a
base = rss_mb()
blocks = [np.ones(1024 * 1024) for _ in range(3)]
del blocks
print(rss_mb() - base)
"""


def _retained_mb(mode: str, env: dict[str, str] | None = None) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_freed_weight_sized_blocks_are_returned_only_with_the_tuning():
    assert _retained_mb("plain") >= 16  # glibc's dynamic threshold keeps them: the probe shows the problem
    assert _retained_mb("tuned") <= 2
    assert _retained_mb("gunicorn") <= 2  # the Gunicorn configuration applies it before the fork


def test_an_operators_glibc_setting_is_left_to_glibc():
    assert memory.tune_malloc({"MALLOC_TRIM_THRESHOLD_": "131072"}) is False
    assert memory.tune_malloc({"MALLOC_MMAP_THRESHOLD_": "1048576"}) is False
    # Set by the operator (here: keep everything below 64 MB in a heap that never shrinks), glibc applies it at
    # start-up and the Gunicorn configuration changes nothing.
    keep = {"MALLOC_MMAP_THRESHOLD_": str(64 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(1024**3)}
    assert _retained_mb("gunicorn", keep) >= 6  # the tuned process keeps <= 2


# --- huge pages for the weights ---

MB = 1024 * 1024
SMAPS = """\
55d0a0000000-55d0a0c00000 rw-p 00000000 00:00 0                          [heap]
Rss:               12288 kB
7f0000100000-7f0003100000 rw-p 00000000 00:00 0
Size:              49152 kB
Rss:               49152 kB
VmFlags: rd wr mr mw me ac
7f0004000000-7f0004800000 rw-p 00000000 00:00 0
Rss:                   4 kB
7f0005000000-7f0006000000 rw-p 00000000 fd:01 1234                       /srv/model.bin
Rss:               16384 kB
7f0007000000-7f0008000000 r--p 00000000 00:00 0
Rss:               16384 kB
7f0009000000-7f0009400000 rw-p 00000000 00:00 0
Rss:                4096 kB
"""


def test_only_large_resident_private_anonymous_mappings_are_collapsed_on_huge_page_bounds():
    assert memory._weight_ranges(SMAPS) == [
        (0x55D0A0000000, 12 * MB),  # the heap
        (0x7F0000200000, 46 * MB),  # 48 MB from 1 MB past a 2 MB bound: the aligned 46 MB inside it
    ]
    # Left alone: a thread's stack (8 MB, barely touched), a file mapping, a read-only mapping, a 4 MB block.


def _thp_collapse_supported() -> bool:
    release = tuple(int(p) for p in platform.release().split(".")[:2] if p.isdigit())
    return memory._thp_available() and release >= (6, 1)


HUGE_PROBE = """
import numpy as np
from function import memory
weights = np.ones(8 * 1024 * 1024)  # 64 MB, every page touched, like a loaded model's weights
done = memory.back_with_huge_pages()
rollup = open('/proc/self/smaps_rollup').read()
huge_kb = next(int(l.split()[1]) for l in rollup.splitlines() if l.startswith('AnonHugePages:'))
print(done.collapsed // 2**20, done.advised // 2**20, huge_kb // 1024, float(weights.sum()))
"""


@pytest.mark.skipif(not _thp_collapse_supported(), reason="needs THP not 'never' and MADV_COLLAPSE (Linux 6.1)")
def test_resident_weights_are_rebuilt_on_huge_pages_and_keep_their_values():
    done = subprocess.run(
        [sys.executable, "-c", HUGE_PROBE],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    collapsed, advised, huge, total = done.stdout.split()
    assert int(collapsed) >= 60 and int(advised) == 0
    assert int(huge) >= 60  # the kernel reports them huge
    assert float(total) == 8 * 1024 * 1024  # the copy kept every value


def test_without_transparent_huge_pages_nothing_is_touched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(memory, "THP_MODE", tmp_path / "absent")
    assert memory.back_with_huge_pages() == memory.HugePages()
    never = tmp_path / "enabled"
    never.write_text("always madvise [never]\n")
    monkeypatch.setattr(memory, "THP_MODE", never)
    assert memory.back_with_huge_pages() == memory.HugePages()


def _wide_onnx(path: Path) -> Path:
    """y = x @ W with a 2048x2048 float32 W: 16 MB of weights, one resident mapping."""
    w = np.full((2048, 2048), 1 / 2048, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2048])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2048])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("enabled", [True, False])
def test_a_loaded_cpu_model_goes_onto_huge_pages_unless_turned_off(
    enabled: bool,
    monkeypatch: pytest.MonkeyPatch,
    store_dir: Path,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
):
    threads: list[threading.Thread] = []
    real = memory.huge_pages_later
    monkeypatch.setattr(memory, "huge_pages_later", lambda model: threads.append(real(model)) or threads[-1])
    publish_model(store_dir.as_uri(), _wide_onnx(tmp_path / "wide.onnx"), name="wide")
    settings = make_settings(model_uri=f"{store_dir.as_uri()}/wide", huge_pages=enabled)
    client = create_app(settings).test_client()
    with captured("modelfn.memory") as records:
        wait_ready(client)
        for thread in threads:
            thread.join(60)
    x = np.ones((1, 2048), dtype=np.float32)
    body = {"inputs": [{"name": "x", "shape": [1, 2048], "datatype": "FP32", "data": x.ravel().tolist()}]}
    answer = client.post("/v2/models/wide/infer", json=body)
    assert answer.status_code == 200
    assert answer.get_json()["outputs"][0]["data"][:3] == [1.0, 1.0, 1.0]  # the weights survived the move
    if not enabled:
        assert threads == [] and not [r for r in records if r.getMessage() == "huge pages"]
        return
    [record] = [r for r in records if r.getMessage() == "huge pages"]
    fields = record.__dict__["fields"]
    assert fields["model"] == "wide@1.0.0"
    if _thp_collapse_supported():
        assert fields["collapsed_bytes"] >= 14 * MB  # W, on 2 MB bounds
