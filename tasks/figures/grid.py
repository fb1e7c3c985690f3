"""Labelled image grids with Pillow alone (its default font)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PAD, HEAD, SIDE = 4, 28, 150


def draw(cells: list, row_labels: list, col_labels: list, path: Path, title: str = "") -> Path:
    """cells[r][c]: an (H, W, 3) uint8 image, a path to one, or None (left blank).

    Each cell shows its image, then an optional caption line under it; rows are labelled on the
    left, columns on top. Returns ``path``."""
    imgs = [[_load(c[0] if isinstance(c, tuple) else c) for c in row] for row in cells]
    captions = [[c[1] if isinstance(c, tuple) else "" for c in row] for row in cells]
    sizes = [im.size for row in imgs for im in row if im is not None] or [(64, 64)]
    cw, ch = max(s[0] for s in sizes), max(s[1] for s in sizes)
    cw = max(cw, 96)
    cap = 14 if any(any(r) for r in captions) else 0
    ncol = max(len(r) for r in cells) if cells else 0
    top = HEAD + (16 if title else 0)
    font = ImageFont.load_default()
    width = max(SIDE + ncol * (cw + PAD) + PAD, int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title, font)) + 2 * PAD)
    canvas = Image.new("RGB", (width, top + len(cells) * (ch + cap + PAD) + PAD), "white")
    d = ImageDraw.Draw(canvas)
    if title:
        d.text((PAD, 2), title, fill="black", font=font)
    for c, label in enumerate(col_labels):
        d.text((SIDE + c * (cw + PAD) + PAD, top - 14), str(label), fill="black", font=font)
    for r, row in enumerate(imgs):
        y = top + r * (ch + cap + PAD) + PAD
        d.text((PAD, y + ch // 2 - 6), str(row_labels[r]), fill="black", font=font)
        for c, im in enumerate(row):
            x = SIDE + c * (cw + PAD) + PAD
            if im is not None:
                canvas.paste(im, (x, y))
            if captions[r][c]:  # right under its image, not under the row's tallest
                d.text((x, y + (im.size[1] if im is not None else ch) + 1), captions[r][c], fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _load(cell, least: int = 96):
    """The cell's image, enlarged by a whole factor (nearest) so that small runs stay visible."""
    if cell is None:
        return None
    if isinstance(cell, (str, Path)):
        if not Path(cell).exists():
            return None
        im = Image.open(cell).convert("RGB")
    else:
        im = Image.fromarray(np.clip(np.rint(cell), 0, 255).astype(np.uint8))
    k = -(-least // max(im.size))
    return im.resize((im.size[0] * k, im.size[1] * k), Image.NEAREST) if k > 1 else im
