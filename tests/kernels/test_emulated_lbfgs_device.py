"""engine/optim/device_lbfgs.py on the engine's GPU code path, with the CUDA kernels emulated on the CPU.

The optimiser reaches the array module only through ``net.xp``. Here that module is NumPy that
refuses every name CuPy lacks, and the ops take their GPU branch with emulated kernels (see
test_emulated_kernels.engine_gpu_branch): a NumPy-only call anywhere in the optimiser or the
objective fails here, and the run must match the plain NumPy run step by step.
"""
from __future__ import annotations

import numpy as np
import pytest

from engine import backend
from engine.optim.device_lbfgs import lbfgs_device
from tests.kernels.test_emulated_kernels import engine_gpu_branch

cupy = pytest.importorskip("cupy", reason="CuPy is not installed: its namespace is the reference here")


class CupyNamesOnly:
    """NumPy, but only under the names CuPy also has."""

    def __init__(self):
        self.used = set()

    def __getattr__(self, name):
        if not hasattr(cupy, name):
            raise AttributeError(f"xp.{name} is NumPy-only: CuPy has no {name}")
        self.used.add(name)
        return getattr(np, name)


def test_strict_module_refuses_numpy_only_names():
    with pytest.raises(AttributeError, match="NumPy-only"):
        CupyNamesOnly().busday_count  # noqa: B018


def test_device_lbfgs_through_emulated_kernels():
    from engine.objectives import Objective
    from engine.vgg import VGG19

    rng = np.random.default_rng(0)
    net = VGG19.random(seed=1, sigma=0.05, pooling="max", device="cpu", dtype=np.float64)
    xc, x0 = (rng.uniform(-100, 100, (1, 3, 6, 8)) for _ in range(2))
    obj = Objective.inversion(net, xc, "pool1", tv_weight=0.5)   # fused conv+ReLU twice, max pool, TV
    obj.calibrate(x0)
    bounds = (np.full((1, 3, 1, 1), -110.0), np.full((1, 3, 1, 1), 110.0))
    ref = lbfgs_device(obj, x0, bounds, iters=5)

    strict = CupyNamesOnly()
    with engine_gpu_branch(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(net, "xp", strict)
        # the kernels are grid-stride loops: a small grid computes the same and emulates fast
        mp.setattr(backend, "launch", lambda kern, n, args: kern((4,), (32,), args))
        res = lbfgs_device(obj, x0, bounds, iters=5)
    assert {"sum", "where", "clip", "array", "asarray"} <= strict.used
    assert res.failed is None and res.iterations == ref.iterations == 5
    assert res.evaluations == ref.evaluations
    np.testing.assert_allclose([h["loss"] for h in res.history], [h["loss"] for h in ref.history], rtol=1e-9)
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-7, atol=1e-7)
