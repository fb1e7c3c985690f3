"""engine/optim/device_lbfgs.py on NumPy: the optimum of a known problem, scipy's loss on the three
tasks, and the failure handling engine/optim/scipy_lbfgsb.py promises (Ctrl-C, NaN, callback errors)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from engine.optim.device_lbfgs import GROW_MAX, _dot, _growth, lbfgs_device
from engine.optim import lbfgs


class Quadratic:
    """f(x) = 0.5 sum a_i (x_i - c_i)^2 over an (N, 3, H, W) image; counts and can sabotage calls."""

    def __init__(self, shape=(1, 3, 4, 5), dtype=np.float32, nan_at=None, interrupt_at=None, seed=0, offset=0.0):
        rng = np.random.default_rng(seed)
        self.a = rng.uniform(0.5, 20, shape)        # condition number 40
        self.c = rng.uniform(-2, 2, shape)
        self.net = SimpleNamespace(xp=np, dtype=np.dtype(dtype))
        self.nan_at, self.interrupt_at, self.offset = nan_at, interrupt_at, offset
        self.evaluations, self.seen = 0, []
        self.last_terms = {}

    def value_and_grad(self, x):
        self.evaluations += 1
        self.seen.append((type(x), x.dtype))
        if self.evaluations == self.interrupt_at:
            raise KeyboardInterrupt
        r = x.astype(np.float64) - self.c
        value = self.offset + 0.5 * float(np.sum(self.a * r * r))
        grad = (self.a * r).astype(x.dtype)
        if self.nan_at is not None and self.evaluations >= self.nan_at:   # a blow-up that stays
            grad[0, 0, 0, 0] = np.nan
        self.last_terms = {"quad": value}
        return value, grad


def test_reaches_the_bounded_minimum():
    q = Quadratic()
    lo, hi = np.full((1, 3, 1, 1), -1.0), np.full((1, 3, 1, 1), 1.0)
    res = lbfgs_device(q, np.zeros(q.a.shape), (lo, hi), iters=60)
    expect = np.clip(q.c, -1, 1)                                  # separable: the optimum is the clipped centre
    assert res.x.dtype == np.float64 and res.x.shape == q.a.shape
    np.testing.assert_allclose(res.x, expect, atol=1e-4)
    assert res.failed is None and not res.interrupted
    assert all(t is np.ndarray and d == np.float32 for t, d in q.seen)  # float32 vectors throughout
    assert [h["iteration"] for h in res.history] == list(range(1, res.iterations + 1))
    losses = [h["loss"] for h in res.history]
    assert all(b <= a for a, b in zip(losses, losses[1:]))      # Armijo: every step goes down


def test_a_short_step_grows_to_the_slopes_secant_zero_within_bounds():
    assert _growth(-1.0, -0.25) == 2.0                       # the slope's zero at 1.33 t: at least 2x
    assert _growth(-1.0, -0.6) == pytest.approx(2.5)          # the slope's zero at 2.5 t
    assert _growth(-1.0, -0.95) == GROW_MAX == 8.0            # far and unsure: at most 8x
    assert _growth(-1.0, -1.0) == _growth(-1.0, -1.5) == GROW_MAX   # no curvature seen


def test_the_first_step_reaches_a_far_minimum_in_few_evaluations():
    """f = 0.5 |x - c|^2 with the minimum 1000 unit steps away along -g. The step grows 1 -> 8
    -> 64 -> 512, where the slope is below 0.9 of its start (Wolfe's curvature condition): 5
    evaluations with the first; doubling to the same 512 would take 11."""
    q = Quadratic(shape=(1, 3, 1, 1))
    q.a[...] = 1.0
    q.c[...] = 1000.0 / np.sqrt(3)
    res = lbfgs_device(q, np.zeros(q.a.shape), iters=1)
    assert res.iterations == 1 and res.evaluations == 5
    assert res.loss == pytest.approx(0.5 * (1000 - 512) ** 2, rel=1e-3)


def test_dot_sums_in_float64():
    a = np.full(10, 0.1, np.float32)
    assert _dot(np, a, a).dtype == np.float64


def test_ftol_and_gtol_stop_early():
    q = Quadratic()
    res = lbfgs_device(q, np.zeros(q.a.shape), iters=500, gtol=1e-3)
    assert res.iterations < 500 and "gtol" in res.stop
    assert np.abs(q.a * (res.x - q.c)).max() <= 1e-3 * 1.01
    res = lbfgs_device(Quadratic(), np.zeros(q.a.shape), iters=500, ftol=1e-6)
    assert res.iterations < 500 and "ftol" in res.stop


def test_a_run_whose_loss_stops_falling_ends():
    """A loss of 1e6 + a quadratic: once the quadratic part is below float32's resolution of the
    whole (1e6 x 1.2e-7 = 0.12), five such iterations end the run, at the optimum."""
    q = Quadratic(offset=1e6)
    res = lbfgs_device(q, np.zeros(q.a.shape), iters=500)
    assert "stopped falling" in res.stop and "float32" in res.stop and res.iterations < 100
    assert res.loss - 1e6 < 1.0 and not res.failed
    gaps = [a["loss"] - b["loss"] for a, b in zip(res.history, res.history[1:])]
    assert all(g < 1.2e-7 * 1e6 for g in gaps[-5:]) and not all(g < 1.2e-7 * 1e6 for g in gaps[-6:])
    off = lbfgs_device(Quadratic(offset=1e6), np.zeros(q.a.shape), iters=500, stall=0)
    assert "stopped falling" not in off.stop and off.evaluations > res.evaluations


def test_a_nan_stops_with_the_last_good_iterate():
    q = Quadratic(nan_at=6)
    res = lbfgs_device(q, np.zeros(q.a.shape), iters=50)
    assert res.failed and "non-finite" in res.failed and res.iterations < 50
    assert np.isfinite(res.loss) and np.all(np.isfinite(res.x))
    assert res.loss == pytest.approx(Quadratic().value_and_grad(res.x)[0], rel=1e-6)


def test_ctrl_c_keeps_the_last_iterate():
    q = Quadratic(interrupt_at=8)
    res = lbfgs_device(q, np.zeros(q.a.shape), iters=50)
    assert res.interrupted and res.stop == "interrupted" and res.iterations >= 1
    assert res.loss == res.history[-1]["loss"] < Quadratic().value_and_grad(np.zeros(q.a.shape))[0]
    assert res.loss == pytest.approx(Quadratic().value_and_grad(res.x)[0], rel=1e-6)


def test_callback_sees_the_device_array_and_can_stop_or_fail():
    q = Quadratic()
    seen = []

    def stop_at_3(it, x, loss, terms, elapsed):
        seen.append((it, type(x), x.shape, terms))
        if it == 3:
            raise StopIteration("enough")

    res = lbfgs_device(q, np.zeros(q.a.shape), iters=50, callback=stop_at_3)
    assert res.iterations == 3 and res.stop == "enough" and res.failed is None
    assert seen[0][1:3] == (np.ndarray, q.a.shape) and "quad" in seen[0][3]

    def broken(it, x, loss, terms, elapsed):
        raise OSError("disk full")

    res = lbfgs_device(Quadratic(), np.zeros(q.a.shape), iters=50, callback=broken)
    assert res.iterations == 1 and res.failed == "stopped by an error in the progress callback: disk full"


def test_x0_is_not_changed():
    q = Quadratic()
    x0 = np.full(q.a.shape, 5.0)
    lbfgs_device(q, x0, (np.float64(-1), np.float64(1)), iters=3)
    assert np.all(x0 == 5.0)


# ----------------------------------------------------------------------------- against scipy


TASKS = {
    "invert": {"image": "coffee", "layer": "pool2"},
    "texture": {"image": "gravel", "layers": "relu1_1,relu2_1"},
    "style": {"content": "chelsea", "style": ["ihc"], "style_layers": "relu1_1,relu2_1", "content_layer": "relu2_2"},
}


def final_losses(task, tmp_path, size, iters, **kwargs):
    """{optimizer: final loss} of the same run with each optimiser."""
    import importlib

    mod = importlib.import_module(f"tasks.{task}")
    final = {}
    for opt in ("lbfgs", "lbfgs-device"):
        _, log = mod.run(size=size, iters=iters, device="cpu", print_every=0, optimizer=opt,
                         out=str(tmp_path / f"{opt}.png"), **TASKS[task], **kwargs)
        assert log["iterations"] == iters and log["status"] == "done"
        final[opt] = log["final_loss"]
    return final


def test_same_loss_as_scipy_in_the_same_iterations():
    """Style transfer at 32 px from the content image, 20 iterations, on the optimisers alone:
    within 5% of scipy's loss, or below it."""
    from engine.io import image
    from engine.objectives import Objective
    from engine.vgg import VGG19

    def load(name):
        return image.preprocess(image.load_image(image.sample_path(name), size=32))

    net = VGG19.random(seed=0, device="cpu")
    xc = load("chelsea")
    obj = Objective.style(net, xc, [load("ihc")], content_layer="relu2_2", style_layers=["relu1_1", "relu2_1"])
    obj.calibrate(xc)
    lo, hi = image.pixel_bounds("caffe")
    bounds = (lo.reshape(1, 3, 1, 1), hi.reshape(1, 3, 1, 1))
    scipy_run = lbfgs(obj, xc, bounds, iters=20)
    device_run = lbfgs_device(obj, xc, bounds, iters=20)
    assert scipy_run.iterations == device_run.iterations == 20
    assert device_run.loss <= 1.05 * scipy_run.loss, (device_run.loss, scipy_run.loss)
    assert np.all(device_run.x >= bounds[0] - 1e-4) and np.all(device_run.x <= bounds[1] + 1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS))
