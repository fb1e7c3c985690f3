"""Coarse to fine (``--scales``): optimise at smaller sizes first, upsample, continue at --size.

A random net's Gram terms are met almost exactly at any size, but from white noise at full size
the optimiser spends its budget on pixel-level detail and leaves the large-scale arrangement
(what the deep layers of a trained net see) where the noise put it. Solved first at a coarse
size, where a receptive field covers more of the image, that arrangement is settled cheaply
(an iteration at half the size costs about a quarter), and the finer stages add the detail.

Each coarse stage is the task's own objective at that size (its targets recomputed from the
inputs read at that size, its Eq. 4 factors calibrated afresh), run for --scale-iters
iterations; its result, upsampled (Lanczos), is the next stage's start.
"""
from __future__ import annotations

import time

import numpy as np

from engine import backend
from engine.io import image
from engine.errors import UserError

from ..cli import signals
from ..cli.outputs import output_paths, save_outputs
from ..cli.console import say
from .runner import OPTIMIZERS, optimizer_name


def add_options(ap, default: str, default_iters: int, default_pyramid: int) -> None:
    g = ap.add_argument_group("multi-scale")
    g.add_argument("--pyramid", type=int, default=default_pyramid, metavar="K",
                   help="match the Gram matrices also on the image 2x2-averaged 1 .. K-1 times (an image "
                        f"pyramid: coarse structure as well as fine grain); 1: off (default: {default_pyramid})")
    g.add_argument("--scales", default=default, metavar="N1,N2,...|none",
                   help="optimise first at these smaller sizes (longer side, px, increasing), each result "
                        "upsampled to start the next, then at --size; 'half' is --size/2, 'halves' is "
                        "--size/2, /4, ... down to 64 px or less (256: 64,128), 'none' optimises only "
                        f"at --size (default: {default})")
    g.add_argument("--scale-iters", type=int, default=default_iters, metavar="N",
                   help=f"L-BFGS iterations at each coarse size (a stage also ends once its loss stops falling; default: {default_iters})")


HALVES_DOWN_TO = 64    # px: the coarsest stage of 'halves' (a 128 px synthesis's one stage)


def halves(size: int) -> list[int]:
    """The coarse sizes of --scales halves, increasing: size/2, size/4, ... halved until one is at
    most 64 px (128 px: [64]; 256 px: [64, 128]), none under 16 px."""
    out, n = [], size // 2
    while n >= 16:
        out.insert(0, n)
        if n <= HALVES_DOWN_TO:
            break
        n //= 2
    return out


def sizes(a, layers=()) -> list[int]:
    """The coarse sizes of --scales, checked (whole numbers, increasing, 16 <= N < --size),
    with --scale-iters and --pyramid."""
    for name in ("pyramid", "scale_iters"):
        v = getattr(a, name)
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a whole number >= 1, got {v!r}")
    spec = a.scales
    word = "" if spec is None else str(spec).strip().lower()
    if word in ("", "none"):
        return []
    if word == "half":
        out = [a.size // 2] if a.size // 2 >= 16 else []
    elif word == "halves":
        out = halves(a.size)
    else:
        try:
            out = [int(v) for v in str(spec).split(",")] if isinstance(spec, str) else [int(v) for v in spec]
        except (TypeError, ValueError):
            raise UserError(f"--scales must be comma-separated sizes in px (e.g. 64), 'half', 'halves' or 'none'; "
                            f"got {spec!r}") from None
    if any(n < 16 for n in out) or any(b <= c for c, b in zip(out, out[1:])) or (out and out[-1] >= a.size):
        raise UserError(f"--scales {spec}: give increasing sizes between 16 and --size ({a.size}) exclusive, "
                        f"e.g. --scales {max(16, a.size // 2)}")
    if out and any(l.startswith(("fc", "relu6", "relu7")) for l in layers):
        raise UserError("--scales cannot be used with fc layers (they need one fixed input size); use --scales none")
    return out


def coarse_to_fine(a, net, build, layers, log: dict):
    """Run the coarse stages. ``build(size, start)`` -> (Objective, x_start (1, 3, h, w)) for a
    stage at ``size``, starting from ``start`` ((H, W, 3) in [0, 255], or None: the task's own
    start). Returns the last coarse result (H, W, 3), or None when there are no coarse stages.

    Ctrl-C in a coarse stage saves its (upsampled) result as the output and raises
    ``Interrupted`` carrying the log, so the task can return it."""
    stages = sizes(a, layers)
    img = None
    log["scales"] = []
    lo, hi = (b.reshape(1, 3, 1, 1) for b in image.pixel_bounds(net.preprocessing))
    for size in stages:
        obj, x0 = build(size, img)
        t0 = time.perf_counter()
        obj.calibrate(x0)
        method, _ = OPTIMIZERS[optimizer_name(a)]
        res = method(obj, x0, (lo, hi), iters=a.scale_iters, history=a.history)
        img = image.deprocess(backend.to_host(res.x).astype(np.float32), net.preprocessing)
        log["scales"].append({"size": size, "shape": list(x0.shape[2:]), "iterations": res.iterations,
                              "evaluations": res.evaluations, "seconds": round(time.perf_counter() - t0, 3),
                              "final_loss": res.loss})
        if a.print_every:
            say(f"coarse stage {size} px: {res.iterations} iterations in {time.perf_counter() - t0:.1f} s, "
                f"loss {res.loss:.4e}")
        if res.interrupted or res.failed:
            raise Interrupted(_save_early(a, img, log, res))
    return img


class Interrupted(Exception):
    """A coarse stage ended early (Ctrl-C or a non-finite loss); ``args[0]`` is (img, log)."""


def start_from(img, shape, mode, periodic: bool = False) -> np.ndarray:
    """A coarse result (h, w, 3) upsampled to ``shape``'s (H, W), preprocessed: (1, 3, H, W).
    ``periodic``: the image is one period of a periodic one, and so is the result (upsampled
    wrapped around by PERIODIC_MARGIN px, then cut back: no seam where its edges meet)."""
    h, w = shape[2:]
    if not periodic:
        return image.preprocess(image.resize(img, h, w), mode)
    k = PERIODIC_MARGIN
    ih, iw = img.shape[:2]
    kh, kw = round(k * h / ih), round(k * w / iw)
    big = image.resize(np.pad(img, ((k, k), (k, k), (0, 0)), mode="wrap"), h + 2 * kh, w + 2 * kw)
    return image.preprocess(np.ascontiguousarray(big[kh:kh + h, kw:kw + w]), mode)


PERIODIC_MARGIN = 4  # px of a coarse periodic result wrapped around before upsampling (Lanczos reaches 3)


def _save_early(a, img, log, res):
    log["status"] = "interrupted" if res.interrupted else "failed"
    if res.interrupted:
        log["stop_reason"] = f"interrupted ({signals.stopped_by()})"
    say(f"\n{signals.stopped_by() if res.interrupted else 'error: ' + str(res.failed)} in a coarse stage: "
        "saving its result", err=True)
    out, log_path = output_paths(a)
    meta = {"task": log["task"], "args": log["args"], "coarse_stage": True}
    savers = [] if out is None else [("image", out, lambda: image.save_image(out, img, meta))]
    save_outputs(log, savers, log_path)
    return img, log
