"""Where NumPy and CuPy meet: the only module in ranvgg that imports CuPy.

Everything else asks for an array module (``xp``) and calls ``kernel(...)`` for the raw CUDA
kernels in ``kernels/*.cu``. CuPy is imported lazily, so ``import engine`` and the whole CPU
path work on a machine without CUDA (or without CuPy installed at all).
"""
from __future__ import annotations

import contextlib
import functools
import os

import numpy as np

from .errors import UserError

DEVICES = ("cpu", "gpu", "auto")
THREADS = 256              # threads per block of every raw-kernel launch
MAX_BLOCKS = 65535 * 8     # blocks at most: larger outputs make each thread's grid-stride loop wrap


INSTALL_HINT = "pip install -e '.[gpu]' (CUDA 13 driver) or -e '.[cuda12]' (CUDA 12 driver), one of the two"

# The device check's kernel: compiled by NVRTC and run on one element, so a missing or broken
# NVRTC, or a driver that cannot load the module, shows before the first real launch.
_PROBE_SOURCE = r"""
extern "C" __global__ void ranvgg_probe(float* y) { y[threadIdx.x] = 2.0f * threadIdx.x + 1.0f; }
"""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def _driver_present() -> bool:
    """Whether the NVIDIA driver library (libcuda) can be loaded at all."""
    import ctypes

    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def device_check(cupy) -> str | None:
    """Why CuPy cannot run ranvgg on device 0, in one line, or None when it can.

    Beyond counting devices, run what every evaluation needs: a cuBLAS matmul (the conv GEMMs)
    and an NVRTC-compiled kernel (kernels/*.cu). Each is checked against its known answer.
    """
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        if not _driver_present():
            return "no CUDA device (no NVIDIA driver is installed on this machine)"
        msg = _first_line(exc)
        if "InsufficientDriver" in msg:
            return f"the NVIDIA driver is too old for this CuPy ({msg}); update the driver or {INSTALL_HINT}"
        if "NoDevice" in msg:
            return "no CUDA device (the driver sees no GPU; check CUDA_VISIBLE_DEVICES)"
        return f"CuPy cannot reach the CUDA driver ({msg})"
    if count < 1:
        return "no CUDA device (the driver sees no GPU; check CUDA_VISIBLE_DEVICES)"
    try:
        a = cupy.arange(6, dtype=cupy.float32).reshape(1, 2, 3)
        got = cupy.matmul(a, a.transpose(0, 2, 1)).get()      # (1, 2, 3) @ (1, 3, 2): a batched GEMM
        if not np.allclose(got, [[[5, 14], [14, 50]]]):
            return f"cuBLAS gives a wrong matmul result ({got.ravel().tolist()})"
    except Exception as exc:  # ImportError of libcublasLt, CUBLASError, out of memory...
        return f"cuBLAS does not work ({_first_line(exc)}); reinstall: {INSTALL_HINT}"
    try:
        probe = cupy.RawKernel(_PROBE_SOURCE, "ranvgg_probe", options=NVRTC_OPTIONS)
        y = cupy.zeros(4, dtype=cupy.float32)
        probe((1,), (4,), (y,))
        got = y.get()
        if not np.array_equal(got, [1, 3, 5, 7]):
            return f"a compiled kernel gives a wrong result ({got.tolist()})"
    except Exception as exc:  # NVRTC missing, CompileException, module load failure
        return f"NVRTC cannot compile or run a kernel ({_first_line(exc)}); reinstall: {INSTALL_HINT}"
    return None


