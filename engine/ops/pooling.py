"""2x2, stride-2 pooling (average by default, max as an option), forward and input gradient.

Odd sizes are floored, as in PyTorch: the last row/column of an odd map is dropped, and its
gradient is zero. Shapes: x (N, C, H, W) -> y (N, C, H//2, W//2).

Average: y = mean of the 2x2 window; gx = gy[window] / 4.
Max: y = the window's maximum; the first maximum in row-major order wins ties and alone
receives the gradient. Forward keeps the winner's index (0..3, uint8) for backward.

Backward is written as a gather (one gx element per thread/iteration), so no atomics are
needed. CPU: numba loops; GPU: ``kernels/pool.cu``.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..parallel import numba, parallel_jit
from ..autograd import Tensor, record


# The four CPU loops below (average/max, forward/backward) share their shape on purpose: one
# parallel loop over the (image, channel) planes, then the plane's own pixels. Each is the
# readable reference of its CUDA twin in kernels/pool.cu (which share plane_index), and numba
# would lose its parallel loop if the window rule were passed in as a function.
@parallel_jit
def _avg_fwd_cpu(x, y):
    n, c, h, w = x.shape
    ho, wo = h // 2, w // 2
    for p in numba.prange(n * c):
        b, ci = p // c, p % c
        for i in range(ho):
            for j in range(wo):
                s = x[b, ci, 2 * i, 2 * j] + x[b, ci, 2 * i, 2 * j + 1]
                s += x[b, ci, 2 * i + 1, 2 * j] + x[b, ci, 2 * i + 1, 2 * j + 1]
                y[b, ci, i, j] = s * 0.25


@parallel_jit
def _avg_bwd_cpu(gy, gx):
    n, c, h, w = gx.shape
    ho, wo = gy.shape[2], gy.shape[3]
    for p in numba.prange(n * c):
        b, ci = p // c, p % c
        for i in range(h):
            for j in range(w):
                if i // 2 < ho and j // 2 < wo:
                    gx[b, ci, i, j] = gy[b, ci, i // 2, j // 2] * 0.25
                else:
                    gx[b, ci, i, j] = 0.0


@parallel_jit
def _max_fwd_cpu(x, y, arg):
    n, c, h, w = x.shape
    ho, wo = h // 2, w // 2
    for p in numba.prange(n * c):
        b, ci = p // c, p % c
        for i in range(ho):
            for j in range(wo):
                best = x[b, ci, 2 * i, 2 * j]
                k = 0
                for q in range(1, 4):
                    v = x[b, ci, 2 * i + q // 2, 2 * j + q % 2]
                    if v > best:
                        best = v
                        k = q
                y[b, ci, i, j] = best
                arg[b, ci, i, j] = k


@parallel_jit
def _max_bwd_cpu(gy, arg, gx):
    n, c, h, w = gx.shape
    ho, wo = gy.shape[2], gy.shape[3]
    for p in numba.prange(n * c):
        b, ci = p // c, p % c
        for i in range(h):
            for j in range(w):
                pi, pj = i // 2, j // 2
                if pi < ho and pj < wo and arg[b, ci, pi, pj] == (i % 2) * 2 + (j % 2):
                    gx[b, ci, i, j] = gy[b, ci, pi, pj]
                else:
                    gx[b, ci, i, j] = 0.0


def _check(x):
    if x.shape[2] < 2 or x.shape[3] < 2:
        raise ValueError(f"2x2 pooling needs maps of at least 2x2, got {x.shape[2]}x{x.shape[3]}")


def _dims(x):
    n, c, h, w = x.shape
    return np.int32(n * c), np.int32(h), np.int32(w)


def avgpool2_forward(x):
    _check(x)
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    x = xp.ascontiguousarray(x)
    y = xp.empty((n, c, h // 2, w // 2), dtype=x.dtype)
    if xp is np:
        _avg_fwd_cpu(x, y)
    else:
        # one thread writes one pooled y element
        backend.launch(backend.kernel("pool", "avgpool2_fwd", x.dtype), y.size, (x, y, *_dims(x)))
    return y


def avgpool2_backward(gy, x_shape):
    xp = backend.array_module(gy)
    gy = xp.ascontiguousarray(gy)
    gx = xp.empty(x_shape, dtype=gy.dtype)
    if xp is np:
        _avg_bwd_cpu(gy, gx)
    else:
        # one thread writes one gx element (a gather: no atomics)
        backend.launch(backend.kernel("pool", "avgpool2_bwd", gy.dtype), gx.size, (gy, gx, *_dims(gx)))
    return gx


def maxpool2_forward(x):
    """-> (y, arg): arg (uint8) holds the winning position 0..3 (row-major) of each window."""
    _check(x)
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    x = xp.ascontiguousarray(x)
    y = xp.empty((n, c, h // 2, w // 2), dtype=x.dtype)
    arg = xp.empty(y.shape, dtype=np.uint8)
    if xp is np:
        _max_fwd_cpu(x, y, arg)
    else:
        # one thread writes one pooled y element and its argmax
        backend.launch(backend.kernel("pool", "maxpool2_fwd", x.dtype), y.size, (x, y, arg, *_dims(x)))
    return y, arg


def maxpool2_backward(gy, arg, x_shape):
    xp = backend.array_module(gy)
    gy, arg = xp.ascontiguousarray(gy), xp.ascontiguousarray(arg)
    gx = xp.empty(x_shape, dtype=gy.dtype)
    if xp is np:
        _max_bwd_cpu(gy, arg, gx)
    else:
        # one thread writes one gx element (a gather: no atomics)
        backend.launch(backend.kernel("pool", "maxpool2_bwd", gy.dtype), gx.size, (gy, arg, gx, *_dims(gx)))
    return gx


def avgpool2(x: Tensor, name=None) -> Tensor:
    shape = x.shape
    return record(avgpool2_forward(x.data), (x,), lambda gy: (avgpool2_backward(gy, shape),), name)


def maxpool2(x: Tensor, name=None) -> Tensor:
    y, arg = maxpool2_forward(x.data)
    shape = x.shape
    return record(y, (x,), lambda gy: (maxpool2_backward(gy, arg, shape),), name)
