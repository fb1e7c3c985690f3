"""Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution on the GPU: ``kernels/winograd.cu`` around
one GEMM per layer. With a = m + 2 (4 for F(2x2), 6 for F(4x4)):

    U (a*a, Cout, Cin) = G g G^T        once per layer and direction (``winograd.weight_transform``, float64)
    V (a*a, Cin, N*P)  = B^T d B        winograd{m}_input: one thread per tile (ReLU mask fused)
    M (a*a, Cout, N*P) = U @ V          one strided-batched cuBLAS GEMM (xp.matmul)
    y                  = A^T M A + b    winograd{m}_output: one thread per tile (ReLU fused)

F(2x2) makes 2.25x fewer multiplies than im2col + GEMM and V is 16/4 = 4x the input (im2col's
columns are 9x); F(4x4) 4x fewer, V 36/16 = 2.25x the input, at a float32 error of about 1e-5 of
the largest output against 3e-7. ``conv3x3.choose`` picks F(2x2) per layer on the GPU (im2col
stays for conv1_1, K = 3); ``RANVGG_CONV=f4`` runs F(4x4) until the GPU proof command has timed
the two on a device. The same code runs on the CPU under the grid emulator (tests/kernels/),
where it is checked against the NumPy conv and, through the engine's GPU branch, by finite
differences.

Byte counts of the device buffers each algorithm allocates per conv call (for the memory check):
``im2col_bytes`` and ``winograd_bytes``.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from . import winograd


def tiles(h: int, w: int, m: int = 2) -> int:
    """m x m output tiles of one (h, w) map."""
    return -(-h // m) * -(-w // m)


def im2col_bytes(n: int, cin: int, h: int, w: int, itemsize: int = 4) -> int:
    """im2col's columns (N, Cin*9, H*W), the scratch of one conv call (forward or input gradient)."""
    return n * cin * 9 * h * w * itemsize


def winograd_bytes(n: int, cin: int, cout: int, h: int, w: int, itemsize: int = 4, m: int = 2) -> int:
    """V (a*a, Cin, N*P) and M (a*a, Cout, N*P), alive together during the GEMM, plus U (a*a, Cout, Cin)."""
    a2 = (m + 2) ** 2
    return a2 * ((cin + cout) * n * tiles(h, w, m) + cout * cin) * itemsize


def weights(p, backward: bool, m: int = 2):
    """U for ``p`` (a conv3x3.ConvWeights), made once per layer, direction and tile on p's device:
    (a*a, Cout, Cin), or (a*a, Cin, Cout) from the flipped, channel-swapped kernel for backward."""
    key = (f"gpu-f{m}", backward)
    if key not in p._winograd:
        xp = backend.array_module(p.weight)
        w = p.w_bwd.reshape(p.cin, p.cout, 3, 3) if backward else p.weight
        u = winograd.weight_transform(backend.to_host(w), m, p.weight.dtype)
        p._winograd[key] = xp.asarray(u)
    return p._winograd[key]


# The transform kernels of kernels/winograd.cu by (m, step), each named in full.
_KERNELS = {
    (2, "input"): lambda dtype: backend.kernel("winograd", "winograd2_input", dtype),
    (2, "input_masked"): lambda dtype: backend.kernel("winograd", "winograd2_input_relu_bwd", dtype),
    (2, "output"): lambda dtype: backend.kernel("winograd", "winograd2_output", dtype),
    (4, "input"): lambda dtype: backend.kernel("winograd", "winograd4_input", dtype),
    (4, "input_masked"): lambda dtype: backend.kernel("winograd", "winograd4_input_relu_bwd", dtype),
    (4, "output"): lambda dtype: backend.kernel("winograd", "winograd4_output", dtype),
}


def conv(x, u, bias=None, relu: bool = False, mask=None):
    """3x3, pad-1 conv of x (N, C, H, W) with U (a*a, Cout, C) (a = 4: F(2x2), 6: F(4x4)):
    (N, Cout, H, W), + bias (Cout,), rectified if ``relu``; ``mask``: x's shape, x * (mask > 0)
    is convolved instead (the backward of a ReLU that followed the conv)."""
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    a2, cout = u.shape[0], u.shape[1]
    m = {16: 2, 36: 4}[a2]
    x = xp.ascontiguousarray(x)
    t = tiles(h, w, m)
    v = xp.empty((a2, c, n * t), dtype=x.dtype)
    dims = (np.int32(n), np.int32(c), np.int32(h), np.int32(w))
    if mask is None:
        backend.launch_planes(_KERNELS[m, "input"](x.dtype), n * c, t, (x, v, *dims))
    else:
        mask = xp.ascontiguousarray(mask, dtype=x.dtype)
        backend.launch_planes(_KERNELS[m, "input_masked"](x.dtype), n * c, t, (x, mask, v, *dims))
    mm = xp.matmul(u, v)                                  # (a*a, Cout, C) @ (a*a, C, P): strided-batched GEMM
    del v
    y = xp.empty((n, cout, h, w), dtype=x.dtype)
    b = xp.zeros(cout, dtype=x.dtype) if bias is None else xp.ascontiguousarray(bias, dtype=x.dtype)
    backend.launch_planes(_KERNELS[m, "output"](x.dtype), n * cout, t,
                          (mm, b, y, np.int32(n), np.int32(cout), np.int32(h), np.int32(w), np.int32(bool(relu))))
    return y
