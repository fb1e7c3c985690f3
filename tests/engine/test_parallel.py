"""engine/parallel.py: numba's parallel loops called from two threads at once.

Under numba's workqueue layer (ranvgg's default) an unprotected second caller aborts the whole
process, so the run happens in a child process and the test reads its exit status.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import threading
import numpy as np
from engine.ops import conv3x3, pooling

rng = np.random.default_rng(0)
x = rng.standard_normal((1, 16, 48, 48)).astype(np.float32)
p = conv3x3.ConvWeights(rng.standard_normal((16, 16, 3, 3)).astype(np.float32), np.zeros(16, np.float32))
image = rng.standard_normal((1, 3, 48, 48)).astype(np.float32)
p3 = conv3x3.ConvWeights(rng.standard_normal((16, 3, 3, 3)).astype(np.float32), np.zeros(16, np.float32))


def step():
    # every numba parallel entry point: the convs (the image layer's direct sums, Winograd's
    # transforms on one image of whole tiles), avg and max pooling, both directions
    y = conv3x3.conv3x3_forward(x, p) + conv3x3.conv3x3_forward(image, p3, relu=True)
    a = pooling.avgpool2_backward(pooling.avgpool2_forward(y), y.shape)
    m, arg = pooling.maxpool2_forward(y)
    g = a + pooling.maxpool2_backward(m, arg, y.shape)
    return conv3x3.conv3x3_backward(g, p) + conv3x3.conv3x3_backward(g, p3, relu_out=y).sum()


ref = step()
results, errors = [], []


def work():
    try:
        for _ in range(40):
            results.append(step())
    except Exception as exc:
        errors.append(exc)


threads = [threading.Thread(target=work) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not errors, errors
assert len(results) == 80 and all(np.array_equal(r, ref) for r in results)
import numba
print("ok", numba.threading_layer())
"""


def test_two_threads_evaluate_at_once_under_workqueue():
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "ok workqueue"


def test_blas_kernels_names_the_loaded_openblas_kernels():
    """bench's machine line says which OpenBLAS kernels ran (an OPENBLAS_CORETYPE set before
    NumPy loaded picks them)."""
    import numpy  # noqa: F401  (NumPy's OpenBLAS loaded)

    from engine import parallel

    kernels = parallel.blas_kernels()
    assert kernels, "NumPy's OpenBLAS did not say which kernels it runs"
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if forced:
        assert forced.lower() in kernels.lower(), (forced, kernels)
