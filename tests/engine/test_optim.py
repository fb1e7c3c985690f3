"""The L-BFGS-B wrapper on a problem with a known answer, and its failure paths."""
import numpy as np
import pytest

from engine.optim import lbfgs


class Quadratic:
    """0.5 * sum(a_i (x_i - c_i)^2) * scale, a_i from 1 to 1e3 (ill-conditioned, so it takes
    a few iterations): minimum at c, or at the bound nearest to c."""

    def __init__(self, c, scale=1.0, nan_after=None):
        self.c, self.scale, self.nan_after, self.evaluations = c, scale, nan_after, 0
        self.a = np.logspace(0, 3, c.size).reshape(c.shape)
        self.last_terms = {}

    def value_and_grad(self, x):
        self.evaluations += 1
        d = x.reshape(self.c.shape) - self.c
        v = 0.5 * float((self.a * d * d).sum()) * self.scale
        self.last_terms = {"q": v}
        g = (self.a * d * self.scale).reshape(x.shape)
        if self.nan_after is not None and self.evaluations > self.nan_after:
            return float("nan"), g
        return v, g


def test_converges_within_bounds():
    c = np.linspace(-2, 2, 24).reshape(1, 2, 3, 4)
    res = lbfgs(Quadratic(c), np.zeros_like(c), bounds=(-1.0, 1.0), iters=50)
    np.testing.assert_allclose(res.x, np.clip(c, -1, 1), atol=1e-8)
    assert res.evaluations >= res.iterations >= 1 and not res.failed
    assert res.history[-1]["q"] == pytest.approx(res.loss)


def test_tiny_losses_do_not_stop_it_early():
    """Raw random-net losses are ~1e-12: with scipy's default tolerances L-BFGS-B stops at once;
    with ours (0) it keeps improving until the budget or exact convergence."""
    c = np.full((1, 1, 4, 4), 1e-6)
    start = Quadratic(c, scale=1e-8).value_and_grad(np.zeros_like(c))[0]
    assert start < 1e-15
    res = lbfgs(Quadratic(c, scale=1e-8), np.zeros_like(c), iters=20)
    assert res.iterations >= 5 and res.loss < start / 100
    from scipy.optimize import minimize

    q = Quadratic(c, scale=1e-8)
    default = minimize(q.value_and_grad, np.zeros(16), jac=True, method="L-BFGS-B")
    assert default.nit == 0  # what a user of scipy's defaults would get


def test_nan_keeps_last_good_iterate():
    c = np.ones((1, 1, 3, 3))
    res = lbfgs(Quadratic(c, nan_after=5), np.zeros_like(c), iters=50)
    assert res.failed and "NaN" in res.failed and np.all(np.isfinite(res.x)) and np.isfinite(res.loss)


def test_callback_error_and_stop_keep_the_result():
    c = np.ones((1, 1, 3, 3))

    def broken(it, x, loss, terms, elapsed):
        if it == 2:
            raise OSError("disk full")

    res = lbfgs(Quadratic(c), np.zeros_like(c), iters=50, callback=broken)
    assert "disk full" in res.failed and res.iterations == 2

    def stop(it, x, loss, terms, elapsed):
        if it == 3:
            raise StopIteration("enough")

    res = lbfgs(Quadratic(c), np.zeros_like(c), iters=50, callback=stop)
    assert res.iterations == 3 and not res.failed  # scipy itself honours StopIteration now
