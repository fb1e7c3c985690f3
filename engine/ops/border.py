"""The image's border: wrap an image around (a periodic image) and cut a window out of a map.

    wrap_pad(x, p)               (N, C, H, W) -> (N, C, H + 2p, W + 2p), x[(i - p) mod H, (j - p) mod W]
    crop(f, top, left, h, w)     f[..., top:top + h, left:left + w]

A net run on ``wrap_pad(x, p)`` and cut back to the central part of each map
(``engine.arch.periodic_pad``) gives the features of x repeated without end: no position sees
the convs' zero padding, so a synthesis has no border (and tiles). Both ops are linear; their
input gradients are the adjoints:

- wrap_pad: every padded pixel's gradient is added to the pixel it copies,
  gx = R_H^T gy R_W with R_H the (H + 2p) x H 0/1 matrix of row copies (two small matrix
  products per plane, the same on NumPy and CuPy);
- crop: gy placed in the window of a zero map.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Tensor, record
from ..errors import UserError


def _copies(n: int, p: int, xp, dtype):
    """The (n + 2p) x n 0/1 matrix R with R[u, (u - p) mod n] = 1."""
    r = np.zeros((n + 2 * p, n), dtype)
    r[np.arange(n + 2 * p), (np.arange(n + 2 * p) - p) % n] = 1
    return xp.asarray(r)


def wrap_pad(x: Tensor, p: int, name=None) -> Tensor:
    """x (N, C, H, W) wrapped around by ``p`` >= 0 pixels on each side (any p: the image repeats)."""
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 0:
        raise UserError(f"the periodic padding must be a whole number of px >= 0, got {p!r}")
    if p == 0:
        return x
    data = x.data
    xp = backend.array_module(data)
    h, w = data.shape[2:]
    rh, rw = _copies(h, p, xp, data.dtype), _copies(w, p, xp, data.dtype)
    y = rh @ data @ rw.T
    return record(xp.ascontiguousarray(y), (x,), lambda gy: (rh.T @ gy @ rw,), name)


def crop(f: Tensor, top: int, left: int, h: int, w: int, name=None) -> Tensor:
    """The window f[..., top:top + h, left:left + w] (inside f), as a contiguous map."""
    shape = f.data.shape
    if min(top, left) < 0 or h < 1 or w < 1 or top + h > shape[2] or left + w > shape[3]:
        raise UserError(f"a {h}x{w} window at ({top}, {left}) does not fit a {shape[2]}x{shape[3]} map")
    xp = backend.array_module(f.data)
    y = xp.ascontiguousarray(f.data[:, :, top:top + h, left:left + w])

    def back(gy):
        g = xp.zeros(shape, gy.dtype)
        g[:, :, top:top + h, left:left + w] = gy
        return (g,)

    return record(y, (f,), back, name)
