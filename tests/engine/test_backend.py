"""engine/backend.py without a GPU: the device check's refusals, the install, the kernel cache.

The failures a GPU machine can meet (no driver, an old driver, no cuBLAS, no NVRTC, a kernel that
computes garbage) are simulated with a fake CuPy module, so every refusal path runs here. The
libraries a ``[gpu]`` install must bring are loaded with CuPy's own loader (cuda-pathfinder),
which needs no device.
"""
from __future__ import annotations

import configparser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from engine import backend
from engine.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


class _Array(np.ndarray):
    """A host array with CuPy's ``.get()``."""

    def get(self):
        return np.asarray(self)


def fake_cupy(count=1, count_error=None, matmul_error=None, kernel_error=None, wrong_kernel=False):
    """A CuPy stand-in whose device count, matmul and kernel compile behave as told."""

    def get_device_count():
        if count_error is not None:
            raise count_error
        return count

    def matmul(a, b):
        if matmul_error is not None:
            raise matmul_error
        return np.matmul(a, b).view(_Array)

    class RawKernel:
        def __init__(self, code, name, options=()):
            assert name in code and "-std=c++14" in options
            if kernel_error is not None:
                raise kernel_error

        def __call__(self, grid, block, args):
            (y,) = args
            y[:] = np.arange(y.size) * 2 + (0 if wrong_kernel else 1)

    runtime = SimpleNamespace(getDeviceCount=get_device_count)
    return SimpleNamespace(cuda=SimpleNamespace(runtime=runtime), float32=np.float32, matmul=matmul,
                           RawKernel=RawKernel, arange=lambda *a, **k: np.arange(*a, **k).view(_Array),
                           zeros=lambda *a, **k: np.zeros(*a, **k).view(_Array))


class CUDARuntimeError(RuntimeError):
    pass


INSUFFICIENT = CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime")


