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


def small_grid(mp):
    """The kernels are grid-stride loops: a small grid computes the same and emulates fast."""
    mp.setattr(backend, "THREADS", 32)
    mp.setattr(backend, "MAX_BLOCKS", 4)


def pool1_problem():
    from engine.objectives import Objective
    from engine.vgg import VGG19

    rng = np.random.default_rng(0)
    net = VGG19.random(seed=1, sigma=0.05, pooling="max", device="cpu", dtype=np.float64)
    xc, x0 = (rng.uniform(-100, 100, (1, 3, 6, 8)) for _ in range(2))
    obj = Objective.inversion(net, xc, "pool1", tv_weight=0.5)   # fused conv+ReLU twice, max pool, TV
    obj.calibrate(x0)
    bounds = (np.full((1, 3, 1, 1), -110.0), np.full((1, 3, 1, 1), 110.0))
    return net, obj, x0, bounds


def test_device_lbfgs_through_emulated_kernels():
    net, obj, x0, bounds = pool1_problem()
    ref = lbfgs_device(obj, x0, bounds, iters=5)

    strict = CupyNamesOnly()
    fused = set()
    with engine_gpu_branch(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(net, "xp", strict)
        small_grid(mp)
        emulated = backend.make_fused
        mp.setattr(backend, "make_fused", lambda name: (fused.add(name), emulated(name))[1])
        res = lbfgs_device(obj, x0, bounds, iters=5)
    assert {"where", "clip", "array", "asarray", "triu", "linalg"} <= strict.used
    # the optimiser's fused kernels (kernels/fused.py), and the content loss's
    assert {"ranvgg_dot", "ranvgg_keep_inside", "ranvgg_trial_point", "ranvgg_content_value",
            "ranvgg_content_grad"} <= fused
    assert res.failed is None and res.iterations == ref.iterations == 5
    assert res.evaluations == ref.evaluations
    np.testing.assert_allclose([h["loss"] for h in res.history], [h["loss"] for h in ref.history], rtol=1e-9)
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-7, atol=1e-7)


def test_launches_per_evaluation_and_syncs_per_iteration():
    """Counted by engine.backend on the emulated GPU path: the raw kernels of one evaluation
    (two fused conv+ReLU layers, a max pool, TV: forward and backward) and one host read per
    evaluation (the loss); the optimiser reads once per iteration that takes one evaluation."""
    net, obj, x0, bounds = pool1_problem()
    with engine_gpu_branch(), pytest.MonkeyPatch.context() as mp:
        small_grid(mp)
        obj.value_and_grad(x0)        # the first call makes each layer's Winograd weights (a host read each)
        with backend.counting() as one:
            obj.value_and_grad(x0)
        # forward: conv1_1 im2col + ReLU, conv1_2 Winograd input + output transform (ReLU fused),
        # max pool, TV; backward: max pool, per conv a masked Winograd input + output transform
        # (the gradient of conv1_1 has 64 channels: Winograd too)
        assert one["launches"] == 2 + 2 + 1 + 1 + 1 + 2 * 2
        assert one["fused"] == 2                     # the content loss: value, gradient (kernels/fused.py)
        assert one["syncs"] == 1 and one["lbfgs_syncs"] == 0

        marks = []
        evals = {"n": 0}
        real = obj.value_and_grad

        def counted(x):
            evals["n"] += 1
            return real(x)

        mp.setattr(obj, "value_and_grad", counted)
        with backend.counting() as run:
            res = lbfgs_device(obj, x0, bounds, iters=8,
                               callback=lambda *a: marks.append((backend.COUNTS["lbfgs_syncs"], evals["n"])))
    # besides: the two bounds read once at the start, and Result.x
    assert res.iterations == 8 and run["syncs"] == run["lbfgs_syncs"] + res.evaluations + 3
    steps = [(r1 - r0, e1 - e0) for (r0, e0), (r1, e1) in zip(marks, marks[1:])]
    assert all(reads <= evaluations for reads, evaluations in steps), steps
    assert all(reads == 1 for reads, evaluations in steps if evaluations == 1), steps
    assert sum(e == 1 for _, e in steps) >= 4, steps      # most iterations: one evaluation, one read
