"""L-BFGS that stays on the device: ``--optimizer lbfgs-device``, the CPU's default.

scipy's L-BFGS-B runs on the host in float64, so every evaluation copies the image and its
gradient across and pays a host step (about 9 ms per call at 256 px). Here every vector (the
image, the gradient, the history) lives where the objective computes, in float64 (as scipy's):
the objective is handed x in the net's dtype and its gradient is widened. Written against ``xp``,
so the same code runs on NumPy, where it is tested against scipy.

The history is kept in compact form (Byrd, Nocedal & Schnabel 1994, eq. 2.6): the m newest
pairs as the rows of one (2m, n) array W = [S; Y], so a direction costs two GEMVs (W g and
c W) and an m x m triangular algebra on the small (2m, 2m) Gram matrix W W^T, instead of 4m dot
products and 4m vector updates of the two-loop recursion. The Gram matrix is kept, and a new
pair updates only its two rows and columns (W times the pair: 4 m n multiply-adds, where the
whole product would take 4 m^2 n: at m = 100, 2 GFLOP an iteration at 128 px), in the same
pass over W as the next direction's W g (one (2m, n) x (n, 3) product: W, memory-bound at a long
memory, is read twice an iteration, not three times):

    H g = gamma g + S top - gamma Y u,   u = R^-1 (S^T g),
    top = R^-T ((D + gamma Y^T Y) u - gamma Y^T g),
    R = upper triangle of S^T Y, D = its diagonal, gamma = s.y / y.y of the newest pair.

A pair failing the curvature test (s.y > 1e-10 y.y, decided on the device) is stored as zeros,
and empty or zeroed slots get R_ii = 1: they drop out by themselves, without a host decision.

Host reads (each a sync on the GPU; counted by ``backend.counting`` as "lbfgs_syncs"): per
evaluation the scalar loss (the objective reads it); per iteration one small vector, read
together once the step is accepted: the next direction's slope g.d, the slope g(x + t d).d at
the accepted point (which decides whether a first step that passed grows) and, with gtol, the
largest projected-gradient component. A step that grows reads it again (one more evaluation too).

The method (Nocedal & Wright, Algorithms 7.4 and 3.1, with bounds by projection):
  * direction: d = -H g, H0 = gamma I; components pointing out of the box from a bound they sit
    on are zeroed;
  * line search: backtracking Armijo on the projected path x(t) = clip(x + t d), sufficient
    decrease f(x(t)) <= f(x) + 1e-4 t g.d, trial steps t = 1 first (1 / ||d|| on the first
    iteration, as scipy's L-BFGS-B), shrunk by the minimiser of the quadratic through f(x),
    g.d and f(x(t)), kept within [0.1 t, 0.5 t], at most 20 trials. A first trial that passes
    while the slope there is still below 0.9 g.d (Wolfe's curvature condition fails: the step is
    too short, typically on the first iteration) grows while the loss keeps falling, as scipy's
    More-Thuente search would extrapolate: to the zero of the slope's secant, within 2x to 8x.
    A failed search drops the history and retries once from steepest descent.

Failure keeps what was won, as in engine/optim/scipy_lbfgsb.py: Ctrl-C, a NaN/inf loss or gradient, or an
error in the callback end the run with the last accepted iterate (the best: every accepted step
lowers the loss) in the same ``Result``. A non-finite gradient shows in g.d at the next
iteration; the iterate it belongs to has a finite loss and is kept.

Memory on the device: 2 m n float64 for the history, plus about six n-vectors and 7 m^2 for the
small matrices (``history_bytes``).
"""
from __future__ import annotations

import time

import numpy as np

from .. import backend
from ..parallel import single_threaded_blas
from .scipy_lbfgsb import NonFiniteError, Result

