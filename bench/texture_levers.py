"""Texture levers on held-out crops: each option of python -m tasks.texture judged fairly.

    python -m bench.texture_levers --images moon.png,stars.png --weights vgg19.npz --out DIR \
        [--configs default,old,...] [--seeds 0,1,2] [--size 128] [--iters 200] [--scale-iters N] [--history N]
        [--device cpu]

Each exemplar is cut into disjoint 128 px crops: the first is what the synthesis sees, the
others are held out. A result is scored by the per-position Gram distance (sum over relu1_1 ..
relu5_1 of ||G(x) - G(h)||^2 / ||G(h)||^2) to each held-out crop h, averaged, in the trained
VGG-19 and in an independently seeded random VGG-19; "nature" is the same distance of each
held-out crop to the other held-out crops (the floor), "copy" that of the source crop itself.
copy score: the largest normalised cross-correlation of the grey result with the grey source over
all circular shifts (1: a shifted copy); nature's: source against the held-out crops. chroma:
mean over pixels of the standard deviation across R, G, B (0 for a grey image).
Rows go to DIR/levers.csv as they finish; DIR/<image>_<config>_s<seed>.png are the results.

    python -m bench.texture_levers --diversity DIR [DIR ...]

prints the diversity: the copy score between two seeds' results of each config (1: the seed does
not change the result but for a shift), beside nature's, between two held-out crops.

    python -m bench.texture_levers --figure FIG.png --from DIR --images moon,stars \
        --configs default,interior+periodic [--seed 0] [--tiled]

draws one row per image from a run folder: the source crop | each config's result | (--tiled:
the last config's result repeated 2 x 2, where a seam would show) | a held-out crop.
"""
from __future__ import annotations

import argparse
import csv
import os
import time

import numpy as np

