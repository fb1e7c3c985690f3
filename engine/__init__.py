"""ranvgg's engine: deep image representation with untrained, random-weight VGG networks.

The compute core (host or device arrays, nothing read or written):

    engine.backend     NumPy / CuPy selection and the raw CUDA kernels (the only CuPy import)
    engine.arch        the architecture tables: layer names, conv shapes, poolings, map shapes
    engine.autograd    a tiny reverse-mode autograd over input gradients
    engine.ops         one op per file: conv3x3 (+ winograd), relu, pooling, fc, gram, losses, tv
    engine.parallel    numba's parallel loops, callable from any thread
    engine.vgg         the network: random draws or loaded weights
    engine.objectives  inversion, texture and style objectives with the Eq. 4 weighting factors
    engine.optim       the optimisers: scipy's L-BFGS-B (host) and an L-BFGS that stays on the device
    engine.stacked     the greedy "stacked" ranVGG builder
    engine.recipes     ranVGG, the default network, stored as small JSON recipes
    engine.metrics     quality measures and the free baselines (host NumPy)
    engine.judge       scores of a result in networks other than the one optimised
    engine.memory      how much memory a run needs, from shapes alone
    engine.gradcheck   the finite-difference gradient checker
    engine.errors      UserError, the one exception shown as a message

File formats, in a room of their own:

    engine.io.image    images in and out (PNG, JPEG, 16-bit TIFF), preprocessing, samples
    engine.io.tiff     the 16-bit TIFF encoder
    engine.io.files    atomic writes: nothing half-written, nothing replaced by accident
    engine.io.weights  weights files: ranvgg's .npz and the trained formats it converts from

Importing ``engine`` has no side effects and needs no GPU.
"""
__version__ = "0.1.0"  # the one place: setup.cfg reads it, ``ranvgg --version`` prints it
__ranvgg__ = True      # ``ranvgg`` checks it: another package named ``engine`` is told apart

from .errors import UserError  # noqa: E402

__all__ = ["UserError"]
