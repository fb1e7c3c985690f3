"""L-BFGS that stays on the device: ``--optimizer lbfgs-device`` (scipy's L-BFGS-B stays the default).

scipy's L-BFGS-B runs on the host in float64, so every evaluation copies the image and its
gradient across and pays a host step (about 9 ms per call at 256 px). Here every vector (the
image, the gradient, the 2 * history correction pairs) lives where the objective computes, in the
net's dtype (float32 normally), and every reduction (the dot products of the two-loop recursion
and of the line search) sums in float64. Written against ``xp``, so the same code runs on NumPy,
where it is tested against scipy.

Per evaluation only the scalar loss comes back (the objective reads it); per iteration one or two
more scalars: the directional derivative g.d, which the line search needs on the host, and, when
the first trial step is accepted, the new slope g(x + t d).d, which decides whether to extend it. The curvature
test of a new pair (s.y > 0) stays on the device: a pair that fails it gets rho = 0 and drops out
of the recursion by itself.

The method (Nocedal & Wright, Algorithms 7.4 and 3.1, with bounds by projection):
  * direction: d = -H g by the two-loop recursion, H0 = gamma I with gamma = s.y / y.y of the
    newest pair; components pointing out of the box from a bound they sit on are zeroed;
  * line search: backtracking Armijo on the projected path x(t) = clip(x + t d), sufficient
    decrease f(x(t)) <= f(x) + 1e-4 t g.d, trial steps t = 1 first (1 / ||d|| on the first
    iteration, as scipy's L-BFGS-B), shrunk by the minimiser of the quadratic through f(x),
    g.d and f(x(t)), kept within [0.1 t, 0.5 t], at most 20 trials. A first trial that passes
    while the slope there is still below 0.9 g.d (Wolfe's curvature condition fails: the step is
    too short, typically on the first iteration) is doubled while the loss keeps falling, as
    scipy's More-Thuente search would extrapolate. A failed search drops the history and retries
    once from steepest descent.
  * the curvature test s.y > 1e-10 y.y on the device keeps H positive definite whatever the step.

Failure keeps what was won, as in engine/optim/scipy_lbfgsb.py: Ctrl-C, a NaN/inf loss or gradient, or an
error in the callback end the run with the last accepted iterate (the best: every accepted step
lowers the loss) in the same ``Result``. A non-finite gradient shows in g.d at the next
iteration; the iterate it belongs to has a finite loss and is kept.
"""
from __future__ import annotations

import time

import numpy as np

from .. import backend
from .scipy_lbfgsb import NonFiniteError, Result

C1 = 1e-4              # Armijo's sufficient-decrease constant
MAX_TRIALS = 20        # line-search evaluations per iteration
C2 = 0.9              # a slope still below C2 * g.d after a full step: the step may grow
MAX_DOUBLINGS = 10     # growth steps per iteration


def _dot(xp, a, b):
    """a . b summed in float64 (the products are exact enough in the vectors' dtype); 0-d, on the device."""
    return xp.sum(a * b, dtype=xp.float64)


def _direction(xp, g, pairs, gamma):
    """-H g by the two-loop recursion over ``pairs`` [(s, y, rho)], oldest first; all on the device."""
    q = g.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * _dot(xp, s, q)
        q -= a.astype(q.dtype) * y          # a 0-d float64 would upcast the vector
        alphas.append(a)
    q *= gamma.astype(q.dtype)
    for (s, y, rho), a in zip(pairs, reversed(alphas)):
        b = rho * _dot(xp, y, q)
        q += (a - b).astype(q.dtype) * s
    return -q


def _keep_inside(xp, d, x, lo, hi):
    """Zero the components of d that push a variable sitting on its bound out of the box."""
    if lo is None:
        return d
    return xp.where(((x <= lo) & (d < 0)) | ((x >= hi) & (d > 0)), d.dtype.type(0), d)