from engine import backend
from engine.io import image
from engine.vgg import VGG19
from tasks.figures.quality import GATYS_TEXTURE
from tasks.figures.runs import REFERENCE_OPTIMIZER

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
OLD = dict(GATYS_TEXTURE)     # Gram terms alone on relu1_1 .. relu5_1: what Gatys et al. match
CONFIGS = {
    "default": {},
    "old": OLD,                                                     # Gram on relu1_1 .. relu5_1, nothing else
    "keep": dict(pinned_layers="keep"),                             # the default with the pinning layers kept
    "drop": dict(pixel_stats="none", colour_transfer=False),        # the layer rule alone
    "no_transfer": dict(colour_transfer=False),                     # the colour term alone
    "transfer_only": dict(pixel_stats="none"),                      # the final colour transfer alone
    "colour_swd": dict(pixel_stats="swd"),
    "colour_swd+ensemble3": dict(pixel_stats="swd", ensemble=3),
    "swd_both": dict(pixel_stats="swd", feature_stats="gram+swd"),  # the histogram of the pixels and of each layer
    "swd_both+ensemble3": dict(pixel_stats="swd", feature_stats="gram+swd", ensemble=3),
    "colour_swd+ensemble3_deep": dict(pixel_stats="swd", ensemble=3, ensemble_layers="relu2_1,relu3_1"),
    "centred": dict(feature_stats="gram+moments"),
    "gram_only": dict(feature_stats="gram"),                       # the default without the centred statistics
    "balanced": dict(feature_stats="gram+balanced"),               # mean and covariance each relative to its target
    "swd": dict(feature_stats="gram+swd"),
    "pyramid2": dict(pyramid=2),
    "pyramid3": dict(pyramid=3),
    "bank16": dict(filter_bank=16),
    "bank32": dict(filter_bank=32),
    "bank128": dict(filter_bank=128),                              # 1024 maps: Ustyuzhaninov et al.'s, at 256 px
    "centred+bank16": dict(filter_bank=16, feature_stats="gram+moments"),
    "centred+pyramid3": dict(pyramid=3, feature_stats="gram+moments"),
    "spectrum1": dict(spectrum_weight=1.0),                        # the default + Fourier-spectrum term
    "spectrum0.2": dict(spectrum_weight=0.2),
    "spectrum5": dict(spectrum_weight=5.0),
    # weight statistics: a plain random net (not ranVGG's chosen draws) with the default levers
    "random": dict(net="random"),
    "random_he": dict(net="random", weight_init="he"),
    "random_orthogonal": dict(net="random", weight_init="orthogonal"),
    "random_zero_mean_first": dict(net="random", weight_init="zero-mean-first"),
    # Gram terms alone: He is the gaussian draw scaled per layer, which Eq. 4 cancels exactly
    "random_gram": dict(net="random", feature_stats="gram"),
    "random_he_gram": dict(net="random", weight_init="he", feature_stats="gram"),
    "ensemble2": dict(ensemble=2),                                  # ranVGG seeds s and s + 1, terms summed
    "ensemble3": dict(ensemble=3),
    "ensemble5": dict(ensemble=5),
    "ensemble2_first": dict(ensemble=2, ensemble_layers="relu1_1"),  # the other net's relu1_1 terms only
    "ensemble3_first": dict(ensemble=3, ensemble_layers="relu1_1"),  # the other two nets' relu1_1 terms only
    "ensemble3_first2": dict(ensemble=3, ensemble_layers="relu1_1,relu2_1"),
    "ensemble3_deep": dict(ensemble=3, ensemble_layers="relu2_1,relu3_1"),  # the other nets' deeper terms only
    "ensemble5_first": dict(ensemble=5, ensemble_layers="relu1_1"),
    "first_x3": dict(layer_weights="3,1,1,1,1"),                    # ensemble3_first's relu1_1 weight, one net
    "interior": dict(interior=True),                                # the exemplar's statistics off its border
    "periodic": dict(periodic=True),                                # a periodic synthesis (no border)
    "interior+periodic": dict(interior=True, periodic=True),
    "out2x": dict(out_size="2x"),                                   # a synthesis twice the exemplar's side, judged on its top-left crop
    "out2x+periodic": dict(out_size="2x", periodic=True),          # the same, wrapped around: no border
    "half": dict(scales="half"),                                   # one coarse stage at half the size
    "halves": dict(scales="halves"),                               # halved down to 64 px (256 px: 64, 128)
    "one_scale": dict(scales="none"),                               # no half-size stage first
    "project32": dict(project=32),                                 # the statistics of 32 random projections per layer
    "project64": dict(project=64),                                 # ... of 64: relu4_1, relu5_1 kept at 128 px
    "project128": dict(project=128),
    "deep2": dict(layer_weights="1,2,4,8,16"),                     # each layer twice the weight of the one before
    "deep4": dict(layer_weights="1,4,16,64,256"),                  # ... four times
    "shallow2": dict(layer_weights="16,8,4,2,1"),                  # ... half
    # long-range correlations: each kept layer's maps against themselves moved d px across and down
    "no_shifts": dict(shifts="none"),                              # the default without them
    "shift4": dict(shifts="4"),                                    # = the default
    "shift8": dict(shifts="8"),
    "shift4_8": dict(shifts="4,8"),
    "shift16": dict(shifts="16"),
    "shift32": dict(shifts="32"),
    "shift8_32": dict(shifts="8,32"),
    "shift16_32": dict(shifts="16,32"),
    # the coarse stages' budget (--scale-iters; a config's value wins over the command line's)
    "scale_iters100": dict(scale_iters=100),
    "scale_iters300": dict(scale_iters=300),                       # = the default
    "scale_iters1000": dict(scale_iters=1000),
    # deeper statistics below the layers that pin the layout (at 128 px: relu3_4's positions see 48 px, relu3_1's 24)
    "plus_relu3_4": dict(layers="relu1_1,relu2_1,relu3_1,relu3_4,relu4_1,relu5_1"),
    "all_relu": dict(layers="relu1_1,relu1_2,relu2_1,relu2_2,relu3_1,relu3_2,relu3_3,relu3_4,relu4_1,relu5_1"),
    "maxpool": dict(pooling="max"),                                 # 2x2 max pooling in the random net
    # the L-BFGS memory (--history; a config's value wins over the command line's)
    "history10": dict(history=10),
    "history30": dict(history=30),
    "history100": dict(history=100),                               # = the default
    "history300": dict(history=300),
    "out2x_history100": dict(out_size="2x", history=100),          # a 256 px synthesis from a 128 px exemplar
    "out2x_history300": dict(out_size="2x", history=300),
    "gatys": dict(OLD, weights="TRAINED", pooling="avg", net=None),
    "gatys_history10": dict(OLD, weights="TRAINED", pooling="avg", net=None, history=10),
    "gatys_history100": dict(OLD, weights="TRAINED", pooling="avg", net=None, history=100),
}


def crops(img, side=128):
    """Disjoint side x side crops of img scaled so that its shorter side is 2 * side."""
    h, w = img.shape[:2]
    s = 2 * side / min(h, w)
    img = image.resize(img, round(h * s), round(w * s))
    h, w = img.shape[:2]
    return [img[i:i + side, j:j + side] for i in range(0, h - side + 1, side) for j in range(0, w - side + 1, side)]


def grey(img):
    return np.asarray(img, np.float64).mean(axis=2)


