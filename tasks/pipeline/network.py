"""The network a task runs on, its layer listing, and the memory check made before a run."""
from __future__ import annotations

import argparse
import numbers
import zipfile
from pathlib import Path

import numpy as np

from engine import backend, memory, recipes
from engine.errors import UserError
from engine.arch import DEFAULT_ARCH, DEFAULT_INIT, map_shape
from engine.objectives import MAX_BANK_MAPS, check_shifts, shift_steps
from engine.vgg import VGG19

from ..cli.console import say
from . import inputs, runner

MIN_SIZE = 16


NETS = ("ranvgg", "random")


def net_choice(a) -> str:
    """--net (default ranvgg), with --weights FILE as another way to say --net FILE."""
    net, weights = getattr(a, "net", None), getattr(a, "weights", None)
    if net and weights and net != weights:
        raise UserError(f"--net {net} and --weights {weights}: give one of them")
    return net or weights or "ranvgg"


def make_net(a, log: dict, quiet: bool = False) -> VGG19:
    """The network of ``a.network`` (a net handed over, API only), --net / --weights and --arch
    on --device, said in one line (unless ``quiet``) and recorded in the log."""
    device = backend.resolve_device(a.device)
    arch = getattr(a, "arch", None) or DEFAULT_ARCH
    choice = net_choice(a)
    init = getattr(a, "weight_init", None) or DEFAULT_INIT
    if init != DEFAULT_INIT and (getattr(a, "network", None) is not None or choice != "random"):
        raise UserError(f"--weight-init {init} draws a plain random net: add --net random (ranVGG's recipes "
                        "choose among gaussian draws; a weights file has its own)")
    if getattr(a, "network", None) is not None:
        net = a.network
        choice = "given"
        what = f"a given network ({net.meta.get('kind', 'unknown kind')}, {net.arch})"
    elif choice == "random" or (choice == "ranvgg" and arch != DEFAULT_ARCH and not getattr(a, "net", None)):
        net = VGG19.random(seed=a.seed, sigma=a.sigma, pooling=a.pooling or "avg", device=device, arch=arch, init=init)
        what = (f"plain random {arch} weights N(0, {a.sigma}^2)" if init == DEFAULT_INIT
                else f"plain random {arch} weights, {init} init (sigma {a.sigma})") + f", seed {a.seed}, zero biases"
        if choice == "ranvgg":
            what += " (ranVGG recipes are VGG-19's: --arch picks a plain random net)"
            choice = "random"
    elif choice == "ranvgg":
        if arch != DEFAULT_ARCH:
            raise UserError(f"--net ranvgg: the ranVGG recipes are VGG-19's; with --arch {arch} use --net random")
        net = recipes.ranvgg(seed=a.seed, sigma=a.sigma, pooling=a.pooling or "avg", device=device)
        what = f"ranVGG seed {a.seed} (stacked, {_recipe_summary(net)}), sigma {a.sigma}"
    elif recipes.is_recipe_file(choice):
        net = recipes.to_net(recipes.load(choice), pooling=a.pooling, device=device, where=choice)
        what = f"ranVGG from the recipe {choice} (seed {net.meta['seed']}, {_recipe_summary(net)})"
    elif choice.lower().endswith(".npz") or Path(choice).exists():
        net = VGG19.load(choice, device=device, pooling=a.pooling)
        if getattr(a, "arch", None) and a.arch != net.arch:
            raise UserError(f"--arch {a.arch}: {choice} holds a {net.arch}; drop --arch or use --arch {net.arch}")
        what = f"weights from {choice} ({net.meta.get('kind', 'unknown kind')})"
    else:
        raise UserError(f"--net {choice!r}: use ranvgg, random, a recipe (.json) or a weights file (.npz)")
    built = net.meta.get("recipe", {}).get("pooling_built")
    if built and built != net.pooling:
        what += f"; note: its layers were chosen with {built} pooling"
    tf32 = bool(getattr(a, "tf32", False))
    if net.device == "gpu":
        backend.set_tf32(tf32)                       # also switches it off after a --tf32 run
    elif tf32 and not quiet:
        say("--tf32: no effect on the CPU (its float32 GEMMs are full precision)")
    chosen = "" if a.device != "auto" else " (auto: " + (backend.gpu_unavailable_reason() or "CUDA device found") + ")"
    if not quiet:
        say(f"device: {net.device}{chosen}; {what}; {net.pooling} pooling")
    log.update(device=net.device, tf32=tf32 and net.device == "gpu", seed=a.seed, network={
        "net": choice if choice in (*NETS, "given") else "file",
        "weights": None if choice in (*NETS, "given") else choice, "arch": net.arch,
        "pooling": net.pooling, "sigma": net.meta.get("sigma"),
        "init": net.meta.get("init", DEFAULT_INIT) if choice in NETS else None, "preprocessing": net.preprocessing,
        "recipe": net.meta.get("recipe")})
    return net


