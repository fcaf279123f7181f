"""PyTorch: TorchScript (``torch.jit.load``) and ``torch.export`` programs, on CUDA when available."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from loader.artifacts import LocalArtifact
from loader.errors import DeviceUnavailable, ModelExecutionError, RuntimeLoadError
from loader.manifest import Framework, Precision
from loader.runtimes.base import DeviceChoice, RuntimeOptions
from loader.signature import V2_TO_NUMPY

TORCH_DTYPES = {Precision.FP32: "float32", Precision.FP16: "float16", Precision.BF16: "bfloat16"}
# torch 2.13 runs fp16 on CPU through slow reference kernels (measured on an AVX-512 host: a 3x3 conv
# 250x, a matmul 9x slower than fp32), so fp16 is served on CUDA only; bf16 has real CPU kernels.
CPU_PRECISIONS = frozenset({Precision.FP32, Precision.BF16})


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise RuntimeLoadError("this model needs PyTorch: pip install 'modelfn[torch]'") from None
    return torch


def _out_of_memory(torch: Any, exc: BaseException) -> bool:
    # torch.jit.load reports CUDA OOM as a plain RuntimeError; module.to() raises OutOfMemoryError.
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _native_bf16(torch: Any) -> bool:
    # Older GPUs (T4, V100) emulate bf16 through fp32 at a fraction of the speed: not worth serving.
    return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class TorchRuntime:
    """Positional inputs in signature order; a tuple/list output maps onto the output names.

    On CUDA each batch is staged once in pinned host memory, copied asynchronously, and its outputs
    come back with one synchronisation. Floating inputs are cast to the model's precision on the
    device and floating outputs back to the signature's datatype.
    """

    def __init__(self, framework: Framework, device: DeviceChoice, options: RuntimeOptions | None = None) -> None:
        self.framework = framework
        self.options = options or RuntimeOptions()
        self.requested = device
        self.device = "cpu"
        self.provider = f"torch-{framework.value}"
        self.precision = Precision.FP32
        self._module: Any = None
        self._dtype: Any = None  # the model's floating dtype when it is not the signature's
        self._outputs: list[tuple[str, Any]] = []

    def load(self, artifact: LocalArtifact) -> None:
        """Load onto the chosen device in the manifest's precision and switch to inference mode."""
        torch = _torch()
        if self.options.intra_op_threads is not None:
            torch.set_num_threads(self.options.intra_op_threads)  # process-wide: one model per process
        manifest = artifact.manifest
        self.device = self._choose_device(torch)
        self.precision = manifest.precision
        self._check_precision(torch)
        try:
            module = self._read(torch, str(artifact.model_path))
            if self.precision is not Precision.FP32:
                self._dtype = getattr(torch, TORCH_DTYPES[self.precision])
                module = module.to(self._dtype)
        except Exception as exc:  # torch raises a variety of untyped errors for bad files
            raise self._load_error(torch, manifest.model_file, exc) from None
        self._module = module
        self._outputs = [(o.name, getattr(torch, V2_TO_NUMPY[o.datatype].name)) for o in manifest.outputs]

    def _check_precision(self, torch: Any) -> None:
        if self.device == "cpu" and self.precision not in CPU_PRECISIONS:
            raise DeviceUnavailable(
                f"precision {self.precision.value} is served on CUDA only (torch's CPU fp16 kernels are slow "
                f"reference code); run on a GPU, or publish the model with --precision bf16 or fp32"
            )
        if self.device == "cuda" and self.precision is Precision.BF16 and not _native_bf16(torch):
            raise DeviceUnavailable(
                f"{torch.cuda.get_device_name()} has no native bf16 (it needs compute capability 8.0+); "
                f"publish the model with --precision fp16 for this GPU"
            )

    def _read(self, torch: Any, path: str) -> Any:
        if self.framework is Framework.TORCHSCRIPT:
            with warnings.catch_warnings():
                # torch deprecates TorchScript in favour of torch.export; we support both on purpose.
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(path, map_location=self.device)
            return module.eval()
        return torch.export.load(path).module().to(self.device)

    def _load_error(self, torch: Any, model_file: str, exc: Exception) -> RuntimeLoadError:
        if self.device != "cuda" or not _out_of_memory(torch, exc):
            return RuntimeLoadError(f"torch cannot load {model_file}: {exc}")
        torch.cuda.empty_cache()  # hand back what the partial load took, so a retry starts clean
        free, total = torch.cuda.mem_get_info()
        return RuntimeLoadError(
            f"{model_file} does not fit in GPU memory ({self.precision.value}; {free / 2**30:.1f} GiB free of "
            f"{total / 2**30:.1f} GiB on {torch.cuda.get_device_name()}): {_first_line(exc)}"
        )

    def _choose_device(self, torch: Any) -> str:
        if self.requested is DeviceChoice.CPU:
            return "cpu"
        if torch.cuda.is_available():
            return "cuda"
        if self.requested is DeviceChoice.CUDA:
            raise DeviceUnavailable("DEVICE=cuda but torch.cuda.is_available() is False")
        return "cpu"

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch under ``inference_mode``: inputs moved once, outputs brought back once."""
        torch = _torch()
        try:
            with torch.inference_mode():
                result = self._module(*(self._to_device(torch, a) for a in inputs.values()))
                outputs = list(result) if isinstance(result, (tuple, list)) else [result]
                if len(outputs) != len(self._outputs):
                    raise ModelExecutionError(
                        f"model returned {len(outputs)} outputs, manifest declares {len(self._outputs)}"
                    )
                host = self._to_host(torch, outputs)
        except ModelExecutionError:
            raise
        except Exception as exc:  # the model's own failure, after the signature check passed
            if self.device == "cuda" and _out_of_memory(torch, exc):
                raise ModelExecutionError("GPU out of memory for this batch; send smaller batches") from exc
            raise ModelExecutionError(f"model execution failed: {type(exc).__name__}") from exc
        return {name: t.numpy() for (name, _), t in zip(self._outputs, host, strict=True)}

    def _to_device(self, torch: Any, array: np.ndarray) -> Any:
        if self.device == "cuda":
            # One copy into (cached) pinned memory makes the host-to-device copy asynchronous.
            staged = torch.empty(array.shape, dtype=getattr(torch, array.dtype.name), pin_memory=True)
            np.copyto(staged.numpy(), array, casting="no")
            tensor = staged.to(self.device, non_blocking=True)
        else:
            tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self._dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(self._dtype)
        return tensor

    def _to_host(self, torch: Any, outputs: list[Any]) -> list[Any]:
        cast = [
            t.to(dtype) if t.is_floating_point() and t.dtype != dtype else t
            for t, (_, dtype) in zip(outputs, self._outputs, strict=True)
        ]
        if self.device != "cuda":
            return [t.detach() for t in cast]
        host = [t.to("cpu", non_blocking=True) for t in cast]  # into pinned buffers; one wait for all
        torch.cuda.current_stream().synchronize()
        return host
