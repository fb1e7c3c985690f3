"""Where NumPy and CuPy meet: the only module in ranvgg that imports CuPy.

Everything else asks for an array module (``xp``) and calls ``kernel(...)`` for the raw CUDA
kernels in ``kernels/*.cu``. CuPy is imported lazily, so ``import engine`` and the whole CPU
path work on a machine without CUDA (or without CuPy installed at all).
"""
from __future__ import annotations

import functools
import os

import numpy as np

from .errors import UserError

DEVICES = ("cpu", "gpu", "auto")
_THREADS = 256


@functools.lru_cache(maxsize=None)
def _cupy_status():
    """(cupy module or None, reason it cannot be used or None)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken install
        return None, f"CuPy is not installed ({exc.__class__.__name__}); install it with pip install -e '.[gpu]'"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        return cupy, f"CuPy cannot reach a CUDA driver ({msg})"
    if count < 1:
        return cupy, "no CUDA device is visible (check CUDA_VISIBLE_DEVICES)"
    return cupy, None


def gpu_available() -> bool:
    """True when CuPy sees a usable CUDA device."""
    return _cupy_status()[1] is None


def gpu_unavailable_reason() -> str | None:
    """Why the GPU backend cannot be used, or None when it can."""
    return _cupy_status()[1]


def resolve_device(device: str = "auto") -> str:
    """Map ``"cpu" | "gpu" | "auto"`` to ``"cpu"`` or ``"gpu"``; a clear UserError otherwise."""
    if device not in DEVICES:
        raise UserError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    reason = gpu_unavailable_reason()
    if device == "gpu":
        if reason:
            raise UserError(f"--device gpu is not available: {reason}; use --device cpu")
        return "gpu"
    return "cpu" if reason else "gpu"


def xp_for(device: str):
    """The array module for a resolved device name."""
    if device == "gpu":
        return _cupy_status()[0]
    return np


def array_module(x):
    """numpy or cupy, whichever owns ``x``."""
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return np
    cupy = _cupy_status()[0]
    if cupy is not None and isinstance(x, cupy.ndarray):
        return cupy
    return np


def is_gpu(x) -> bool:
    return array_module(x) is not np


def to_device(x, device: str, dtype=None):
    """Copy a host array to ``device`` (no copy when it is already there)."""
    xp = xp_for(device)
    return xp.asarray(x, dtype=dtype)


def to_host(x) -> np.ndarray:
    """A NumPy copy of ``x``; the device-to-host boundary (optimiser, image saving)."""
    if is_gpu(x):
        return x.get()
    return np.asarray(x)


def memory_available(device: str) -> int:
    """Bytes free on the device (GPU) or available in RAM (CPU)."""
    if device == "gpu":
        cupy = _cupy_status()[0]
        free, _ = cupy.cuda.runtime.memGetInfo()
        return int(free + cupy.get_default_memory_pool().free_bytes())
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


# ----------------------------------------------------------------------------- raw kernels

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
NVRTC_OPTIONS = ("-std=c++14",)


def dtype_suffix(dtype) -> str:
    try:
        return _SUFFIX[np.dtype(dtype)]
    except KeyError:
        raise UserError(f"dtype {np.dtype(dtype)} is not supported: use float32 or float64") from None


@functools.lru_cache(maxsize=None)
def _module(name: str, device_id: int):
    """The compiled ``kernels/<name>.cu`` for one device (NVRTC, compiled once, then cached)."""
    import kernels

    cupy = _cupy_status()[0]
    with cupy.cuda.Device(device_id):
        return cupy.RawModule(code=kernels.source(name), options=NVRTC_OPTIONS)


def kernel(name: str, entry: str, dtype):
    """The raw kernel ``<entry>_<f32|f64>`` from ``kernels/<name>.cu`` on the current device."""
    cupy = _cupy_status()[0]
    dev = cupy.cuda.runtime.getDevice()
    return _module(name, dev).get_function(f"{entry}_{dtype_suffix(dtype)}")


def launch(kern, n: int, args) -> None:
    """Launch a grid-stride kernel over ``n`` output elements (1-D grid)."""
    blocks = max(1, min((n + _THREADS - 1) // _THREADS, 65535 * 8))
    kern((blocks,), (_THREADS,), args)