ENSEMBLE = 1


def add_ensemble_option(g, what: str, advice: str = "") -> None:
    """--ensemble K on an argument group; ``what``: the terms that are counted once; ``advice``: a
    sentence on when it pays, appended to the help."""
    g.add_argument("--ensemble", type=int, default=ENSEMBLE, metavar="K",
                   help="match the statistics in K independently drawn nets (seeds --seed .. --seed + K - 1; "
                        f"the sum of each net's terms, {what} once); about K times the cost (default: {ENSEMBLE})"
                        + (f". {advice}" if advice else ""))


def check_ensemble(a) -> None:
    if isinstance(a.ensemble, bool) or not isinstance(a.ensemble, numbers.Integral) or a.ensemble < 1:
        raise UserError(f"--ensemble must be a whole number >= 1 (nets), got {a.ensemble!r}")


def add_ensemble_layers_option(g, option: str, advice: str = "") -> None:
    """--ensemble-layers on an argument group; ``option``: the option naming the command's layers."""
    g.add_argument("--ensemble-layers", default=None, metavar="LAYERS",
                   help=f"with --ensemble K: the other nets' terms at these layers only (comma-separated, of "
                        f"{option}; default: all of {option}); a net runs only as deep as its layers"
                        + (f". {advice}" if advice else ""))


def ensemble_layers(count: int, chosen, layers, weights, option: str):
    """(layers, weights) of the other nets of an ensemble of ``count``: ``chosen`` (--ensemble-layers,
    parsed; a UserError names a layer outside ``layers``, the command's ``option``, or the option
    without a second net), or all of ``layers`` for None."""
    if chosen is None:
        return list(layers), weights
    if count < 2:
        raise UserError("--ensemble-layers chooses the other nets' layers: give --ensemble 2 or more with it")
    outside = [l for l in chosen if l not in layers]
    if outside:
        raise UserError(f"--ensemble-layers {', '.join(outside)}: not in {option} ({', '.join(layers)}); "
                        "choose among those")
    return list(chosen), None if weights is None else [weights[list(layers).index(l)] for l in chosen]


def ensemble_stage(chosen, kept, sizes, shifts, last: bool):
    """(layers, shifts) of the other nets at a stage: those of ``chosen`` the first net keeps
    there (``kept``: the layer rule may leave some out), and the distances of ``shifts`` they take
    at ``sizes``. None chosen is kept: a UserError at the last stage, ``([], ())`` at a coarse one
    (the other nets sit that stage out)."""
    layers = [l for l in chosen if l in kept]
    if not layers:
        if last:
            raise UserError(f"--ensemble-layers {', '.join(chosen)}: fewer positions than channels at this size, "
                            "so they are left out; choose shallower layers")
        return [], ()
    taken = shift_steps(layers, sizes, shifts) if shifts else {}
    return layers, tuple(sorted({d for took in taken.values() for d, _ in took}))


def add_filter_bank_option(g, extent: str) -> None:
    """--filter-bank N on an argument group; ``extent``: what the filter sizes stop at."""
    g.add_argument("--filter-bank", type=int, default=0, metavar="N",
                   help=f"add a layer of N random filters per size (3 px up to {extent}: 3, 5, 7, 11, 15, 23, 37, "
                        "55), ReLU, one Gram term per size, beside the net's layers (FFT convolution); 0: off "
                        "(default: 0)")


