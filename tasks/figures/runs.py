"""One run of a figure: a plain dict (the spec) in, a row of scores and the image out.

A spec is what a Dask worker receives, so it holds only names and numbers:
``{"key", "task": "invert"|"texture"|"style"|"baseline", "net", "arch", "seed", "image", "layer",
"size", "iters", "device", "trained", ...}``. The optimisation itself is the task's own
``run(**options)`` (tasks.invert / texture / style) on the net from ``nets.get_net``.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np

from engine import backend, metrics
from engine.io import image
from engine.ops.gram import gram_forward

from ..pipeline import inputs
from .. import invert, style, texture
from . import nets

JUDGE_STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]   # docs/method.md, section 7
JUDGE_CONTENT_LAYER = "relu4_2"
REFERENCE_OPTIMIZER = "lbfgs"      # what the figures of docs/ are measured with


def execute(spec: dict) -> dict:
    """Run ``spec``; returns {"row": {column: value}, "image": (H, W, 3) uint8, "curve": [...]}.

    Interrupting (Ctrl-C) raises KeyboardInterrupt rather than returning a partial row."""
    t0 = time.perf_counter()
    if spec["task"] == "baseline":
        img, log = _baseline(spec), {"iterations": 0, "status": "done"}
    else:
        img, log = _optimise(spec)
    if log.get("status") == "interrupted":
        raise KeyboardInterrupt
    row = {k: spec.get(k) for k in ("key", "task", "net", "arch", "seed", "image", "style", "layer", "size",
                                    "content_weight")}
    scores = _scores(spec, img, log)
    if spec.get("judge_suffix"):   # e.g. "_same_crop": the quality figure's own judge is another
        scores = {(k + spec["judge_suffix"] if k.endswith("_judge") else k): v for k, v in scores.items()}
    row.update(scores, iterations=log.get("iterations", 0), status=log.get("status"),
               seconds=round(time.perf_counter() - t0, 3))
    curve = [{"iteration": h["iteration"], "loss": h["loss"]} for h in log.get("losses", [])]
    if curve and spec["task"] == "invert" and "," not in spec["layer"] and log.get("final_loss"):
        # one inversion term: the loss is the relative feature error times a constant (Eq. 1
        # over ||F0||^2), so the final pair gives the error at every iteration
        scale = log["feature_error"][spec["layer"]] / log["final_loss"]
        for c in curve:
            c["feature_error"] = c["loss"] * scale
    return {"row": row, "image": np.clip(np.rint(img), 0, 255).astype(np.uint8), "curve": curve}


def _optimise(spec: dict):
    """The task's run() on the spec's net, its console output and files kept out of the way."""
    net = nets.get_net(spec["net"], spec["seed"], spec.get("arch", "vgg19"), spec.get("trained"),
                       spec.get("device", "cpu"))
    # scipy's L-BFGS-B, the reference, on every device: the recorded figures do not move with the
    # CPU's default optimiser (an "optimizer" in the spec's options overrides it)
    common = {**dict(network=net, seed=spec["seed"], size=spec["size"], iters=spec["iters"],
                     device=spec.get("device", "cpu"), print_every=0, optimizer=REFERENCE_OPTIMIZER),
              **spec.get("options", {})}
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        out = str(Path(tmp) / "run.png")
        if spec["task"] == "invert":
            return invert.run(image=spec["image"], layer=spec["layer"], out=out, **common)
        if spec["task"] == "texture":
            return texture.run(image=spec["image"], layers=spec["layer"], out=out, **common)
        return style.run(content=spec["image"], style=[spec["style"]], out=out, **common)


def _baseline(spec: dict) -> np.ndarray:
    """A free image: white noise or the (style) image's pixels shuffled."""
    ref = inputs.read(spec.get("style") or spec["image"], spec["size"])
    if spec["net"] == "white_noise":
        content = inputs.read(spec["image"], spec["size"])
        return metrics.white_noise_like(content, spec["seed"])
    if spec["net"] == "content":        # the unstyled photo (style figure)
        return inputs.read(spec["image"], spec["size"])
    return metrics.shuffled_pixels(ref, spec["seed"])


def _scores(spec: dict, img: np.ndarray, log: dict) -> dict:
    """The scores of one result; a figure's columns pick those it shows."""
    out = {}
    if spec["task"] == "invert" or spec.get("kind") == "invert":
        ref = inputs.read(spec["image"], spec["size"])
        out.update(psnr=metrics.psnr(img, ref), ssim=metrics.ssim(img, ref))
        if "feature_error" in log:
            out["feature_error"] = log["feature_error"][spec["layer"]]
        return out
    if "gram_error" in log:
        out["gram_error"] = log["gram_error"]["total"]          # in the optimised net itself
    if "style_error" in log:
        out["style_error"], out["content_error"] = log["style_error"]["total"], log["content_error"]
    trained = spec.get("trained")
    for which in ("random", "trained"):
        judge = nets.judge(which, trained, spec.get("device", "cpu"))
        if judge is None:
            continue
        if spec["task"] == "texture" or spec.get("kind") == "texture":
            out[f"gram_error_{which}_judge"] = _gram_error(judge, img, inputs.read(spec["image"], spec["size"]))
        else:
            ref_style = inputs.read(spec["style"], spec["size"])
            content = inputs.read(spec["image"], spec["size"])
            out[f"style_error_{which}_judge"], out[f"content_error_{which}_judge"] = \
                _style_errors(judge, img, content, ref_style)
    return out


def _gram_error(judge, img, ref) -> float:
    """Relative Gram error summed over relu1_1..relu5_1 of ``img`` against ``ref`` in ``judge``."""
    fx = _judge_features(judge, img, JUDGE_STYLE_LAYERS)
    return metrics.gram_relative_error(fx, _judge_features(judge, ref, JUDGE_STYLE_LAYERS, cache=True))["total"]


def _style_errors(judge, img, content, style_img):
    """(Gram error against the style image, summed relu1_1..relu5_1, with the Gram of a
    different-sized style image rescaled to the result's positions; content error at relu4_2)."""
    layers = JUDGE_STYLE_LAYERS + [JUDGE_CONTENT_LAYER]
    fx = _judge_features(judge, img, layers)
    fc, fs = (_judge_features(judge, im, layers, cache=True) for im in (content, style_img))
    style_err = 0.0
    for l in JUDGE_STYLE_LAYERS:
        g_s = gram_forward(fs[l]) * (fx[l].shape[2] * fx[l].shape[3] / (fs[l].shape[2] * fs[l].shape[3]))
        style_err += metrics.relative_error(gram_forward(fx[l]), g_s)
    return style_err, metrics.relative_error(fx[JUDGE_CONTENT_LAYER], fc[JUDGE_CONTENT_LAYER])


_REFERENCES = {}   # (judge, reference image bytes, layers) -> features: references recur across runs


def _judge_features(judge, img, layers, cache=False) -> dict:
    """{layer: (1, C, h, w) float64 host array} of ``img`` (H, W, 3) in ``judge``."""
    k = (id(judge), img.shape, hash(np.ascontiguousarray(img).tobytes()), tuple(layers))
    if cache and k in _REFERENCES:
        return _REFERENCES[k]
    x = image.preprocess(img, judge.preprocessing)
    out = {l: backend.to_host(f).astype(np.float64) for l, f in judge.features(x, layers).items()}
    if cache:
        if len(_REFERENCES) > 32:
            _REFERENCES.clear()
        _REFERENCES[k] = out
    return out
