"""The seed study: how much does the inversion quality depend on the random draw, plain vs ranVGG?

    python docs/seed_study.py                       # seeds 0-9, coffee, pool3 + pool5, 96 px, 200 iterations
    python docs/seed_study.py --images chelsea --layers pool3 --md docs/seed_study_chelsea.md

For every seed, net (--net random: one plain draw; --net ranvgg: the stacked net of that seed),
image and layer, ``tasks.invert`` reconstructs the image from white noise (the project's
defaults apart from --size and --iters) and the PSNR, SSIM and relative feature error are kept.
The images are photos the ranVGG recipes were not built on (they are built on their own
reference image, engine/ranvgg_recipes/reference.png). Rows go to docs/seed_study.csv as they
come (a run that was stopped resumes where it was; --summary-only only summarises); the summary
(per net and layer: median, best and worst seed, and the spread) goes to docs/seed_study.md.

Each row's seconds are in the CSV (pool3 50-130 s, pool5 100-190 s on the shared, loaded 2-core
CPU where it was made).
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from anywhere: the project root first

from engine import recipes  # noqa: E402
from tasks import invert  # noqa: E402

FIELDS = ["net", "recipe", "seed", "image", "layer", "size", "iters", "psnr", "ssim", "feature_error", "seconds"]


def seeds(spec: str) -> list[int]:
    """"0-9" or "0,3,4" -> [0, ..., 9]."""
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def done_rows(path: Path) -> dict:
    if not path.exists():
        return {}
    with path.open() as f:
        return {_key(r): r for r in csv.DictReader(f)}


def _key(r) -> tuple:
    return tuple(str(r[k]) for k in ("net", "recipe", "seed", "image", "layer", "size", "iters"))


def run_one(net: str, seed: int, image: str, layer: str, size: int, iters: int, tmp: Path) -> dict:
    _, log = invert.run(image=image, layer=layer, seed=seed, net=net, size=size, iters=iters, device="cpu",
                        print_every=0, out=str(tmp / "x.png"))
    return {"net": net, "recipe": recipe_id(net), "seed": seed, "image": image, "layer": layer, "size": size,
            "iters": iters,
            "psnr": round(log["psnr"], 3), "ssim": round(log["ssim"], 4),
            "feature_error": f"{log['feature_error'][layer]:.3e}", "seconds": round(log["seconds"], 1)}


def recipe_id(net: str) -> str:
    """Which ranVGG build settings a row was made with ("" for the plain net): rows of recipes
    built otherwise are not mixed in."""
    return recipes.settings_key(recipes.SETTINGS) if net == "ranvgg" else ""


def summary(rows: list[dict], nets, layers, images, all_seeds) -> str:
    """Markdown: per seed, the mean PSNR over the images that have a row for that layer; then
    per net and layer the median, best, worst and spread over the seeds."""
    def cell(net, seed, layer):
        return [float(r["psnr"]) for r in rows if (r["net"], int(r["seed"]), r["layer"]) == (net, seed, layer)
                and r["image"] in images]

    imgs = {l: sorted({r["image"] for r in rows if r["layer"] == l and r["image"] in images}) for l in layers}
    cols = [(n, l) for l in layers for n in nets if imgs[l]]
    lines = [f"PSNR (dB) of the reconstruction, mean over the images; {rows[0]['size']} px, {rows[0]['iters']} "
             "iterations from white noise (`python docs/seed_study.py`). Images: "
             + "; ".join(f"{l}: {', '.join(imgs[l])}" for l in layers if imgs[l]) + ".", "",
             "| seed | " + " | ".join(f"{n}, {l}" for n, l in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    table = {c: {} for c in cols}
    for s in all_seeds:
        cells = []
        for n, l in cols:
            v = cell(n, s, l)
            if len(v) == len(imgs[l]):
                table[(n, l)][s] = statistics.mean(v)
            cells.append(f"{table[(n, l)][s]:.1f}" if s in table[(n, l)] else "")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "| net, layer | seeds | median | best | worst (seed) | best - worst | worst SSIM | "
                  "median feature error |", "|---|---|---|---|---|---|---|---|"]
    for n, l in cols:
        t = table[(n, l)]
        if not t:
            continue
        worst = min(t, key=t.get)
        mine = [r for r in rows if (r["net"], r["layer"]) == (n, l) and int(r["seed"]) in t and r["image"] in images]
        lines.append(f"| {n}, {l} | {len(t)} | {statistics.median(t.values()):.1f} | {max(t.values()):.1f} | "
                     f"{t[worst]:.1f} ({worst}) | {max(t.values()) - t[worst]:.1f} | "
                     f"{min(float(r['ssim']) for r in mine):.3f} | "
                     f"{statistics.median(float(r['feature_error']) for r in mine):.1e} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--nets", default="random,ranvgg")
    ap.add_argument("--images", default="coffee")
    ap.add_argument("--layers", default="pool3,pool5")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--out", default=str(HERE / "seed_study"), help="writes OUT.csv and OUT.md")
    ap.add_argument("--summary-only", action="store_true", help="compute nothing: summarise the rows in OUT.csv")
    ap.add_argument("--md", help="where the summary goes (default: OUT.md)")
    a = ap.parse_args(argv)
    nets, images, layers, all_seeds = a.nets.split(","), a.images.split(","), a.layers.split(","), seeds(a.seeds)
    csv_path, md_path = Path(a.out + ".csv"), Path(a.md or a.out + ".md")
    have = done_rows(csv_path)
    with tempfile.TemporaryDirectory() as tmp:
        for s in all_seeds:
            for image in images:
                for layer in layers:
                    for net in nets:
                        key = (net, recipe_id(net), str(s), image, layer, str(a.size), str(a.iters))
                        if key in have or a.summary_only:
                            continue
                        row = run_one(net, s, image, layer, a.size, a.iters, Path(tmp))
                        have[key] = row
                        new = not csv_path.exists()
                        with csv_path.open("a", newline="") as f:
                            w = csv.DictWriter(f, FIELDS)
                            if new:
                                w.writeheader()
                            w.writerow(row)
                        print(", ".join(f"{k} {row[k]}" for k in FIELDS), flush=True)
    rows = [r for r in have.values() if (r["size"], r["iters"]) == (str(a.size), str(a.iters))
            and r["recipe"] == recipe_id(r["net"])]
    md_path.write_text(summary(rows, nets, layers, images, all_seeds))
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