def add_interior_option(g, images: str, default: bool) -> None:
    """--interior / --no-interior on an argument group; ``images``: whose statistics it restricts."""
    g.add_argument("--interior", action=argparse.BooleanOptionalAction, default=default,
                   help=f"take {images} statistics only at the positions of each layer that see none of the "
                        "convs' zero padding, so that a border (a dark edge, say) is not matched as \"dark next to "
                        f"the border\" (default: {'on' if default else 'off'})")


def add_project_option(g, what: str) -> None:
    """--project K on an argument group; ``what``: whose statistics it projects."""
    g.add_argument("--project", type=int, default=0, metavar="K",
                   help=f"take {what} statistics of K random projections of each layer's channels where it has "
                        "more (a fixed random subspace per layer): fewer numbers to match, so a deep layer with "
                        "fewer positions than channels (relu4_1 at 128 px) no longer pins the layout and is kept; "
                        "0: off (default: 0)")


def add_spectrum_option(g, what: str, default: float, use: str = "") -> None:
    """--spectrum-weight W on an argument group; ``what``: whose spectrum the term holds."""
    g.add_argument("--spectrum-weight", type=float, default=default, metavar="W",
                   help=f"add a term holding the magnitude of each colour channel's Fourier transform to {what}"
                        f", resampled to the output's size (the phase is free), weighted W like one layer{use}. "
                        f"0: off (default: {default:g})")


def add_shifts_option(g, what: str, default: str | None = None, why: str = "") -> None:
    """--shifts PX,... on an argument group; ``what``: whose correlations the terms hold; ``why``:
    a word on the default."""
    g.add_argument("--shifts", default=default, metavar="PX,...|none",
                   help="also match each kept layer's maps correlated with themselves moved PX px across and PX "
                        f"px down, to {what} (the arrangement of the texture's parts beyond one position's "
                        "window; Berger & Memisevic 2017). A layer takes the distances its stride divides, up to "
                        "half its map's side; a coarse stage scales them with its size; none: off "
                        f"(default: {default or 'none'}{why})")


def shifts(a, size: int | None = None, layers=(), sizes=()) -> tuple:
    """--shifts as whole px (a UserError names a bad one), scaled to a stage of longer side ``size``
    (of --size's): a coarse stage sees the texture smaller, so the same structure lies nearer.
    With ``layers`` and ``sizes`` (the (h, w) of the output and the exemplars at that stage): only
    the distances one of the layers takes (``engine.objectives.shift_steps``); at the last stage a
    distance none takes is a UserError, at a coarse one it is left out."""
    spec = a.shifts
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none")) or spec == ():
        return ()
    try:
        px = [float(v) for v in spec.split(",")] if isinstance(spec, str) else [float(v) for v in spec]
        if not all(np.isfinite(v) and v == int(v) for v in px):
            raise ValueError
        px = check_shifts([int(v) for v in px])
    except (TypeError, ValueError, UserError):
        raise UserError(f"--shifts must be comma-separated whole numbers of px >= 1 (e.g. 4,8), got {spec!r}") from None
    last = size is None or size == a.size
    if not last:
        px = tuple(sorted({d for d in (round(v * size / a.size) for v in px) if d >= 1}))
    if not layers:
        return px
    steps = shift_steps(layers, sizes, px)
    taken = {d for took in steps.values() for d, _ in took}
    if last and len(taken) < len(px):
        h, w = sizes[0]
        raise UserError(f"--shifts {','.join(str(d) for d in px if d not in taken)}: no layer of {', '.join(layers)} "
                        f"takes that distance at {w}x{h} px (a layer takes the multiples of its stride up to half "
                        "its map's side); use shorter shifts or a larger size")
    return tuple(d for d in px if d in taken)


def check_spectrum(a) -> None:
    w = a.spectrum_weight
    if isinstance(w, bool) or not isinstance(w, numbers.Real) or not (np.isfinite(w) and w >= 0):
        raise UserError(f"--spectrum-weight must be a number >= 0 (0: off), got {w!r}")