def test_same_loss_as_scipy_on_the_three_tasks(task, tmp_path):
    """Each task at 64 px, 50 iterations, four seeds. At a fixed budget the two searches end
    seed by seed up to 15% apart either way (texture, seeds 0-3: 1.12, 1.00, 1.12, 0.96; the
    device L-BFGS is about 5% above scipy there), so the median ratio is held to 10% and every
    seed to 20%."""
    ratios = []
    for seed in range(4):
        final = final_losses(task, tmp_path / str(seed), 64, 50, seed=seed)
        ratios.append(final["lbfgs-device"] / final["lbfgs"])
    assert float(np.median(ratios)) <= 1.10 and max(ratios) <= 1.2, ratios


def test_scipy_and_device_agree_on_the_quadratic():
    q = Quadratic(dtype=np.float64)
    a = lbfgs(q, np.zeros(q.a.shape), iters=40)
    b = lbfgs_device(Quadratic(dtype=np.float64), np.zeros(q.a.shape), iters=40)
    np.testing.assert_allclose(b.x, q.c, atol=1e-5)
    np.testing.assert_allclose(a.x, q.c, atol=1e-5)


def test_the_kept_gram_matrix_is_that_of_the_stored_pairs():
    """The (2m, 2m) Gram matrix is updated a pair at a time, not recomputed: after pairs that fill
    the history and wrap around, one that fails the curvature test (stored as zeros) and one
    stored over the newest (a step that grew), it equals W W^T, and the direction equals the one
    from W W^T computed afresh."""
    from engine.optim.device_lbfgs import _Pairs

    rng = np.random.default_rng(0)
    n, m = 50, 4
    pairs = _Pairs(np, m, n)
    for k in range(11):
        s = rng.standard_normal(n)
        y = -s if k == 6 else s + 0.3 * rng.standard_normal(n)     # k = 6: negative curvature
        pairs.push(s, y, replace=(k == 9))
        np.testing.assert_allclose(pairs.gram, pairs.w @ pairs.w.T, rtol=1e-12, atol=1e-12)
    assert not pairs.w[6 % m].any()                                   # the rejected pair is zeros
    g = rng.standard_normal(n)
    d = pairs.direction(g)
    pairs.gram[...] = pairs.w @ pairs.w.T
    np.testing.assert_allclose(d, pairs.direction(g), rtol=1e-12)


