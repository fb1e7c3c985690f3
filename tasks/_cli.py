"""Command-line plumbing shared by the tasks: the common options, their checks, and ``main``.

A task module defines its own options on top of ``parser(...)`` and a ``run(**options)``
function; ``main`` parses, runs, and turns every expected failure into one line and an exit
code (2: bad input, 1: the run failed, 130: interrupted).
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from engine import backend
from engine.errors import UserError
from engine.vgg import ARCHS, DEFAULT_SIGMA, POOLING, check_layers

from . import _net

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
    net.add_argument("--arch", choices=tuple(ARCHS), default=None,
                     help="depth of the random VGG: vgg11, vgg13, vgg16 or vgg19 (default: vgg19, or what the "
                          "weights file says); layer names keep the convB_I scheme (--list-layers)")
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


# Keywords of run(**kwargs) with no command-line form: ``network``, a ready VGG19 object (e.g.
# built by tasks.experiments) used instead of the one --weights/--seed would make.
API_ONLY = {"network": None}


def options(ap: argparse.ArgumentParser, kwargs: dict) -> argparse.Namespace:
    """The CLI's defaults overridden by ``kwargs``: how ``run(**kwargs)`` gets its arguments."""
    known = {**defaults_of(ap), **API_ONLY}
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


def main(task: str, ap: argparse.ArgumentParser, run, argv=None) -> int:
    """Parse, run, and turn every expected failure into one line and an exit code."""
    try:
        a = ap.parse_args(argv)
    except SystemExit as exc:  # --help, or a malformed option (already reported in one line)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        if a.list_layers:
            validate(a)
            _net.list_layers(_net.make_net(argparse.Namespace(**{**vars(a), **API_ONLY}), {}, quiet=True), a.size)
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


def floats(spec, what):
    """"1,0.5" or a sequence -> [1.0, 0.5]; None stays None; a UserError names ``what``."""
    if spec is None:
        return None
    try:
        return [float(v) for v in str(spec).split(",")] if isinstance(spec, str) else [float(v) for v in spec]
    except (TypeError, ValueError):
        raise UserError(f"{what} must be comma-separated numbers, got {spec!r}") from None


def new_log(task: str, a) -> dict:
    args = {k: v for k, v in vars(a).items() if k not in API_ONLY}
    if getattr(a, "network", None) is not None:   # a given net is described, not serialised
        args["network"] = {"kind": a.network.meta.get("kind"), "arch": a.network.arch, "seed": a.network.meta.get("seed")}
    return {"task": task, "args": args}