def lbfgs_device(objective, x0, bounds=None, iters: int = 500, history: int = 10,
                 ftol: float = 0.0, gtol: float = 0.0, callback=None) -> Result:
    """Minimise ``objective.value_and_grad`` from ``x0`` (N, 3, H, W) on the objective's device.

    Same contract as ``engine.optim.lbfgs``: bounds (lower, upper) broadcastable to x0 or None;
    callback(it, x, loss, terms, elapsed) after every iteration, with x (N, 3, H, W) still on the
    device (``backend.to_host`` it if needed); it may raise StopIteration. ftol: stop when the
    relative loss decrease of an iteration is at most ftol; gtol: stop when the largest
    projected-gradient component is at most gtol (one more scalar read back). The returned
    ``Result.x`` is on the host, float64, like scipy's.
    """
    if iters < 1:
        raise ValueError("iters must be at least 1")
    net = objective.net
    xp, dtype, shape = net.xp, net.dtype, tuple(x0.shape)
    t0 = time.perf_counter()
    x = xp.array(x0, dtype=dtype).ravel()                  # a copy: the caller's x0 is never changed
    lo = hi = None
    if bounds is not None:
        lo, hi = (xp.asarray(np.broadcast_to(np.asarray(backend.to_host(b), np.float64), shape), dtype=dtype).ravel()
                  for b in bounds)
        x = xp.clip(x, lo, hi)
    state = {"evals": 0, "it": 0, "x": x, "loss": np.inf, "terms": {}}
    hist = []

    def evaluate(xv):
        value, grad = objective.value_and_grad(xv.reshape(shape))
        state["evals"] += 1
        if not np.isfinite(value):
            raise NonFiniteError(f"the loss became {'NaN' if np.isnan(value) else 'non-finite'} "
                                 f"at evaluation {state['evals']}")
        return float(value), xp.asarray(grad, dtype=dtype).ravel()

    interrupted, failed, stop = False, None, ""
    try:
        f, g = evaluate(x)
        state.update(loss=f, terms=dict(getattr(objective, "last_terms", {})))
        pairs, gamma = [], xp.asarray(1.0, dtype=xp.float64)
        retried = False
        while state["it"] < iters:
            d = _keep_inside(xp, _direction(xp, g, pairs, gamma), x, lo, hi)
            gd = float(_dot(xp, g, d))                           # the one extra read-back per iteration
            if not np.isfinite(gd):                              # NaN/inf anywhere in g shows here
                raise NonFiniteError(f"the gradient became non-finite at evaluation {state['evals']}")
            if not gd < 0:                                       # not downhill: restart from -g
                pairs, gamma = [], xp.asarray(1.0, dtype=xp.float64)
                d = _keep_inside(xp, -g, x, lo, hi)
                gd = float(_dot(xp, g, d))
                if not gd < 0:
                    stop = "the projected gradient is zero"
                    break
            t = 1.0 if pairs else 1.0 / np.sqrt(-gd)            # first step: unit length along -g
            found = _line_search(xp, evaluate, x, f, d, gd, t, lo, hi)
            if found is None:
                if pairs and not retried:                          # a stale history: forget it, once
                    pairs, gamma, retried = [], xp.asarray(1.0, dtype=xp.float64), True
                    continue
                stop = "the line search found no decrease"
                break
            retried = False
            x_new, f_new, g_new = found
            s, y = x_new - x, g_new - g
            sy, yy = _dot(xp, s, y), _dot(xp, y, y)
            ok = sy > 1e-10 * yy                                   # curvature, decided on the device
            rho = xp.where(ok, 1.0 / xp.where(ok, sy, 1.0), 0.0)
            gamma = xp.where(ok, sy / xp.where(ok, yy, 1.0), gamma)
            pairs = (pairs + [(s, y, rho)])[-history:]
            f_old, x, f, g = f, x_new, f_new, g_new
            state["it"] += 1
            state.update(x=x, loss=f, terms=dict(getattr(objective, "last_terms", {})))
            elapsed = time.perf_counter() - t0
            hist.append({"iteration": state["it"], "loss": f, **state["terms"], "seconds": elapsed})
            if callback is not None:
                _call(callback, state["it"], x.reshape(shape), f, state["terms"], elapsed)
            if ftol > 0 and (f_old - f) <= ftol * max(abs(f_old), abs(f), 1.0):
                stop = "the relative reduction of the loss is at most ftol"
                break
            if gtol > 0 and float(xp.abs(_keep_inside(xp, -g, x, lo, hi)).max()) <= gtol:
                stop = "the projected gradient is at most gtol"
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


def _line_search(xp, evaluate, x, f, d, gd, t, lo, hi):
    """Backtracking Armijo along clip(x + t d); a first trial that passes and is still steep grows
    (doubling) while the loss falls. Returns (x, f, g) of the accepted point, or None."""
    def at(step):
        xt = x + d.dtype.type(step) * d
        return xp.clip(xt, lo, hi) if lo is not None else xt

    for trial in range(MAX_TRIALS):
        x_t = at(t)
        f_t, g_t = evaluate(x_t)
        if f_t <= f + C1 * t * gd:
            break
        # the minimiser of the quadratic through f, the slope gd and f_t, kept within [0.1 t, 0.5 t]
        curve = f_t - f - gd * t
        t_q = -gd * t * t / (2 * curve) if curve > 0 else 0.5 * t
        t = min(max(t_q, 0.1 * t), 0.5 * t)
    else:
        return None
    if trial == 0:
        for _ in range(MAX_DOUBLINGS):
            if not float(_dot(xp, g_t, d)) < C2 * gd:  # Wolfe's curvature condition holds: long enough
                break
            x_2 = at(2 * t)
            f_2, g_2 = evaluate(x_2)
            if not f_2 < f_t:
                break
            t, x_t, f_t, g_t = 2 * t, x_2, f_2, g_2
    return x_t, f_t, g_t


class _CallbackError(Exception):
    """An exception raised by the user's callback, carried out of the loop."""


def _call(callback, it, x, loss, terms, elapsed):
    try:
        callback(it, x, loss, terms, elapsed)
    except (StopIteration, KeyboardInterrupt):
        raise
    except Exception as exc:  # e.g. an intermediate image that cannot be written
        raise _CallbackError(exc) from exc
