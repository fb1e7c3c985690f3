"""ranvgg: deep image representation with untrained, random-weight VGG-19.

    engine.backend    NumPy / CuPy selection and the raw CUDA kernels (the only CuPy import)
    engine.autograd   a tiny reverse-mode autograd over input gradients
    engine.ops        conv3x3, relu, pooling, fc, gram, losses, tv
    engine.vgg        the VGG-19 network: random or loaded weights
    engine.objectives inversion, texture and style objectives, Eq. 4 weighting factors
    engine.optim      L-BFGS-B, the one place where host and device meet
"""
import os as _os
import sys as _sys

__version__ = "0.1.0"  # the one place: setup.cfg reads it, ``ranvgg --version`` prints it

# numba's default (OpenMP) threads keep spinning after a parallel loop and starve the BLAS GEMM
# that follows: a pool3 evaluation at 128 px took 247 ms with it and 81 ms with the workqueue
# layer (2-core CPU, bench/RESULTS.md). A user's choice wins.
if "NUMBA_THREADING_LAYER" not in _os.environ:
    _os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
    if "numba" in _sys.modules:
        _sys.modules["numba"].config.THREADING_LAYER = "workqueue"

# scipy's L-BFGS-B step runs on scipy's own OpenBLAS, whose threads then spin for a while and
# slow NumPy's GEMMs in the next evaluation (one evaluation: 86 ms alone, 138 ms between
# L-BFGS-B steps, 109 ms with this; pool3 at 128 px). It only applies when set before NumPy is
# first imported (e.g. for the tasks' command lines); a user's own setting wins.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from .errors import UserError  # noqa: E402

__all__ = ["UserError"]
