"""Every op, loss, objective and the whole network against central differences (float64)."""
import numpy as np
import pytest

from engine import gradcheck
from engine.autograd import Tensor

CHECKS = gradcheck.standard_checks()


@pytest.mark.parametrize("chk", CHECKS, ids=[c.name for c in CHECKS])
def test_gradient_matches_finite_differences(chk):
    err = chk.run("cpu")
    assert err < gradcheck.TOLERANCE, f"{chk.name}: relative error {err:.2e}"


def test_checker_catches_a_wrong_gradient():
    """The checker is not vacuous: a gradient off by a factor of 4 (the classic Gram slip)
    or with one element perturbed must fail."""
    from engine.ops import losses, gram

    g0 = gram.gram_forward(np.random.default_rng(1).standard_normal((1, 4, 3, 5)))
    x = np.random.default_rng(2).standard_normal((1, 4, 3, 5))

    def wrong(x):
        xt = Tensor(x, requires_grad=True)
        out = losses.gram_loss(xt, g0)
        from engine.autograd import backward
        backward(out)
        return float(out.data), xt.grad / 4

    assert gradcheck.check(wrong, x) > 0.5

    def off_by_one_element(x):
        v, g = wrong(x)
        g = g * 4
        g[0, 1, 2, 3] += 0.01 * abs(g).max()
        return v, g

    assert gradcheck.check(off_by_one_element, x) > gradcheck.TOLERANCE


def test_checker_requires_float64():
    with pytest.raises(ValueError):
        gradcheck.check(lambda x: (0.0, x), np.zeros(3, np.float32))
