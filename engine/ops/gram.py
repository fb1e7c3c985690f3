"""Gram matrix of a layer's feature maps: G = F F^T (docs/method.md, section 3, Eq. 5).

F (N, C, h, w) is read as (N, C, M) with M = h*w; G is (N, C, C), unnormalised (the 1/M
factors live in the loss). Backward of a general upstream gradient gG:
dF = (gG + gG^T) F. One batched GEMM each way (BLAS / cuBLAS).

Shifted Gram (long-range correlations, Berger & Memisevic, ICLR 2017): the maps correlated with
themselves moved by (dy, dx) positions, G_s = A B^T with A = F over the positions (i, j) and B =
F over (i + dy, j + dx), both read where the two overlap, M_s = (h - dy)(w - dx) columns. Not
symmetric; its backward is dA = gG B, dB = gG^T A, each added back where it was read.
"""
from __future__ import annotations

from .. import backend
from ..autograd import Tensor, record
from ..parallel import matmul


def features_matrix(f):
    n, c = f.shape[:2]
    return f.reshape(n, c, -1)  # (N, C, h, w) -> (N, C, M)


def gram_forward(f):
    """(N, C, h, w) -> (N, C, C)."""
    fm = features_matrix(f)
    return matmul(fm, fm.transpose(0, 2, 1))


def gram_backward(gg, f):
    fm = features_matrix(f)
    return matmul(gg + gg.transpose(0, 2, 1), fm).reshape(f.shape)


def gram(f: Tensor, name=None) -> Tensor:
    return record(gram_forward(f.data), (f,), lambda gg: (gram_backward(gg, f.data),), name)


def _overlap(f, shift):
    """(A, B): f's maps over the positions where f and f moved by ``shift`` = (dy, dx) overlap,
    each (N, C, M_s), contiguous."""
    dy, dx = shift
    _, _, h, w = f.shape
    return features_matrix(f[:, :, :h - dy, :w - dx].copy()), features_matrix(f[:, :, dy:, dx:].copy())


def shifted_gram_forward(f, shift):
    """(N, C, h, w) -> (N, C, C): A B^T (see the module docstring)."""
    a, b = _overlap(f, shift)
    return matmul(a, b.transpose(0, 2, 1))


def shifted_gram_backward(gg, f, shift):
    """dF for an upstream gradient gG (N, C, C) of ``shifted_gram_forward(f, shift)``."""
    dy, dx = shift
    n, c, h, w = f.shape
    a, b = _overlap(f, shift)
    xp = backend.array_module(f)
    df = xp.zeros_like(f)
    df[:, :, :h - dy, :w - dx] += matmul(gg, b).reshape(n, c, h - dy, w - dx)
    df[:, :, dy:, dx:] += matmul(gg.transpose(0, 2, 1), a).reshape(n, c, h - dy, w - dx)
    return df


def shifted_gram(f: Tensor, shift, name=None) -> Tensor:
    return record(shifted_gram_forward(f.data, shift), (f,), lambda gg: (shifted_gram_backward(gg, f.data, shift),), name)
