"""Gram matrix of a layer's feature maps: G = F F^T (docs/method.md, section 3, Eq. 5).

F (N, C, h, w) is read as (N, C, M) with M = h*w; G is (N, C, C), unnormalised (the 1/M
factors live in the loss). Backward of a general upstream gradient gG:
dF = (gG + gG^T) F. One batched GEMM each way (BLAS / cuBLAS).
"""
from __future__ import annotations

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
