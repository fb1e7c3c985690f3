"""Fully connected layer (fc6, fc7, fc8): y = x_flat @ W.T + b; gx = gy @ W.

x (N, C, h, w) is flattened in (C, h, w) order, as Caffe and torchvision do, so pool5 of a
256x256 image (512 x 8 x 8) gives the 32768 inputs of fc6. W: (Out, In), b: (Out,). Both
directions are single GEMMs (BLAS / cuBLAS); nothing here needs a raw kernel.
"""
from __future__ import annotations

from .. import backend
from ..autograd import Tensor, record
from ..parallel import matmul


class FCWeights:
    """weight (Out, In) and bias (Out,), on the target device."""

    def __init__(self, weight, bias):
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(f"fc needs weight (Out, In) and bias (Out,), got {weight.shape}, {bias.shape}")
        self.weight, self.bias = weight, bias
        self.n_in, self.n_out = weight.shape[1], weight.shape[0]
        self.weight_t = weight.T  # a view: matmul reads it transposed, no copy
        self.has_bias = bool(backend.array_module(bias).any(bias != 0))


def fc_forward(x, p: FCWeights):
    """x (N, ...) with prod(...) == In -> (N, Out, 1, 1): 4-D like every other feature map,
    so the losses and the next fc layer need no special case."""
    flat = x.reshape(x.shape[0], -1)  # (N, C, h, w) -> (N, C*h*w)
    if flat.shape[1] != p.n_in:
        raise ValueError(f"fc expects {p.n_in} inputs per image, got {flat.shape[1]} (shape {x.shape})")
    y = matmul(flat, p.weight_t)
    if p.has_bias:
        y = y + p.bias
    return y.reshape(y.shape[0], p.n_out, 1, 1)


def fc_backward(gy, p: FCWeights, x_shape):
    """gy (N, Out, 1, 1) -> gx of x's shape."""
    return matmul(gy.reshape(gy.shape[0], p.n_out), p.weight).reshape(x_shape)


def fc(x: Tensor, p: FCWeights, name=None) -> Tensor:
    shape = x.shape
    return record(fc_forward(x.data, p), (x,), lambda gy: (fc_backward(gy, p, shape),), name)
