"""Tiny models built by the tests themselves, and a helper to publish them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from function.publishing import build_manifest
from loader.manifest import Manifest, TensorSpec
from loader.publish import publish
from loader.stores import open_store

W = np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0], [0.5, 0.5, 0.5], [-1.0, 0.0, 1.0]], dtype=np.float32)
B = np.array([0.1, -0.2, 0.3], dtype=np.float32)
LABELS = ["a", "b", "c"]


def expected_logits(x: np.ndarray) -> np.ndarray:
    """What every linear test model computes: x @ W + B."""
    return x.astype(np.float32) @ W + B


def linear_onnx(path: Path, bias: np.ndarray = B) -> Path:
    """ONNX: logits[N,3] = features[N,4] @ W + bias."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "B"], ["logits"]),
        ],
        "linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(bias.astype(np.float32), "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def two_input_onnx(path: Path) -> Path:
    """ONNX: out[N] = sum(a[N,2] * b[N,2], axis=1) as FP32, plus an INT64 count passthrough."""
    import onnx
    from onnx import TensorProto, helper

    axes = onnx.numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["a", "b"], ["prod"]),
            helper.make_node("ReduceSum", ["prod", "axes"], ["dot"], keepdims=0),
            helper.make_node("Identity", ["count"], ["count_out"]),
        ],
        "two",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("count", TensorProto.INT64, ["N"]),
        ],
        [
            helper.make_tensor_value_info("dot", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("count_out", TensorProto.INT64, ["N"]),
        ],
        initializer=[axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def linear_torch_module():  # type: ignore[no-untyped-def]
    """The same linear model as a torch.nn.Module."""
    import torch

    class Linear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.from_numpy(W.copy()))
            self.b = torch.nn.Parameter(torch.from_numpy(B.copy()))

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return features @ self.w + self.b

    return Linear().eval()


def linear_torchscript(path: Path) -> Path:
    """TorchScript file of the linear model."""
    import torch

    torch.jit.script(linear_torch_module()).save(str(path))
    return path


def linear_export(path: Path) -> Path:
    """torch.export program (.pt2) of the linear model with a dynamic batch dimension."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(linear_torch_module(), (torch.zeros(2, 4),), dynamic_shapes={"features": {0: batch}})
    torch.export.save(program, str(path))
    return path


TORCH_IO = {
    "inputs": [TensorSpec(name="features", datatype="FP32", shape=[-1, 4])],
    "outputs": [TensorSpec(name="logits", datatype="FP32", shape=[-1, 3])],
}


def publish_model(
    store_uri: str,
    model_file: Path,
    name: str = "lin",
    version: str = "1.0.0",
    aliases: tuple[str, ...] = ("latest",),
    options: dict[str, str | None] | None = None,
    **kwargs: object,
) -> Manifest:
    """Build a manifest the way the CLI does and publish it."""
    params = {
        "framework": None,
        "inputs": [],
        "outputs": [],
        "extra_files": [],
        "preprocess": {},
        "postprocess": {},
        "metadata": {},
    }
    params.update(kwargs)
    manifest, sources = build_manifest(model_file, name, version, **params)  # type: ignore[arg-type]
    publish(open_store(store_uri, options), manifest, sources, aliases)
    return manifest


def publish_linear_versions(
    store_uri: str, work: Path, biases: dict[str, np.ndarray], options: dict[str, str | None] | None = None
) -> None:
    """Publish ``lin`` once per version, each the linear model with its own bias, and move no alias."""
    for version, bias in biases.items():
        model = linear_onnx(work / f"lin-{version}.onnx", bias)
        publish_model(store_uri, model, version=version, aliases=(), options=options)


def stored_file(store_dir: Path, name: str = "lin", version: str = "1.0.0", path: str = "model.onnx") -> Path:
    """Where a file:// store keeps one file of a published version (its manifest's layout decides)."""
    import json

    manifest = json.loads((store_dir / name / version / "manifest.json").read_bytes())
    [entry] = [e for e in manifest["files"] if e["path"] == path]
    if manifest.get("layout") == "by-digest":
        return store_dir / name / "_blobs" / "sha256" / entry["sha256"]
    return store_dir / name / version / path
