"""The two feature losses of the paper, with their gradients derived by hand (docs/method.md, section 3).

For one image, F is layer l's activation as an N_l x M_l matrix (N_l channels, M_l = h*w).

Inversion / content (Eq. 1, 3):
    L = w / (2 N M) * ||F - F0||^2            dL/dF = w / (N M) * (F - F0)

Texture / Gram (Eq. 5-7), G = F F^T:
    E = w / (4 N^2 M^2) * ||G - G0||^2        dE/dF = w / (N^2 M^2) * (G - G0) F
  derivation: dE = w / (4 N^2 M^2) * 2 <G - G0, dG>, dG = dF F^T + F dF^T, and G - G0 is
  symmetric, so <G - G0, dG> = 2 <(G - G0) F, dF>; the constant is 4 / 4 = 1 (not 1/4).

Long-range / shifted Gram (Berger & Memisevic 2017; ``gram.shifted_gram_forward``), G_s = A B^T
over the M_s positions where the maps and the maps moved by (dy, dx) overlap:
    E = w / (4 N^2 M_s^2) * ||G_s - G0||^2
    dE/dA = w / (2 N^2 M_s^2) * (G_s - G0) B      dE/dB = w / (2 N^2 M_s^2) * (G_s - G0)^T A
  derivation: dG_s = dA B^T + A dB^T, and <D, dA B^T> = <D B, dA>, <D, A dB^T> = <D^T A, dB>;
  D = G_s - G0 is not symmetric, so the two halves do not fold into one as in the Gram's.

``w`` is the layer's weighting factor (w_l, mu_l of Eq. 4) times any user weight. Applying it
here, at the top of the chain, keeps the back-propagated numbers of order one even when the
raw loss of a deep random layer is 1e-12. Over a batch the per-image terms are summed. The value
stays on the device as a 0-d array; only the optimiser wrapper turns it into a float.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Tensor, record
from ..parallel import matmul
from .gram import features_matrix, gram_forward, overlap, shifted_gram_backward


def content_loss(f: Tensor, target, weight: float = 1.0, name=None) -> Tensor:
    """f, target: (N, C, h, w) (target may have batch 1). Returns a 0-d tensor.

    GPU: one fused kernel for the value (summed in float64) and one for the gradient
    (kernels/fused.py), where the array operations take six launches and a temporary of f's size."""
    _, c, h, w = f.shape
    nm = c * h * w
    xp = backend.array_module(f.data)
    if xp is not np:
        fd, target = f.data, xp.asarray(target, dtype=f.data.dtype)
        value = backend.fused("ranvgg_content_value")(fd, target, weight / (2.0 * nm))
        return record(value, (f,), lambda g: (backend.fused("ranvgg_content_grad")(
            fd, target, xp.asarray(g, dtype=fd.dtype), weight / nm),), name)
    diff = f.data - target
    value = (diff * diff).sum() * (weight / (2.0 * nm))
    return record(value, (f,), lambda g: (diff * (g * (weight / nm)),), name)


def gram_loss(f: Tensor, target_gram, weight: float = 1.0, name=None) -> Tensor:
    """f: (N, C, h, w); target_gram: (N or 1, C, C). Returns a 0-d tensor."""
    _, c, h, w = f.shape
    m = h * w
    fm = features_matrix(f.data)
    dg = gram_forward(f.data) - target_gram  # (N, C, C)
    if backend.array_module(dg) is np:
        value = (dg * dg).sum() * (weight / (4.0 * c * c * m * m))
    else:  # one fused kernel, summed in float64
        value = backend.fused("ranvgg_sum_squares")(dg, weight / (4.0 * c * c * m * m))

    def backward(g):
        # (N, C, C) @ (N, C, M) -> (N, C, M) -> (N, C, h, w)
        return (matmul(dg, fm) * (g * (weight / (c * c * m * m)))).reshape(f.shape),

    return record(value, (f,), backward, name)


def shifted_gram_loss(f: Tensor, target, shift, weight: float = 1.0, name=None) -> Tensor:
    """f: (N, C, h, w); target: (N or 1, C, C), the shifted Gram of the exemplar rescaled to f's
    overlap; shift: (dy, dx) positions, each >= 0, dy < h and dx < w. Returns a 0-d tensor."""
    _, c, h, w = f.shape
    m = (h - shift[0]) * (w - shift[1])
    parts = overlap(f.data, shift)         # kept for the backward: the masked copy is made once
    dg = matmul(parts[0], parts[1].transpose(0, 2, 1)) - target
    k = weight / (c * c * m * m)
    if backend.array_module(dg) is np:
        value = (dg * dg).sum() * (k / 4.0)
    else:  # one fused kernel, summed in float64
        value = backend.fused("ranvgg_sum_squares")(dg, k / 4.0)
    return record(value, (f,), lambda g: (shifted_gram_backward(dg * (g * k / 2.0), f.data, shift, parts),), name)