@functools.lru_cache(maxsize=None)
def _cupy_status():
    """(cupy module or None, reason it cannot be used or None), checked once per process."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken install
        return None, f"no CUDA device usable: CuPy is not installed ({exc.__class__.__name__}); {INSTALL_HINT}"
    return cupy, device_check(cupy)


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


def to_host(x, tag: str | None = None) -> np.ndarray:
    """A NumPy copy of ``x``; the device-to-host boundary (optimiser, image saving).

    Each call is counted as one host sync (on the GPU it waits for the device), and also under
    ``tag`` when given (the device L-BFGS counts its own reads as "lbfgs_syncs"): ``counting``."""
    count_sync(tag)
    if is_gpu(x):
        return x.get()
    return np.asarray(x)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says memory ran out: MemoryError on the host; on the GPU CuPy's pool
    (cupy.cuda.memory.OutOfMemoryError), cuBLAS / cuFFT / cuSOLVER (status ..._ALLOC_FAILED) or
    the runtime (cudaErrorMemoryAllocation), none of which is a MemoryError."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return "ALLOC_FAILED" in text or "cudaErrorMemoryAllocation" in text or "CUDA_ERROR_OUT_OF_MEMORY" in text


# ----------------------------------------------------------------------------- launch and sync counts

COUNTS = {"launches": 0, "fused": 0, "syncs": 0, "lbfgs_syncs": 0}


def count_sync(tag: str | None = None) -> None:
    """Count one host read (``to_host`` calls it), also under ``tag`` when given."""
    COUNTS["syncs"] += 1
    if tag is not None:
        COUNTS[tag] = COUNTS.get(tag, 0) + 1


@contextlib.contextmanager
def counting():
    """Count raw-kernel launches (``launch``) and host syncs (``to_host``) inside the block:

        with backend.counting() as c:
            objective.value_and_grad(x)
        c["launches"], c["fused"], c["syncs"], c["lbfgs_syncs"]

    The dict is filled when the block ends. ``fused`` counts the fused CuPy kernels of
    ``kernels/fused.py`` (``fused``); cuBLAS GEMMs and CuPy's other array operations are not
    counted (CuPy launches those)."""
    before = dict(COUNTS)
    found: dict = {}
    try:
        yield found
    finally:
        found.update({k: v - before.get(k, 0) for k, v in COUNTS.items()})


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


@functools.lru_cache(maxsize=None)
def _function(name: str, entry: str, suffix: str, device_id: int):
    """One entry point of a compiled module: looked up once per (device, module, entry, dtype),
    because ``RawModule.get_function`` costs a dictionary walk and a Python object per launch."""
    return _module(name, device_id).get_function(f"{entry}_{suffix}")


def kernel(name: str, entry: str, dtype):
    """The raw kernel ``<entry>_<f32|f64>`` from ``kernels/<name>.cu`` on the current device."""
    cupy = _cupy_status()[0]
    return _function(name, entry, dtype_suffix(dtype), cupy.cuda.runtime.getDevice())


def launch(kern, n: int, args) -> None:
    """Launch a grid-stride kernel over ``n`` output elements (1-D grid of THREADS-thread blocks,
    at most MAX_BLOCKS of them); counted in ``COUNTS["launches"]``."""
    COUNTS["launches"] += 1
    blocks = max(1, min((n + THREADS - 1) // THREADS, MAX_BLOCKS))
    kern((blocks,), (THREADS,), args)


def launch_planes(kern, planes: int, per_plane: int, args) -> None:
    """Launch a 2-D grid: y over ``planes`` (at most 65535 blocks, a grid-stride loop beyond),
    x over ``per_plane`` elements of each (THREADS-thread blocks, a grid-stride loop beyond
    MAX_BLOCKS); counted in ``COUNTS["launches"]``."""
    COUNTS["launches"] += 1
    bx = max(1, min((per_plane + THREADS - 1) // THREADS, MAX_BLOCKS))
    by = max(1, min(planes, MAX_PLANE_BLOCKS))
    kern((bx, by), (THREADS,), args)


MAX_PLANE_BLOCKS = 65535   # gridDim.y's limit


# ----------------------------------------------------------------------------- fused CuPy kernels


def fused(name: str):
    """The fused kernel ``name`` of ``kernels/fused.py`` (a ``cupy.ElementwiseKernel`` or
    ``cupy.ReductionKernel``, made once; CuPy compiles it per dtype at first call). Call it once
    per launch: ``backend.fused("ranvgg_dot")(a, b)``; counted in ``COUNTS["fused"]``."""
    COUNTS["fused"] += 1
    return make_fused(name)


@functools.lru_cache(maxsize=None)
def make_fused(name: str):
    from kernels.fused import ELEMENTWISE, SPECS

    cupy = _cupy_status()[0]
    spec = dict(SPECS[name])
    if spec.pop("kind") == ELEMENTWISE:
        return cupy.ElementwiseKernel(spec["in_params"], spec["out_params"], spec["operation"], name)
    return cupy.ReductionKernel(spec["in_params"], spec["out_params"], spec["map_expr"], spec["reduce_expr"],
                                spec["post_map_expr"], spec["identity"], name, reduce_type=spec["reduce_type"])


# ----------------------------------------------------------------------------- TF32

# cublas_api.h: cublasMath_t CUBLAS_TF32_TENSOR_OP_MATH (CuPy's cublas module names only
# CUBLAS_DEFAULT_MATH and the deprecated CUBLAS_TENSOR_OP_MATH)
CUBLAS_TF32_TENSOR_OP_MATH = 3


def set_tf32(enabled: bool) -> None:
    """Let float32 GEMMs on the current GPU use TF32 tensor cores (``--tf32``), or forbid it again.

    TF32 keeps 10 mantissa bits of each product's inputs: about 1e-3 relative error per GEMM
    instead of 1e-7, for several times the GEMM speed on Ampere and later. Off by default.
    Two switches, because CuPy has two GEMM paths: ``CUPY_TF32`` / the compute type reaches only
    its 2-D GEMM (cupy.dot, 2-D matmul), while the batched (N, K, HW) matmul of the convs takes
    cuBLAS's own math mode, set here on CuPy's cuBLAS handle of the current device and thread.
    """
    cupy = _cupy_status()[0]
    linalg = cupy._core._routines_linalg
    cublas = cupy.cuda.cublas
    handle = cupy.cuda.device.get_cublas_handle()
    cublas.setMathMode(handle, CUBLAS_TF32_TENSOR_OP_MATH if enabled else cublas.CUBLAS_DEFAULT_MATH)
    # what CuPy chose at start (CUPY_TF32 decides it), restored when TF32 is switched off again
    before = _TF32_SAVED.setdefault("compute_type", cupy._core.get_compute_type(cupy.float32))
    cupy._core.set_compute_type(cupy.float32, linalg.COMPUTE_TYPE_TF32 if enabled else before)


_TF32_SAVED: dict = {}
