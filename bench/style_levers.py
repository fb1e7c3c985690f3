"""Style levers on held-out style halves: content error, style distance, speckle, time.

    python -m bench.style_levers --pairs coffee:retina.png,chelsea:coins.png --weights vgg19.npz --out DIR \
        [--configs default,random_he,ensemble2,...] [--content-weights 30] [--seeds 0,1,2] [--size 128] [--iters 200]
    python -m bench.style_levers --summary DIR/style.csv
    python -m bench.style_levers --frontiers DIR/style.csv
    python -m bench.style_levers --pairs ... --out DIR --figure FIG.png --figure-cells default@120,gatys@3

Each pair is ``content:style`` (files or sample names; ``--content C --style S`` for one). The
style image is cut in two halves (``engine.judge.split_style`` of the image read at --size, as
``python -m tasks.experiments quality`` does): the transfer sees the first, the judge compares
with the second. Judged (``--judge project``, the default) as the quality command judges: content
error ||F(x) - F(c)||^2 / ||F(c)||^2 at relu4_2 and the held-out style distance (relative Gram
error summed over relu1_1 .. relu4_1) in the trained VGG-19 (average pooling) and in an
independent random VGG-19. ``--judge five``: the Gram distance summed over relu1_1 .. relu5_1
in the trained net as its file loads it (max pooling) and in a random net of seed 12345, the
seen half cut from the style image at its own resolution.

Speckle: the fine-scale energy of the change made to the photo, r = (x - c) minus its 3x3 box
average, as the mean of r^2 over pixels and channels ("hf"), and of its colour part (r minus its
mean over R, G, B: "hf_colour"). Rows go to DIR/style.csv as they finish (one "unstyled_photo"
row per pair: the photo itself, judged). "photo_colour" rows, a free baseline with no network: the
photo with its colours moved a fraction t of the way to the seen half's mean and covariance
(``engine.io.image.recolour``; t, 0.25 .. 1, in the content_weight column), one row per t; its
frontier is read like a method's. "photo_histogram" rows, the same with the whole colour
distribution of the seen half (``engine.metrics.histogram_matched``), t of the way there.

--summary: per pair and configuration, medians [min-max] over seeds, and the ratio of the style
distance to Gatys' (the "gatys" rows of the same file: its frontier over content weights,
``engine.judge.style_at``) at the same content error, median over the seeds whose content error
Gatys' sweep covers (their count is said when some fall outside).
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import time

import numpy as np

from engine import backend, metrics
from engine import judge as judging
from engine.io import image
from engine.vgg import VGG19
from tasks.figures.common import name_of
from tasks.figures.quality import GATYS_STYLE

from .texture_levers import LAYERS, REFERENCE_OPTIMIZER, Grams, distance

ALL = ",".join(LAYERS)
# The first configurations start from the five Gram layers at content weight 10 with nothing
# else (FIVE: content at relu2_2, the paper's conv2_2, pinned layers kept, no colour or centred
# statistics, one scale) and change what their name says; "default" is the style command's
# defaults, and the levers after it change the defaults by what their name says (--content-layer
# sets their content layer).
FIVE = dict(style_layers=ALL, content_layer="relu2_2", content_weight=10, pinned_layers="keep", pixel_stats="none",
            feature_stats="gram", scales="none", colour_first=0.0)
CONFIGS = {
    "five_layers": {},
    "no_relu1_1": dict(style_layers="relu2_1,relu3_1,relu4_1,relu5_1"),
    "relu1_3": dict(style_layers="relu1_1,relu2_1,relu3_1"),
    "drop": dict(pinned_layers="drop"),
    "colour": dict(pixel_stats="moments"),
    "colour_swd": dict(pixel_stats="swd"),
    "relu1_1+colour": dict(pixel_stats="swd", style_layers="relu1_1"),
    "relu1_1_cw1": dict(style_layers="relu1_1", content_weight=1),
    "relu1_1_cw3": dict(style_layers="relu1_1", content_weight=3),
    "relu1_1+colour_cw1": dict(pixel_stats="swd", style_layers="relu1_1", content_weight=1),
    "relu1_1+colour_cw0.3": dict(pixel_stats="swd", style_layers="relu1_1", content_weight=0.3),
    "keep": dict(pinned_layers="keep"),
    "relu2_4": dict(style_layers="relu2_1,relu3_1,relu4_1"),
    "content_relu4_2": dict(content_layer="relu4_2"),
    "paper_100_1_1000": dict(content_weight=100, style_weight=1, tv_weight=1000),
    "texture_stats": dict(pinned_layers="drop", pixel_stats="moments", feature_stats="gram+moments", scales="half"),
}
for _l in LAYERS:
    CONFIGS[f"layer_{_l}"] = dict(style_layers=_l)
CONFIGS = {name: {**FIVE, **kw} for name, kw in CONFIGS.items()}
CONFIGS["gatys"] = dict(GATYS_STYLE, content_weight=10, weights="TRAINED", pooling="avg", net=None)
CONFIGS.update({
    "default": {},
    "relu1_1": dict(style_layers="relu1_1"),                    # the defaults on relu1_1 alone
    "scales_32_64": dict(scales="32,64"),
    "gram+swd": dict(feature_stats="gram+swd"),                 # sliced Wasserstein beside each Gram
    "default_keep": dict(pinned_layers="keep"),                # the layers that pin a layout kept
    "pixel_swd": dict(pixel_stats="swd"),                       # the whole colour histogram of the pixels
    "swd_both": dict(feature_stats="gram+swd", pixel_stats="swd"),
    "init_noise": dict(init="noise"),                           # from white noise, not the photo
    "bank16": dict(filter_bank=16),                             # the random filter bank beside the net's layers
    "bank64": dict(filter_bank=64),
    "ensemble2": dict(ensemble=2),                              # ranVGG seeds s and s + 1, style terms summed
    "ensemble3": dict(ensemble=3),
    "ensemble3_first": dict(ensemble=3, ensemble_layers="relu1_1"),  # the other two nets' relu1_1 terms only
    "content_relu1_1": dict(content_layer="relu1_1"),          # the content term at another random layer
    "content_relu1_2": dict(content_layer="relu1_2"),
    "content_relu2_1": dict(content_layer="relu2_1"),
    "content_relu3_1": dict(content_layer="relu3_1"),
    "content_relu2_2": dict(content_layer="relu2_2"),          # the paper's content layer (conv2_2)
    "content_relu4_2_default": dict(content_layer="relu4_2"),  # Gatys' content layer, in the random net
    "tv0": dict(tv_weight=0),                                   # total variation off (as Gatys), or stronger
    "tv1": dict(tv_weight=1),
    "tv3": dict(tv_weight=3),
    "tv10": dict(tv_weight=10),
    "shallow2": dict(style_layers="relu1_1,relu2_1"),          # the two shallowest style layers only
    "pyramid2": dict(pyramid=2),                                # the style Grams of x also 2x2-averaged once
    "pyramid3": dict(pyramid=3),
    "interior": dict(interior=True),                            # the style image's statistics off its border
    "colour_first0.5": dict(colour_first=0.5),                 # the photo's colours moved halfway to the style's first
    "colour_first1": dict(colour_first=1.0),
    "project64": dict(project=64),                              # the style statistics of 64 random projections per layer
    "project128": dict(project=128),
    "spectrum1": dict(spectrum_weight=1.0),                     # the style's Fourier amplitude spectrum
    "spectrum10": dict(spectrum_weight=10.0),
    "balanced": dict(feature_stats="gram+balanced"),          # mean and covariance each relative to its target
    "content_level1": dict(content_level=1),                   # the content term on the photo 2x2-averaged once
    "content_level2": dict(content_level=2),                   # ... twice: the fine scales left to the style terms
    "shift4": dict(shifts="4"),                                 # long-range correlations of the style layers
    "level1_shift4": dict(content_level=1, shifts="4"),         # content_level1 and shift4 together
    "shift8_32": dict(shifts="8,32"),
    "shift16": dict(shifts="16"),
    "maxpool": dict(pooling="max"),                             # 2x2 max pooling in the random net
    "history100": dict(history=100),                            # L-BFGS memory of 100 steps
    # per-layer style weights (relu1_1..relu5_1; at 128 px relu4_1 and relu5_1 are left out)
    "fine4": dict(layer_weights="4,2,1,1,1"),                  # the finest layers weighed more
    "mid4": dict(layer_weights="1,1,4,1,1"),                   # relu3_1, the shapes' scale, weighed more
    "deep4": dict(layer_weights="1,2,4,4,4"),                  # the deepest kept layers weighed more
    # weight statistics: a plain random net (not ranVGG's chosen draws) with the default levers
    "random": dict(net="random"),
    "random_he": dict(net="random", weight_init="he"),
    "random_orthogonal": dict(net="random", weight_init="orthogonal"),
    "random_zero_mean_first": dict(net="random", weight_init="zero-mean-first"),
})
PHOTO_COLOUR = (0.25, 0.5, 0.75, 1.0)    # fractions of the way to the style's colours (photo_colour rows)
COLUMNS = ["pair", "config", "content_weight", "seed", "content_err", "style_trained", "content_err_random",
           "style_random", "hf", "hf_colour", "seconds"]


def half_path(out_dir, style_name, which: str) -> str:
    """Where a run folder keeps a style image's half: ``which`` "seen" or "heldout"."""
    return os.path.join(out_dir, f"{style_name}_style_{which}.png")


