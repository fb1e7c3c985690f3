"""Winograd F(2x2, 3x3) convolution on the GPU: ``kernels/winograd.cu`` around one GEMM per layer.

    U (16, Cout, Cin) = G g G^T         once per layer (``winograd.weight_transform``, float64)
    V (16, Cin, N*P)  = B^T d B         winograd2_input: one thread per tile (ReLU mask fused)
    M (16, Cout, N*P) = U @ V           one strided-batched cuBLAS GEMM (xp.matmul)
    y                 = A^T M A + b     winograd2_output: one thread per tile (ReLU fused)

2.25x fewer multiplies than im2col + GEMM, and V is 16/4 = 4x the input where im2col's columns
are 9x. ``conv3x3.choose`` picks it per layer on the GPU (im2col stays for conv1_1, K = 3).
The same code runs on the CPU under the grid emulator (tests/kernels/), where it is checked
against the NumPy conv and, through the engine's GPU branch, by finite differences.

Byte counts of the device buffers each algorithm allocates per conv call (for the memory check):
``im2col_bytes`` and ``winograd2_bytes``.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from . import winograd


def tiles(h: int, w: int) -> int:
    """2x2 output tiles of one (h, w) map."""
    return ((h + 1) // 2) * ((w + 1) // 2)


def im2col_bytes(n: int, cin: int, h: int, w: int, itemsize: int = 4) -> int:
    """im2col's columns (N, Cin*9, H*W), the scratch of one conv call (forward or input gradient)."""
    return n * cin * 9 * h * w * itemsize


def winograd2_bytes(n: int, cin: int, cout: int, h: int, w: int, itemsize: int = 4) -> int:
    """V (16, Cin, N*P) and M (16, Cout, N*P), alive together during the GEMM, plus U (16, Cout, Cin)."""
    return 16 * ((cin + cout) * n * tiles(h, w) + cout * cin) * itemsize


def weights(p, backward: bool):
    """U for ``p`` (a conv3x3.ConvWeights), made once per layer and direction on p's device:
    (16, Cout, Cin), or (16, Cin, Cout) from the flipped, channel-swapped kernel for backward."""
    key = ("gpu-f2", backward)
    if key not in p._winograd:
        xp = backend.array_module(p.weight)
        w = p.w_bwd.reshape(p.cin, p.cout, 3, 3) if backward else p.weight
        u = winograd.weight_transform(backend.to_host(w), 2, p.weight.dtype)
        p._winograd[key] = xp.asarray(u)
    return p._winograd[key]


def conv(x, u, bias=None, relu: bool = False, mask=None):
    """3x3, pad-1 conv of x (N, C, H, W) with U (16, Cout, C): (N, Cout, H, W), + bias (Cout,),
    rectified if ``relu``; ``mask``: x's shape, x * (mask > 0) is convolved instead (the backward
    of a ReLU that followed the conv)."""
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    cout = u.shape[1]
    x = xp.ascontiguousarray(x)
    p = n * tiles(h, w)
    v = xp.empty((16, c, p), dtype=x.dtype)
    dims = (np.int32(n), np.int32(c), np.int32(h), np.int32(w))
    if mask is None:
        backend.launch_planes(backend.kernel("winograd", "winograd2_input", x.dtype), n * c, tiles(h, w),
                              (x, v, *dims))
    else:
        mask = xp.ascontiguousarray(mask, dtype=x.dtype)
        backend.launch_planes(backend.kernel("winograd", "winograd2_input_relu_bwd", x.dtype), n * c, tiles(h, w),
                              (x, mask, v, *dims))
    m = xp.matmul(u, v)                                   # (16, Cout, C) @ (16, C, P): strided-batched GEMM
    del v
    y = xp.empty((n, cout, h, w), dtype=x.dtype)
    b = xp.zeros(cout, dtype=x.dtype) if bias is None else xp.ascontiguousarray(bias, dtype=x.dtype)
    backend.launch_planes(backend.kernel("winograd", "winograd2_output", x.dtype), n * cout, tiles(h, w),
                          (m, b, y, np.int32(n), np.int32(cout), np.int32(h), np.int32(w), np.int32(bool(relu))))
    return y
