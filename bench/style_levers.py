"""Style levers on a held-out style half: content error, style distance and speckle.

    python -m bench.style_levers --content astronaut --style stars.png --weights vgg19.npz --out DIR \
        [--configs default,layer_relu1_1,...] [--content-weights 10] [--seeds 0] [--size 128] [--iters 200]

The style image is cut in two halves: the left one is what the transfer sees, the right one is
held out. Judged in the trained VGG-19: content error ||F(x) - F(c)||^2 / ||F(c)||^2 at relu4_2
and the per-position Gram distance (sum over relu1_1 .. relu5_1) to the held-out half; the same
Gram distance in an independently seeded random VGG-19. Speckle: the fine-scale energy of the
change made to the photo, r = (x - c) minus its 3x3 box average, as the mean of r^2 over pixels
and channels ("hf"), and of its colour part (r minus its mean over R, G, B: "hf_colour").
Rows go to DIR/style.csv as they finish.
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

from .texture_levers import LAYERS, Grams, distance

ALL = ",".join(LAYERS)
# Every named configuration starts from the five Gram layers at content weight 10 with nothing
# else (FIVE: pinned layers kept, no colour or centred statistics, one scale), and changes what
# its name says; "default" is the style command's defaults.
FIVE = dict(style_layers=ALL, content_weight=10, pinned_layers="keep", pixel_stats="none", feature_stats="gram",
            scales="none")
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
    "gatys": dict(weights="TRAINED", pooling="avg", net=None, content_layer="relu4_2", tv_weight=0),
}
for _l in LAYERS:
    CONFIGS[f"layer_{_l}"] = dict(style_layers=_l)
CONFIGS = {name: {**FIVE, **kw} for name, kw in CONFIGS.items()}
CONFIGS["default"] = {}


def fine(img):
    """(hf, hf_colour) of an (H, W, 3) difference image."""
    d = np.asarray(img, np.float64)
    pad = np.pad(d, ((1, 1), (1, 1), (0, 0)), mode="edge")
    box = sum(pad[i:i + d.shape[0], j:j + d.shape[1]] for i in range(3) for j in range(3)) / 9
    r = d - box
    rc = r - r.mean(axis=2, keepdims=True)
    return float((r * r).mean()), float((rc * rc).mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--content", required=True)
    ap.add_argument("--style", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--content-weights", default="", help="a sweep of --content-weight (default: each config's own)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iters", type=int, default=200)
    a = ap.parse_args(argv)
    from tasks import style
    from tasks.pipeline import inputs

    os.makedirs(a.out, exist_ok=True)
    trained = VGG19.load(a.weights, device="cpu")
    judges = {"trained": Grams(trained), "random": Grams(VGG19.random(seed=12345, device="cpu"))}
    content = inputs.read(a.content, a.size)
    full = image.load_image(inputs.image_path(a.style))
    half = full.shape[1] // 2
    seen_path = os.path.join(a.out, "style_seen.png")
    image.save_image(seen_path, full[:, :half])
    held = image.resize(full[:, half:], *_fit(full[:, half:], a.size))
    image.save_image(os.path.join(a.out, "style_heldout.png"), held)
    g_held = {j: judges[j](held) for j in judges}

    def content_features(img):
        x = image.preprocess(np.asarray(img, np.float32), trained.preprocessing)
        return backend.to_host(trained.features(x, ["relu4_2"])["relu4_2"]).astype(np.float64)

    fc = content_features(content)
    path = os.path.join(a.out, "style.csv")
    new = not os.path.exists(path)
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["config", "content_weight", "seed", "content_err", "style_trained", "style_random",
                        "hf", "hf_colour", "seconds"])

        def row(config, cw, seed, img, secs):
            f = content_features(img)
            err = float(((f - fc) ** 2).sum() / (fc ** 2).sum())
            hf, hfc = fine(np.asarray(img, np.float64) - content)
            w.writerow([config, cw, seed, f"{err:.4g}", f"{distance(judges['trained'](img), g_held['trained']):.4g}",
                        f"{distance(judges['random'](img), g_held['random']):.4g}", f"{hf:.4g}", f"{hfc:.4g}",
                        f"{secs:.1f}"])
            fh.flush()

        row("unstyled_photo", "", 0, content, 0)
        sweep = [float(v) for v in a.content_weights.split(",") if v.strip()] or [None]
        for config in a.configs.split(","):
            for cw in sweep:
                for seed in (int(s) for s in a.seeds.split(",")):
                    kw = dict(CONFIGS[config])
                    if kw.get("weights") == "TRAINED":
                        kw["weights"] = a.weights
                    if cw is not None:
                        kw["content_weight"] = cw
                    kw = {k: v for k, v in kw.items() if v is not None}
                    t0 = time.perf_counter()
                    img, _ = style.run(content=a.content, style=[seen_path], size=a.size, iters=a.iters, seed=seed,
                                       device="cpu", **kw)
                    secs = time.perf_counter() - t0
                    image.save_image(os.path.join(a.out, f"{config}_cw{kw.get('content_weight', 'd')}_s{seed}.png"), img)
                    row(config, kw.get("content_weight", style.CONTENT_WEIGHT), seed, img, secs)


def _fit(img, size):
    h, w = img.shape[:2]
    s = size / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


if __name__ == "__main__":
    main()
