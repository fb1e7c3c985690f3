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


def overlap(f, shift):
    """(A, B, mask): f's maps read flat, (N, C, M - s) each with s = dy w + dx, so that column p
    of B is the position (dy, dx) after column p of A. Column p is a pair of the overlap unless it
    lies in the last dx columns of a row (its partner wrapped onto the next row): ``mask`` (1, 1,
    M - s) is 0 there and 1 elsewhere, and A is returned multiplied by it (a copy); for dx = 0
    nothing wraps, mask is None and A, B are views of f."""
    dy, dx = shift
    n, c, h, w = f.shape
    fm, s = features_matrix(f), dy * w + dx
    a, b = fm[:, :, :h * w - s], fm[:, :, s:]
    if not dx:
        return a, b, None
    xp = backend.array_module(f)
    mask = ((xp.arange(h * w - s) % w) < w - dx).astype(f.dtype)[None, None]
    return a * mask, b, mask


def shifted_gram_forward(f, shift):
    """(N, C, h, w) -> (N, C, C): A B^T (see the module docstring)."""
    a, b, _ = overlap(f, shift)
    return matmul(a, b.transpose(0, 2, 1))


def shifted_gram_backward(gg, f, shift, parts=None):
    """dF for an upstream gradient gG (N, C, C) of ``shifted_gram_forward(f, shift)``; ``parts``:
    ``overlap(f, shift)`` when the caller has it already."""
    a, b, mask = overlap(f, shift) if parts is None else parts
    n, c, m = a.shape
    xp = backend.array_module(f)
    df = xp.empty((n, c, f.shape[2] * f.shape[3]), f.dtype)
    df[:, :, m:] = 0
    df[:, :, :m] = matmul(gg, b)
    if mask is not None:
        df[:, :, :m] *= mask
    df[:, :, -m:] += matmul(gg.transpose(0, 2, 1), a)
    return df.reshape(f.shape)