def check_project(a) -> None:
    if isinstance(a.project, bool) or not isinstance(a.project, numbers.Integral) or a.project < 0:
        raise UserError(f"--project must be a whole number >= 0 (projections per layer; 0: off), got {a.project!r}")


def check_filter_bank(a) -> None:
    if (isinstance(a.filter_bank, bool) or not isinstance(a.filter_bank, numbers.Integral)
            or not 0 <= a.filter_bank <= MAX_BANK_MAPS):
        raise UserError(f"--filter-bank must be a whole number from 0 to {MAX_BANK_MAPS} (maps per filter size; "
                        f"VGG-19's widest layer has 512), got {a.filter_bank!r}")


def ensemble(a, log: dict, layers=None) -> list[VGG19]:
    """The other nets of --ensemble (none for 1), logged and said; ``layers``: their
    --ensemble-layers, when given."""
    others = ensemble_nets(a, a.ensemble)
    if others:
        log["ensemble_seeds"] = [a.seed + k for k in range(a.ensemble)]
        say(f"ensemble: {a.ensemble} nets, seeds {a.seed} .. {a.seed + a.ensemble - 1}")
    if others and layers is not None:
        log["ensemble_layers"] = list(layers)
        say(f"ensemble: the other nets' terms at {', '.join(layers)}")
    return others


def ensemble_nets(a, count: int) -> list[VGG19]:
    """The ``count - 1`` nets beside the first of an ensemble (--ensemble): the same --net
    (ranvgg or random, with its --sigma, --weight-init, --pooling, --arch), seeds --seed + 1 ..
    --seed + count - 1."""
    if count > 1 and (getattr(a, "network", None) is not None or net_choice(a) not in NETS):
        raise UserError(f"--ensemble {count} draws more random nets: use --net ranvgg or --net random "
                        "(a weights file is one net)")
    return [make_net(argparse.Namespace(**{**vars(a), "seed": a.seed + k}), {}, quiet=True) for k in range(1, count)]


def _recipe_summary(net: VGG19) -> str:
    r = net.meta["recipe"]
    s = r["settings"]
    return f"{s['candidates']} candidates per layer up to {s['top']}"


def net_for_listing(a) -> VGG19:
    """A net with the right shapes for --list-layers, without building anything: a random net
    stands for ranvgg and recipes (same shapes); a weights file is loaded (its fc size counts)."""
    choice = net_choice(a)
    if choice in NETS or recipes.is_recipe_file(choice):
        return VGG19.random(seed=a.seed, device=a.device, arch=getattr(a, "arch", None) or DEFAULT_ARCH)
    return VGG19.load(choice, device=a.device)


def list_layers(net: VGG19, size: int, hw=None) -> None:
    """Each layer's shape for an image of ``hw`` (its size after --size scaling; default square
    --size), computed from the sizes alone (any --size is instant)."""
    h, w = hw or (size, size)
    names = net.layer_names()
    top = [n for n in names if not n.startswith(("fc", "relu6", "relu7"))]
    shapes = {k: map_shape(k, h, w) for k in top} if min(h, w) >= 32 else {}
    for name in names:
        s = shapes.get(name)
        side = net.fc_input_side()
        desc = f"{s[0]} x {s[1]} x {s[2]}" if s else (f"needs a {side}x{side} input" if name not in top else "")
        print(f"{name:8s} {desc}")


# reading an exemplar holds it about three times as float32 (12 bytes per pixel each): peak RSS
# (/usr/bin/time) of load_image + split_exemplar at 4000 px, 35 bytes per pixel; of a whole
# experiments quality sweep at --exemplar-size 20000 (gravel, --size 64), 49; with margin
EXEMPLAR_BYTES_PER_PIXEL = 64


def check_exemplar_memory(spec, exemplar_size: int, size: int) -> None:
    """An exemplar read at ``exemplar_size`` (to be cut into ``size`` tiles) must fit in RAM:
    from its header, nothing decoded; a UserError names --exemplar-size and what fits."""
    h, w = inputs.planned_shape(spec, exemplar_size)[2:]
    need, free = h * w * EXEMPLAR_BYTES_PER_PIXEL, backend.memory_available("cpu")
    if need > free:
        fits = int(exemplar_size * (free / need) ** 0.5 * 0.95)
        fix = (f"use --exemplar-size {fits} or smaller" if fits >= 2 * size
               else "free some memory or use a smaller --size")
        raise UserError(f"--exemplar-size {exemplar_size}: reading {spec} at {w}x{h} px takes about "
                        f"{memory.human(need)} but only {memory.human(free)} of RAM is free; {fix}")


