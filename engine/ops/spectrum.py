"""A Fourier-spectrum loss (Liu, Gousseau & Xia, 2016): the magnitude of each colour channel's
2-D DFT held to the exemplar's, the phase left free.

For one image channel x (H x W, M = H W positions), X = DFT(x), r = |X| - T, u = X / |X|:
    L = w / (C M^2) * sum_{c, k} (|X_ck| - T_ck)^2
    dL/dx = w / (C M^2) * 2 M * Re(IDFT(r u))        (per channel; IDFT includes its 1 / M)
  derivation: d|X_k| = Re(conj(u_k) dX_k) and dX_k = sum_n e^{-2 pi i k n / M} dx_n, so
  dL/dx_n = (2 w / (C M^2)) sum_k r_k Re(conj(u_k) e^{-2 pi i k n / M}) = (2 w / (C M^2)) Re(sum_k
  r_k u_k e^{2 pi i k n / M}) (a real number equals its conjugate) = (2 w / (C M)) Re(IDFT(r u))_n.
  Where |X_k| = 0 the magnitude has no derivative; u is taken as 0 there (a subgradient).

By Parseval sum_k |X_k|^2 = M sum_n x_n^2, so dividing by M^2 makes L a per-pixel quantity:
the same for an image and its tiling. A stationary texture's spectrum is its power spectral
density |X|^2 / M, sampled at the frequencies (k_y / H, k_x / W); ``spectrum_target`` samples
it at another size's frequencies (bilinear, periodic in frequency), so the target is size-free.

xp.fft, so the same code runs on NumPy and CuPy.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Tensor, record


def spectrum_target(x, shape):
    """The target |DFT| (1, C, h, w) for an image of ``shape`` (N, C, h, w) from exemplar(s)
    x (N', C, H, W): the exemplars' mean power spectral density |X|^2 / (H W), resampled to
    (h, w)'s frequencies when the sizes differ, times h w, square-rooted."""
    xp = backend.array_module(x)
    hh, ww = x.shape[2:]
    h, w = shape[2:]
    psd = (abs(xp.fft.fft2(x)) ** 2).mean(axis=0, keepdims=True) / (hh * ww)   # (1, C, H, W)
    if (h, w) != (hh, ww):
        psd = _resample_periodic(psd, h, w)
    return xp.sqrt(psd * (h * w)).astype(x.dtype, copy=False)


def _resample_periodic(a, h: int, w: int):
    """a (1, C, H, W) sampled at frequencies (k / H, l / W) -> (1, C, h, w) at (k / h, l / w):
    bilinear in the fractional indices k H / h, l W / w, wrapping (the DFT is periodic)."""
    xp = backend.array_module(a)
    hh, ww = a.shape[2:]
    # index k of h is the frequency k / h (or (k - h) / h past Nyquist: the same index mod H)
    fy, fx = np.arange(h) * hh / h, np.arange(w) * ww / w
    y0, x0 = np.floor(fy).astype(int), np.floor(fx).astype(int)
    ty, tx = xp.asarray(fy - y0)[:, None], xp.asarray(fx - x0)[None, :]
    y0, y1, x0, x1 = (xp.asarray(i) for i in (y0, (y0 + 1) % hh, x0, (x0 + 1) % ww))   # device indices
    rows0, rows1 = a[:, :, y0], a[:, :, y1]                                 # (1, C, h, W)
    top = rows0[..., x0] * (1 - tx) + rows0[..., x1] * tx
    bottom = rows1[..., x0] * (1 - tx) + rows1[..., x1] * tx
    return top * (1 - ty) + bottom * ty


def spectrum_loss(x: Tensor, target, weight: float = 1.0, name=None) -> Tensor:
    """x: (N, C, h, w); target: (1 or N, C, h, w) from ``spectrum_target``. Returns a 0-d tensor;
    each image of the batch is compared with the target."""
    xp = backend.array_module(x.data)
    _, c, h, w = x.shape
    m = h * w
    xf = xp.fft.fft2(x.data)
    mag = abs(xf)
    r = mag - target
    value = (r * r).sum() * (weight / (c * m * m))

    def backward(g):
        u = xf / xp.where(mag > 0, mag, 1)                # the phase; 0 where |X| = 0
        gx = xp.fft.ifft2(r * u).real                     # (N, C, h, w)
        return (gx * (2.0 * g * weight / (c * m))).astype(x.data.dtype, copy=False),

    return record(value.astype(x.data.dtype), (x,), backward, name)
