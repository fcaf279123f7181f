"""Read tensor signatures out of model files, for ``modelfn publish``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loader.errors import ManifestInvalid
from loader.manifest import Framework, TensorSpec

ORT_TO_V2 = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
}


def framework_for(path: Path) -> Framework:
    """Guess the framework from the file suffix (``.onnx``, ``.pt2`` export, ``.pt``/``.ts`` script)."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return Framework.ONNX
    if suffix == ".pt2":
        return Framework.TORCH_EXPORT
    if suffix in (".pt", ".ts", ".torchscript"):
        return Framework.TORCHSCRIPT
    raise ManifestInvalid(f"cannot tell the framework of {path.name}; pass --framework")


def signature(path: Path, framework: Framework) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs as declared by the model file itself."""
    if framework is Framework.ONNX:
        return _onnx_signature(path)
    if framework is Framework.TORCH_EXPORT:
        return _export_signature(path)
    raise ManifestInvalid("TorchScript files carry no tensor signature; pass --input and --output")


def _onnx_signature(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ManifestInvalid(f"not a loadable ONNX model: {str(exc).splitlines()[0][:200]}") from None
    return [_ort_spec(i) for i in session.get_inputs()], [_ort_spec(o) for o in session.get_outputs()]


def _ort_spec(arg: Any) -> TensorSpec:
    if arg.type not in ORT_TO_V2:
        raise ManifestInvalid(f"tensor {arg.name!r} has unsupported type {arg.type}")
    shape = [d if isinstance(d, int) and d > 0 else -1 for d in arg.shape]
    return TensorSpec(name=arg.name, datatype=ORT_TO_V2[arg.type], shape=shape)


def _export_signature(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    import torch

    from loader.signature import v2_datatype

    program = torch.export.load(str(path))
    user_inputs = program.graph_signature.user_inputs
    user_outputs = program.graph_signature.user_outputs
    nodes = {n.name: n for n in program.graph.nodes}

    def spec(name: str, index: int, kind: str) -> TensorSpec:
        fake = nodes[name].meta["val"]
        dims = [int(d) if isinstance(d, int) else -1 for d in fake.shape]
        dtype = torch.empty((), dtype=fake.dtype).numpy().dtype
        return TensorSpec(
            name=f"{kind}{index}" if not name.isidentifier() else name,
            datatype=v2_datatype(dtype),
            shape=dims,
        )

    inputs = [spec(n, i, "input") for i, n in enumerate(user_inputs)]
    outputs = [spec(str(n), i, "output") for i, n in enumerate(user_outputs)]
    return inputs, outputs
