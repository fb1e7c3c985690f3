"""Regenerate the sample images in this folder from scikit-image's bundled data.

    python tasks/data/make_samples.py          # needs scikit-image (a test-only dependency)

Each image is scaled (Lanczos) so that its longer side is 256 px, or centre-cropped at full
resolution where noted, and saved as an optimised 8-bit PNG. Grey textures stay single-channel
("L") PNGs: the loader turns them into RGB, which also exercises its any-mode path. Licences:
README.md here.
Not imported by ranvgg; run it by hand after changing the list below.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
LONGER_SIDE = 256

# file stem: (skimage.data function, how to make it small)
SAMPLES = {
    "astronaut": ("astronaut", "scale"),
    "coffee": ("coffee", "scale"),
    "chelsea": ("chelsea", "scale"),
    "brick": ("brick", "scale"),
    "grass": ("grass", "scale"),
    "gravel": ("gravel", "scale"),
    # the centre 224x224 of the 512x512 micrograph at full resolution: keeps the fine,
    # strongly coloured (brown DAB / blue hematoxylin) texture that downscaling would blur;
    # 224 rather than 256 keeps the file under 100 KB
    "ihc": ("immunohistochemistry", "crop224"),
}


def make(stem: str, func: str, how: str) -> Path:
    import skimage.data

    a = np.asarray(getattr(skimage.data, func)())  # (H, W) or (H, W, 3) uint8
    im = Image.fromarray(a)
    w, h = im.size
    if how.startswith("crop"):
        side = int(how[4:])
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side))
    elif max(w, h) > LONGER_SIDE:
        scale = LONGER_SIDE / max(w, h)
        im = im.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    path = HERE / f"{stem}.png"
    im.save(path, format="PNG", optimize=True)
    return path


def main() -> None:
    for stem, (func, how) in SAMPLES.items():
        path = make(stem, func, how)
        with Image.open(path) as im:
            print(f"{path.name:16s} {im.mode:4s} {im.size[0]}x{im.size[1]}  "
                  f"{path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
