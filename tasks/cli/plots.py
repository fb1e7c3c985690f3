"""Pictures of a run: the loss curve, a contact sheet of the saved frames, the stacked build's
candidate scores.

Plots need matplotlib (the ``plots`` extra); without it each plot is one printed note and no
file. The contact sheet needs only Pillow. Every file is a PNG written next to the result:
OUT_loss.png, OUT_frames.png, OUT_scores.png.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.io import image

from .console import install_hint, say

THUMB = 160          # longest side of a contact-sheet frame, px
_noted = set()       # one "matplotlib is missing" note per process and kind of plot


def companion(out: Path, kind: str) -> Path:
    """OUT's companion file: out/invert-2.png, "loss" -> out/invert-2_loss.png."""
    return out.with_name(f"{out.stem}_{kind}.png")


def _figure(what: str):
    """A matplotlib Figure (no pyplot, no GUI backend), or None with a note."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        if what not in _noted:
            _noted.add(what)
            say(f"note: no {what} plot: matplotlib is not installed "
                f"({install_hint('plots', 'matplotlib')})")
        return None
    return Figure(figsize=(6.4, 4.0), dpi=100, layout="constrained")


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return image.write_atomically(Path(path), buf.getvalue())


def loss_curve(path, history: list[dict], title: str = "") -> Path | None:
    """Total loss and each term per iteration, log scale. ``history``: the log's "losses"
    ({"iteration", "loss", term: value, ..., "seconds"} per iteration). Returns the path, or
    None (matplotlib missing, or nothing to plot)."""
    rows = [r for r in history if r.get("loss") is not None]
    if not rows:
        return None
    fig = _figure("loss")
    if fig is None:
        return None
    ax = fig.add_subplot()
    its = [r["iteration"] for r in rows]
    terms = [k for k in rows[0] if k not in ("iteration", "loss", "seconds")]
    total = "total" if len(terms) != 1 else f"total = {terms.pop()}"  # one term: one curve
    ax.plot(its, [r["loss"] for r in rows], color="black", lw=2, label=total)
    for k in terms:  # a term missing from a row (no evaluation at that iterate) leaves a gap
        ax.plot(its, [r.get(k, np.nan) for r in rows], lw=1, label=k)
    ax.set_yscale("log")
    ax.set_xlabel("L-BFGS-B iteration")
    ax.set_ylabel("loss (after Eq. 4 weighting)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncols=2 if len(terms) > 4 else 1)
    return _save(fig, path)


def candidate_scores(path, layers: dict, title: str = "") -> Path | None:
    """The stacked build's scores per conv layer: above, every candidate's relative feature
    error (log scale; ring: the one kept); below, each score over the layer's best, where the
    spread between draws shows. ``layers``: {layer: {"scores": [...], "chosen": k}}."""
    if not layers:
        return None
    fig = _figure("candidate scores")
    if fig is None:
        return None
    fig.set_size_inches(6.4, 5.6)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    names = list(layers)
    for i, name in enumerate(names):
        scores = np.asarray(layers[name]["scores"], dtype=float)
        kept = layers[name]["chosen"]
        for ax, values in ((top, scores), (bottom, scores / scores.min())):
            ax.scatter([i] * len(values), values, s=12, color="tab:blue")
            ax.scatter([i], [values[kept]], s=60, facecolors="none", edgecolors="tab:red")
    top.set_yscale("log")
    top.set_ylabel("relative feature error")
    top.set_title(title or "stacked build: every candidate per layer (ring: kept)", fontsize=9)
    bottom.set_ylabel("error / layer's best")
    bottom.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
    for ax in (top, bottom):
        ax.grid(True, axis="y", which="both", alpha=0.3)
    return _save(fig, path)


def thumbnail(img_hwc: np.ndarray) -> np.ndarray:
    """(H, W, 3) float [0, 255] -> uint8 with the longest side THUMB px (frames are kept in
    memory until the sheet is made): Lanczos down, nearest-neighbour up (pixels stay visible)."""
    im = Image.fromarray(np.clip(np.rint(img_hwc), 0, 255).astype(np.uint8))
    scale = THUMB / max(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    filt = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST
    return np.asarray(im.resize(size, filt))


def contact_sheet(path, frames: list[tuple[str, np.ndarray]]) -> Path | None:
    """One PNG of labelled frames in a grid. ``frames``: [(label, (h, w, 3) uint8)]."""
    if not frames:
        return None
    h = max(f.shape[0] for _, f in frames)
    w = max(f.shape[1] for _, f in frames)
    cols = min(len(frames), max(1, math.ceil(math.sqrt(len(frames)))), 8)
    rows = math.ceil(len(frames) / cols)
    pad, label_h = 4, 14
    sheet = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, frame) in enumerate(frames):
        x = pad + (i % cols) * (w + pad)
        y = pad + (i // cols) * (h + label_h + pad)
        sheet.paste(Image.fromarray(frame), (x, y))
        draw.text((x + 2, y + h + 1), label, fill="black")
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return image.write_atomically(Path(path), buf.getvalue())
