"""ranvgg: deep image representation with untrained, random-weight VGG-19.

    engine.backend    NumPy / CuPy selection and the raw CUDA kernels (the only CuPy import)
    engine.autograd   a tiny reverse-mode autograd over input gradients
    engine.ops        conv3x3, relu, pooling, fc, gram, losses, tv
    engine.vgg        the VGG-19 network: random or loaded weights
"""
from .errors import UserError

__all__ = ["UserError"]
