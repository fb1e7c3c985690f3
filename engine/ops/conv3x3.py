"""3x3 convolution, stride 1, pad 1, with bias: forward and input gradient.

Forward is im2col + one GEMM:

    cols[n, c*9 + ky*3 + kx, y*W + x] = x[n, c, y + ky - 1, x + kx - 1]   (0 outside)
    out[n] = W_mat @ cols[n] + b          W_mat: (Cout, Cin*9)

The input gradient of a stride-1, pad-1 3x3 conv is the same conv applied to the output
gradient with the kernel flipped in space and the channel axes swapped, so backward is the
same gather + GEMM with ``W_bwd`` (Cin, Cout*9). Weights never change here: both matrices are
prepared once per network (``ConvWeights``), never per call.

CPU: the gather is a numba loop; GPU: ``conv3x3_im2col`` in ``kernels/conv3x3.cu``; the GEMMs
go to BLAS / cuBLAS through ``xp.matmul``.

On the CPU most layers take Winograd F(4x4) or F(2x2) instead (``winograd.py``: 4x or 2.25x
fewer multiplies, the weight transforms made once per layer), chosen per call by map size, and
a layer with few channels on one side (the image layer) direct shifted row sums (``direct.py``)
(``choose``); ``RANVGG_CONV=im2col|f2|f4|direct|auto`` overrides the choice for every layer.
"""
from __future__ import annotations

import os

import numpy as np

from .. import backend
from ..parallel import matmul, numba, parallel_jit
from ..autograd import Tensor, record
from ..errors import UserError
from . import direct, winograd, winograd_gpu

ALGORITHMS = ("auto", "im2col", "f2", "f4", "direct")
# A CPU conv with fewer channels than this on either side runs ``direct``: a Winograd GEMM
# with K or M that small (3 for the image layer) does little work per transformed tile.
FEW_CHANNELS = 16


class ConvWeights:
    """A conv layer's weights, laid out once for the forward and backward GEMMs.

    weight: (Cout, Cin, 3, 3), bias: (Cout,), both already on the target device.
    """

    def __init__(self, weight, bias, u_prefix=None):
        """u_prefix: the layer's place in its network for ``winograd.keeps_u`` (None: a layer
        on its own, which keeps only a small U)."""
        xp = backend.array_module(weight)
        cout, cin = weight.shape[:2]
        if weight.shape[2:] != (3, 3):
            raise ValueError(f"conv3x3 needs a (Cout, Cin, 3, 3) weight, got {weight.shape}")
        self.weight, self.bias = weight, bias
        self.cin, self.cout = cin, cout
        # (Cout, Cin, 3, 3) -> (Cout, Cin*9): the row order matches cols' (c, ky, kx)
        self.w_fwd = xp.ascontiguousarray(weight.reshape(cout, cin * 9))
        self.has_bias = bool(xp.any(bias != 0))
        self.bias_col = bias.reshape(1, cout, 1)
        self._winograd = {}  # m -> U (a*a, Cout, Cin), made at first use
        self.u_prefix = u_prefix
        self._w_bwd = None

    @property
    def w_bwd(self):
        """The backward GEMM's layout (only im2col's backward reads it): flip in space, swap
        channels: (Cout, Cin, 3, 3) -> (Cin, Cout, 3, 3) -> (Cin, Cout*9). Kept when it takes at
        most ``winograd.u_cache_bytes()``, else made at each use: a deep layer of a small image
        runs im2col, and keeping it would hold a second copy of the largest weights."""
        if self._w_bwd is not None:
            return self._w_bwd
        xp = backend.array_module(self.weight)
        flipped = self.weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        w = xp.ascontiguousarray(flipped.reshape(self.cin, self.cout * 9))
        if w.nbytes <= winograd.u_cache_bytes():
            self._w_bwd = w
        return w

    def winograd_u(self, m: int, side: int | None = None):
        """Winograd F(m x m) weights (a*a, Cout, Cin), made once and kept when small or among
        the network's first layers at this call's map (``side``: its shorter side; None: small);
        else the conv weights themselves, from which the conv makes U as it goes at each call
        (``winograd.keeps_u``), and a U kept for smaller maps is let go. The backward conv uses
        the same U transposed (``winograd.winograd_conv_backward``)."""
        if not winograd.keeps_u(self.cin, self.cout, m, self.weight.dtype.itemsize, self.u_prefix, side):
            self._winograd.pop(m, None)
            return self.weight
        if m not in self._winograd:
            self._winograd[m] = winograd.weight_transform(self.weight, m, self.weight.dtype)
        return self._winograd[m]


