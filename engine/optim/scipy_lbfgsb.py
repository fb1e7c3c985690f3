"""L-BFGS-B over the image: the one place where host and device meet (docs/method.md, section 5).

x lives on the host in float64 (scipy's choice). Each evaluation copies it to the device, where
the objective computes its loss and gradient in the net's dtype; only the scalar and the
gradient come back. Tolerances are 0 by default, so the iteration budget decides when to stop:
scipy's tests are effectively absolute when |f| < 1, and raw random-net losses can be 1e-10.

Failure keeps what was won: Ctrl-C, a NaN/inf in a loss or gradient, or an exception in a
callback end the run with the last good iterate in the result, never a lost image.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, minimize

from .. import backend
from ..parallel import single_threaded_blas
from ..errors import UserError


class NonFiniteError(FloatingPointError):
    """A loss or gradient was NaN or inf."""


class _CallbackError(Exception):
    """An exception raised by the user's callback, carried out of scipy."""


@dataclass
class Result:
    x: np.ndarray                     # best iterate, (N, 3, H, W) float64, host
    loss: float
    iterations: int
    evaluations: int
    seconds: float
    stop: str                         # why it stopped, in words
    interrupted: bool = False         # Ctrl-C
    failed: str | None = None         # a non-finite loss/gradient, say
    history: list = field(default_factory=list)  # per iteration: {"iteration", "loss", terms..., "seconds"}


def lbfgs(objective, x0, bounds=None, iters: int = 500, history: int = 10,
          ftol: float = 0.0, gtol: float = 0.0, callback=None) -> Result:
    """Minimise ``objective.value_and_grad`` from ``x0`` (N, 3, H, W) with scipy's L-BFGS-B.

    bounds: (lower, upper), each broadcastable to x0 (pixel range), or None.
    callback(it, x, loss, terms, elapsed): called after every iteration on the host; it may
    raise StopIteration to end the run early.
    """
    for name, v in (("iters", iters), ("history", history)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise UserError(f"{name} must be a whole number >= 1, got {v!r}")
    shape = x0.shape
    x_flat = np.asarray(x0, np.float64).ravel().copy()
    state = {"x": x_flat.copy(), "loss": np.inf, "evals": 0, "it": 0}
    last = {}
    t0 = time.perf_counter()
    hist = []

    def fun(flat):
        value, grad = objective.value_and_grad(flat.reshape(shape))
        grad = backend.to_host(grad).astype(np.float64).ravel()   # the one device -> host copy
        state["evals"] += 1
        if not (np.isfinite(value) and np.all(np.isfinite(grad))):
            raise NonFiniteError(f"the loss or its gradient became {'NaN' if np.isnan(value) else 'non-finite'} "
                                 f"at evaluation {state['evals']}")
        last.update(x=flat.copy(), loss=value, terms=dict(getattr(objective, "last_terms", {})))
        return value, grad

    def on_iteration(intermediate_result):
        state["it"] += 1
        xk, fk = intermediate_result.x, float(intermediate_result.fun)
        state["x"], state["loss"] = xk.copy(), fk
        terms = last.get("terms", {}) if last.get("loss") == fk else {}
        elapsed = time.perf_counter() - t0
        hist.append({"iteration": state["it"], "loss": fk, **terms, "seconds": elapsed})
        if callback is not None:
            try:
                callback(state["it"], xk.reshape(shape), fk, terms, elapsed)
            except (StopIteration, KeyboardInterrupt):
                raise
            except Exception as exc:  # e.g. an intermediate image that cannot be written
                raise _CallbackError(exc) from exc

    lower, upper = (None, None) if bounds is None else bounds
    scipy_bounds = None
    if bounds is not None:
        lo = np.broadcast_to(np.asarray(lower, np.float64), shape).ravel()
        hi = np.broadcast_to(np.asarray(upper, np.float64), shape).ravel()
        scipy_bounds = Bounds(lo, hi)
        np.clip(x_flat, lo, hi, out=x_flat)
        state["x"] = x_flat.copy()

    interrupted, failed, stop = False, None, ""
    single_threaded_blas()  # scipy's OpenBLAS too: its threaded dot products round per thread count
    try:
        res = minimize(fun, x_flat, jac=True, method="L-BFGS-B", bounds=scipy_bounds, callback=on_iteration,
                       options={"maxiter": iters, "maxfun": max(15000, 20 * iters), "maxcor": history,
                                "ftol": ftol, "gtol": gtol})
        stop = str(res.message)
        if np.isfinite(res.fun) and (res.fun <= state["loss"] or state["it"] == 0):
            state["x"], state["loss"] = res.x.copy(), float(res.fun)
    except KeyboardInterrupt:
        interrupted, stop = True, "interrupted"
    except StopIteration as exc:
        stop = str(exc) or "stopped by the callback"
    except NonFiniteError as exc:
        failed, stop = str(exc), str(exc)
    except _CallbackError as exc:
        cause = exc.__cause__
        failed = stop = f"stopped by an error in the progress callback: {cause}"
    if not np.isfinite(state["loss"]) and last.get("x") is not None and failed is None:
        state["x"], state["loss"] = last["x"], last["loss"]
    return Result(state["x"].reshape(shape), float(state["loss"]), state["it"], state["evals"],
                  time.perf_counter() - t0, stop, interrupted, failed, hist)

