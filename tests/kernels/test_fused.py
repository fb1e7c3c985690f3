"""The fused CuPy kernels of kernels/fused.py, without a GPU.

Each definition is turned into CUDA C in the scope CuPy gives it (tests/kernels/emulator.py:
``fused_source``), built by g++ and run on the CPU in place of ``cupy.ElementwiseKernel`` /
``cupy.ReductionKernel``; the same text is compiled by NVRTC for sm_80 and sm_90, and CuPy itself
parses each definition. The engine's GPU branch (losses, device L-BFGS) with these kernels is
compared with its NumPy path, and the content loss is checked by finite differences through it.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from engine import backend, gradcheck
from engine.autograd import Tensor, backward
from engine.ops import gram, losses
from engine.optim import device_lbfgs
from kernels.fused import SPECS
from tests.kernels import emulator
from tests.kernels.test_emulated_kernels import DTYPES, _NumpyInDisguise, engine_gpu_branch, rand

ARCHS = ("sm_80", "sm_90")


def content_value_and_grad(f, target, weight):
    t = Tensor(f, requires_grad=True)
    out = losses.content_loss(t, target, weight)
    backward(out, np.asarray(1.5, dtype=f.dtype))    # a gradient from above that is not one
    return out.data, t.grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 2])
def test_content_loss_fused_equals_numpy(batch, dtype):
    f, target = rand((batch, 3, 4, 5), dtype), rand((1, 3, 4, 5), dtype, seed=1)   # target: batch 1, broadcast
    ref_value, ref_grad = content_value_and_grad(f, target, 0.7)
    with engine_gpu_branch(), backend.counting() as c:
        value, grad = content_value_and_grad(f, target, 0.7)
    assert c["fused"] == 2 and c["launches"] == 0          # one kernel for the value, one for the gradient
    assert value.dtype == ref_value.dtype == dtype and grad.dtype == dtype
    # the value is summed in float64 on the GPU, in the dtype by NumPy
    assert float(value) == pytest.approx(float(ref_value), rel=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_array_equal(grad, ref_grad)         # the same operations, elementwise


def test_content_loss_gradcheck_through_the_fused_kernels():
    target = rand((2, 4, 3, 5), np.float64, seed=14)
    with engine_gpu_branch():
        err = gradcheck.check(gradcheck.scalar_fn(lambda t: losses.content_loss(t, target, 0.7)),
                              rand((2, 4, 3, 5), np.float64, seed=7))
    assert err < 1e-6, err


@pytest.mark.parametrize("dtype", DTYPES)
def test_gram_loss_value_fused_equals_numpy(dtype):
    f = rand((2, 3, 4, 5), dtype)
    g0 = gram.gram_forward(rand((1, 3, 4, 5), dtype, seed=1))
    ref = losses.gram_loss(Tensor(f), g0, 0.7).data
    with engine_gpu_branch(), backend.counting() as c:
        value = losses.gram_loss(Tensor(f), g0, 0.7).data
    assert c["fused"] == 1 and value.dtype == ref.dtype == dtype
    assert float(value) == pytest.approx(float(ref), rel=1e-6 if dtype == np.float32 else 1e-14)


def test_gram_loss_gradcheck_through_the_fused_kernel():
    g0 = gram.gram_forward(rand((1, 4, 3, 5), np.float64, seed=15))
    with engine_gpu_branch():
        err = gradcheck.check(gradcheck.scalar_fn(lambda t: losses.gram_loss(t, g0, 0.7)),
                              rand((2, 4, 3, 5), np.float64, seed=8))
    assert err < 1e-6, err


def on_bounds(n=40, seed=0):
    """x with a quarter of its entries on the lower bound and a quarter on the upper, and d of
    both signs (and zeros) everywhere."""
    rng = np.random.default_rng(seed)
    lo, hi = np.full(n, -1.0), np.full(n, 2.0)
    x = rng.uniform(-1, 2, n)
    x[::4], x[1::4] = lo[::4], hi[1::4]
    d = rng.standard_normal(n)
    d[::5] = 0.0
    return d, x, lo, hi


def test_keep_inside_fused_equals_numpy():
    d, x, lo, hi = on_bounds()
    ref = device_lbfgs._keep_inside(np, d, x, lo, hi)
    assert (ref == 0).sum() > (d == 0).sum()               # some components were zeroed
    with engine_gpu_branch():
        got = device_lbfgs._keep_inside(_NumpyInDisguise(), d, x, lo, hi)
    np.testing.assert_array_equal(got, ref)
    assert device_lbfgs._keep_inside(_NumpyInDisguise(), d, x, None, None) is d   # no bounds: no kernel


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bounded", [True, False])
def test_trial_point_fused_equals_numpy(bounded, dtype):
    d, x, lo, hi = on_bounds(seed=1)
    x = x.astype(dtype).astype(np.float64)                 # a point the objective holds
    d[3] = np.nan                                          # NaN stays NaN, as in np.clip
    lo, hi = (lo, hi) if bounded else (None, None)
    for t in (0.37, 3.0):
        ref = device_lbfgs._point(np, x, t, d, lo, hi, dtype)
        with engine_gpu_branch():
            got = device_lbfgs._point(_NumpyInDisguise(), x, t, d, lo, hi, dtype)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, ref)
        if bounded:
            assert ((ref == -1.0) | (ref == 2.0)).sum() > 10   # the clip acted
        if dtype == np.float32:
            np.testing.assert_array_equal(got, got.astype(np.float32).astype(np.float64))


def test_dot_fused_equals_numpy():
    a, b = rand(1001, np.float64), rand(1001, np.float64, seed=1)
    ref = device_lbfgs._dot(np, a, b)
    with engine_gpu_branch():
        got = device_lbfgs._dot(_NumpyInDisguise(), a, b)
    assert got.shape == () and got.dtype == np.float64
    assert float(got) == pytest.approx(float(ref), rel=1e-13)


# ----------------------------------------------------------------------------- the harness


def test_every_fused_call_in_engine_names_a_definition_and_every_definition_is_used():
    engine_dir = Path(backend.__file__).resolve().parent
    called = set()
    for path in engine_dir.rglob("*.py"):
        called |= set(re.findall(r'backend\.fused\(\s*"(\w+)"', path.read_text()))
    assert called == set(SPECS)


def test_the_emulator_runs_the_definition_it_is_given(monkeypatch):
    # an edited definition gives an edited result: the comparisons above test kernels/fused.py
    d, x, lo, hi = on_bounds()
    spec = dict(SPECS["ranvgg_keep_inside"], operation="out = d")
    monkeypatch.setitem(SPECS, "ranvgg_keep_inside", spec)
    got = emulator.FusedKernel("ranvgg_keep_inside")(d, x, lo, hi)
    np.testing.assert_array_equal(got, d)
    assert not np.array_equal(got, device_lbfgs._keep_inside(np, d, x, lo, hi))


def test_the_emulator_is_strict_about_types():
    kern = emulator.fused("ranvgg_content_grad")
    f = rand((2, 3), np.float32)
    with pytest.raises(TypeError, match="float64"):        # T is float32 from f; t is float64
        kern(f, f.astype(np.float64), np.ones((), np.float32), 0.5)
    with pytest.raises(TypeError, match="placeholder"):    # a Python number where T is asked for
        kern(f, f, 1.0, 0.5)
    with pytest.raises(TypeError, match="inputs"):
        kern(f, f, 0.5)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", sorted(SPECS))
def test_fused_definitions_compile_with_nvrtc(name, arch):
    """Each definition, in the scope CuPy gives it, is valid CUDA C for NVRTC (float32 and float64)."""
    from tests.kernels.test_nvrtc_compile import nvrtc

    lib = nvrtc()
    ins, _ = emulator.fused_params(name)
    scalars = frozenset(p.name for p in ins if not p.placeholder)
    for dtype in DTYPES:
        source = emulator.fused_source(name, {"T": dtype}, scalars)
        prog = lib.createProgram(source, f"{name}.cu", [], [])
        try:
            try:
                lib.compileProgram(prog, [f"--gpu-architecture={arch}", *backend.NVRTC_OPTIONS])
            except lib.NVRTCError as exc:
                pytest.fail(f"NVRTC could not compile {name} ({np.dtype(dtype)}, {arch}): {exc}\n"
                            f"{lib.getProgramLog(prog)}\n{source}")
        finally:
            lib.destroyProgram(prog)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_cupy_accepts_each_definition(name, monkeypatch):
    """CuPy parses each definition (parameter lists, kernel name) when it is made; no device needed."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (a CPU-only install)")
    monkeypatch.setattr(backend, "_cupy_status", lambda: (cupy, None))
    kern = backend.make_fused.__wrapped__(name)
    kind = SPECS[name]["kind"]
    assert isinstance(kern, cupy.ElementwiseKernel if kind == "elementwise" else cupy.ReductionKernel)
    assert kern.name == name
