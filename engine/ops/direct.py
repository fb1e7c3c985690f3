"""A 3x3, stride-1, pad-1 conv as shifted row sums, on the CPU: for a layer with few channels on
one side, the image layer (3 -> 64) above all.

There im2col's GEMM has K = 27 (and gathers a 9x copy of the input first), and Winograd's
backward turns the 64-channel gradient into (m+2)^2 / m^2 times its size to multiply it by a
3-row U. Computed directly, each output row is a sum of a few shifted input rows, each times a
weight, in registers and cache:

    forward   y[b, o, i, j]  = bias[o] + sum_{c, ky, kx} w[o, c, ky, kx] x[b, c, i + ky - 1, j + kx - 1]
    backward  gx[b, c, p, q] = sum_{o, ky, kx} w[o, c, ky, kx] g[b, o, p - ky + 1, q - kx + 1]

(zero outside the map; g = gy, times (mask > 0) when the conv's ReLU output is given: its
backward, fused). The forward takes the output channels in parallel, one whole plane each
(bias, sum and ReLU in one pass); the backward takes bands of BAND output rows in parallel, with
every input channel's rows of the band in one accumulator, each masked row of g made once per
band. Each output element is summed in one fixed order (channels, then rows, then the three
columns) by one thread, whatever the bands and the thread count: the same bits on any number of
threads. ``conv3x3.choose`` sends a CPU conv here when either side has fewer than
``conv3x3.FEW_CHANNELS`` channels.
"""
from __future__ import annotations

import numpy as np

from ..parallel import CACHE, numba, parallel_jit

BAND = 16  # output rows per parallel task in the backward


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _row3(acc, row, w0, w1, w2):
    """acc[j] += w0 row[j] + w1 row[j + 1] + w2 row[j + 2]: one padded row (len(acc) + 2) times
    one kernel row."""
    for j in range(acc.shape[0]):
        acc[j] += w0 * row[j] + w1 * row[j + 1] + w2 * row[j + 2]


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _rows9(acc, r0, r1, r2, k):
    """acc[j] += sum over the kernel rows ky and columns kx of k[ky, kx] r_ky[j + kx]: three
    padded rows (len(acc) + 2) times one 3x3 kernel k."""
    k00, k01, k02, k10, k11, k12 = k[0, 0], k[0, 1], k[0, 2], k[1, 0], k[1, 1], k[1, 2]
    k20, k21, k22 = k[2, 0], k[2, 1], k[2, 2]
    for j in range(acc.shape[0]):
        acc[j] += (k00 * r0[j] + k01 * r0[j + 1] + k02 * r0[j + 2]
                   + k10 * r1[j] + k11 * r1[j + 1] + k12 * r1[j + 2]
                   + k20 * r2[j] + k21 * r2[j + 1] + k22 * r2[j + 2])


@parallel_jit
def _forward(xp, w, bias, relu, y):
    """y (N, Cout, H, W) from xp (N, Cin, H + 2, W + 2), the input zero-padded by one."""
    n, cout, h, wd = y.shape
    cin = xp.shape[1]
    zero = np.zeros(1, y.dtype)[0]
    for p in numba.prange(n * cout):
        b, o = p // cout, p % cout
        acc = np.empty(wd, y.dtype)
        for i in range(h):
            acc[:] = bias[o]
            for c in range(cin):
                _rows9(acc, xp[b, c, i], xp[b, c, i + 1], xp[b, c, i + 2], w[o, c])
            out = y[b, o, i]
            if relu:
                for j in range(wd):
                    out[j] = zero if acc[j] < 0 else acc[j]  # NaN stays NaN (relu.py)
            else:
                out[:] = acc


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _masked_row(gy, mask, masked, dst):
    """dst[1:-1] = gy (times (mask > 0) when ``masked``), dst[0] = dst[-1] = 0."""
    zero = np.zeros(1, dst.dtype)[0]
    dst[0] = zero
    dst[dst.shape[0] - 1] = zero
    if masked:
        for j in range(gy.shape[0]):
            dst[j + 1] = gy[j] if mask[j] > 0 else zero
    else:
        for j in range(gy.shape[0]):
            dst[j + 1] = gy[j]


@parallel_jit
def _backward(gy, mask, w, gx):
    """gx (N, Cin, H, W) from gy (N, Cout, H, W), masked by ``mask`` when it has gy's shape."""
    n, cout, h, wd = gy.shape
    cin = gx.shape[1]
    masked = mask.shape[0] == n
    bands = -(-h // BAND)
    for task in numba.prange(n * bands):
        b, p0 = task // bands, (task % bands) * BAND
        p1 = min(p0 + BAND, h)
        acc = np.zeros((cin, p1 - p0, wd), gx.dtype)
        row = np.empty(wd + 2, gx.dtype)
        for o in range(cout):
            for s in range(max(p0 - 1, 0), min(p1 + 1, h)):  # the rows of g this band reads
                _masked_row(gy[b, o, s], mask[b, o, s] if masked else gy[b, o, s], masked, row)
                for ky in range(3):
                    p = s + ky - 1   # g row s meets output row p through kernel row ky
                    if p < p0 or p >= p1:
                        continue
                    for c in range(cin):
                        # g[s, q - kx + 1] = row[q - kx + 2]: kx = 2, 1, 0 read row[q], [q+1], [q+2]
                        _row3(acc[c, p - p0], row, w[o, c, ky, 2], w[o, c, ky, 1], w[o, c, ky, 0])
        gx[b, :, p0:p1] = acc


def conv_forward(x, weight, bias=None, relu: bool = False):
    """A 3x3 conv of x (N, Cin, H, W) by weight (Cout, Cin, 3, 3) (+ bias (Cout,); ReLU'd when
    ``relu``): a new (N, Cout, H, W) array of x's dtype."""
    n, cin, h, w = x.shape
    cout = weight.shape[0]
    xp = np.zeros((n, cin, h + 2, w + 2), x.dtype)
    xp[:, :, 1:-1, 1:-1] = x
    bias = np.zeros(cout, x.dtype) if bias is None else np.ascontiguousarray(bias, x.dtype)
    y = np.empty((n, cout, h, w), x.dtype)
    _forward(xp, np.ascontiguousarray(weight, x.dtype), bias, bool(relu), y)
    return y


def conv_backward(gy, weight, mask=None):
    """The input gradient of ``conv_forward``: gy (N, Cout, H, W) (times (mask > 0) when given:
    the ReLU's backward, fused) -> gx (N, Cin, H, W), a new array of gy's dtype."""
    n, cout, h, w = gy.shape
    gx = np.empty((n, weight.shape[1], h, w), gy.dtype)
    mask = np.zeros((0, 0, 0, 0), gy.dtype) if mask is None else np.ascontiguousarray(mask, gy.dtype)
    _backward(np.ascontiguousarray(gy), mask, np.ascontiguousarray(weight, gy.dtype), gx)
    return gx
