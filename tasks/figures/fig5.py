"""fig5: texture by depth: Gram matrices matched up to relu1_1, relu2_1, relu3_1, relu4_1 for
several textures, plus the trained row; every result scored in an independent random VGG-19 and
(with --trained) in the trained net, next to the free baselines (white noise, shuffled pixels)."""
from __future__ import annotations

from ..pipeline import inputs
from . import common, grid

TITLE = "Texture by depth"
DEFAULTS = {"image": "gravel,brick,grass", "layers": ",".join(common.TEXTURE_DEPTHS), "nets": "ranvgg",
            "seeds": "0"}
COLUMNS = ["key", "task", "net", "arch", "seed", "image", "layer", "size", "gram_error",
           "gram_error_random_judge", "gram_error_trained_judge", "iterations", "seconds", "status"]
BASELINES = ("white_noise", "shuffled")


def depths(o) -> list:
    """Cumulative layer sets: relu1_1; relu1_1,relu2_1; ... up to each of --layers."""
    return [",".join(o.layers[:i + 1]) for i in range(len(o.layers))]


def specs(o) -> list:
    out = []
    for img in o.images:
        for net in common.nets_with_trained(o, o.nets):
            for layers in depths(o):
                for seed in (o.seeds[:1] if net == "trained" else o.seeds):
                    out.append(common.spec(o, "texture", net, seed, img, layers, label="to-" + layers.split(",")[-1]))
        for b in BASELINES:
            out.append(common.spec(o, "baseline", b, o.seeds[0], img, "", kind="texture"))
    return out


def report(o, results, out):
    rows = results.ordered_rows()
    cells, labels = [], []
    for img in o.images:
        name = common.name_of(img)
        for net in common.nets_with_trained(o, o.nets):
            row = [inputs.read(img, o.size)]
            for layers in depths(o):
                r = common.find(rows, net=net, image=common.image_arg(img), layer=layers)
                row.append((out / "runs" / f"{r['key']}.png", _caption(r)) if r else None)
            cells.append(row)
            labels.append(f"{name}: {net}")
    path = grid.draw(cells, labels, ["source"] + [f"up to {d.split(',')[-1]}" for d in depths(o)],
                     out / "fig5.png", f"{TITLE}, {o.size} px, {o.iters} it; caption: Gram error in a "
                                       "random (r) / trained (t) VGG-19")
    summary = common.table([dict(r, layer=(r["layer"] or "").split(",")[-1] or "-") for r in rows],
                           ["image", "net", "layer"],
                           ["gram_error_random_judge", "gram_error_trained_judge"], ("median",))
    return summary, [f"wrote {path}"]


def _caption(r) -> str:
    t = r.get("gram_error_trained_judge")
    return f"r {r['gram_error_random_judge']:.2g}" + (f" t {t:.2g}" if isinstance(t, float) else "")
