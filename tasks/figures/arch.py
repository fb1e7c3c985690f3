"""arch (beyond the paper): random-weight VGG-11, -13, -16 and -19, plain and stacked, on the
same inversion (PSNR, SSIM) and texture (Gram error judged in an independent random VGG-19 and,
with --trained, in the trained one): does the architecture alone rank them?"""
from __future__ import annotations

from engine.arch import ARCHS

from . import common, grid, plots

TITLE = "Architectures without training"
DEFAULTS = {"image": "coffee", "textures": "gravel", "layers": "pool3", "nets": "random,stacked", "seeds": "0-1"}
COLUMNS = ["key", "task", "net", "arch", "seed", "image", "layer", "size", "psnr", "ssim", "feature_error",
           "gram_error", "gram_error_random_judge", "gram_error_trained_judge", "iterations", "seconds", "status"]


def specs(o) -> list:
    out = []
    # seed-major: an interrupted sweep has every architecture for its first seeds
    for seed in o.seeds:
        for arch in ARCHS:
            for net in o.nets:
                for layer in o.layers:
                    out.append(common.spec(o, "invert", net, seed, o.image, layer, arch=arch))
                for tex in o.textures:
                    out.append(common.spec(o, "texture", net, seed, tex, ",".join(common.TEXTURE_DEPTHS),
                                           arch=arch, label="texture"))
    for tex in o.textures:   # what the judges give images that cost nothing
        for b in ("white_noise", "shuffled"):
            out.append(common.spec(o, "baseline", b, o.seeds[0], tex, "", arch="none", kind="texture"))
    return out


def report(o, results, out):
    rows = results.ordered_rows()
    notes = []
    inv = [r for r in rows if r["task"] == "invert"]
    tex = [r for r in rows if r["task"] == "texture"]
    base = [r for r in rows if r["task"] == "baseline"]
    if inv:
        plots.draw(notes, lambda: plots.boxes(
            inv + tex, "arch", "net", ["psnr", "ssim", "gram_error_random_judge"], out / "arch.png",
            f"{TITLE}: {o.size} px, {o.iters} it, seeds {o.seeds_text}"))
    seed = o.seeds[0]
    cells, labels = [], []
    for arch in ARCHS:
        for net in o.nets:
            row = []
            for task, img in [("invert", o.image)] + [("texture", t) for t in o.textures]:
                r = common.find(rows, task=task, arch=arch, net=net, seed=seed, image=common.image_arg(img))
                cap = (f"{r['psnr']:.1f} dB" if task == "invert" else f"r {r['gram_error_random_judge']:.2g}") if r else ""
                row.append((out / "runs" / f"{r['key']}.png", cap) if r else None)
            cells.append(row)
            labels.append(f"{arch} {net}")
    path = grid.draw(cells, labels, [f"invert {o.layers[0]}"] + [f"texture {common.name_of(t)}" for t in o.textures],
                     out / "arch_grid.png", f"{TITLE} (seed {seed})")
    notes.append(f"wrote {path}")
    summary = "Inversion\n\n" + common.table(inv, ["arch", "net", "layer"], ["psnr", "ssim"])
    judged = ["gram_error_random_judge"] + (["gram_error_trained_judge"] if o.trained else [])
    summary += "\n\nTexture (Gram error relu1_1..relu5_1 in the judge nets; free baselines last)\n\n" + common.table(
        tex + base, ["arch", "net", "image"], judged)
    summary += "\n\n" + ranking(inv, tex)
    return summary, notes


def ranking(inv, tex) -> str:
    """The plain statement: architectures ordered by median PSNR and by median judged Gram error."""
    import statistics

    def order(rows, metric, best_high):
        by = {}
        for r in rows:
            if isinstance(r.get(metric), (int, float)):
                by.setdefault(f"{r['arch']} {r['net']}", []).append(r[metric])
        ranked = sorted(by, key=lambda k: statistics.median(by[k]), reverse=best_high)
        return ", ".join(f"{k} ({statistics.median(by[k]):.3g})" for k in ranked)

    return ("Ranked by median inversion PSNR (best first): " + order(inv, "psnr", True) +
            "\n\nRanked by median texture Gram error in the random judge (best first): " +
            order(tex, "gram_error_random_judge", False))