def choose(cin: int, cout: int, h: int, w: int, xp=np) -> str:
    """The conv algorithm for one call: "im2col", "f2", "f4" or "direct" on the CPU; on the GPU
    (``xp`` not NumPy) "f2" (winograd_gpu.py) for every layer with 16 input channels or more
    ("f4" when RANVGG_CONV=f4), else "im2col".

    Measured on a 2-core EPYC, single-thread CPU time per conv (docs/performance.md): F(4x4) beats
    im2col 2-3x from 32x32 maps up; at 16x16 F(2x2) wins (tiles too few for F(4x4)); below, im2col
    wins. A conv with fewer than FEW_CHANNELS channels in or out (the 3-channel image layer, both
    ways) runs "direct" (direct.py): 2-4x faster than im2col's or Winograd's there."""
    forced = os.environ.get("RANVGG_CONV", "auto")
    if forced not in ALGORITHMS:
        raise UserError(f"RANVGG_CONV={forced!r} is not a conv algorithm: use one of {', '.join(ALGORITHMS)}")
    if xp is not np:
        # the GPU (winograd_gpu.py): F(2x2) for every layer but the 3-channel image layer;
        # F(4x4) only when forced, until the GPU proof command has timed it on a device;
        # "direct" is a CPU algorithm
        return "im2col" if forced == "im2col" or cin < 16 else "f4" if forced == "f4" else "f2"
    if forced != "auto":
        return forced
    if min(cin, cout) < FEW_CHANNELS:
        return "direct"
    side = min(h, w)
    return "f4" if side >= 32 else "f2" if side >= 16 else "im2col"


@parallel_jit
def _im2col_cpu(x, cols):
    n, c, h, w = x.shape
    for b in range(n):
        for ci in numba.prange(c):
            for ky in range(3):
                for kx in range(3):
                    row = ci * 9 + ky * 3 + kx
                    for y in range(h):
                        sy = y + ky - 1
                        for xx in range(w):
                            sx = xx + kx - 1
                            if 0 <= sy < h and 0 <= sx < w:
                                cols[b, row, y * w + xx] = x[b, ci, sy, sx]
                            else:
                                cols[b, row, y * w + xx] = 0.0


def im2col3x3(x, relu_out=None):
    """(N, C, H, W) -> (N, C*9, H*W): the 3x3 neighbourhoods, zero-padded, as GEMM columns.

    relu_out: a ReLU's output of x's shape; if given, gather ``x * (relu_out > 0)`` instead,
    the ReLU backward fused into the gather (one kernel, no temporary, on the GPU)."""
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    if xp is not np and h * w >= 2**31:
        raise ValueError(f"im2col on the GPU takes planes of fewer than 2^31 positions, got {h} x {w}")
    x = xp.ascontiguousarray(x)
    cols = xp.empty((n, c * 9, h * w), dtype=x.dtype)
    dims = (np.int32(n), np.int32(c), np.int32(h), np.int32(w))
    if xp is np:
        _im2col_cpu(x if relu_out is None else x * (relu_out > 0), cols)
    elif relu_out is None:
        # a 2-D grid: y over the N*C*9 rows of cols, x over each row's H*W positions
        backend.launch_planes(backend.kernel("conv3x3", "conv3x3_im2col", x.dtype), n * c * 9, h * w,
                              (x, cols, *dims))
    else:
        # the same grid, the gather masked by the ReLU
        relu_out = xp.ascontiguousarray(relu_out, dtype=x.dtype)
        backend.launch_planes(backend.kernel("conv3x3", "conv3x3_im2col_relu_bwd", x.dtype), n * c * 9, h * w,
                              (x, relu_out, cols, *dims))
    return cols


