"""The one place a figure's run gets its network: a row's net kind -> a VGG19.

Kinds: ``random`` (a plain random draw of --arch), ``ranvgg`` (the default stacked net of
engine.recipes), ``stacked`` (a greedy stacked net of any --arch built here with small
settings, for the architecture comparison), ``trained`` (the --trained weights file).
Nets are cached per process: a Dask worker builds each one once, however many runs use it.
"""
from __future__ import annotations

import functools

import numpy as np

from engine.io import image
from engine import stacked
from engine import recipes
from engine.errors import UserError
from engine.vgg import VGG19

KINDS = ("ranvgg", "random", "stacked", "trained")
JUDGE_SEED = 1000003   # the independent random VGG-19 that scores textures and styles
# The stacked variant built here (the ranVGG recipes are VGG-19 only): the paper's
# greedy rule, kept cheap enough for a CPU sweep; the reference is the stack's usual photo.
# Only the convs up to block 3 are chosen (what a pool3 inversion sees); deeper ones keep the plain
# draw: building all 16 layers costs many minutes of CPU per net.
STACK = {"reference": "astronaut", "candidates": 3, "iters": 20, "size": 48, "blocks": 3}


def get_net(kind: str, seed: int = 0, arch: str = "vgg19", trained: str | None = None,
            device: str = "cpu") -> VGG19:
    """The network of one run (cached per process)."""
    if kind not in KINDS:
        raise UserError(f"unknown net {kind!r}: use one of {', '.join(KINDS)}")
    return _cached(kind, int(seed), arch, trained, device)


@functools.lru_cache(maxsize=8)
def _cached(kind, seed, arch, trained, device):
    if kind == "random":
        return VGG19.random(seed=seed, device=device, arch=arch)
    if kind == "trained":
        if not trained:
            raise UserError("the trained rows need --trained FILE.npz (a converted VGG-19)")
        return VGG19.load(trained, device=device, pooling="avg")
    if kind == "ranvgg":
        if arch != "vgg19":
            raise UserError(f"ranvgg is a VGG-19; for {arch} use the nets random,stacked")
        return recipes.ranvgg(seed=seed, device=device)
    return _stacked(seed, arch, device)


def _stacked(seed: int, arch: str, device: str) -> VGG19:
    """Greedy stacked net (docs/method.md) of ``arch`` from ``seed``, settings in STACK."""
    net = VGG19.random(seed=seed, device=device, arch=arch)
    size = STACK["size"]
    x0 = image.preprocess(image.load_image(image.sample_path(STACK["reference"]), size=size))
    noise = np.random.default_rng(seed).uniform(0, 255, x0.shape[2:] + (3,)).astype(np.float32)
    lo, hi = image.pixel_bounds()
    stacked.build(net, x0, image.preprocess(noise), (lo.reshape(1, 3, 1, 1), hi.reshape(1, 3, 1, 1)),
                  candidates=STACK["candidates"], iters=STACK["iters"],
                  top=[n for n, _ in net.conv_shapes if int(n[4]) <= STACK["blocks"]][-1])
    return net


def judge(kind: str, trained: str | None, device: str = "cpu") -> VGG19 | None:
    """The scoring nets: ``random`` (an independent VGG-19, JUDGE_SEED) or ``trained`` (None
    without --trained)."""
    if kind == "trained":
        return get_net("trained", 0, "vgg19", trained, device) if trained else None
    return get_net("random", JUDGE_SEED, "vgg19", None, device)
