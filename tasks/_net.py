"""The network a task runs on, its layer listing, and the memory check made before a run."""
from __future__ import annotations

import zipfile

from engine import backend, memory
from engine.errors import UserError
from engine.vgg import LAYER_NAMES, VGG19

MIN_SIZE = 16


def make_net(a, log: dict) -> VGG19:
    device = backend.resolve_device(a.device)
    if a.weights:
        net = VGG19.load(a.weights, device=device, pooling=a.pooling)
        what = f"weights from {a.weights} ({net.meta.get('kind', 'unknown kind')})"
    else:
        net = VGG19.random(seed=a.seed, sigma=a.sigma, pooling=a.pooling or "avg", device=device)
        what = f"random weights N(0, {a.sigma}^2), seed {a.seed}, zero biases"
    tf32 = bool(getattr(a, "tf32", False))
    if net.device == "gpu":
        backend.set_tf32(tf32)                       # also switches it off after a --tf32 run
    elif tf32:
        print("--tf32: no effect on the CPU (its float32 GEMMs are full precision)")
    chosen = "" if a.device != "auto" else " (auto: " + (backend.gpu_unavailable_reason() or "CUDA device found") + ")"
    print(f"device: {net.device}{chosen}; {what}; {net.pooling} pooling")
    log.update(device=net.device, tf32=tf32 and net.device == "gpu", seed=a.seed, network={"weights": a.weights, "pooling": net.pooling,
                                                          "sigma": net.meta.get("sigma"),
                                                          "preprocessing": net.preprocessing})
    return net


def list_layers(net: VGG19, size: int) -> None:
    """Each layer's shape at --size, computed from the sizes alone (any --size is instant)."""
    top = [n for n in LAYER_NAMES if not n.startswith(("fc", "relu6", "relu7"))]
    shapes = {k: memory.layer_shape(k, size, size) for k in top} if size >= 32 else {}
    for name in LAYER_NAMES:
        s = shapes.get(name)
        side = net.fc_input_side()
        desc = f"{s[0]} x {s[1]} x {s[2]}" if s else (f"needs a {side}x{side} input" if name not in top else "")
        print(f"{name:8s} {desc}")


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
    if name == "weights" and a.weights:
        raise UserError(f"{head}: the weights file {a.weights} declares {gib(_declared_bytes(a.weights))} of arrays; "
                        "check that it is a VGG-19 weights file")
    raise UserError(f"{head}, even at --size {MIN_SIZE} ({name}: {gib(size)}); free some memory")


def _estimate(a, shape, terms, extra_nets, history) -> memory.Estimate:
    est = memory.estimate(shape, terms, history=history, pooling=a.pooling or "avg", extra_nets=extra_nets)
    declared = _declared_bytes(a.weights) if a.weights else 0
    est.parts["weights"] = max(est.parts["weights"], declared)
    return est


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
