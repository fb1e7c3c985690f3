"""The engine's threads: numba's parallel loops, safe to call from several Python threads, and
GEMMs split between threads in fixed blocks, so that a result never depends on the thread count.

ranvgg runs numba on its workqueue threading layer unless NUMBA_THREADING_LAYER says otherwise:
numba's default (OpenMP) threads keep spinning after a parallel loop and starve the BLAS GEMM
that follows (a pool3 evaluation at 128 px took 247 ms with OpenMP and 81 ms with workqueue on
a 2-core CPU; docs/performance.md). That layer is not thread-safe: a second thread entering any
``parallel=True`` function while one runs aborts the whole process ("Concurrent access has been
detected"), e.g. two forward passes in two threads of a user's program. So every parallel entry
point goes through one lock while the layer in use is workqueue; under a thread-safe layer (tbb,
omp, chosen with NUMBA_THREADING_LAYER) the lock is dropped after the first call.

GEMMs (``matmul``): OpenBLAS splits a GEMM between its threads differently for each thread
count, and the rounding follows (one pool3 evaluation at 64 px: a different loss in the 7th
digit with 2 BLAS threads than with 1, and 60 L-BFGS iterations later images 25 dB apart). So
ranvgg turns the BLAS libraries loaded in the process to one thread at its first GEMM
(``single_threaded_blas``) and splits every GEMM itself: into blocks of rows and columns of a
fixed size, and the batch of a batched GEMM (the Winograd points) (the sizes depend on the shapes alone), each block one single-threaded
BLAS call run by one of ``threads()`` Python threads (NumPy releases the GIL in BLAS). The
blocks are the same whatever the thread count, so the result is bit for bit the same with 1
thread or 16, in-process or on a Dask worker (tests/engine/test_determinism.py). numba's loops
and the GEMM threads never run at the same time, and neither uses more threads than the cores
the process may run on (``os.sched_getaffinity``: ``taskset`` is respected).

numba's compiled functions are cached in the user's cache folder (``CACHE_DIR``:
$RANVGG_CACHE/numba or the platform's, see ``engine.io.files.cache_dir``), never next to the
sources: a cache written into site-packages outlives ``pip uninstall`` and its leftover
``engine/`` folder shadows the next install. NUMBA_CACHE_DIR, when set, wins. Without a
writable cache folder (a read-only home, a service account) nothing is cached and everything
runs, compiled afresh in each process. Every numba function is decorated with ``cache=CACHE``.
"""
from __future__ import annotations

import ctypes
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
import numpy as np  # noqa: E402

from . import backend  # noqa: E402

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
        n = _pool_state.get("n") or threads()
        if numba.get_num_threads() != n:  # per calling thread; numba's default ignores taskset
            numba.set_num_threads(n)
        if _state["safe"]:
            return jitted(*args)
        with _LOCK:  # the layer may be workqueue: one parallel region at a time, process-wide
            out = jitted(*args)
            _state["safe"] = _layer_is_threadsafe()
        return out

    call.jitted = jitted
    return call


# ----------------------------------------------------------------------------- threads and GEMMs

# A batch of SPLIT or more GEMMs (the Winograd points) runs one whole GEMM per block; fewer are
# cut into blocks of COLS output columns, and of ROWS rows if that still gives fewer than SPLIT.
# Smaller blocks cost BLAS speed (each block packs its panels anew): 512x512 @ 512x72 took 15%
# longer in 256-row blocks on one thread.
SPLIT, ROWS, COLS = 8, 256, 2048
_pool_state: dict = {}