def copy_score(a, b):
    """max over circular shifts of the normalised cross-correlation of grey a and b (same size)."""
    a, b = grey(a), grey(b)
    a, b = a - a.mean(), b - b.mean()
    c = np.fft.irfft2(np.fft.rfft2(a) * np.conj(np.fft.rfft2(b)), s=a.shape)
    return float(c.max() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def chroma(img):
    return float(np.asarray(img, np.float64).std(axis=2).mean())


class Grams:
    def __init__(self, net):
        self.net = net

    def __call__(self, img):
        x = image.preprocess(np.asarray(img, np.float32), self.net.preprocessing)
        out = {}
        for l, f in self.net.features(x, list(LAYERS)).items():
            f = backend.to_host(f).astype(np.float64).reshape(f.shape[1], -1)
            out[l] = f @ f.T / f.shape[1]
        return out


def distance(ga, gb):
    return float(sum(((ga[l] - gb[l]) ** 2).sum() / (gb[l] ** 2).sum() for l in LAYERS))


def summary(paths) -> str:
    """A markdown table from levers.csv files: per config and image, the median over seeds (nature:
    over its crops) of d_trained / d_random / copy / chroma and seconds."""
    rows = []
    for p in paths:
        with open(p) as fh:
            rows += list(csv.DictReader(fh))
    images = sorted({r["image"] for r in rows})
    configs = list(dict.fromkeys(r["config"] for r in rows))
    out = ["| config | " + " | ".join(f"{i}: trained / random / copy / chroma" for i in images) + " | seconds |",
           "|---" * (len(images) + 2) + "|"]
    for c in configs:
        cells, secs = [], []
        for i in images:
            sel = [r for r in rows if r["config"] == c and r["image"] == i]
            if not sel:
                cells.append("")
                continue
            med = {k: float(np.median([float(r[k]) for r in sel])) for k in ("d_trained", "d_random", "copy", "chroma")}
            secs += [float(r["seconds"]) for r in sel]
            cells.append(f"{med['d_trained']:.3g} / {med['d_random']:.3g} / {med['copy']:.2f} / {med['chroma']:.1f}")
        n = len({r["seed"] for r in rows if r["config"] == c})
        out.append(f"| {c} ({n}) | " + " | ".join(cells) + f" | {np.median(secs):.0f} |")
    return "\n".join(out)


def diversity(folders) -> str:
    """A markdown table: per image and config, the copy score between two seeds' results (median
    over pairs of seeds: 1 when they are shifted copies of each other), beside nature's (the same
    between two held-out crops), from the <image>_<config>_s<seed>.png and <image>_heldout<k>.png
    files of ``folders``."""
    import itertools
    import re

    from engine.judge import copy_score

    groups = {}
    for folder in folders:
        for f in sorted(os.listdir(folder)):
            m = re.fullmatch(r"(.+?)_(heldout\d+|.+_s\d+)\.png", f)
            if not m:
                continue
            name, rest = m.groups()
            key = (name, "nature (held-out crops)" if rest.startswith("heldout") else rest.rsplit("_s", 1)[0])
            groups.setdefault(key, {})[f] = os.path.join(folder, f)   # one file per name, first folder wins
    images = sorted({k[0] for k in groups})
    configs = list(dict.fromkeys(["nature (held-out crops)"] + sorted(k[1] for k in groups)))
    out = ["| config | " + " | ".join(images) + " |", "|---" * (len(images) + 1) + "|"]
    for c in configs:
        cells = []
        for i in images:
            files = sorted(groups.get((i, c), {}).values())
            pairs = [copy_score(image.load_image(x), image.load_image(y)) for x, y in itertools.combinations(files, 2)]
            cells.append(f"{np.median(pairs):.2f} ({len(pairs)})" if pairs else "")
        out.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def figure(folder, out, images, configs, seed: int = 0, tiled: bool = False, gap: int = 4) -> None:
    """The rows of ``--figure`` (see the module docstring), 128 px cells on white."""
    rows = []
    for name in images:
        cells = [image.load_image(os.path.join(folder, f"{name}_source.png"))]
        cells += [image.load_image(os.path.join(folder, f"{name}_{c}_s{seed}.png")) for c in configs]
        if tiled:
            cells.append(image.resize(np.tile(cells[-1], (2, 2, 1)), *cells[-1].shape[:2]))
        cells.append(image.load_image(os.path.join(folder, f"{name}_heldout0.png")))
        rows.append(cells)
    side = rows[0][0].shape[0]
    canvas = np.full((len(rows) * (side + gap) - gap, len(rows[0]) * (side + gap) - gap, 3), 255, np.float32)
    for i, cells in enumerate(rows):
        for j, c in enumerate(cells):
            canvas[i * (side + gap):i * (side + gap) + side, j * (side + gap):j * (side + gap) + side] = \
                image.resize(c, side, side)
    image.save_image(out, canvas)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--summary", nargs="+", metavar="CSV", help="print the markdown table of these levers.csv files and stop")
    ap.add_argument("--diversity", nargs="+", metavar="DIR",
                    help="print the copy score between seeds' results (and between held-out crops) in these folders and stop")
    ap.add_argument("--figure", metavar="PNG", help="draw result rows from the run folder --from and stop")
    ap.add_argument("--from", dest="source_dir", metavar="DIR", help="with --figure: the run folder")
    ap.add_argument("--seed", type=int, default=0, help="with --figure: whose results (default: 0)")
    ap.add_argument("--tiled", action="store_true", help="with --figure: add the last config's result tiled 2 x 2")
    ap.add_argument("--images")
    ap.add_argument("--weights")
    ap.add_argument("--out")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--scale-iters", type=int, default=None, help="iterations at each coarse stage (default: the texture command's)")
    ap.add_argument("--history", type=int, default=None, help="L-BFGS memory in steps (default: the texture command's)")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    if a.summary:
        return print(summary(a.summary))
    if a.diversity:
        return print(diversity(a.diversity))
    if a.figure:
        if not (a.source_dir and a.images):
            ap.error("--figure needs --from DIR and --images NAME,...")
        return figure(a.source_dir, a.figure, [os.path.splitext(os.path.basename(n))[0] for n in a.images.split(",")],
                      a.configs.split(","), a.seed, a.tiled)
    if not (a.images and a.weights and a.out):
        ap.error("--images, --weights and --out are needed (or --summary)")
    from tasks import texture

    os.makedirs(a.out, exist_ok=True)
    judges = {"trained": Grams(VGG19.load(a.weights, device=a.device)),
              "random": Grams(VGG19.random(seed=12345, device=a.device))}
    path = os.path.join(a.out, "levers.csv")
    new = not os.path.exists(path)
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["image", "config", "seed", "d_trained", "d_random", "copy", "chroma", "seconds"])
        held_grams, sources = {}, {}
        for spec in a.images.split(","):
            name = os.path.splitext(os.path.basename(spec))[0]
            cs = crops(image.load_image(spec), a.size)
            src, held = cs[0], cs[1:4]
            sources[name] = (os.path.join(a.out, f"{name}_source.png"), src)
            image.save_image(sources[name][0], src)
            for k, h in enumerate(held):
                image.save_image(os.path.join(a.out, f"{name}_heldout{k}.png"), h)
            held_grams[name] = {j: [judges[j](h) for h in held] for j in judges}
            row(w, fh, judges, held_grams[name], name, "copy_of_source", 0, src, src, 0)
            for k, h in enumerate(held):  # nature: each held-out crop against the others
                others = {j: [g for i, g in enumerate(held_grams[name][j]) if i != k] for j in judges}
                row(w, fh, judges, others, name, "nature", k, h, src, 0)
        for config in a.configs.split(","):  # config-major: a partial table compares configs on every image
            for seed in (int(s) for s in a.seeds.split(",")):
                for name, (src_path, src) in sources.items():
                    kw = dict(CONFIGS[config])
                    if kw.get("weights") == "TRAINED":
                        kw["weights"] = a.weights
                    kw = {k: v for k, v in kw.items() if v is not None}
                    if kw.get("out_size") == "2x":
                        kw["out_size"] = f"{2 * src.shape[1]}x{2 * src.shape[0]}"
                    if a.scale_iters is not None:
                        kw.setdefault("scale_iters", a.scale_iters)
                    if a.history is not None:
                        kw.setdefault("history", a.history)
                    t0 = time.perf_counter()
                    img, _ = texture.run(image=src_path, size=a.size, iters=a.iters, seed=seed,
                                         device=a.device, optimizer=REFERENCE_OPTIMIZER, **kw)
                    secs = time.perf_counter() - t0
                    if img.shape[:2] != src.shape[:2]:  # a larger synthesis: judged on a piece the exemplar's size
                        image.save_image(os.path.join(a.out, f"{name}_{config}_s{seed}_full.png"), img)
                        img = img[:src.shape[0], :src.shape[1]]
                    image.save_image(os.path.join(a.out, f"{name}_{config}_s{seed}.png"), img)
                    row(w, fh, judges, held_grams[name], name, config, seed, img, src, secs)


def row(w, fh, judges, grams, name, config, seed, img, src, secs):
    d = {j: np.mean([distance(judges[j](img), g) for g in grams[j]]) for j in judges}
    w.writerow([name, config, seed, f"{d['trained']:.4g}", f"{d['random']:.4g}",
                f"{copy_score(img, src):.3f}", f"{chroma(img):.2f}", f"{secs:.1f}"])
    fh.flush()


if __name__ == "__main__":
    main()
