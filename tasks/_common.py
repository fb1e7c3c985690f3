"""What the three tasks share: options, input checks, the network, the run loop, the log.

A task module defines its own options and a ``build(args, net, log) -> Setup`` step; everything
else (parsing, errors, memory check, progress, intermediate and final images, Ctrl-C, the JSON
log) happens here, identically for invert, texture and style.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import backend, image
from engine.errors import UserError
from engine.objectives import Objective
from engine.optim import lbfgs
from engine.vgg import DEFAULT_SIGMA, LAYER_NAMES, POOLING, VGG19, check_layers

EXIT_ERROR, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(EXIT_ERROR, f"error: {message} (see {self.prog} --help)\n")


def parser(prog: str, doc: str, defaults: dict) -> argparse.ArgumentParser:
    """The shared options; ``defaults`` holds the task's own (size, iters, init, out)."""
    first, _, rest = doc.strip().partition("\n\n")
    ap = _Parser(prog=f"python -m tasks.{prog}", description=first, epilog=rest,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    net = ap.add_argument_group("network")
    net.add_argument("--device", default="auto", choices=backend.DEVICES,
                     help="cpu, gpu, or auto: the GPU when CuPy sees one (default: auto)")
    net.add_argument("--seed", type=int, default=0, help="seed of the random weights and the starting noise (default: 0)")
    net.add_argument("--sigma", type=float, default=DEFAULT_SIGMA,
                     help=f"standard deviation of the random weights (default: {DEFAULT_SIGMA})")
    net.add_argument("--pooling", choices=POOLING, default=None, help="2x2 average or max pooling (default: avg, "
                     "or what the weights file says)")
    net.add_argument("--weights", metavar="FILE.npz", help="a saved or trained VGG-19 instead of a fresh random one")
    net.add_argument("--list-layers", action="store_true", help="print the layer names and shapes at --size, and exit")
    opt = ap.add_argument_group("optimisation (L-BFGS-B)")
    opt.add_argument("--size", type=int, default=defaults["size"],
                     help=f"scale images so the longer side is N px (default: {defaults['size']})")
    opt.add_argument("--iters", type=int, default=defaults["iters"],
                     help=f"L-BFGS-B iterations (default: {defaults['iters']})")
    opt.add_argument("--history", type=int, default=10, help="L-BFGS memory, in steps (default: 10)")
    opt.add_argument("--init", default=defaults["init"], metavar="noise|content|FILE",
                     help=f"starting image: seeded white noise, the content/target image, or a file "
                          f"(default: {defaults['init']})")
    out = ap.add_argument_group("output")
    out.add_argument("--out", default=defaults["out"], metavar="FILE.png", help=f"result (default: {defaults['out']})")
    out.add_argument("--save-every", type=int, default=0, metavar="N",
                     help="also save the image every N iterations as OUT_iterN.png (default: 0, never)")
    out.add_argument("--print-every", type=int, default=10, metavar="N",
                     help="print progress every N iterations (default: 10; 0: only the summary)")
    out.add_argument("--log", metavar="FILE.json", help="write the run's log as JSON (default: OUT with .json)")
    return ap


def defaults_of(ap: argparse.ArgumentParser) -> dict:
    return {a.dest: a.default for a in ap._actions if a.dest != "help"}


def options(ap: argparse.ArgumentParser, kwargs: dict) -> argparse.Namespace:
    """The CLI's defaults overridden by ``kwargs``: how ``run(**kwargs)`` gets its arguments."""
    known = defaults_of(ap)
    unknown = set(kwargs) - set(known)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}; valid: {', '.join(sorted(known))}")
    return argparse.Namespace(**{**known, **kwargs})


