"""DEVICE=cuda refuses to start without a usable GPU, checked once in the Gunicorn master.

The probe runs in a child process: CUDA state does not survive fork, so the master (which forks
the workers) must never initialise it.
"""

from __future__ import annotations

import ctypes
import importlib.util
import subprocess
import sys

from function.settings import Device, Settings

HINT = (
    "attach a GPU (docker run --gpus all; Cloud Run --gpu; an ECS task on GPU capacity; a Container Apps "
    "GPU workload profile) or set DEVICE=auto or DEVICE=cpu"
)


def driver_problem() -> str | None:
    """Why the NVIDIA driver offers no device to this process, or None when it offers one."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")  # mounted by the NVIDIA container runtime, not part of the image
    except OSError:
        return "no NVIDIA driver is visible in this container (libcuda.so.1 not found)"
    status = cuda.cuInit(0)
    if status != 0:
        return f"the NVIDIA driver found no usable GPU (cuInit returned CUDA error {status})"
    count = ctypes.c_int(0)
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return "the NVIDIA driver reports no GPU"
    return None


def driver_cuda_version() -> str:
    """The newest CUDA version the driver supports, e.g. ``12.2`` (``unknown`` without a driver)."""
    try:
        version = ctypes.c_int(0)
        ctypes.CDLL("libcuda.so.1").cuDriverGetVersion(ctypes.byref(version))
    except OSError:
        return "unknown"
    return f"{version.value // 1000}.{version.value % 1000 // 10}"


def runtime_problem() -> str | None:
    """Why no installed runtime can use the GPU, or None when torch or onnxruntime can."""
    problems = []
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            return None
        if torch.version.cuda:  # a CUDA build that still cannot use the device: usually an old driver
            problems.append(
                f"torch {torch.__version__} needs CUDA {torch.version.cuda} and the driver supports "
                f"CUDA {driver_cuda_version()}"
            )
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            return None
    return "; ".join(problems) or "neither torch nor onnxruntime in this image is a CUDA build (use a GPU image)"


def probe() -> None:
    """Child-process entry point: print the problem and exit 1, or exit 0."""
    problem = driver_problem() or runtime_problem()
    if problem:
        print(problem)
        sys.exit(1)


def require_device(settings: Settings) -> None:
    """Exit the server with a clear message when DEVICE=cuda cannot be honoured."""
    if settings.device is not Device.CUDA:
        return
    code = "from function.device_check import probe; probe()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        lines = (result.stdout or result.stderr).strip().splitlines()
        reason = lines[-1] if lines else f"the GPU probe exited with status {result.returncode}"
        raise SystemExit(f"modelfn: DEVICE=cuda but {reason}; {HINT}")
