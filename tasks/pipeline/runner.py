"""The optimisation run every task shares: calibrate, L-BFGS-B with progress, save, log.

A task builds an ``Objective`` and a starting image (a ``Setup``); ``optimize`` does the rest,
identically for invert, texture and style.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from engine import backend
from engine.io import image
from engine.errors import UserError
from engine.arch import DEFAULT_SIGMA
from engine.objectives import PIXELS, Objective
from engine.optim.device_lbfgs import lbfgs_device
from engine.optim import lbfgs
from engine.vgg import VGG19

from ..cli import plots, signals
from ..cli.console import Progress, duration, print_error, say
from ..cli.outputs import is_device, output_paths, save_outputs

# --optimizer: scipy's L-BFGS-B on the host, or the L-BFGS that stays on the device; "auto" (the
# default) takes the device L-BFGS on the CPU, where it reaches the same or a lower loss at a
# quarter of scipy's own cost per iteration (docs/performance.md), and scipy's on the GPU,
# until the GPU proof has shown the device L-BFGS there.
OPTIMIZERS = {"lbfgs": (lbfgs, "L-BFGS-B"), "lbfgs-device": (lbfgs_device, "L-BFGS on the device")}
AUTO = {"cpu": "lbfgs-device", "gpu": "lbfgs"}


def optimizer_name(a) -> str:
    """The optimiser ``a.optimizer`` names, "auto" resolved by the device."""
    name = getattr(a, "optimizer", "auto") or "auto"
    return AUTO[backend.resolve_device(a.device)] if name == "auto" else name


@dataclass
class Setup:
    """What a task hands to ``optimize``."""

    objective: Objective
    x_start: np.ndarray                     # (1, 3, H, W) preprocessed
    finish: object = None                   # finish(img_hwc, x, log) -> img_hwc: metrics, colours


def optimize(a, net: VGG19, setup: Setup, log: dict):
    """Calibrate, run L-BFGS-B with progress, save images and the log (where asked). Returns
    (img, log); ``log["status"]`` is "done", "interrupted" (Ctrl-C) or "failed" (NaN/inf)."""
    obj, x0 = setup.objective, setup.x_start
    mode = net.preprocessing
    check_signal(obj, a)
    out, log_path = output_paths(a)
    if a.save_every and out is None:
        raise UserError("save_every needs out=FILE: the frames are saved as OUT_iterN.png")
    if "memory_estimate_bytes" in log:  # checked by the task before any work (command.preflight)
        say(f"memory: about {log['memory_estimate_bytes'] / 2**20:.0f} MiB needed, "
            f"{backend.memory_available(net.device) / 2**30:.1f} GiB free on the {net.device}")
    t0 = time.perf_counter()
    factors = obj.calibrate(x0)
    log["weighting_factors"] = factors
    log["term_weights"] = {t.name: t.weight for t in obj.terms}
    say("weighting factors (Eq. 4): " + ", ".join(f"{k} {v:.3g}" for k, v in factors.items()))
    lo, hi = image.pixel_bounds(mode)
    lo, hi = lo.reshape(1, 3, 1, 1), hi.reshape(1, 3, 1, 1)
    meta = {"task": log["task"], "args": log["args"]}
    frames = []                                            # [(label, thumbnail)] for the sheet
    bar = Progress(a.iters, a.print_every, unit="iter")

    def progress(it, x, loss, terms, elapsed):
        bar.step(it, f"loss {loss:.3e}", _grouped(terms))
        if a.save_every and it % a.save_every == 0:
            x = backend.to_host(x).astype(np.float32)  # lbfgs-device hands over the device array
            frame = image.deprocess(x, mode)
            image.save_image(out.with_name(f"{out.stem}_iter{it}{out.suffix}"), frame, {**meta, "iteration": it})
            frames.append((f"iter {it}", plots.thumbnail(frame)))

    log["optimizer"] = optimizer_name(a)
    method, what = OPTIMIZERS[log["optimizer"]]
    say(f"optimising {x0.shape[2]}x{x0.shape[3]} px for {a.iters} iterations "
        f"({what}, history {a.history}, ending early only if the loss stops falling)")
    try:
        res = method(obj, x0, (lo, hi), iters=a.iters, history=a.history, callback=progress)
    finally:
        bar.close()
    x = res.x.astype(np.float32)
    img = image.deprocess(x, mode)
    log.update(iterations=res.iterations, evaluations=res.evaluations, seconds=round(time.perf_counter() - t0, 3),
               optimiser_seconds=round(res.seconds, 3), stop_reason=res.stop, final_loss=res.loss,
               final_terms=dict(obj.last_terms), losses=res.history, interrupted=res.interrupted, failed=res.failed)
    log["status"] = "done"
    if res.interrupted:
        log["status"] = "interrupted"
        log["stop_reason"] = f"interrupted ({signals.stopped_by()})"
        say(f"\n{signals.stopped_by()}: stopped after {res.iterations} iterations; saving what there is", err=True)
    elif res.failed:
        log["status"] = "failed"
        print_error(f"{res.failed}; keeping the last good image")
    if setup.finish is not None and not res.failed:
        try:
            img = setup.finish(img, x, log)
        except KeyboardInterrupt:
            log["status"] = "interrupted"
    say(f"{res.iterations} iterations, {res.evaluations} evaluations in {duration(res.seconds)} "
        f"({log['stop_reason']}); final loss {res.loss:.4e}")
    savers = [] if out is None else [("image", out, lambda: _save_outputs(out, img, meta, res, frames, log))]
    save_outputs(log, savers, log_path)
    return img, log


# Below this a target's features carry no signal in float32: a content loss (f - f0)^2 or a
# Gram loss (G - G0)^2 underflows, the gradient is 0 and the optimiser "converges" on its
# starting noise. A plain random VGG-19 at --sigma 0.015 has max |pool5| ~ 4e-5 at 32 px;
# at --sigma 1e-4, pool3 is ~ 5e-20 (python: VGG19.random(sigma=...).features).
SIGNAL_FLOOR = 1e-15


def check_signal(obj: Objective, a) -> None:
    """Refuse a run whose network cannot carry a gradient (a tiny --sigma, zero weights) or
    whose terms all weigh 0, before the optimisation starts."""
    if all(t.weight == 0 for t in obj.terms):
        raise UserError("every loss term has weight 0: nothing to optimise; give a weight > 0")
    for t in obj.terms:
        if t.kind == "tv" or t.target is None:
            continue
        if t.layer == PIXELS:  # pixel statistics need no network
            continue
        # content/gram: one array; moments: (mean, cov, scales); sliced Wasserstein: (sorted
        # projections, directions), whose directions are not the net's signal
        parts = (t.target[:2] if t.kind == "moments" else t.target[:1]) if isinstance(t.target, tuple) else (t.target,)
        arrays = [backend.to_host(p) for p in parts if p is not None]
        peak = max((float(np.max(np.abs(a))) for a in arrays if a.size), default=0.0)
        if not (np.isfinite(peak) and peak >= SIGNAL_FLOOR):
            raise UserError(
                f"the network's {'Gram matrix' if t.kind == 'gram' else 'features'} at {t.layer} "
                f"{'are' if t.kind != 'gram' else 'is'} {'not finite' if not np.isfinite(peak) else f'at most {peak:.1e}'}"
                f": too small to carry a gradient in float32 (the result would be the starting noise). "
                f"With a random net raise --sigma (now {a.sigma:g}; default {DEFAULT_SIGMA}) or pick a "
                f"shallower layer; with a weights file, check that its weights are not zero")


def _save_outputs(out, img, meta, res, frames, log) -> None:
    """The result, its loss plot and the frames' contact sheet; their paths go into the log."""
    files = log.setdefault("files", {})
    files["image"] = image.save_image(out, img, {**meta, "iterations": res.iterations, "final_loss": res.loss})
    if res.history and not is_device(out):
        title = f"{log['task']}: {out.name}"
        plotted = plots.loss_curve(plots.companion(out, "loss"), res.history, title)
        if plotted is not None:
            files["loss_plot"] = plotted
    if frames:
        if frames[-1][0] != f"iter {res.iterations}":  # the final image, unless just saved
            frames.append((f"final ({res.iterations})", plots.thumbnail(img)))
        files["frames"] = plots.contact_sheet(plots.companion(out, "frames"), frames)


def _grouped(terms: dict) -> str:
    """Per-term losses summed by kind, "content 1.2e+02  style 3.4e+01  tv 5.6e-01" (every
    statistic of the style or texture: Grams, moments, colour, spectrum, counted as "style"): a
    few values keep the progress line within 80 columns however many terms are matched."""
    if len(terms) < 2:
        return ""
    kinds = {}
    for name, value in terms.items():
        kind = name.split(":")[0]
        kind = kind if kind in ("content", "tv") else "style"
        kinds[kind] = kinds.get(kind, 0.0) + value
    return " ".join(f"{k} {v:.2e}" for k, v in kinds.items())
