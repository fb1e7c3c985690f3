"""fig1: reconstruction by layer (paper Fig. 1-2): pool1..pool5 (and fc6-fc8 at --size 256)
inverted in each net, shown as a labelled grid with PSNR under each image."""
from __future__ import annotations

from engine.errors import UserError

from ..pipeline import inputs
from . import common, grid

TITLE = "Reconstruction by layer"
DEFAULTS = {"image": "coffee", "layers": None, "nets": "ranvgg,random", "seeds": "0"}
COLUMNS = ["key", "net", "arch", "seed", "image", "layer", "size", "psnr", "ssim", "feature_error",
           "iterations", "seconds", "status"]


def layers_of(o) -> list:
    layers = o.layers or (common.POOLS + common.FC if o.size == 256 else common.POOLS)
    common.check_sizes(o, layers)
    return layers


def specs(o) -> list:
    out = []
    for net in common.nets_with_trained(o, o.nets):
        for layer in layers_of(o):
            if net == "trained" and layer in common.FC:
                continue   # the converted trained file holds conv layers only
            for seed in (o.seeds[:1] if net == "trained" else o.seeds):
                out.append(common.spec(o, "invert", net, seed, o.image, layer))
    return out


def report(o, results, out):
    rows = results.ordered_rows()
    layers = layers_of(o)
    cells, labels = [], []
    for net in common.nets_with_trained(o, o.nets):
        seed = o.seeds[0]
        row = [inputs.read(o.image, o.size)]
        for layer in layers:
            r = common.find(rows, net=net, layer=layer, seed=seed if net != "trained" else None)
            row.append((out / "runs" / f"{r['key']}.png", f"{r['psnr']:.1f} dB") if r else None)
        cells.append(row)
        labels.append(f"{net} (seed {seed})" if net != "trained" else "trained VGG-19")
    if not rows:
        raise UserError("no finished run to draw")
    path = grid.draw(cells, labels, ["original"] + layers, out / "fig1.png",
                     f"{TITLE}: {common.name_of(o.image)}, {o.size} px, {o.iters} iterations")
    summary = common.table(rows, ["net", "layer"], ["psnr", "ssim", "feature_error"], ("median",))
    return summary, [f"wrote {path}"]
