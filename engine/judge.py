"""Judge a result in a network other than the one optimised (docs/method.md, section 7).

A random net's own objective can be met to 1e-5 while the picture is poor, so results are
scored in a second network: a trained VGG-19 (the paper's comparison network, when a weights
file is given) or an independently seeded random one.

    judge = Judge(trained_net, style=[img_s], content=img_c)     # images (H, W, 3) in [0, 255]
    judge.score(img)   # {"style": {"relu1_1": ..., ..., "total": ...}, "content": ...}

- style error: sum over ``STYLE_LAYERS`` of ||G(x) - G_s||^2 / ||G_s||^2, with G = F F^T / M
  (M positions): per-position correlations, so that style images of another size, and blends
  of several, give one target per layer. For a single style image of the output's size this
  is exactly ``metrics.gram_relative_error``.
- content error: ||F(x) - F(xc)||^2 / ||F(xc)||^2 at ``CONTENT_LAYER`` (relu4_2, as Gatys).

The judge takes images, not network inputs: each network preprocesses them its own way
(a trained file may want torchvision's /255 and std), so any net can judge any result.
"""
from __future__ import annotations

import numpy as np

from . import backend, metrics
from .io import image
from .arch import DEFAULT_SIGMA
from .vgg import VGG19

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"


class Judge:
    """Scores images against fixed style and/or content references in ``net``."""

    def __init__(self, net: VGG19, style=None, content=None, blend=None,
                 style_layers=STYLE_LAYERS, content_layer=CONTENT_LAYER):
        """``style``: list of (H, W, 3) images in [0, 255] (blended by ``blend``, normalised;
        equal by default); ``content``: one (H, W, 3) image. Either may be None."""
        self.net = net
        self.style_layers = tuple(style_layers) if style else ()
        self.content_layer = content_layer if content is not None else None
        self.targets = {}
        if style:
            blend = [1.0] * len(style) if blend is None else [float(b) for b in blend]
            blend = [b / sum(blend) for b in blend]
            for img, b in zip(style, blend):
                for layer, g in self._grams(img).items():
                    self.targets[layer] = self.targets.get(layer, 0.0) + b * g
        self.content_target = self._features(content)[content_layer] if content is not None else None

    def _features(self, img, layers=None) -> dict:
        """{layer: (C, h*w) float64 host array} for an (H, W, 3) image in [0, 255]."""
        layers = list(layers) if layers is not None else [self.content_layer]
        x = image.preprocess(np.asarray(img, np.float32), self.net.preprocessing, self.net.dtype)
        feats = self.net.features(x, layers)
        # (1, C, h, w) -> (C, h*w)
        return {l: backend.to_host(f).astype(np.float64).reshape(f.shape[1], -1) for l, f in feats.items()}

    def _grams(self, img) -> dict:
        """{layer: (C, C) per-position Gram matrix F F^T / M}."""
        return {l: f @ f.T / f.shape[1] for l, f in self._features(img, self.style_layers).items()}

    def score(self, img) -> dict:
        """{"style": {layer: relative Gram error, ..., "total": sum}, "content": relative
        feature error}; a key only for the references the judge was given."""
        layers = list(self.style_layers) + ([self.content_layer] if self.content_layer else [])
        feats = self._features(img, layers)
        out = {}
        if self.style_layers:
            style = {l: metrics.relative_error(feats[l] @ feats[l].T / feats[l].shape[1], self.targets[l])
                     for l in self.style_layers}
            style["total"] = float(sum(style.values()))
            out["style"] = style
        if self.content_layer:
            out["content"] = metrics.relative_error(feats[self.content_layer], self.content_target)
        return out

    def score_all(self, images: dict) -> dict:
        """{name: score(img)} for a dict of named images (results and baselines)."""
        return {name: self.score(img) for name, img in images.items()}


def random_judge_net(seed: int, sigma: float = DEFAULT_SIGMA, pooling: str = "avg", device: str = "cpu") -> VGG19:
    """An independently seeded random VGG-19. Its settings come from the user's options, never
    from the optimised net's file, so that a random-net run and a trained-net (Gatys) run of the
    same command are judged by the same network."""
    return VGG19.random(seed=seed, sigma=sigma, pooling=pooling, device=device)


def summary(scores: dict) -> str:
    """One line: "style S, content C" of a score dict (either part may be absent)."""
    parts = []
    if "style" in scores:
        parts.append(f"style {scores['style']['total']:.3g}")
    if "content" in scores:
        parts.append(f"content {scores['content']:.3g}")
    return ", ".join(parts)
