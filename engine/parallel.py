"""numba's parallel loops, safe to call from several Python threads.

ranvgg runs numba on its workqueue threading layer unless NUMBA_THREADING_LAYER says otherwise:
numba's default (OpenMP) threads keep spinning after a parallel loop and starve the BLAS GEMM
that follows (a pool3 evaluation at 128 px took 247 ms with OpenMP and 81 ms with workqueue on
a 2-core CPU; docs/performance.md). That layer is not thread-safe: a second thread entering any
``parallel=True`` function while one runs aborts the whole process ("Concurrent access has been
detected"), e.g. two forward passes in two threads of a user's program. So every parallel entry
point goes through one lock while the layer in use is workqueue; under a thread-safe layer (tbb,
omp, chosen with NUMBA_THREADING_LAYER) the lock is dropped after the first call.
"""
from __future__ import annotations

import functools
import threading

import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:  # a user's choice wins
    numba.config.THREADING_LAYER = "workqueue"

_LOCK = threading.Lock()
_state = {"safe": False}   # True once the layer in use is known to be thread-safe


def _layer_is_threadsafe() -> bool:
    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:  # no parallel function has run yet
        return False


def parallel_jit(fn):
    """``numba.njit(parallel=True, cache=True)(fn)``, callable from any thread.

    The compiled dispatcher stays reachable as ``.jitted`` (for signatures and inspection)."""
    jitted = numba.njit(parallel=True, cache=True)(fn)

    @functools.wraps(fn)
    def call(*args):
        if _state["safe"]:
            return jitted(*args)
        with _LOCK:  # the layer may be workqueue: one parallel region at a time, process-wide
            out = jitted(*args)
            _state["safe"] = _layer_is_threadsafe()
        return out

    call.jitted = jitted
    return call
