"""The distribution losses (engine/ops/stats.py): values that could be wrong (gradients: test_gradients)."""
import numpy as np
import pytest

from engine.autograd import Tensor
from engine.arch import pins_layout
from engine.ops import stats


def test_moments_are_mean_and_population_covariance():
    f = np.random.default_rng(0).standard_normal((1, 3, 4, 5))
    mu, cov = stats.moments(f)
    flat = f.reshape(3, -1)
    np.testing.assert_allclose(mu[0], flat.mean(1))
    np.testing.assert_allclose(cov[0], np.cov(flat, bias=True))


def test_moments_loss_zero_at_target_and_positive_elsewhere():
    f = np.random.default_rng(1).standard_normal((1, 3, 4, 5))
    mu, cov = stats.moments(f)
    assert float(stats.moments_loss(Tensor(f), mu, cov).data) == pytest.approx(0, abs=1e-24)
    assert float(stats.moments_loss(Tensor(f + 0.1), mu, cov).data) > 0


def test_balanced_moments_loss_counts_mean_and_covariance_alike_at_any_scale():
    rng = np.random.default_rng(3)
    t = rng.standard_normal((1, 4, 5, 6)) + 2.0
    f = rng.standard_normal((1, 4, 5, 6)) + 1.5
    mu, cov = stats.moments(t)
    a, b = stats.balanced_scales(mu, cov)
    assert (a, b) == pytest.approx((1 / (mu ** 2).sum(), 1 / (cov ** 2).sum()))
    fmu, fcov = stats.moments(f)
    want = ((fmu - mu) ** 2).sum() * a + ((fcov - cov) ** 2).sum() * b
    assert float(stats.moments_loss(Tensor(f), mu, cov, scales=(a, b)).data) == pytest.approx(want)

    def both(k):  # features and target scaled by k: the balanced value stays, the default's does not
        mu_k, cov_k = stats.moments(t * k)
        ab = stats.balanced_scales(mu_k, cov_k)
        return (float(stats.moments_loss(Tensor(f * k), mu_k, cov_k, scales=ab).data),
                float(stats.moments_loss(Tensor(f * k), mu_k, cov_k).data))

    (bal1, def1), (bal2, def2) = both(1.0), both(1e-3)
    assert bal2 == pytest.approx(bal1, rel=1e-9)
    assert def2 < 1e-5 * def1


def test_swd_is_zero_for_a_permutation_of_the_target_positions():
    rng = np.random.default_rng(2)
    f = rng.standard_normal((1, 4, 3, 5))
    d = stats.directions(4, 8, 0, dtype=np.float64)
    t = stats.sorted_projections(f, d)
    shuffled = f.reshape(4, -1)[:, rng.permutation(15)].reshape(1, 4, 3, 5)
    assert float(stats.sliced_wasserstein_loss(Tensor(shuffled), t, d).data) == pytest.approx(0, abs=1e-24)
    assert float(stats.sliced_wasserstein_loss(Tensor(f * 1.1), t, d).data) > 1e-4


def test_sorted_projections_resample_by_quantiles():
    d = np.ones((1, 1))
    f = np.arange(8.0).reshape(1, 1, 2, 4)
    t = stats.sorted_projections(f, d, 4)  # quantiles at 1/8, 3/8, 5/8, 7/8 of 0..7
    np.testing.assert_allclose(t[0], [0.5, 2.5, 4.5, 6.5])


@pytest.mark.parametrize("layer,side,pins", [("relu3_1", 128, False), ("relu4_1", 128, True), ("relu5_1", 128, True),
                                             ("relu4_1", 256, False), ("relu5_1", 256, True), ("relu5_1", 512, False),
                                             ("relu3_1", 48, True), ("relu2_1", 48, False)])
def test_a_layer_pins_the_layout_when_positions_are_fewer_than_channels(layer, side, pins):
    assert pins_layout(layer, side, side) is pins
