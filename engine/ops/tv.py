"""Total variation, the smoothness prior of Eq. 9 (docs/method.md, section 3).

    R(x) = sum_{c,i,j} (x[c,i,j+1] - x[c,i,j])^2 + (x[c,i+1,j] - x[c,i,j])^2

over the pairs that exist (no wrap-around). Gradient, per pixel:

    dR/dx[i,j] = 2 (x[i,j] - x[i,j+1]) + 2 (x[i,j] - x[i,j-1])
               + 2 (x[i,j] - x[i+1,j]) + 2 (x[i,j] - x[i-1,j])      (terms that exist)

GPU: ``tv_fwd_bwd`` in ``kernels/tv.cu`` computes, per pixel, its right/down terms and its
whole gradient in one pass (a gather: no atomics); the terms are then summed on the device.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Tensor, record


def tv_forward_backward(x):
    """x (N, C, H, W) -> (R as a 0-d array, dR/dx of x's shape)."""
    xp = backend.array_module(x)
    if xp is np:
        dx = x[..., :, 1:] - x[..., :, :-1]
        dy = x[..., 1:, :] - x[..., :-1, :]
        value = (dx * dx).sum() + (dy * dy).sum()
        g = np.zeros_like(x)
        g[..., :, 1:] += 2 * dx
        g[..., :, :-1] -= 2 * dx
        g[..., 1:, :] += 2 * dy
        g[..., :-1, :] -= 2 * dy
        return value, g
    n, c, h, w = x.shape
    x = xp.ascontiguousarray(x)
    terms = xp.empty_like(x)
    g = xp.empty_like(x)
    # one thread: one pixel's right+down squared differences and its full gradient
    backend.launch(backend.kernel("tv", "tv_fwd_bwd", x.dtype), x.size,
                   (x, terms, g, np.int32(n * c), np.int32(h), np.int32(w)))
    return terms.sum(), g


def tv_loss(x: Tensor, weight: float = 1.0, name=None) -> Tensor:
    value, g = tv_forward_backward(x.data)
    return record(value * weight, (x,), lambda gy: (g * (gy * weight),), name)
