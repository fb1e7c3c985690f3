"""The paper's greedy "stacked" ranVGG (docs/method.md, section 6).

For each conv layer in forward order, with the layers before it fixed: draw K candidate weight
sets for it, reconstruct the reference image from its rectified output (``reluB_I``) with each
candidate (same starting noise, same iteration budget), and keep the candidate with the smallest
relative feature loss ||F(x) - F(x0)||^2 / ||F(x0)||^2 (a raw loss would favour draws of smaller
norm). Candidate 0 is the plain random net's own draw, so K = 1 gives back ``VGG19.random``.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .errors import UserError
from .metrics import relative_error
from .objectives import Objective
from .optim import lbfgs
from .vgg import VGG19

RULE = ("per conv layer in order, the candidate with the smallest relative feature error of the "
        "reconstruction from its relu output")


def candidate(seed: int, layer_index: int, k: int, shape, sigma: float) -> np.ndarray:
    """Candidate ``k`` (>= 1) for conv layer ``layer_index``: its own seeded stream, so any
    candidate can be redrawn without the others."""
    rng = np.random.default_rng([seed, layer_index, k])
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)


def build(net: VGG19, x0, x_start, bounds, candidates: int = 3, iters: int = 50, top: str = "conv5_4",
          history: int = 10, progress=None) -> dict:
    """Choose each conv layer's weights greedily, in place in ``net``; returns the scores.

    x0: the reference image (1, 3, H, W), preprocessed; x_start: the common starting noise.
    progress(layer, k, score, seconds): called after every reconstruction.
    Returns {layer: {"scores": [relative feature error per candidate], "chosen": k}}.
    """
    names = [name for name, _ in net.conv_shapes]
    if top not in names:
        raise UserError(f"--top must be a conv layer ({', '.join(names)}), got {top!r}")
    if candidates < 1:
        raise UserError(f"--candidates must be at least 1, got {candidates}")
    seed, sigma = net.meta.get("seed", 0), net.meta.get("sigma", 0.015)
    report = {}
    for index, (name, shape) in enumerate(net.conv_shapes[:names.index(top) + 1]):
        relu = "relu" + name[4:]
        original, bias = net.params[name]
        def draw(k):   # drawn when tried, never all at once: --candidates N holds one at a time
            return original if k == 0 else candidate(seed, index, k, shape, sigma)

        scores = []
        try:
            for k in range(candidates):
                net.set_layer(name, draw(k), bias)
                obj = Objective.inversion(net, x0, relu)
                obj.calibrate(x_start)
                res = lbfgs(obj, x_start, bounds, iters=iters, history=history)
                if res.interrupted:
                    raise KeyboardInterrupt
                if res.failed:
                    raise FloatingPointError(f"{name}, candidate {k}: {res.failed}")
                feats = net.features(res.x.astype(np.float32), [relu])[relu]
                score = relative_error(backend.to_host(feats), backend.to_host(obj.terms[0].target))
                scores.append(score)
                if progress is not None:
                    progress(name, k, score, res.seconds)
        except BaseException:
            net.set_layer(name, original, bias)  # an unfinished layer keeps its plain draw
            raise
        finally:
            _record(net, candidates, iters, report)
        best = int(np.argmin(scores))
        net.set_layer(name, draw(best), bias)
        report[name] = {"scores": scores, "chosen": best}
        _record(net, candidates, iters, report)
    return report


def _record(net: VGG19, candidates: int, iters: int, report: dict) -> None:
    """What was chosen so far, in the net's meta (saved with it)."""
    net.meta["kind"] = "stacked"
    net.meta["stacked"] = {"candidates": candidates, "iters": iters, "layers": dict(report), "rule": RULE}
