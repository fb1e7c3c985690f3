"""Two sparse test textures of our own: bright points on a black ground, in colour and in grey.

    python -m bench.sparse_textures DIR

writes DIR/synthstars.png (tinted points, a synthetic star field) and DIR/snow.png (grey points),
384 x 384 px, the same pixels on every run. Each is a sum of elliptical Gaussian spots at
uniformly random places (wrapped around, so the image tiles), with heavy-tailed brightness and
mostly point-like widths: a stationary texture whose pixels are nearly all black, like the star
field of `skimage.data.hubble_deep_field` but with no large galaxies. `bench.texture_levers`
cuts each into four 128 px crops like the other exemplars (docs/levers.md, "The colour histogram
with every default term").
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

SIZE = 384
TEXTURES = {"synthstars": dict(seed=1, count=900, colour=True), "snow": dict(seed=2, count=700, colour=False)}


def sparse_texture(seed: int, count: int, colour: bool, size: int = SIZE) -> np.ndarray:
    """(size, size, 3) uint8: ``count`` spots of Pareto brightness and width on black."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    img = np.zeros((size, size, 3))
    for _ in range(count):
        y, x = rng.uniform(0, size, 2)
        width = min(4.0, 0.5 + 0.8 * rng.pareto(3.0))            # mostly points, a few small blobs
        peak = min(255.0, 60.0 * (1.0 + rng.pareto(1.5)))        # heavy-tailed brightness
        tint = 0.5 + 1.5 * rng.dirichlet([4, 4, 4]) if colour else np.ones(3)
        ratio, angle = rng.uniform(0.5, 1.0), rng.uniform(0.0, np.pi)
        dy = (yy - y + size / 2) % size - size / 2                  # wrapped around: the image tiles
        dx = (xx - x + size / 2) % size - size / 2
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = (dy * np.cos(angle) - dx * np.sin(angle)) / ratio
        img += peak * np.exp(-(u * u + v * v) / (2 * width * width))[..., None] * tint
    return np.clip(img, 0, 255).astype(np.uint8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sparse_textures", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", metavar="DIR", help="folder for synthstars.png and snow.png (made if missing; "
                                               "neither may exist there yet)")
    a = ap.parse_args(argv)
    from PIL import Image

    paths = {name: os.path.join(a.out, f"{name}.png") for name in TEXTURES}
    taken = [p for p in paths.values() if os.path.exists(p)]
    if taken:   # never replace a file the user did not name
        print(f"error: {', '.join(taken)} already exist{'s' if len(taken) == 1 else ''}: give an empty or new folder",
              file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    for name, kw in TEXTURES.items():
        with open(paths[name], "xb") as fh:   # exclusive: a file made meanwhile is not replaced either
            Image.fromarray(sparse_texture(**kw)).save(fh, format="PNG")
        print(f"wrote {paths[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