@pytest.mark.parametrize("driver, fake, expect", [
    (False, fake_cupy(count_error=INSUFFICIENT), "no CUDA device (no NVIDIA driver is installed"),
    (True, fake_cupy(count_error=INSUFFICIENT), "the NVIDIA driver is too old for this CuPy (cudaErrorInsufficientDriver"),
    (True, fake_cupy(count_error=CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")),
     "no CUDA device (the driver sees no GPU"),
    (True, fake_cupy(count=0), "no CUDA device (the driver sees no GPU"),
    (True, fake_cupy(matmul_error=ImportError('Failure finding "libcublasLt.so.13"\n  listdir(...)')),
     'cuBLAS does not work (Failure finding "libcublasLt.so.13"); reinstall: pip install'),
    (True, fake_cupy(kernel_error=RuntimeError("CuPy failed to load libnvrtc.so.13: OSError")),
     "NVRTC cannot compile or run a kernel (CuPy failed to load libnvrtc.so.13: OSError); reinstall"),
    (True, fake_cupy(wrong_kernel=True), "a compiled kernel gives a wrong result ([0.0, 2.0, 4.0, 6.0])"),
])
def test_device_check_names_the_failure_in_one_line(monkeypatch, driver, fake, expect):
    monkeypatch.setattr(backend, "_driver_present", lambda: driver)
    reason = backend.device_check(fake)
    assert reason.startswith(expect), reason
    assert "\n" not in reason


def test_device_check_passes_a_working_device():
    assert backend.device_check(fake_cupy()) is None


def test_device_check_on_this_machine_is_one_line():
    """The real CuPy here: None on a working GPU, else one line (no traceback, no CUDA jargon alone)."""
    reason = backend.gpu_unavailable_reason()
    assert reason is None or ("\n" not in reason and len(reason) < 300)


@pytest.fixture
def broken_cublas(monkeypatch):
    """This process's CuPy as it is on a GPU machine with no cuBLAS wheel."""
    reason = backend.device_check(fake_cupy(matmul_error=ImportError("libcublasLt.so.13: cannot open shared object")))
    monkeypatch.setattr(backend, "_cupy_status", lambda: (fake_cupy(), reason))
    return reason


def test_auto_falls_back_to_cpu_with_the_reason(broken_cublas, tmp_path, capsys):
    from tasks import invert

    code = invert.main(["--device", "auto", "--size", "32", "--iters", "1", "--print-every", "0",
                        "--out", str(tmp_path / "a.png")])
    out = " ".join(line.strip() for line in capsys.readouterr().out.splitlines())  # messages wrap at 80
    assert code == 0
    assert "device: cpu (auto: cuBLAS does not work (libcublasLt.so.13: cannot open shared object)" in out


def test_gpu_refuses_cleanly(broken_cublas, tmp_path, capsys):
    from tasks import invert

    code = invert.main(["--device", "gpu", "--size", "32", "--iters", "1", "--out", str(tmp_path / "g.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: --device gpu is not available: cuBLAS does not work") and "use --device cpu" in err
    assert not (tmp_path / "g.png").exists()
    with pytest.raises(UserError, match="cuBLAS does not work"):
        backend.resolve_device("gpu")


# ----------------------------------------------------------------------------- the kernel cache


def test_kernel_functions_are_looked_up_once_per_device_entry_and_dtype(monkeypatch):
    looked_up = []

    class RawModule:
        def __init__(self, code, options):
            self.code = code

        def get_function(self, name):
            looked_up.append(name)
            return ("function", name)

    device = {"id": 0}
    fake = fake_cupy()
    fake.RawModule = RawModule
    fake.cuda.runtime.getDevice = lambda: device["id"]

    class _Device:
        def __init__(self, i):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    fake.cuda.Device = _Device
    monkeypatch.setattr(backend, "_cupy_status", lambda: (fake, None))
    backend._module.cache_clear()
    backend._function.cache_clear()
    try:
        for _ in range(5):
            assert backend.kernel("relu", "relu_fwd", np.float32) == ("function", "relu_fwd_f32")
        backend.kernel("relu", "relu_fwd", np.float64)
        backend.kernel("relu", "relu_bwd", np.float32)
        device["id"] = 1
        backend.kernel("relu", "relu_fwd", np.float32)
        assert looked_up == ["relu_fwd_f32", "relu_fwd_f64", "relu_bwd_f32", "relu_fwd_f32"]
    finally:
        backend._module.cache_clear()
        backend._function.cache_clear()


# ----------------------------------------------------------------------------- the install


def test_gpu_extras_bring_the_cuda_libraries():
    """Both GPU extras name CuPy's [ctk] variant (cuBLAS, NVRTC, runtime as wheels), one CuPy each."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = {k: [line.strip() for line in v.splitlines() if line.strip()]
              for k, v in cfg["options.extras_require"].items()}
    assert [r.split(">")[0] for r in extras["gpu"]] == ["cupy-cuda13x[ctk]"]
    assert [r.split(">")[0] for r in extras["cuda12"]] == ["cupy-cuda12x[ctk]"]


def test_cuda_libraries_load_without_a_device():
    """What CuPy loads before its first matmul and first kernel, loaded the way CuPy loads them.

    A ``[gpu]`` install that lacks cuBLAS(Lt) or NVRTC fails here, on a machine with no GPU."""
    try:
        import cupy  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"CuPy is not installed ({exc}): nothing to check")
    from cuda import pathfinder

    for lib in ("cublasLt", "cublas", "nvrtc"):
        try:
            loaded = pathfinder.load_nvidia_dynamic_lib(lib)
        except pathfinder.DynamicLibNotFoundError as exc:
            pytest.fail(f"{lib} cannot be loaded ({str(exc).splitlines()[0]}): "
                        f"pip install -e '.[gpu]' (or '.[cuda12]') brings it")
        assert Path(loaded.abs_path).is_file(), lib
    from cupy_backends.cuda.libs import nvrtc

    assert nvrtc.getVersion()[0] >= 12


def test_require_gpu_turns_the_parity_skips_into_failures():
    """RANVGG_REQUIRE_GPU=1: a GPU machine with a broken install cannot pass the GPU suite by skipping."""
    import os
    import subprocess
    import sys

    reason = backend.gpu_unavailable_reason()
    if reason is None:
        pytest.skip("a GPU works here: the parity suite runs for real")
    env = {**os.environ, "RANVGG_REQUIRE_GPU": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/engine/test_gpu_parity.py",
                          "-k", "test_op_parity and relu and float32"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode != 0
    assert f"RANVGG_REQUIRE_GPU is set but the GPU cannot be used: {reason}" in run.stdout
    assert "skipped" not in run.stdout.splitlines()[-1]


# ----------------------------------------------------------------------------- TF32


def test_tf32_sets_both_cupy_gemm_paths_and_restores_them(monkeypatch):
    calls = []
    fake = fake_cupy()
    state = {"compute": "as CUPY_TF32 left it"}
    fake.cuda.cublas = SimpleNamespace(CUBLAS_DEFAULT_MATH=0, setMathMode=lambda h, mode: calls.append((h, mode)))
    fake.cuda.device = SimpleNamespace(get_cublas_handle=lambda: "handle")
    fake._core = SimpleNamespace(
        _routines_linalg=SimpleNamespace(COMPUTE_TYPE_TF32="tf32"),
        get_compute_type=lambda dtype: state["compute"],
        set_compute_type=lambda dtype, ct: state.update(compute=ct, dtype=dtype))
    monkeypatch.setattr(backend, "_cupy_status", lambda: (fake, None))
    monkeypatch.setattr(backend, "_TF32_SAVED", {})
    backend.set_tf32(True)
    assert calls == [("handle", backend.CUBLAS_TF32_TENSOR_OP_MATH)] and backend.CUBLAS_TF32_TENSOR_OP_MATH == 3
    assert state == {"compute": "tf32", "dtype": np.float32}
    backend.set_tf32(False)
    assert calls[-1] == ("handle", 0) and state["compute"] == "as CUPY_TF32 left it"


def test_tf32_on_the_cpu_is_a_visible_no_op(tmp_path, capsys):
    import json

    from tasks import invert

    code = invert.main(["--device", "cpu", "--tf32", "--size", "32", "--iters", "1", "--print-every", "0",
                        "--out", str(tmp_path / "t.png")])
    assert code == 0 and "--tf32: no effect on the CPU" in capsys.readouterr().out
    assert json.loads((tmp_path / "t.json").read_text())["tf32"] is False
