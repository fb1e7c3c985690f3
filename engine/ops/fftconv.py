"""Large-filter convolution by FFT: the multi-scale random filter bank's one layer.

    y[n, o, i, j] = sum_c sum_{u,v} w[o, c, u, v] x[n, c, i + u, j + v]      (a "valid" correlation)

for x (N, C, H, W) and w (O, C, k, k): y is (N, O, H - k + 1, W - k + 1). With X, W' the 2-D
real FFTs of x and of w zero-padded to H x W, the circular correlation X conj(W') equals y on
the valid positions (no wrap-around reaches them). Backward, for an upstream gradient g of y's
shape: dx[c, p] = sum_o sum_{i + u = p} w[o, c, u] g[o, i], a full convolution: g zero-padded
to H x W, G W' summed over o, inverse FFT (again no wrap-around: i + u <= H - 1).

xp.fft, so the same code runs on NumPy and CuPy. Cost: one FFT per input and output map,
O(N (C + O) H W log(HW) + N C O H W), whatever k (a direct 37 x 37 convolution is ~1400 MACs per
output value and channel).
"""
from __future__ import annotations

from .. import backend
from ..autograd import Tensor, record


def filters_fft(w, h: int, wd: int):
    """rfft2 of filters (O, C, k, k) zero-padded to (h, wd): (O, C, h, wd // 2 + 1)."""
    xp = backend.array_module(w)
    return xp.fft.rfft2(w, s=(h, wd))


def fftconv_forward(x, wf, k: int):
    """x (N, C, H, W), wf = filters_fft(w, H, W) -> (N, O, H - k + 1, W - k + 1)."""
    xp = backend.array_module(x)
    h, w = x.shape[2:]
    xf = xp.fft.rfft2(x)                                                   # (N, C, H, W/2+1)
    yf = xp.einsum("nchw,ochw->nohw", xf, xp.conj(wf))
    return xp.fft.irfft2(yf, s=(h, w))[:, :, :h - k + 1, :w - k + 1].astype(x.dtype, copy=False)


def fftconv_backward(g, wf, shape):
    """g (N, O, H - k + 1, W - k + 1) -> dx of ``shape`` (N, C, H, W)."""
    xp = backend.array_module(g)
    h, w = shape[2:]
    gf = xp.fft.rfft2(g, s=(h, w))
    dxf = xp.einsum("nohw,ochw->nchw", gf, wf)
    return xp.fft.irfft2(dxf, s=(h, w)).astype(g.dtype, copy=False)


def fftconv(x: Tensor, w, name=None) -> Tensor:
    """Tensor (N, C, H, W) correlated with filters w (O, C, k, k) ("valid"): (N, O, H-k+1, W-k+1)."""
    k = w.shape[-1]
    h, wd = x.shape[2:]
    if k > h or k > wd:
        raise ValueError(f"a {k} px filter does not fit a {h}x{wd} image")
    wf = filters_fft(w.astype(x.data.dtype, copy=False), h, wd)
    y = fftconv_forward(x.data, wf, k)
    return record(y, (x,), lambda g: (fftconv_backward(g, wf, x.shape),), name)
