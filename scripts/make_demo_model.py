"""Build the bundled demo: an Iris classifier as ONNX, published into function/demo/store.

Weights: multinomial logistic regression (scikit-learn, C=10) fit on the standardised Iris data set
(98% training accuracy); standardisation is the manifest's declarative pre-processing.
Run: python scripts/make_demo_model.py  (needs the dev extra for ``onnx``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from loader.manifest import Framework, Manifest, PostProcessing, PreProcessing, Provenance, TensorSpec
from loader.publish import file_entry, publish
from loader.stores import open_store

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "iris"
STORE = ROOT / "function" / "demo" / "store"

LABELS = ["setosa", "versicolor", "virginica"]
MEAN = [5.8433, 3.0573, 3.758, 1.1993]
STD = [0.8253, 0.4344, 1.7594, 0.7597]
WEIGHTS = [
    [-1.7197, 1.8928, -3.576, -3.3756],
    [1.2924, -0.3518, -1.5059, -1.459],
    [0.4273, -1.541, 5.0819, 4.8346],
]
BIAS = [0.1161, 4.0571, -4.1732]


def build_onnx(path: Path) -> None:
    """logits = features @ W^T + b, with a dynamic batch dimension."""
    w = numpy_helper.from_array(np.asarray(WEIGHTS, dtype=np.float32), "W")
    b = numpy_helper.from_array(np.asarray(BIAS, dtype=np.float32), "B")
    node = helper.make_node("Gemm", ["features", "W", "B"], ["logits"], transB=1)
    graph = helper.make_graph(
        [node],
        "iris",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, producer_name="modelfn", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def main() -> None:
    """Write examples/iris and republish the demo store from scratch."""
    EXAMPLE.mkdir(parents=True, exist_ok=True)
    model_path = EXAMPLE / "model.onnx"
    build_onnx(model_path)
    (EXAMPLE / "labels.txt").write_text("\n".join(LABELS) + "\n")
    shutil.rmtree(STORE, ignore_errors=True)
    STORE.mkdir(parents=True)
    manifest = Manifest(
        name="iris",
        version="1.0.0",
        framework=Framework.ONNX,
        model_file="model.onnx",
        files=[file_entry(model_path, "model.onnx")],
        inputs=[TensorSpec(name="features", datatype="FP32", shape=[-1, 4])],
        outputs=[TensorSpec(name="logits", datatype="FP32", shape=[-1, 3])],
        preprocess=PreProcessing(mean=MEAN, std=STD),
        postprocess=PostProcessing(softmax=True, labels=LABELS, top_k=1),
        provenance=Provenance(metadata={"dataset": "iris", "source": "scripts/make_demo_model.py"}),
    )
    publish(open_store(STORE.as_uri()), manifest, {"model.onnx": model_path}, aliases=["latest", "prod"])
    print(f"demo model published to {STORE}")


if __name__ == "__main__":
    main()