def result_path(out_dir, content_name, style_name, config, cw: float, seed) -> str:
    """Where a run folder keeps one transfer's result."""
    return os.path.join(out_dir, f"{content_name}_{style_name}_{config}_cw{float(cw):g}_s{seed}.png")


def _rows(path) -> list:
    """The rows of a style.csv; a missing file is a one-line error."""
    if not os.path.exists(path):
        raise SystemExit(f"no {path}: run the configurations into that folder first (--out)")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def fine(img):
    """(hf, hf_colour) of an (H, W, 3) difference image."""
    d = np.asarray(img, np.float64)
    pad = np.pad(d, ((1, 1), (1, 1), (0, 0)), mode="edge")
    box = sum(pad[i:i + d.shape[0], j:j + d.shape[1]] for i in range(3) for j in range(3)) / 9
    r = d - box
    rc = r - r.mean(axis=2, keepdims=True)
    return float((r * r).mean()), float((rc * rc).mean())


def pair_list(a) -> list:
    if a.pairs:
        out = []
        for item in a.pairs.split(","):
            c, sep, s = item.strip().partition(":")
            if not (sep and c and s):
                raise SystemExit(f"--pairs takes CONTENT:STYLE,..., got {item!r}")
            out.append((c, s))
        return out
    if not (a.content and a.style):
        raise SystemExit("give --pairs CONTENT:STYLE,... or --content and --style")
    return [(a.content, a.style)]


