"""The network a task runs on, its layer listing, and the memory check made before a run."""
from __future__ import annotations

import numpy as np

from engine import backend
from engine.errors import UserError
from engine.vgg import DEFAULT_ARCH, VGG19


def make_net(a, log: dict, quiet: bool = False) -> VGG19:
    """The net of options ``a``: ``a.network`` when given (API only), --weights, or random
    weights of --arch / --seed / --sigma; recorded in ``log``."""
    device = backend.resolve_device(a.device)
    if getattr(a, "network", None) is not None:
        net = a.network
        what = f"a given network ({net.meta.get('kind', 'unknown kind')}, {net.arch})"
    elif a.weights:
        net = VGG19.load(a.weights, device=device, pooling=a.pooling)
        if a.arch and a.arch != net.arch:
            raise UserError(f"--arch {a.arch}: {a.weights} holds a {net.arch}; drop --arch or use --arch {net.arch}")
        what = f"weights from {a.weights} ({net.meta.get('kind', 'unknown kind')})"
    else:
        arch = a.arch or DEFAULT_ARCH
        net = VGG19.random(seed=a.seed, sigma=a.sigma, pooling=a.pooling or "avg", device=device, arch=arch)
        what = f"random {arch} weights N(0, {a.sigma}^2), seed {a.seed}, zero biases"
    chosen = "" if a.device != "auto" else " (auto: " + (backend.gpu_unavailable_reason() or "CUDA device found") + ")"
    if not quiet:
        print(f"device: {net.device}{chosen}; {what}; {net.pooling} pooling")
    log.update(device=net.device, seed=a.seed, network={"weights": a.weights, "arch": net.arch, "pooling": net.pooling,
                                                          "sigma": net.meta.get("sigma"),
                                                          "preprocessing": net.preprocessing})
    return net


def list_layers(net: VGG19, size: int) -> None:
    x = np.zeros((1, 3, size, size), np.float32)
    names = net.layer_names()
    top = [n for n in names if not n.startswith(("fc", "relu6", "relu7"))]
    shapes = {k: v.shape for k, v in net.features(x, top).items()} if size >= 32 else {}
    for name in names:
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