def threads() -> int:
    """The engine's thread count: NUMBA_NUM_THREADS when set, else the cores this process may
    run on (``taskset`` respected), never more than those cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    asked = int(os.environ.get("NUMBA_NUM_THREADS", cores) or cores)
    return max(1, min(asked, cores, numba.config.NUMBA_NUM_THREADS))


def single_threaded_blas() -> list:
    """Set every OpenBLAS loaded in the process (NumPy's, scipy's) to one thread; returns the
    libraries set. Cheap to call again: libraries loaded since (scipy's) are set then."""
    done = _pool_state.setdefault("blas", {})
    for path in _loaded_blas():
        if path in done:
            continue
        lib = ctypes.CDLL(path)
        for symbol in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                       "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn.argtypes, fn.restype = [ctypes.c_int], None
                fn(1)
                break
        done[path] = fn is not None
    return [p for p, ok in done.items() if ok]


def blas_kernels() -> str:
    """The kernel family each loaded OpenBLAS runs ("Haswell": AVX2, "SkylakeX": AVX-512, ...),
    comma-separated; "" where none answers. OPENBLAS_CORETYPE overrides OpenBLAS's own choice."""
    names = []
    for path in _loaded_blas():
        lib = ctypes.CDLL(path)
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                       "openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                names.append(fn().decode())
                break
    return ", ".join(dict.fromkeys(names))


def _loaded_blas() -> list:
    try:
        with open("/proc/self/maps") as f:
            paths = {parts[5].strip() for parts in (line.split(None, 5) for line in f) if len(parts) == 6}
    except OSError:  # not Linux: BLAS keeps its own threads (results may then vary with them)
        return []
    return sorted(p for p in paths if "openblas" in os.path.basename(p).lower() and ".so" in p)


def _pool():
    n = threads()
    if _pool_state.get("n") != n:  # first call, or a new thread count (tests set it)
        single_threaded_blas()
        old = _pool_state.get("pool")
        _pool_state["pool"] = ThreadPoolExecutor(n, thread_name_prefix="ranvgg-gemm") if n > 1 else None
        _pool_state["n"] = n
        if old is not None:
            old.shutdown(wait=False)
    return _pool_state["pool"]


def matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)`` for a (..., M, K) and b (..., K, N) NumPy arrays (a batch
    axis on either, or both), split into fixed blocks run on ``threads()`` threads: the same
    bits for any thread count. ``out``: (..., M, N), written in place; returned. Other arrays
    (CuPy) go to their own ``matmul``."""
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return backend.array_module(a).matmul(a, b, out=out)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, n = a.shape[-2], b.shape[-1]
    if out is None:
        out = np.empty((*batch, m, n), np.result_type(a, b))
    a3 = np.broadcast_to(a, (*batch, *a.shape[-2:])).reshape(-1, *a.shape[-2:]) if batch else a[None]
    b3 = np.broadcast_to(b, (*batch, *b.shape[-2:])).reshape(-1, *b.shape[-2:]) if batch else b[None]
    o3 = out.reshape(-1, m, n)
    assert np.shares_memory(o3, out) or out.size == 0, "out must be reshapeable without a copy"
    blocks = [(k, slice(0, m), slice(0, n)) for k in range(o3.shape[0])]
    if len(blocks) < SPLIT:  # few GEMMs: split each into columns, then rows (a shape's choice only)
        cols = COLS if n > COLS else n
        rows = ROWS if m > ROWS and len(blocks) * -(-n // cols) < SPLIT else m
        blocks = [(k, slice(i, i + rows), slice(j, j + cols))
                  for k in range(o3.shape[0]) for i in range(0, m, rows) for j in range(0, n, cols)]
    pool = _pool()
    if pool is None or len(blocks) == 1:
        for blk in blocks:
            _block(a3, b3, o3, blk)
        return out
    step = -(-len(blocks) // _pool_state["n"])  # one contiguous run of blocks per thread
    runs = [blocks[i:i + step] for i in range(0, len(blocks), step)]
    futures = [pool.submit(_run, a3, b3, o3, run) for run in runs[1:]]
    _run(a3, b3, o3, runs[0])
    for f in futures:
        f.result()
    return out


def run_split(work, n_items: int) -> None:
    """``work(start, stop)`` over contiguous runs of ``range(n_items)``, one run per thread of
    ``threads()`` (``split``), the first on the calling thread. ``work`` must compute each item
    the same way whichever thread runs it (then the split never shows in the result) and
    release the GIL in its heavy parts (numba ``nogil``, BLAS)."""
    pool = _pool()
    runs = split(n_items, _pool_state["n"])
    if pool is None or len(runs) == 1:
        for run in runs:
            work(*run)
        return
    futures = [pool.submit(work, *run) for run in runs[1:]]
    work(*runs[0])
    for f in futures:
        f.result()


def split(n_items: int, n_threads: int) -> list:
    """Contiguous (start, stop) runs of ``range(n_items)``, at most ``n_threads``, of equal
    length but the last."""
    step = -(-n_items // max(1, n_threads))
    return [(s, min(s + step, n_items)) for s in range(0, n_items, step)]


def _block(a3, b3, o3, blk):
    k, rows, cols = blk
    np.matmul(a3[k, rows], b3[k, :, cols], out=o3[k, rows, cols])


def _run(a3, b3, o3, run):
    for blk in run:
        _block(a3, b3, o3, blk)