def check_memory(a, shape, terms, extra_nets: int = 0) -> memory.Estimate:
    """Stop before a run that cannot fit, from the options and the image headers alone (no
    network built, no image decoded), saying what is too big and what would fit: --size
    usually; --history or the weights file when they alone are too big."""
    device = backend.resolve_device(a.device)
    est = _estimate(a, shape, terms, extra_nets, a.history)
    have = {"device": backend.memory_available(device), "host": backend.memory_available("cpu")}
    where = "GPU memory" if device == "gpu" else "RAM"
    if device == "cpu":
        short = est.total > have["host"]
        need, free = est.total, have["host"]
    else:
        short = est.on("device") > have["device"] or est.on("host") > have["host"]
        need, free = ((est.on("device"), have["device"]) if est.on("device") > have["device"]
                      else (est.on("host"), have["host"]))
        where = "GPU memory" if need == est.on("device") else "RAM"
    if not short:
        return est
    gib = memory.human
    head = f"this run needs about {gib(need)} but only {gib(free)} of {where} is free"
    h, w = shape[2:]
    if _fits(a, _scaled(shape, MIN_SIZE), terms, extra_nets, a.history, free, device):
        side = max(h, w)
        while side > MIN_SIZE and not _fits(a, _scaled(shape, side), terms, extra_nets, a.history, free, device):
            side = int(side * 0.95)
        raise UserError(f"{head}; use --size {max(side, MIN_SIZE)} or smaller")
    name, size = _estimate(a, _scaled(shape, MIN_SIZE), terms, extra_nets, a.history).largest()
    if name == "L-BFGS history":
        m = a.history
        while m > 1 and not _fits(a, shape, terms, extra_nets, m, free, device):
            m = max(1, m // 2)
        size = est.parts[name]
        raise UserError(f"{head}: --history {a.history} alone takes {gib(size)} (L-BFGS memory); "
                        f"use --history {m} or smaller")
    if name == "weights" and _weights_file(a):
        raise UserError(f"{head}: the weights file {_weights_file(a)} declares "
                        f"{gib(_declared_bytes(_weights_file(a)))} of arrays; "
                        "check that it is a VGG-19 weights file")
    raise UserError(f"{head}, even at --size {MIN_SIZE} ({name}: {gib(size)}); free some memory")


def _estimate(a, shape, terms, extra_nets, history) -> memory.Estimate:
    est = memory.estimate(shape, terms, history=history, pooling=a.pooling or "avg", extra_nets=extra_nets,
                          device=backend.resolve_device(a.device), optimizer=runner.optimizer_name(a),
                          arch=getattr(a, "arch", None) or DEFAULT_ARCH)
    declared = _declared_bytes(_weights_file(a)) if _weights_file(a) else 0
    est.parts["weights"] = max(est.parts["weights"], declared)
    return est


def _weights_file(a):
    """The .npz weights file a run loads (--net FILE.npz or --weights FILE.npz), or None."""
    choice = net_choice(a) if hasattr(a, "net") or hasattr(a, "weights") else "ranvgg"
    return None if choice in NETS or recipes.is_recipe_file(choice) else choice


def _fits(a, shape, terms, extra_nets, history, free, device) -> bool:
    est = _estimate(a, shape, terms, extra_nets, history)
    return (est.total if device == "cpu" else est.on("device")) <= free


def _scaled(shape, side: int):
    n, c, h, w = shape
    return (n, c, max(1, h * side // max(h, w)), max(1, w * side // max(h, w)))


def _declared_bytes(path) -> int:
    """What a .npz weights file's members take once unpacked, from its zip directory alone
    (a damaged file is left to the loader, which says what is wrong with it)."""
    try:
        with zipfile.ZipFile(path) as z:
            return sum(i.file_size for i in z.infolist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return 0