def _conv(x, w_mat, relu_out=None):
    n, _, h, w = x.shape
    cols = im2col3x3(x, relu_out)
    out = matmul(w_mat, cols)  # (Co, K) @ (N, K, HW) -> (N, Co, HW)
    return out.reshape(n, w_mat.shape[0], h, w)


def conv3x3_forward(x, p: ConvWeights, relu: bool = False, algorithm: str | None = None):
    """x (N, Cin, H, W) -> (N, Cout, H, W); ``relu``: rectified (fused into Winograd's output
    transform). ``algorithm``: "im2col" | "f2" | "f4" | "direct", default ``choose``'s (on the GPU too:
    winograd_gpu.py)."""
    if x.shape[1] != p.cin:
        raise ValueError(f"conv3x3 expects {p.cin} input channels, got {x.shape[1]}")
    xp = backend.array_module(x)
    algorithm = algorithm or choose(p.cin, p.cout, *x.shape[2:], xp=xp)
    if algorithm == "direct":
        if xp is np:
            return direct.conv_forward(x, p.weight, p.bias if p.has_bias else None, relu)
        algorithm = "im2col"  # a CPU algorithm: the GPU gathers
    if algorithm != "im2col" and xp is np:
        m = int(algorithm[1])
        return winograd.winograd_conv(x, p.winograd_u(m, min(x.shape[2:])), m, p.bias if p.has_bias else None, relu)
    if algorithm != "im2col":
        return winograd_gpu.conv(x, winograd_gpu.weights(p, False, int(algorithm[1])), p.bias if p.has_bias else None,
                                 relu)
    out = _conv(x, p.w_fwd)
    if p.has_bias:
        n, co, h, w = out.shape
        out = (out.reshape(n, co, h * w) + p.bias_col).reshape(n, co, h, w)
    if relu:
        from .relu import relu_forward

        out = relu_forward(out)
    return out


def conv3x3_backward(gy, p: ConvWeights, relu_out=None, algorithm: str | None = None):
    """gy (N, Cout, H, W) -> gx (N, Cin, H, W): the flipped, transposed conv, no bias.

    relu_out: the output of a ReLU that followed this conv; gy is then the gradient w.r.t. that
    output, and the ReLU's backward is fused into the gather (im2col) or the tile copy
    (Winograd). ``algorithm`` as in ``conv3x3_forward``."""
    xp = backend.array_module(gy)
    algorithm = algorithm or choose(p.cout, p.cin, *gy.shape[2:], xp=xp)
    if algorithm == "direct":
        if xp is np:
            return direct.conv_backward(gy, p.weight, relu_out)
        algorithm = "im2col"
    if algorithm != "im2col" and xp is np:
        m = int(algorithm[1])
        return winograd.winograd_conv_backward(gy, p.winograd_u(m, min(gy.shape[2:])), m, mask=relu_out)
    if algorithm != "im2col":
        return winograd_gpu.conv(gy, winograd_gpu.weights(p, True, int(algorithm[1])), mask=relu_out)
    return _conv(gy, p.w_bwd, relu_out)


def conv3x3(x: Tensor, p: ConvWeights, name=None, algorithm: str | None = None) -> Tensor:
    return record(conv3x3_forward(x.data, p, algorithm=algorithm), (x,),
                  lambda gy: (conv3x3_backward(gy, p, algorithm=algorithm),), name)


def conv3x3_relu(x: Tensor, p: ConvWeights, name=None, algorithm: str | None = None) -> Tensor:
    """relu(conv3x3(x)) as one graph node, for when nobody asks for the pre-activation.

    Backward needs only the rectified output, so the pre-activation is never kept: the
    network keeps one activation per conv layer instead of two. The ReLU is fused into the
    forward (Winograd) and its backward into the backward conv's input pass.
    """
    y = conv3x3_forward(x.data, p, relu=True, algorithm=algorithm)
    return record(y, (x,), lambda gy: (conv3x3_backward(gy, p, relu_out=y, algorithm=algorithm),), name)
