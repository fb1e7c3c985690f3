"""The optimisation run every task shares: calibrate, L-BFGS-B with progress, save, log.

A task builds an ``Objective`` and a starting image (a ``Setup``); ``optimize`` does the rest,
identically for invert, texture and style.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np

from engine import backend, image
from engine.objectives import Objective
from engine.lbfgs_device import lbfgs_device
from engine.optim import lbfgs
from engine.vgg import VGG19

from ._files import output_paths, save_outputs

# --optimizer: scipy's L-BFGS-B on the host (the default), or the L-BFGS that stays on the device
OPTIMIZERS = {"lbfgs": (lbfgs, "L-BFGS-B"), "lbfgs-device": (lbfgs_device, "L-BFGS on the device")}


@dataclass
class Setup:
    """What a task hands to ``optimize``."""

    objective: Objective
    x_start: np.ndarray                     # (1, 3, H, W) preprocessed
    finish: object = None                   # finish(img_hwc, x, log) -> img_hwc: metrics, colours


def optimize(a, net: VGG19, setup: Setup, log: dict):
    """Calibrate, run L-BFGS-B with progress, save images and the log. Returns (img, log);
    ``log["status"]`` is "done", "interrupted" (Ctrl-C) or "failed" (NaN/inf)."""
    obj, x0 = setup.objective, setup.x_start
    mode = net.preprocessing
    out, log_path = output_paths(a)
    if "memory_estimate_bytes" in log:  # checked by the task before any work (_cli.preflight)
        print(f"memory: about {log['memory_estimate_bytes'] / 2**20:.0f} MiB needed, "
              f"{backend.memory_available(net.device) / 2**30:.1f} GiB free on the {net.device}")
    t0 = time.perf_counter()
    factors = obj.calibrate(x0)
    log["weighting_factors"] = factors
    log["term_weights"] = {t.name: t.weight for t in obj.terms}
    print("weighting factors (Eq. 4): " + ", ".join(f"{k} {v:.3g}" for k, v in factors.items()))
    lo, hi = image.pixel_bounds(mode)
    lo, hi = lo.reshape(1, 3, 1, 1), hi.reshape(1, 3, 1, 1)
    meta = {"task": log["task"], "args": log["args"]}

    def progress(it, x, loss, terms, elapsed):
        if a.print_every and (it % a.print_every == 0 or it == a.iters):
            per = elapsed / it
            parts = "  ".join(f"{k} {v:.3e}" for k, v in terms.items()) if len(terms) > 1 else ""
            print(f"iter {it:5d}/{a.iters}  loss {loss:.4e}  {parts}  {per:.2f} s/it  "
                  f"ETA {_duration(per * (a.iters - it))}", flush=True)
        if a.save_every and it % a.save_every == 0:
            path = out.with_name(f"{out.stem}_iter{it}{out.suffix or '.png'}")
            x = backend.to_host(x).astype(np.float32)  # lbfgs-device hands over the device array
            image.save_png(path, image.deprocess(x, mode), {**meta, "iteration": it})

    method, what = OPTIMIZERS[getattr(a, "optimizer", "lbfgs")]
    print(f"optimising {x0.shape[2]}x{x0.shape[3]} px for {a.iters} iterations "
          f"({what}, history {a.history}, tolerances off)")
    res = method(obj, x0, (lo, hi), iters=a.iters, history=a.history, callback=progress)
    x = res.x.astype(np.float32)
    img = image.deprocess(x, mode)
    log.update(iterations=res.iterations, evaluations=res.evaluations, seconds=round(time.perf_counter() - t0, 3),
               optimiser_seconds=round(res.seconds, 3), stop_reason=res.stop, final_loss=res.loss,
               final_terms=dict(obj.last_terms), losses=res.history, interrupted=res.interrupted, failed=res.failed)
    log["status"] = "done"
    if res.interrupted:
        log["status"] = "interrupted"
        print(f"\ninterrupted after {res.iterations} iterations: saving what there is", file=sys.stderr)
    elif res.failed:
        log["status"] = "failed"
        print(f"error: {res.failed}; keeping the last good image", file=sys.stderr)
    if setup.finish is not None and not res.failed:
        try:
            img = setup.finish(img, x, log)
        except KeyboardInterrupt:
            log["status"] = "interrupted"
    print(f"{res.iterations} iterations, {res.evaluations} evaluations in {_duration(res.seconds)} "
          f"({res.stop}); final loss {res.loss:.4e}")
    save_outputs(log, [("image", out, lambda: image.save_png(out, img, {**meta, "iterations": res.iterations,
                                                                         "final_loss": res.loss}))], log_path)
    return img, log


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