class ProjectJudge:
    """The quality command's judge: content error at relu4_2, held-out distance relu1_1 .. relu4_1."""

    def __init__(self, weights, size):
        from tasks.figures import nets
        self.size = size
        self.nets = {"trained": nets.judge("trained", weights), "random": nets.judge("random", None)}

    def split(self, style_spec, out_dir, name):
        from tasks.pipeline import inputs
        split = judging.split_style(inputs.read(style_spec, self.size))
        seen = half_path(out_dir, name, "seen")
        image.save_png(seen, split["synthesis"])
        image.save_png(half_path(out_dir, name, "heldout"), split["held_out"][0])
        return seen, split["held_out"]

    def scores(self, img, content, held) -> dict:
        return {j: judging.style_scores(net, img, content, held) for j, net in self.nets.items()}


class FiveJudge:
    """Gram distance over relu1_1 .. relu5_1 (trained net as loaded: max pooling; random net 12345),
    the seen half cut from the style image at its own resolution."""

    def __init__(self, weights, size):
        self.size = size
        trained = VGG19.load(weights, device="cpu")
        self.nets = {"trained": trained, "random": VGG19.random(seed=12345, device="cpu")}
        self.grams = {j: Grams(n) for j, n in self.nets.items()}

    def split(self, style_spec, out_dir, name):
        from tasks.pipeline import inputs
        full = image.load_image(inputs.image_path(style_spec))
        half = full.shape[1] // 2
        seen = half_path(out_dir, name, "seen")
        image.save_image(seen, full[:, :half])
        h, w = full[:, half:].shape[:2]
        s = self.size / max(h, w)
        held = image.resize(full[:, half:], max(1, round(h * s)), max(1, round(w * s)))
        image.save_image(half_path(out_dir, name, "heldout"), held)
        return seen, [held]

    def _content(self, net, img):
        x = image.preprocess(np.asarray(img, np.float32), net.preprocessing)
        return backend.to_host(net.features(x, ["relu4_2"])["relu4_2"]).astype(np.float64)

    def scores(self, img, content, held) -> dict:
        out = {}
        for j, net in self.nets.items():
            f, fc = self._content(net, img), self._content(net, content)
            out[j] = {"content": float(((f - fc) ** 2).sum() / (fc ** 2).sum()),
                      "style": distance(self.grams[j](img), self.grams[j](held[0]))}
        return out