def validate(a) -> None:
    """Nonsense numbers are a UserError, before anything is computed."""
    for name, low in (("size", 1), ("iters", 1), ("history", 1)):
        v = getattr(a, name)
        if not isinstance(v, (int, np.integer)) or v < low:
            raise UserError(f"--{name} must be a whole number >= {low}, got {v!r}")
    for name in ("save_every", "print_every"):
        v = getattr(a, name)
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise UserError(f"--{name.replace('_', '-')} must be a whole number >= 0, got {v!r}")
    if a.size < 16:
        raise UserError(f"--size {a.size} is too small: use at least 16 px (32 for pool5)")
    if not (isinstance(a.sigma, (int, float)) and math.isfinite(a.sigma) and a.sigma > 0):
        raise UserError(f"--sigma must be a positive number, got {a.sigma!r}")


def output_paths(a) -> tuple[Path, Path]:
    """(--out, --log or OUT.json), both checked writable before any work is done."""
    out = Path(a.out)
    log_path = Path(a.log) if a.log else out.with_suffix(".json")
    check_writable(out, "--out")
    check_writable(log_path, "--log")
    return out, log_path


def check_writable(path: Path, what: str) -> None:
    """Fail before the run, not after it, when a result could not be saved."""
    if path.is_dir():
        raise UserError(f"{what} {str(path)!r} is a directory; give a file name, e.g. {path / 'result.png'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.writable"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write {what} {str(path)!r} ({exc.strerror or exc}); choose another path") from None


# ----------------------------------------------------------------------------- inputs

def image_path(spec) -> Path:
    """A file path, or the name of a shipped sample image (astronaut, coffee, brick, ...)."""
    p = Path(spec)
    if p.exists() or p.suffix or os.sep in str(spec):
        return p
    if str(spec) in image.SAMPLES:
        return image.sample_path(str(spec))
    raise UserError(f"{spec}: no such file, and not a sample image name "
                    f"({', '.join(image.SAMPLES)}); check the path")


def read(spec, size: int) -> np.ndarray:
    """(H, W, 3) float32 in [0, 255], longer side ``size``."""
    return image.load_image(image_path(spec), size=size)


def fit_for_fc(img: np.ndarray, layers, net: VGG19, size: int, log: dict) -> np.ndarray:
    """fc layers need exactly the fc input size: resize + centre-crop, said in the log, if
    ``--size`` asks for that side; otherwise a clear error."""
    if not any(l.startswith(("fc", "relu6", "relu7")) for l in layers):
        return img
    side = net.fc_input_side()
    if img.shape[:2] == (side, side):
        return img
    if size != side:
        raise UserError(f"fc layers need a {side}x{side} input, but --size {size} gives "
                        f"{img.shape[1]}x{img.shape[0]}; use --size {side} (the image is resized and centre-cropped)")
    img, note = image.center_crop_resize(img, side)
    log.setdefault("notes", []).append(note)
    print(note)
    return img


def make_net(a, log: dict) -> VGG19:
    device = backend.resolve_device(a.device)
    if a.weights:
        net = VGG19.load(a.weights, device=device, pooling=a.pooling)
        what = f"weights from {a.weights} ({net.meta.get('kind', 'unknown kind')})"
    else:
        net = VGG19.random(seed=a.seed, sigma=a.sigma, pooling=a.pooling or "avg", device=device)
        what = f"random weights N(0, {a.sigma}^2), seed {a.seed}, zero biases"
    chosen = "" if a.device != "auto" else " (auto: " + (backend.gpu_unavailable_reason() or "CUDA device found") + ")"
    print(f"device: {net.device}{chosen}; {what}; {net.pooling} pooling")
    log.update(device=net.device, seed=a.seed, network={"weights": a.weights, "pooling": net.pooling,
                                                          "sigma": net.meta.get("sigma"),
                                                          "preprocessing": net.preprocessing})
    return net


def start_image(a, shape, content=None, mode="caffe") -> np.ndarray:
    """The starting point (1, 3, H, W), preprocessed: white noise, the content image, or a file."""
    h, w = shape[2:]
    if a.init == "noise":
        noise = np.random.default_rng(a.seed).uniform(0, 255, (h, w, 3)).astype(np.float32)
        return image.preprocess(noise, mode)
    if a.init == "content":
        if content is None:
            raise UserError("--init content needs a content image")
        return content.copy()
    img = image.load_image(image_path(a.init))
    if img.shape[:2] != (h, w):
        img = image.resize(img, h, w)
    return image.preprocess(img, mode)


def list_layers(net: VGG19, size: int) -> None:
    x = np.zeros((1, 3, size, size), np.float32)
    top = [n for n in LAYER_NAMES if not n.startswith(("fc", "relu6", "relu7"))]
    shapes = {k: v.shape for k, v in net.features(x, top).items()} if size >= 32 else {}
    for name in LAYER_NAMES:
        s = shapes.get(name)
        side = net.fc_input_side()
        desc = f"{s[1]} x {s[2]} x {s[3]}" if s else (f"needs a {side}x{side} input" if name not in top else "")
        print(f"{name:8s} {desc}")


def check_memory(net: VGG19, shape, layers) -> int:
    """Stop before a run that cannot fit, saying what size would."""
    need = net.memory_estimate(shape, layers)
    have = backend.memory_available(net.device)
    if need > have:
        h, w = shape[2:]
        side = max(h, w)
        while side > 16 and net.memory_estimate((1, 3, h * side // max(h, w), w * side // max(h, w)), layers) > have:
            side = int(side * 0.9)
        where = "GPU memory" if net.device == "gpu" else "RAM"
        raise UserError(f"this run needs about {need / 2**30:.1f} GiB but only {have / 2**30:.1f} GiB of {where} "
                        f"is free; use --size {side} or smaller")
    return need


# ----------------------------------------------------------------------------- the run

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
    need = check_memory(net, x0.shape, obj.layers or ["conv1_1"])
    log["memory_estimate_bytes"] = need
    print(f"memory: about {need / 2**20:.0f} MiB needed, "
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
            image.save_png(path, image.deprocess(x.astype(np.float32), mode), {**meta, "iteration": it})

    print(f"optimising {x0.shape[2]}x{x0.shape[3]} px for {a.iters} iterations "
          f"(L-BFGS-B, history {a.history}, tolerances off)")
    res = lbfgs(obj, x0, (lo, hi), iters=a.iters, history=a.history, callback=progress)
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
    saved = image.save_png(out, img, {**meta, "iterations": res.iterations, "final_loss": res.loss})
    write_log(log_path, log)
    print(f"{res.iterations} iterations, {res.evaluations} evaluations in {_duration(res.seconds)} "
          f"({res.stop}); final loss {res.loss:.4e}")
    print(f"saved {saved} and {log_path}")
    return img, log


def write_log(path: Path, log: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(log, indent=1, default=_json_default))
    tmp.replace(path)


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v)}")


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def new_log(task: str, a) -> dict:
    return {"task": task, "args": {k: v for k, v in vars(a).items()}}


def main(task: str, ap: argparse.ArgumentParser, run, argv=None) -> int:
    """Parse, run, and turn every expected failure into one line and an exit code."""
    try:
        a = ap.parse_args(argv)
    except SystemExit as exc:  # --help, or a malformed option (already reported in one line)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        if a.list_layers:
            validate(a)
            list_layers(VGG19.random(seed=a.seed, device=a.device) if not a.weights
                        else VGG19.load(a.weights, device=a.device), a.size)
            return 0
        _, log = run(**vars(a))
        return {"done": 0, "interrupted": EXIT_INTERRUPTED, "failed": EXIT_FAILED}[log["status"]]
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted before the optimisation started: nothing to save", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FloatingPointError as exc:  # the weighting pre-process met NaN/inf: nothing to keep yet
        print(f"error: {exc}; check the weights file and the input image", file=sys.stderr)
        return EXIT_FAILED
    except MemoryError:
        print("error: out of memory; try a smaller --size", file=sys.stderr)
        return EXIT_ERROR


def layer_list(spec) -> list[str]:
    layers = [s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec)
    return check_layers(layers)
