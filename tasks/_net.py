"""The network a task runs on, its layer listing, and the memory check made before a run."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine import backend, recipes
from engine.errors import UserError
from engine.vgg import LAYER_NAMES, VGG19


NETS = ("ranvgg", "random")


def net_choice(a) -> str:
    """--net (default ranvgg), with --weights FILE as another way to say --net FILE."""
    net, weights = getattr(a, "net", None), getattr(a, "weights", None)
    if net and weights and net != weights:
        raise UserError(f"--net {net} and --weights {weights}: give one of them")
    return net or weights or "ranvgg"


def make_net(a, log: dict) -> VGG19:
    """The network of --net / --weights on --device, said in one line and in the log."""
    device = backend.resolve_device(a.device)
    choice = net_choice(a)
    if choice == "random":
        net = VGG19.random(seed=a.seed, sigma=a.sigma, pooling=a.pooling or "avg", device=device)
        what = f"plain random weights N(0, {a.sigma}^2), seed {a.seed}, zero biases"
    elif choice == "ranvgg":
        net = recipes.ranvgg(seed=a.seed, sigma=a.sigma, pooling=a.pooling or "avg", device=device)
        what = f"ranVGG seed {a.seed} (stacked, {_recipe_summary(net)}), sigma {a.sigma}"
    elif recipes.is_recipe_file(choice):
        net = recipes.to_net(recipes.load(choice), pooling=a.pooling, device=device, where=choice)
        what = f"ranVGG from the recipe {choice} (seed {net.meta['seed']}, {_recipe_summary(net)})"
    elif choice.lower().endswith(".npz") or Path(choice).exists():
        net = VGG19.load(choice, device=device, pooling=a.pooling)
        what = f"weights from {choice} ({net.meta.get('kind', 'unknown kind')})"
    else:
        raise UserError(f"--net {choice!r}: use ranvgg, random, a recipe (.json) or a weights file (.npz)")
    built = net.meta.get("recipe", {}).get("pooling_built")
    if built and built != net.pooling:
        what += f"; note: its layers were chosen with {built} pooling"
    chosen = "" if a.device != "auto" else " (auto: " + (backend.gpu_unavailable_reason() or "CUDA device found") + ")"
    print(f"device: {net.device}{chosen}; {what}; {net.pooling} pooling")
    log.update(device=net.device, seed=a.seed, network={
        "net": choice if choice in NETS else "file", "weights": None if choice in NETS else choice,
        "pooling": net.pooling, "sigma": net.meta.get("sigma"), "preprocessing": net.preprocessing,
        "recipe": net.meta.get("recipe")})
    return net


def _recipe_summary(net: VGG19) -> str:
    r = net.meta["recipe"]
    s = r["settings"]
    return f"{s['candidates']} candidates per layer up to {s['top']}"


def net_for_listing(a) -> VGG19:
    """A net with the right shapes for --list-layers, without building anything: a random net
    stands for ranvgg and recipes (same shapes); a weights file is loaded (its fc size counts)."""
    choice = net_choice(a)
    if choice in NETS or recipes.is_recipe_file(choice):
        return VGG19.random(seed=a.seed, device=a.device)
    return VGG19.load(choice, device=a.device)


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
