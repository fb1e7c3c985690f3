"""Distribution losses beside the Gram loss: centred moments and the sliced Wasserstein distance.

F is a layer's activation (or the image's pixels) read as N x M: N channels, M positions.
Both losses compare the distribution of the M column vectors with a target's, whatever the
number of positions, so a target taken at another size needs no rescaling.

Moments (mean and covariance; "centred statistics"):
    mu = F 1 / M,   S = (F - mu)(F - mu)^T / M
    L = w * ( ||mu - mu0||^2 / N  +  ||S - S0||^2 / (2 N^2) )
    dL/dF = w * ( 2 (mu - mu0) / (N M)  +  2 (S - S0)(F - mu) / (N^2 M) ) (per column)
  derivation: dS = (dF_c Fc^T + Fc dF_c^T) / M with Fc = F - mu; the mean's own change drops
  out because Fc 1 = 0; S - S0 symmetric gives <S - S0, dS> = 2 <(S - S0) Fc, dF> / M.

Sliced Wasserstein (Heitz et al., CVPR 2021): P random unit directions D (P x N); project,
sort each projection, compare with the target's sorted projections t (P x M):
    L = w / (P M) * sum_p ||sort(D_p F) - t_p||^2
    dL/dF = D^T R,  R[p, idx_p[k]] = 2 w / (P M) * (sort(D_p F)[k] - t_p[k])
  the sort is a permutation, so its gradient is exact: the residual scattered back to where each
  sorted value came from. A target with another number of positions is resampled to M by its
  quantiles (``sorted_projections``). On the pixels it matches the colour histogram.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Tensor, record
from .gram import features_matrix


def moments(f):
    """(N, C, h, w) -> (mean (N, C), covariance (N, C, C)), per position."""
    fm = features_matrix(f)
    mu = fm.mean(axis=2)
    fc = fm - mu[:, :, None]
    return mu, fc @ fc.transpose(0, 2, 1) / fm.shape[2]


def moments_loss(f: Tensor, target_mean, target_cov, weight: float = 1.0, name=None, scales=None) -> Tensor:
    """f: (N, C, h, w); targets (1 or N, C) and (1 or N, C, C). Returns a 0-d tensor:
    a ||mu - target_mean||^2 + b ||S - target_cov||^2, with (a, b) = ``scales``, by default
    (1 / C, 1 / (2 C^2)); ``balanced_scales`` gives each part relative to its target."""
    fm = features_matrix(f.data)
    c, m = fm.shape[1], fm.shape[2]
    mu = fm.mean(axis=2)
    fc = fm - mu[:, :, None]
    dmu = mu - target_mean
    ds = fc @ fc.transpose(0, 2, 1) / m - target_cov
    if scales is None:  # written out, so that the default keeps its float32 rounding
        value = ((dmu * dmu).sum() / c + (ds * ds).sum() / (2.0 * c * c)) * weight
        ga, gb = 2.0 / (c * m), 2.0 / (c * c * m)
    else:
        a, b = scales
        value = (a * (dmu * dmu).sum() + b * (ds * ds).sum()) * weight
        ga, gb = 2.0 * a / m, 4.0 * b / m

    def backward(g):
        s = g * weight
        grad = ga * dmu[:, :, None] + gb * (ds @ fc)
        return (grad * s).reshape(f.shape),

    return record(value, (f,), backward, name)


def balanced_scales(target_mean, target_cov) -> tuple:
    """(a, b) for ``moments_loss`` that weigh the mean and the covariance each relative to its
    target (1 / ||mean||^2, 1 / ||cov||^2): the two parts then count alike at any scale of the
    features, where the default lets the mean's, a second power of the features, swamp the
    covariance's, a fourth power, by orders of magnitude at the deeper layers of a random net."""
    sq = lambda t: float(backend.to_host((t * t).sum()))
    return 1.0 / max(sq(target_mean), 1e-30), 1.0 / max(sq(target_cov), 1e-30)


def directions(channels: int, count: int, seed: int, xp=np, dtype=np.float32):
    """(count, channels) random unit vectors (Gaussian, normalised), the same for a given seed."""
    d = np.random.default_rng(seed).standard_normal((count, channels))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return xp.asarray(d.astype(dtype))


def sorted_projections(f, dirs, positions: int | None = None):
    """The target of ``sliced_wasserstein_loss``: (P, M') sorted projections of f (N, C, h, w)
    (images of the batch pooled), resampled to ``positions`` quantiles when given."""
    xp = backend.array_module(f)
    fm = features_matrix(f)
    proj = (dirs @ fm).transpose(1, 0, 2).reshape(dirs.shape[0], -1)  # (P, N*M)
    proj = xp.sort(proj, axis=1)
    if positions is None or positions == proj.shape[1]:
        return proj
    # quantile k of M' values at the centres (k + 1/2) / M; linear interpolation between order statistics
    src = (xp.arange(proj.shape[1], dtype=proj.dtype) + 0.5) / proj.shape[1]
    dst = (xp.arange(positions, dtype=proj.dtype) + 0.5) / positions
    return xp.stack([xp.interp(dst, src, row) for row in proj])


def sliced_wasserstein_loss(f: Tensor, target_sorted, dirs, weight: float = 1.0, name=None) -> Tensor:
    """f: (N, C, h, w); target_sorted: (P, h*w) from ``sorted_projections``; dirs: (P, C).
    Each image of the batch is compared with the target. Returns a 0-d tensor."""
    xp = backend.array_module(f.data)
    fm = features_matrix(f.data)
    n, m = fm.shape[0], fm.shape[2]
    p = dirs.shape[0]
    proj = dirs @ fm                                    # (N, P, M)
    idx = xp.argsort(proj, axis=2)
    diff = xp.take_along_axis(proj, idx, axis=2) - target_sorted[None]
    value = (diff * diff).sum() * (weight / (p * m))

    def backward(g):
        r = xp.empty_like(proj)
        rows = xp.arange(n)[:, None, None], xp.arange(p)[None, :, None]
        r[rows[0], rows[1], idx] = diff * (2.0 * g * weight / (p * m))  # scatter back through the sort
        return (dirs.T @ r).reshape(f.shape),               # (C, P) @ (N, P, M) -> (N, C, M)

    return record(value, (f,), backward, name)
