"""Random projection of a layer's channels: PF, K random linear combinations of C channels.

F (N, C, h, w) is read as (N, C, M); P is (K, C) with orthonormal rows (a random K-dimensional
subspace of the channels, ``projection``). Forward and backward are one GEMM each:

    Y = P F          dL/dF = P^T dL/dY

A Gram matrix of Y is P G P^T: K (K + 1) / 2 numbers in place of C (C + 1) / 2. The texture and
style terms use it to take statistics of a deep layer without pinning the layout: the Gram
matrix of relu4_1 at 128 px (512 channels, 256 positions) fixes its features up to a rotation of
the positions; that of 64 projections of them does not (docs/levers.md, "Projected statistics").
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor, record
from ..parallel import matmul
from .gram import features_matrix


def projection(channels: int, k: int, seed: int, xp=np, dtype=np.float32):
    """(k, channels), k <= channels: orthonormal rows spanning a random subspace (QR of a
    Gaussian draw, signs fixed so that the draw decides it alone), the same for a given seed."""
    if not 0 < k <= channels:
        raise ValueError(f"a projection keeps 1 .. {channels} of {channels} channels, not {k}")
    g = np.random.default_rng(seed).standard_normal((channels, k))
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diag(r))[None, :]
    return xp.asarray(np.ascontiguousarray(q.T).astype(dtype))


def project_forward(f, p):
    """f (N, C, h, w), p (K, C) -> (N, K, h, w)."""
    n, _, h, w = f.shape
    return matmul(p, features_matrix(f)).reshape(n, p.shape[0], h, w)


def project_backward(gy, p, shape):
    """gy (N, K, h, w) -> (N, C, h, w): P^T gy."""
    return matmul(p.T, features_matrix(gy)).reshape(shape)


def project(f: Tensor, p, name=None) -> Tensor:
    shape = f.shape
    return record(project_forward(f.data, p), (f,), lambda gy: (project_backward(gy, p, shape),), name)