def test_a_pairs_gram_update_shares_the_next_directions_pass_over_the_history():
    """As the optimiser calls it (a push, then the direction; a grown step pushed over the newest
    pair, then the direction again; two pushes in a row): the Gram rows of a pair are computed
    with the next W g, and each direction equals the one from W W^T computed afresh."""
    from engine.optim.device_lbfgs import _Pairs

    rng = np.random.default_rng(1)
    n, m = 40, 3
    pairs, fresh = _Pairs(np, m, n), _Pairs(np, m, n)
    for k in range(9):
        s = rng.standard_normal(n)
        y = -s if k == 4 else s + 0.3 * rng.standard_normal(n)
        for p in (pairs, fresh):
            p.push(s, y, replace=(k in (3, 7)))
        if k == 5:
            continue                                                  # the next push comes first
        g = rng.standard_normal(n)
        assert pairs._pending is not None
        d = pairs.direction(g)
        assert pairs._pending is None
        np.testing.assert_allclose(pairs._gram, pairs.w @ pairs.w.T, rtol=1e-12, atol=1e-12)
        fresh.gram[...] = fresh.w @ fresh.w.T
        np.testing.assert_allclose(d, fresh.direction(g), rtol=1e-10)


@pytest.mark.parametrize("n", [5, 700, 3 * 1000 + 7])
def test_the_history_times_a_few_vectors_reads_it_in_slices_exactly(n, monkeypatch):
    """The NumPy product of W with a pair's rows and g, taken over slices of W (here of 256
    columns, the smallest: a last slice shorter), equals the whole product."""
    from engine.optim import device_lbfgs

    monkeypatch.setattr(device_lbfgs, "BLOCK_BYTES", 1)
    rng = np.random.default_rng(n)
    w, cols = rng.standard_normal((6, n)), rng.standard_normal((3, n))
    np.testing.assert_allclose(device_lbfgs._times_rows(np, w, cols), w @ cols.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(device_lbfgs._times_rows(np, w, cols[:2]), w @ cols[:2].T, rtol=1e-12, atol=1e-12)