def run(a) -> str:
    from tasks import style
    from tasks.pipeline import inputs

    os.makedirs(a.out, exist_ok=True)
    judge = (ProjectJudge if a.judge == "project" else FiveJudge)(a.weights, a.size)
    path = os.path.join(a.out, "style.csv")
    new = not os.path.exists(path)
    sweep = [float(v) for v in a.content_weights.split(",") if v.strip()] or [None]
    seeds = [int(s) for s in a.seeds.split(",")]
    configs = [c.strip() for c in a.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown config(s) {', '.join(unknown)}: use {', '.join(CONFIGS)}")
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(COLUMNS)
        for content_spec, style_spec in pair_list(a):
            pair = f"{name_of(content_spec)}/{name_of(style_spec)}"
            seen, held = judge.split(style_spec, a.out, name_of(style_spec))
            content = inputs.read(content_spec, a.size)

            def row(config, cw, seed, img, secs):
                s = judge.scores(img, content, held)
                hf, hfc = fine(np.asarray(img, np.float64) - content)
                w.writerow([pair, config, cw, seed, f"{s['trained']['content']:.4g}", f"{s['trained']['style']:.4g}",
                            f"{s['random']['content']:.4g}", f"{s['random']['style']:.4g}", f"{hf:.4g}",
                            f"{hfc:.4g}", f"{secs:.1f}"])
                fh.flush()

            row("unstyled_photo", "", 0, content, 0)
            seen_img = image.load_image(seen)
            # the free baselines, no network: the photo in the seen half's colours (their mean and
            # covariance, or their whole distribution), a fraction t of the way there
            for name, full in (("photo_colour", image.recolour(content, [seen_img], 1.0)),
                               ("photo_histogram", metrics.histogram_matched(content, [seen_img]))):
                for t in PHOTO_COLOUR:
                    row(name, f"{t:g}", 0, ((1 - t) * content + t * full).astype(np.float32), 0)
            for config in configs:
                for cw in sweep:
                    for seed in seeds[:1] if config == "gatys" else seeds:   # Gatys starts from the photo
                        kw = dict(CONFIGS[config])
                        if kw.get("weights") == "TRAINED":
                            kw["weights"] = a.weights
                        if cw is not None:
                            kw["content_weight"] = cw
                        if a.content_layer and config != "gatys":
                            kw.setdefault("content_layer", a.content_layer)
                        if a.colour_first is not None and config != "gatys":
                            kw.setdefault("colour_first", a.colour_first)
                        kw = {k: v for k, v in kw.items() if v is not None}
                        t0 = time.perf_counter()
                        img, _ = style.run(content=content_spec, style=[seen], size=a.size, iters=a.iters, seed=seed,
                                           device="cpu", optimizer=REFERENCE_OPTIMIZER, **kw)
                        secs = time.perf_counter() - t0
                        cw_used = kw.get("content_weight", style.CONTENT_WEIGHT)
                        image.save_image(result_path(a.out, name_of(content_spec), name_of(style_spec), config,
                                                     cw_used, seed), img)
                        row(config, f"{cw_used:g}", seed, img, secs)
    return path


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _mr(vals, fmt="{:.3g}") -> str:
    vals = [v for v in vals if v == v]
    if not vals:
        return ""
    m = fmt.format(statistics.median(vals))
    return m if len(vals) == 1 else f"{m} [{fmt.format(min(vals))}-{fmt.format(max(vals))}]"


def summary(path) -> str:
    """A Markdown table of DIR/style.csv (see the module's docstring)."""
    rows = _rows(path)
    lines = ["| pair | config | alpha | n | content error | style (trained) | ratio to Gatys at that content error "
             "| style (random) | unstyled photo: trained / random | above the photo | hf colour | seconds |",
             "|" + "---|" * 12]
    for pair in dict.fromkeys(r["pair"] for r in rows):
        mine = [r for r in rows if r["pair"] == pair]
        photo = next((r for r in mine if r["config"] == "unstyled_photo"), None)
        p_t, p_r = (_num(photo["style_trained"]), _num(photo["style_random"])) if photo else (float("nan"),) * 2
        gatys = [(_num(r["content_err"]), _num(r["style_trained"])) for r in mine if r["config"] == "gatys"]
        groups = {}
        for r in mine:
            if r["config"] != "unstyled_photo":
                groups.setdefault((r["config"], r["content_weight"]), []).append(r)
        for (config, cw), rs in groups.items():
            ratios = [_num(r["style_trained"]) / judging.style_at(gatys, _num(r["content_err"])) for r in rs]
            inside = sum(r == r for r in ratios)
            ratio = _mr(ratios) if config != "gatys" else "1"
            if config != "gatys" and not ratio:
                ratio = "beyond Gatys' sweep"
            elif config != "gatys" and inside < len(rs):
                ratio += f" ({inside} of {len(rs)} within Gatys' sweep)"
            above = sum(_num(r["style_trained"]) > p_t for r in rs)
            lines.append(f"| {pair} | {config} | {cw} | {len(rs)} | {_mr([_num(r['content_err']) for r in rs])} "
                         f"| {_mr([_num(r['style_trained']) for r in rs])} | {ratio} "
                         f"| {_mr([_num(r['style_random']) for r in rs])} | {p_t:.3g} / {p_r:.3g} "
                         f"| {above} of {len(rs)} | {_mr([_num(r['hf_colour']) for r in rs], '{:.0f}')} "
                         f"| {_mr([_num(r['seconds']) for r in rs], '{:.0f}')} |")
    return "\n".join(lines)


def frontiers(path) -> str:
    """A Markdown table of DIR/style.csv: each configuration's own frontier (its sweep of content
    weights, per seed) read at the content error of each of Gatys' points, as a ratio to Gatys'
    style distance there; median [min-max] over seeds, "-" where a sweep does not reach."""
    rows = _rows(path)
    pts: dict = {}
    for r in rows:
        if r["config"] != "unstyled_photo":
            pts.setdefault((r["pair"], r["config"], r["seed"]), []).append((_num(r["content_err"]),
                                                                            _num(r["style_trained"])))
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    gatys = {p: sorted(v for (pp, c, _), vs in pts.items() if pp == p and c == "gatys" for v in vs) for p in pairs}
    heads = [(p, c) for p in pairs for c, _ in gatys[p]]
    lines = ["| config | " + " | ".join(f"{p} at {c:.3g}" for p, c in heads) + " |", "|" + "---|" * (len(heads) + 1)]
    for config in dict.fromkeys(r["config"] for r in rows):
        if config in ("unstyled_photo", "gatys"):
            continue
        cells = []
        for p, c in heads:
            ratios = [judging.style_at(v, c) / judging.style_at(gatys[p], c)
                      for (pp, cf, _), v in pts.items() if pp == p and cf == config and len(v) > 1]
            cells.append(_mr(ratios) or "-")
        if any(x != "-" for x in cells):
            lines.append(f"| {config} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(a) -> str:
    """A grid of the results in --out (seed --seeds' first): one row per pair, columns content |
    the style half the transfer saw | each ``CONFIG@ALPHA`` of --figure-cells | the held-out half,
    each result captioned with its content error and held-out style distance (trained judge)."""
    from tasks.figures import grid
    from tasks.pipeline import inputs

    seed = int(a.seeds.split(",")[0])
    cells = [c.strip().partition("@") for c in a.figure_cells.split(",") if c.strip()]
    if not cells or any(not (name and cw) for name, _, cw in cells):
        raise SystemExit("--figure-cells takes CONFIG@ALPHA,... (e.g. default@120,gatys@3)")
    scored = {(r["pair"], r["config"], r["content_weight"], r["seed"]): r
              for r in _rows(os.path.join(a.out, "style.csv"))}
    rows, labels = [], []
    for content_spec, style_spec in pair_list(a):
        c, s = name_of(content_spec), name_of(style_spec)
        row = [inputs.read(content_spec, a.size), half_path(a.out, s, "seen")]
        for name, _, cw in cells:
            r = scored.get((f"{c}/{s}", name, f"{float(cw):g}", str(seed)))
            if r is None:
                raise SystemExit(f"no {name} at alpha {cw}, seed {seed}, for {c}/{s} in {a.out}/style.csv: run it first")
            caption = f"c {float(r['content_err']):.2f} s {float(r['style_trained']):.3g}"
            row.append((result_path(a.out, c, s, name, float(cw), seed), caption))
        row.append(half_path(a.out, s, "heldout"))
        rows.append(row)
        labels.append(f"{c} / {s}")
    cols = ["content", "style (seen)"] + [f"{n}, alpha {cw}" for n, _, cw in cells] + ["style (held out)"]
    return str(grid.draw(rows, labels, cols, a.figure))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--summary", metavar="CSV", help="print the table of a style.csv and stop")
    ap.add_argument("--frontiers", metavar="CSV", help="print each config's frontier against Gatys' and stop")
    ap.add_argument("--pairs", help="CONTENT:STYLE,... (files or sample names)")
    ap.add_argument("--content", help="one pair's content (with --style)")
    ap.add_argument("--style", help="one pair's style (with --content)")
    ap.add_argument("--weights", help="the trained VGG-19 (.npz): the judge and the gatys rows")
    ap.add_argument("--out", help="output folder (style.csv is appended to)")
    ap.add_argument("--configs", default="default", help=f"comma-separated, of: {', '.join(CONFIGS)}")
    ap.add_argument("--content-weights", default="", help="a sweep of --content-weight (default: each config's own)")
    ap.add_argument("--seeds", default="0", help="comma-separated (the gatys rows: the first only)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--judge", choices=("project", "five"), default="project")
    ap.add_argument("--colour-first", type=float, default=None, metavar="T",
                    help="the random nets' --colour-first wherever a config does not set one (default: the "
                         "style command's)")
    ap.add_argument("--content-layer", help="the random nets' content layer wherever a config does not set one "
                                            "(default: the style command's)")
    ap.add_argument("--figure", metavar="PNG", help="draw a grid of the results already in --out and stop")
    ap.add_argument("--figure-cells", default="default@120,gatys@3", metavar="CONFIG@ALPHA,...",
                    help="the --figure's result columns")
    a = ap.parse_args(argv)
    if a.figure:
        if not a.out:
            ap.error("--figure reads the results in --out")
        print(figure(a))
        return
    if a.frontiers:
        print(frontiers(a.frontiers))
        return
    if a.summary:
        print(summary(a.summary))
        return
    if not (a.weights and a.out):
        ap.error("--weights and --out are needed to run (or --summary CSV)")
    print(run(a))


if __name__ == "__main__":
    main()