C1 = 1e-4              # Armijo's sufficient-decrease constant
MAX_TRIALS = 20        # line-search evaluations per iteration
C2 = 0.9              # a slope still below C2 * g.d after a full step: the step may grow
MAX_GROWTHS = 10       # growth steps per iteration
GROW_MAX = 8.0         # the most one growth step multiplies the step by
STALL = 5              # iterations in a row below the loss's resolution end a run (``stall``)


def history_bytes(n: int, history: int = 10) -> int:
    """Device bytes the optimiser holds for an n-variable image: W (2m, n), its (2m, 2m) Gram
    matrix and the m x m blocks taken from it, and x, g, d, the trial point, its gradient and a
    temporary, all float64."""
    return 8 * (n * (2 * history + 6) + 7 * history * history)


def _dot(xp, a, b):
    """a . b summed in float64; 0-d, on the device (on the GPU one fused kernel, no temporary)."""
    if xp is np:
        return xp.sum(a * b, dtype=xp.float64)
    return backend.fused("ranvgg_dot")(a, b)


BLOCK_BYTES = 4 << 20   # the slice of W the NumPy product reads once and keeps in cache for its columns


def _times_rows(xp, w, cols):
    """w @ cols.T for a few rows ``cols`` (k, n), reading w (r, n) once. cuBLAS does that in one
    GEMM; OpenBLAS's GEMM with 2 or 3 columns runs at a third of its GEMV's speed (at 256 px with
    m = 300 on one core: 97 ms for 3 columns, against 28 ms a GEMV), so on NumPy w is taken in
    slices of about BLOCK_BYTES, each multiplied by the columns' slices as GEMVs while in cache
    (61 ms for 3)."""
    if xp is not np:
        return w @ cols.T
    step = max(256, BLOCK_BYTES // (8 * w.shape[0]))
    out = np.zeros((cols.shape[0], w.shape[0]), dtype=np.float64)
    for j in range(0, w.shape[1], step):
        part = w[:, j:j + step]
        for k in range(cols.shape[0]):
            out[k] += part @ cols[k, j:j + step]
    return out.T


class _Pairs:
    """The m newest correction pairs (s, y) as the rows of W = [S; Y] (2m, n), float64, on the device."""

    def __init__(self, xp, m: int, n: int):
        self.xp, self.m = xp, m
        self.w = xp.zeros((2 * m, n), dtype=xp.float64)
        self._gram = xp.zeros((2 * m, 2 * m), dtype=xp.float64)   # W W^T, updated as pairs come
        self.reset()

    @property
    def gram(self):
        """W W^T (2m, 2m), up to date with every pair pushed."""
        self._update()
        return self._gram

    def reset(self):
        self.w[...] = 0
        self._gram[...] = 0
        self._pending = None                         # the rows of the pair whose Gram update waits
        self.count = 0                               # pairs pushed since the last reset
        self.gamma = self.xp.ones((), dtype=self.xp.float64)
        self._gamma_before = self.gamma

    def push(self, s, y, replace: bool = False):
        """Store a pair in the next slot (or over the newest one: a step that grew); a pair that
        fails the curvature test is stored as zeros."""
        xp = self.xp
        if replace:
            self.count -= 1
            self.gamma = self._gamma_before
        slot = self.count % self.m
        sy, yy = _dot(xp, s, y), _dot(xp, y, y)
        ok = sy > 1e-10 * yy
        self._update()                                   # the pair before, if no direction followed it
        self.w[slot] = xp.where(ok, s, 0.0)
        self.w[self.m + slot] = xp.where(ok, y, 0.0)
        self._pending = [slot, self.m + slot]            # its Gram rows: in the next direction's pass over W
        self._gamma_before = self.gamma
        self.gamma = xp.where(ok, sy / xp.where(ok, yy, 1.0), self.gamma)
        self.count += 1

    def _update(self, g=None):
        """The Gram matrix's two rows and columns of the pair pushed last (every stored vector
        against its s and y), and with ``g`` also W g, from one pass over W (``_times_rows``),
        where separate products would read W, the largest array, again for each. Returns W g
        (or None)."""
        rows, self._pending = self._pending, None
        if rows is None:
            return None if g is None else self.w @ g                  # GEMV
        cols = self.w[rows] if g is None else self.xp.concatenate([self.w[rows], g[None]])
        new = _times_rows(self.xp, self.w, cols)                       # (2m, 2 or 3)
        self._gram[:, rows] = new[:, :2]
        self._gram[rows, :] = new[:, :2].T
        return None if g is None else new[:, 2]

    def direction(self, g):
        """-H g by the compact form (module docstring)."""
        xp, m = self.xp, self.m
        if self.count == 0:
            return -g
        k = min(self.count, m)
        order = np.array([(self.count - k + i) % m for i in range(k)])   # slots, oldest first
        p = self._update(g)                              # (S g; Y g)
        gram = self._gram                                # (2m, 2m): S Y^T and Y Y^T in its blocks
        a, b = p[order], p[m + order]
        sy = gram[order][:, m + order]                   # sy[i, j] = s_i . y_j, chronological
        yy = gram[m + order][:, m + order]
        diag = xp.diagonal(sy)
        r = xp.triu(sy) + xp.diag(xp.where(diag > 0, 0.0, 1.0))   # empty or zeroed pairs: R_ii = 1
        gamma = self.gamma
        u = xp.linalg.solve(r, a)
        top = xp.linalg.solve(r.T, diag * u + gamma * (yy @ u) - gamma * b)
        c = xp.zeros(2 * m, dtype=xp.float64)
        c[order] = top
        c[m + order] = -gamma * u
        return -(gamma * g + c @ self.w)                 # GEMV: gamma g + S top - gamma Y u


def _keep_inside(xp, d, x, lo, hi):
    """Zero the components of d that push a variable sitting on its bound out of the box (on the
    GPU one fused kernel, where the array operations take eight)."""
    if lo is None:
        return d
    if xp is np:
        return xp.where(((x <= lo) & (d < 0)) | ((x >= hi) & (d > 0)), 0.0, d)
    return backend.fused("ranvgg_keep_inside")(d, x, lo, hi)


def lbfgs_device(objective, x0, bounds=None, iters: int = 500, history: int = 10,
                 ftol: float = 0.0, gtol: float = 0.0, callback=None, stall: int = STALL) -> Result:
    """Minimise ``objective.value_and_grad`` from ``x0`` (N, 3, H, W) on the objective's device.

    Same contract as ``engine.optim.lbfgs``: bounds (lower, upper) broadcastable to x0 or None;
    callback(it, x, loss, terms, elapsed) after every iteration, with x (N, 3, H, W) still on the
    device (``backend.to_host`` it if needed); it may raise StopIteration. ftol: stop when the
    relative loss decrease of an iteration is at most ftol; gtol: stop when the largest
    projected-gradient component is at most gtol; stall: stop after that many iterations in a
    row, each lowering the loss by less than the objective dtype's resolution (relative, its
    machine epsilon: 1.2e-7 in float32), where the line search only finds rounding (0: never).
    scipy's L-BFGS-B ends such a run too, at the first iteration that finds no decrease. The
    returned ``Result.x`` is on the host, float64, like scipy's.
    """
    if iters < 1:
        raise ValueError("iters must be at least 1")
    net = objective.net
    xp, dtype, shape = net.xp, net.dtype, tuple(x0.shape)
    t0 = time.perf_counter()
    x = xp.array(x0, dtype=dtype).astype(xp.float64).ravel()   # a copy; values the objective's dtype holds
    lo = hi = None
    if bounds is not None:
        # in the objective's dtype (then widened), so a point on a bound is one the objective sees
        lo, hi = (xp.asarray(np.broadcast_to(np.asarray(backend.to_host(b), np.float64), shape), dtype=dtype)
                  .astype(xp.float64).ravel() for b in bounds)
        x = xp.clip(x, lo, hi)
    state = {"evals": 0, "it": 0, "x": x, "loss": np.inf, "terms": {}}
    hist = []
    resolution, stalled = float(np.finfo(dtype).eps), 0
    if xp is np:
        single_threaded_blas()   # the GEMVs: the same rounding on any number of threads

    def evaluate(xv):
        value, grad = objective.value_and_grad(xv.astype(dtype).reshape(shape))
        state["evals"] += 1
        if not np.isfinite(value):
            raise NonFiniteError(f"the loss became {'NaN' if np.isnan(value) else 'non-finite'} "
                                 f"at evaluation {state['evals']}")
        return float(value), xp.asarray(grad).ravel().astype(xp.float64)

    def read(g, d, slope_d=None, at=None):
        """One host read: g.d, and g.slope_d, and the largest projected-gradient component at
        ``at`` when gtol asks for it (NaN where not asked)."""
        nan = xp.full((), np.nan, dtype=xp.float64)
        parts = [_dot(xp, g, d), nan if slope_d is None else _dot(xp, g, slope_d),
                 xp.abs(_keep_inside(xp, -g, at, lo, hi)).max().astype(xp.float64) if gtol > 0 else nan]
        return [float(v) for v in backend.to_host(xp.stack(parts), tag="lbfgs_syncs")]

    interrupted, failed, stop = False, None, ""
    try:
        f, g = evaluate(x)
        state.update(loss=f, terms=dict(getattr(objective, "last_terms", {})))
        pairs = _Pairs(xp, history, x.size)
        d = _keep_inside(xp, -g, x, lo, hi)
        gd = read(g, d)[0]
        retried = False
        while state["it"] < iters:
            if not np.isfinite(gd):                              # NaN/inf anywhere in g shows here
                raise NonFiniteError(f"the gradient became non-finite at evaluation {state['evals']}")
            if not gd < 0:                                       # not downhill: restart from -g
                if pairs.count == 0:
                    stop = "the projected gradient is zero"
                    break
                pairs.reset()
                d = _keep_inside(xp, -g, x, lo, hi)
                gd = read(g, d)[0]
                continue
            t = 1.0 if pairs.count else 1.0 / np.sqrt(-gd)      # first step: unit length along -g
            found = _line_search(evaluate, x, f, d, gd, t, lambda step: _point(xp, x, step, d, lo, hi, dtype))
            if found is None:
                if pairs.count and not retried:                  # a stale history: forget it, once
                    pairs.reset()
                    retried = True
                    d = _keep_inside(xp, -g, x, lo, hi)
                    gd = read(g, d)[0]
                    continue
                stop = "the line search found no decrease"
                break
            retried = False
            x_t, f_t, g_t, t, first = found
            pairs.push(x_t - x, g_t - g)
            d_next = _keep_inside(xp, pairs.direction(g_t), x_t, lo, hi)
            gd_next, slope, gmax = read(g_t, d_next, d if first else None, x_t)
            for _ in range(MAX_GROWTHS if first else 0):
                if not slope < C2 * gd:                          # Wolfe's curvature condition holds
                    break
                t_2 = t * _growth(gd, slope)
                x_2 = _point(xp, x, t_2, d, lo, hi, dtype)
                f_2, g_2 = evaluate(x_2)
                if not f_2 < f_t:
                    break
                t, x_t, f_t, g_t = t_2, x_2, f_2, g_2
                pairs.push(x_t - x, g_t - g, replace=True)
                d_next = _keep_inside(xp, pairs.direction(g_t), x_t, lo, hi)
                gd_next, slope, gmax = read(g_t, d_next, d, x_t)
            f_old, x, f, g, d, gd = f, x_t, f_t, g_t, d_next, gd_next
            state["it"] += 1
            state.update(x=x, loss=f, terms=dict(getattr(objective, "last_terms", {})))
            elapsed = time.perf_counter() - t0
            hist.append({"iteration": state["it"], "loss": f, **state["terms"], "seconds": elapsed})
            if callback is not None:
                _call(callback, state["it"], x.reshape(shape), f, state["terms"], elapsed)
            if ftol > 0 and (f_old - f) <= ftol * max(abs(f_old), abs(f), 1.0):
                stop = "the relative reduction of the loss is at most ftol"
                break
            if gtol > 0 and gmax <= gtol:
                stop = "the projected gradient is at most gtol"
                break
            stalled = stalled + 1 if (f_old - f) < resolution * max(abs(f_old), abs(f), 1.0) else 0
            if stall and stalled >= stall:
                stop = (f"the loss stopped falling ({stall} iterations in a row each lowered it by less "
                        f"than {np.dtype(dtype).name}'s resolution)")
                break
        else:
            stop = f"reached the iteration limit ({iters})"
    except KeyboardInterrupt:
        interrupted, stop = True, "interrupted"
    except StopIteration as exc:
        stop = str(exc) or "stopped by the callback"
    except NonFiniteError as exc:
        failed = stop = str(exc)
    except _CallbackError as exc:
        failed = stop = f"stopped by an error in the progress callback: {exc.__cause__}"
    x_host = backend.to_host(state["x"]).astype(np.float64).reshape(shape)
    return Result(x_host, float(state["loss"]), state["it"], state["evals"], time.perf_counter() - t0, stop,
                  interrupted, failed, hist)


def _point(xp, x, t, d, lo, hi, dtype):
    """clip(x + t d), rounded to the objective's dtype (kept in float64): the point the objective
    sees exactly, so s = x_new - x, formed in float64, is the step between evaluated points."""
    if xp is not np:   # one fused kernel; no bounds: infinite ones
        if lo is None:
            lo, hi = xp.full((), -np.inf, dtype=xp.float64), xp.full((), np.inf, dtype=xp.float64)
        return backend.fused("ranvgg_trial_point")(x, d, lo, hi, float(t), int(np.dtype(dtype) == np.float32))
    p = x + t * d
    if lo is not None:
        p = xp.clip(p, lo, hi)
    return p.astype(dtype).astype(xp.float64) if dtype != xp.float64 else p


def _growth(gd: float, slope: float) -> float:
    """How far to grow a step t whose end still slopes down (slope = g(x + t d).d, gd = g(x).d,
    both < 0): to the zero of the slope's secant, t gd / (gd - slope), kept within [2 t, 8 t]
    (the slope has hardly changed: the secant's zero is far and unsure)."""
    if not slope > gd:
        return GROW_MAX
    return min(max(gd / (gd - slope), 2.0), GROW_MAX)


def _line_search(evaluate, x, f, d, gd, t, point):
    """Backtracking Armijo along clip(x + t d). Returns (x, f, g, t, first) of the accepted point
    (first: the first trial passed, so the caller may grow the step), or None."""
    for trial in range(MAX_TRIALS):
        x_t = point(t)
        f_t, g_t = evaluate(x_t)
        if f_t <= f + C1 * t * gd:
            return x_t, f_t, g_t, t, trial == 0
        # the minimiser of the quadratic through f, the slope gd and f_t, kept within [0.1 t, 0.5 t]
        curve = f_t - f - gd * t
        t_q = -gd * t * t / (2 * curve) if curve > 0 else 0.5 * t
        t = min(max(t_q, 0.1 * t), 0.5 * t)
    return None


class _CallbackError(Exception):
    """An exception raised by the user's callback, carried out of the loop."""


def _call(callback, it, x, loss, terms, elapsed):
    try:
        callback(it, x, loss, terms, elapsed)
    except (StopIteration, KeyboardInterrupt):
        raise
    except Exception as exc:  # e.g. an intermediate image that cannot be written
        raise _CallbackError(exc) from exc
