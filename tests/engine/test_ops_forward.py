"""Op forwards against direct, loop-level NumPy references (not the code under test)."""
import numpy as np
import pytest

from engine.ops import conv3x3, fc, gram, losses, pooling, relu, tv
from engine.autograd import Tensor


def direct_conv(x, w, b):
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd))
    for co in range(w.shape[0]):
        for ci in range(c):
            for ky in range(3):
                for kx in range(3):
                    out[:, co] += w[co, ci, ky, kx] * xp[:, ci, ky:ky + h, kx:kx + wd]
        out[:, co] += b[co]
    return out


@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (1, 4, 1, 1), (1, 2, 1, 7), (1, 5, 8, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv3x3_forward_and_backward(shape, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((4, shape[1], 3, 3)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    p = conv3x3.ConvWeights(w, b)
    y = conv3x3.conv3x3_forward(x, p)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, direct_conv(x.astype(np.float64), w, b), rtol=tol, atol=tol)
    # backward is the adjoint: <conv(x), gy> = <x, conv_bwd(gy)> (without bias)
    p0 = conv3x3.ConvWeights(w, np.zeros_like(b))
    gy = rng.standard_normal(y.shape).astype(dtype)
    lhs = float((conv3x3.conv3x3_forward(x, p0).astype(np.float64) * gy).sum())
    rhs = float((x.astype(np.float64) * conv3x3.conv3x3_backward(gy, p0)).sum())
    assert abs(lhs - rhs) <= 1e-4 * max(1.0, abs(lhs)) if dtype == np.float32 else abs(lhs - rhs) < 1e-9


def test_conv_weights_prepared_once():
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3))
    p = conv3x3.ConvWeights(w, np.zeros(4))
    assert p.w_fwd.shape == (4, 27) and p.w_bwd.shape == (3, 36) and not p.has_bias
    # flipped in space, channels swapped
    assert p.w_bwd.reshape(3, 4, 3, 3)[1, 2, 0, 0] == w[2, 1, 2, 2]


def test_pooling_forward_odd_sizes():
    x = np.arange(2 * 5 * 7, dtype=np.float64).reshape(1, 2, 5, 7)
    y = pooling.avgpool2_forward(x)
    assert y.shape == (1, 2, 2, 3)
    assert y[0, 1, 1, 2] == x[0, 1, 2:4, 4:6].mean()
    m, arg = pooling.maxpool2_forward(x)
    assert m[0, 0, 1, 2] == x[0, 0, 3, 5] and arg[0, 0, 1, 2] == 3
    # ties: the first maximum (row-major) wins
    t = np.ones((1, 1, 2, 2))
    _, arg = pooling.maxpool2_forward(t)
    assert arg[0, 0, 0, 0] == 0
    g = pooling.maxpool2_backward(np.ones((1, 1, 1, 1)), arg, t.shape)
    assert g.sum() == 1 and g[0, 0, 0, 0] == 1


def test_pooling_too_small():
    with pytest.raises(ValueError, match="at least 2x2"):
        pooling.avgpool2_forward(np.zeros((1, 1, 1, 4)))


def test_relu_fc_gram_tv_values():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 3, 5))
    np.testing.assert_array_equal(relu.relu_forward(x), np.where(x > 0, x, 0))
    w, b = rng.standard_normal((6, 60)), rng.standard_normal(6)
    y = fc.fc_forward(x, fc.FCWeights(w, b))
    assert y.shape == (2, 6, 1, 1)
    np.testing.assert_allclose(y[:, :, 0, 0], x.reshape(2, -1) @ w.T + b)
    g = gram.gram_forward(x)
    np.testing.assert_allclose(g[1], np.einsum("ik,jk->ij", x[1].reshape(4, -1), x[1].reshape(4, -1)))
    value, _ = tv.tv_forward_backward(x)
    ref = sum(((x[..., i, j + 1] - x[..., i, j]) ** 2).sum() for i in range(3) for j in range(4))
    ref += sum(((x[..., i + 1, j] - x[..., i, j]) ** 2).sum() for i in range(2) for j in range(5))
    assert np.isclose(float(value), ref)


def test_loss_constants():
    """Eq. 1 and Eq. 6 values, computed from the definitions."""
    rng = np.random.default_rng(4)
    f, f0 = rng.standard_normal((1, 4, 3, 5)), rng.standard_normal((1, 4, 3, 5))
    n, m = 4, 15
    v = float(losses.content_loss(Tensor(f), f0, 2.0).data)
    assert np.isclose(v, 2.0 / (2 * n * m) * ((f - f0) ** 2).sum())
    F, F0 = f.reshape(4, 15), f0.reshape(4, 15)
    g0 = (F0 @ F0.T)[None]
    v = float(losses.gram_loss(Tensor(f), g0, 3.0).data)
    assert np.isclose(v, 3.0 / (4 * n * n * m * m) * ((F @ F.T - F0 @ F0.T) ** 2).sum())


def test_shifted_gram_against_its_definition():
    """G_s[i, j] = sum over the overlap of F_i(y, x) F_j(y + dy, x + dx); (0, 0) is the Gram matrix."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 6))
    dy, dx = 1, 3
    ref = np.zeros((2, 3, 3))
    for y in range(4 - dy):
        for xx in range(6 - dx):
            ref += np.einsum("ni,nj->nij", x[:, :, y, xx], x[:, :, y + dy, xx + dx])
    np.testing.assert_allclose(gram.shifted_gram_forward(x, (dy, dx)), ref)
    np.testing.assert_allclose(gram.shifted_gram_forward(x, (0, 0)), gram.gram_forward(x))
    g0 = rng.standard_normal((1, 3, 3))
    v = float(losses.shifted_gram_loss(Tensor(x), g0, (dy, dx), 3.0).data)
    assert np.isclose(v, 3.0 / (4 * 9 * 9 ** 2) * ((ref - g0) ** 2).sum())   # C = 3, M_s = 3 x 3
