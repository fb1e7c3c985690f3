"""numba's parallel loops, safe to call from several Python threads.

ranvgg runs numba on its workqueue threading layer unless NUMBA_THREADING_LAYER says otherwise:
numba's default (OpenMP) threads keep spinning after a parallel loop and starve the BLAS GEMM
that follows (a pool3 evaluation at 128 px took 247 ms with OpenMP and 81 ms with workqueue on
a 2-core CPU; docs/performance.md). That layer is not thread-safe: a second thread entering any
``parallel=True`` function while one runs aborts the whole process ("Concurrent access has been
detected"), e.g. two forward passes in two threads of a user's program. So every parallel entry
point goes through one lock while the layer in use is workqueue; under a thread-safe layer (tbb,
omp, chosen with NUMBA_THREADING_LAYER) the lock is dropped after the first call.

numba's compiled functions are cached in the user's cache folder (``CACHE_DIR``:
$RANVGG_CACHE/numba or the platform's, see ``engine.io.files.cache_dir``), never next to the
sources: a cache written into site-packages outlives ``pip uninstall`` and its leftover
``engine/`` folder shadows the next install. NUMBA_CACHE_DIR, when set, wins. Without a
writable cache folder (a read-only home, a service account) nothing is cached and everything
runs, compiled afresh in each process. Every numba function is decorated with ``cache=CACHE``.
"""
from __future__ import annotations

import functools
import threading
from pathlib import Path

import os

from .io.files import cache_dir, writable_dir


def _numba_cache_dir():
    """The folder for numba's cache, set before numba is imported; None: no cache."""
    given = os.environ.get("NUMBA_CACHE_DIR")
    try:
        path = Path(given) if given else cache_dir() / "numba"
    except Exception:  # noqa: BLE001 - an odd environment costs the cache, never the run
        return None
    if not writable_dir(path):
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(path)  # numba reads it on import; child processes too
    return path


CACHE_DIR = _numba_cache_dir()
CACHE = CACHE_DIR is not None

import numba  # noqa: E402  (after NUMBA_CACHE_DIR is set)

if CACHE:  # numba may have been imported before us (a user's program): set its config too
    numba.config.CACHE_DIR = str(CACHE_DIR)

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
    """``numba.njit(parallel=True, cache=CACHE)(fn)``, callable from any thread.

    The compiled dispatcher stays reachable as ``.jitted`` (for signatures and inspection)."""
    jitted = numba.njit(parallel=True, cache=CACHE)(fn)

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
