"""The benchmark MLP: float32 [batch, 2048] -> six 2048x2048 Gemm + Relu (~100 MB), made at bench time."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

WIDTH = 2048
LAYERS = 6
INPUT, OUTPUT = "x", "y"


def make_mlp(path: Path, width: int = WIDTH, layers: int = LAYERS, seed: int = 0) -> Path:
    """Write the MLP to ``path`` with random weights (scaled so activations stay finite) and return it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    prev = INPUT
    for i in range(layers):
        weight = (rng.standard_normal((width, width)) * (2.0 / width) ** 0.5).astype(np.float32)
        inits += [
            numpy_helper.from_array(weight, f"w{i}"),
            numpy_helper.from_array(np.zeros(width, np.float32), f"b{i}"),
        ]
        last = i == layers - 1
        gemm_out = OUTPUT if last else f"g{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [gemm_out]))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [f"r{i}"]))
            prev = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "bench_mlp",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime the peers pin
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def main() -> None:
    """``python -m bench.mlp OUT.onnx``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    print(make_mlp(parser.parse_args().out))


if __name__ == "__main__":
    main()
