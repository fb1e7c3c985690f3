"""The paper's objectives as sums of weighted terms, with the Eq. 4 weighting pre-process.

    obj = Objective.inversion(net, x0, "pool3")
    obj = Objective.texture(net, xs, ["relu1_1", "relu2_1", "relu3_1", "relu4_1"])
    obj = Objective.style(net, xc, [xs], content_layer="relu1_2", ...)
    obj.calibrate(x_start)            # Eq. 4: set each term's weighting factor, once
    value, grad = obj.value_and_grad(x)

A term is ``user_weight * factor * raw_loss``. ``factor`` is the weighting factor of Eq. 4
(w_l, mu_l): 1 / mean |d raw_loss / dx| over all pixels and channels, measured once before the
optimisation, so that every layer pulls on the image with the same strength whatever its raw
scale (a random relu5_1 loss can be 1e-12). How each kind is measured:

- content (inversion) terms: the paper's reading, at F^l(x') = 0: the gradient
  -F^l(x0) / (N M) back-propagated through the network at the starting image. It never
  vanishes, even when the start is the content image itself.
- Gram (texture) terms: at the starting image (at F = 0 the Gram gradient is zero).
- total variation: at the content image (the natural smoothness of the scene), whatever the
  start, so that gamma means the same from noise as from the content image.

Everything runs on the net's device; ``value_and_grad`` returns a float and a device array.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import backend
from .autograd import Tensor, add, backward
from .errors import UserError
from .io import image
from .ops.gram import gram_forward, shifted_gram_forward
from .ops.losses import content_loss, gram_loss, shifted_gram_loss
from .ops.stats import balanced_scales, directions, moments, moments_loss, sliced_wasserstein_loss, sorted_projections
from .ops.border import crop, wrap_pad
from .ops.fftconv import fftconv
from .ops.spectrum import spectrum_loss, spectrum_target
from .ops.pooling import avgpool2, avgpool2_forward
from .ops.project import project, project_forward, projection
from .ops.relu import relu
from .ops.tv import tv_loss
from .arch import DEFAULT_ARCH, interior as interior_window, map_shape, periodic_pad, pins_layout, receptive_field
from .vgg import VGG19

# Style transfer defaults: the one set, used by Objective.style and by ranvgg style (the command
# adds --scales half). Not the paper's 100:1:1000: with every term normalised by Eq. 4 (TV
# included) that ratio lets TV dominate (a blur). The style statistics are the texture command's:
# relu1_1 .. relu5_1 with the layers that pin a layout left out, mean and covariance beside each
# Gram, the pixels' colour moments. The content term is at relu1_2, not the paper's conv2_2:
# judged in a trained VGG-19 against held-out halves of three style images (3 seeds), at equal
# content error it is nearer the style than relu2_2 on two pairs and level on the third, and the
# fine colour speckle the deeper random terms paint over the photo falls about 20x (relu1_2 holds
# the fine grain); a fine-point style (a star field) loses (docs/levers.md, "The content layer").
STYLE_CONTENT_LAYER = "relu1_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 120.0, 1.0, 0.1
# The content photo's colours are moved halfway to the style's before the transfer (its mean and
# covariance: ``recoloured_content``), and the content term holds that: judged in a trained VGG-19
# against held-out halves of four style images (3 seeds), at equal content error 1.9-2.2 times
# Gatys' style distance, where the photo's own colours held at alpha 15 gave 2.4-6.1 (docs/levers.md,
# "Held-out pairs: colour first"). With it the random net's style terms add little: the same recolouring with no
# network judges as near.
STYLE_COLOUR_FIRST = 0.5
PIXELS = "pixels"   # the "layer" of a term on the image itself
# distribution terms a texture or style objective can add: on the pixels (colour) and on every
# style layer beside its Gram matrix (docs/levers.md)
PIXEL_STATS = ("none", "moments", "swd")
FEATURE_STATS = ("gram", "gram+moments", "gram+balanced", "gram+swd", "moments", "swd")
STYLE_DROP_PINNED, STYLE_PIXEL_STATS, STYLE_FEATURE_STATS = True, "moments", "gram+moments"
STYLE_CONTENT_LEVEL = 0
STYLE_INTERIOR = False


@dataclass
class Term:
    """One weighted loss term. ``kind``: "content" | "gram" | "shifted" | "moments" | "swd" | "spectrum" | "tv".

    ``layer`` PIXELS: the term reads the image itself (its colour distribution)."""

    name: str
    kind: str
    layer: str | None = None
    target: object = None          # F0 (content) or G0 (gram), on the device
    weight: float = 1.0            # the user's weight (alpha, beta * blend, gamma, ...)
    factor: float = 1.0            # Eq. 4 weighting factor, set by calibrate()
    level: int = 0                 # image pyramid level: the net sees x 2x2-averaged ``level`` times
    proj: object = None            # (K, C): the statistics are of K random projections of the channels

    def projected_key(self):
        """Where ``Objective._forward`` puts this term's layer projected by its ``proj``."""
        return self.layer, id(self.proj)

    def loss(self, feats: dict, x: Tensor, scale: float = None) -> Tensor:
        s = self.weight * self.factor if scale is None else scale
        if self.kind == "content":
            return content_loss(feats[self.layer], self.target, s, self.name)
        if self.kind == "tv":
            return tv_loss(x, s, self.name)
        if self.layer == PIXELS:
            f = x
        elif self.proj is None:
            f = feats[self.layer]
        else:  # projected once for all the layer's terms by Objective._forward, else here
            f = feats.get(self.projected_key())
            if f is None:
                f = project(feats[self.layer], self.proj, f"{self.layer}:projected")
        if self.kind == "gram":
            return gram_loss(f, self.target, s, self.name)
        if self.kind == "shifted":   # target: (shifted Gram, (dy, dx) positions)
            return shifted_gram_loss(f, self.target[0], self.target[1], s, self.name)
        if self.kind == "moments":
            return moments_loss(f, self.target[0], self.target[1], s, self.name, scales=self.target[2])
        if self.kind == "spectrum":
            return spectrum_loss(f, self.target, s, self.name)
        return sliced_wasserstein_loss(f, *self.target, s, self.name)


class Objective:
    """sum over terms of weight * factor * loss(x); see the module docstring."""

    def __init__(self, net: VGG19, terms: list[Term], bank: dict | None = None, periodic: bool = False):
        if not terms:
            raise UserError("an objective needs at least one term")
        self.net = net
        self.terms = terms
        self.bank = dict(bank or {})    # {layer name: filters (O, 3, k, k)}: the random filter bank's maps
        self.layers = sorted({t.layer for t in terms if t.layer and t.layer != PIXELS and t.layer not in self.bank},
                             key=net.layer_names().index)
        self.levels = sorted({t.level for t in terms})
        # periodic: the net sees x wrapped around by ``pad`` px and each map is cut back to x's own
        # (``_forward``): the features of x repeated without end, no border anywhere
        pairs = [(t.layer, t.level) for t in terms if t.layer in self.layers]
        self.pad = periodic_pad(pairs, net.arch) if periodic and pairs else 0
        self.last_terms: dict[str, float] = {}
        self.evaluations = 0

    # ------------------------------------------------------------------ builders

    @classmethod
    def inversion(cls, net: VGG19, x0, layers, weights=None, tv_weight=0.0) -> "Objective":
        """Eq. 1: match layer(s) ``layers`` of ``x0`` (N, 3, H, W), preprocessed.

        ``tv_weight``: an optional total-variation prior (Mahendran & Vedaldi); the paper uses
        none (0, the default). Calibrated at x0, like the style transfer's."""
        layers = net.check_layers([layers] if isinstance(layers, str) else layers)
        weights = _weights(weights, len(layers), "layer")
        feats = net.features(x0, layers)
        terms = [Term(f"content:{l}", "content", l, feats[l], w) for l, w in zip(layers, weights)]
        if tv_weight:
            terms.append(Term("tv", "tv", target=x0, weight=tv_weight))
        return cls(net, terms)

    @classmethod
    def texture(cls, net: VGG19, xs, layers, weights=None, levels: int = 1, shape=None,
                pixel_stats: str = "none", feature_stats: str = "gram", drop_pinned: bool = False,
                bank_maps: int = 0, bank_seed: int = 0, spectrum_weight: float = 0.0,
                interior: bool = False, periodic: bool = False, project: int = 0, shifts=()) -> "Objective":
        """Eq. 5-8: match the Gram matrices of ``layers`` of ``xs``.

        ``shape``: the (N, 3, H, W) of the image synthesised (default: ``xs``'s); per-position
        statistics make the targets size-free. ``levels`` > 1 adds an image pyramid: the same
        Gram terms on x and xs 2x2-averaged once, twice, ... (``levels - 1`` times), each with
        its own Eq. 4 factor; see ``_gram_terms``. ``pixel_stats`` ("moments" | "swd") adds a
        term on the colour distribution of the pixels; ``feature_stats`` chooses the terms per
        layer (``FEATURE_STATS``: the Gram matrix, and/or mean and covariance, or a sliced
        Wasserstein distance beside it). ``drop_pinned``: leave out, at each pyramid level, the
        layers whose Gram matrix would pin the source's layout (``engine.arch.pins_layout``, at
        the exemplar's or the output's size); ``pinned_layers`` says which. ``bank_maps`` > 0 adds
        the multi-scale random filter bank (``filter_bank``): one Gram term per filter size.
        ``spectrum_weight`` > 0 adds a term (that weight, on top of its Eq. 4 factor) on the
        magnitude of each colour channel's Fourier transform (Liu et al. 2016; ``ops.spectrum``).
        ``interior``: the exemplar's per-layer statistics over the positions that see none of the
        convs' zero padding (``engine.arch.interior``), so that its border is not part of the
        texture. ``periodic``: the synthesis is a periodic image (the net sees it wrapped around;
        it tiles, and has no border either). ``project`` K > 0: every layer's statistics are of K
        random projections of its channels where it has more (``projections``), and a layer pins
        the layout only if it has fewer positions than K. ``shifts``: distances in px (each a whole
        number >= 1): every layer kept at full size also matches its maps' correlations with
        themselves moved that far across and down (``shift_terms``: long-range structure)."""
        layers = net.check_layers(layers)
        weights = _weights(weights, len(layers), "layer")
        shape = tuple(xs.shape) if shape is None else tuple(shape)
        terms = _stat_terms(net, [xs], layers, weights, shape, levels, feature_stats,
                            (xs.shape[2:],) if drop_pinned else None, interior, project)
        kept = {t.layer for t in terms if t.level == 0}
        terms += shift_terms(net, [xs], [(l, w) for l, w in zip(layers, weights) if l in kept], shape, shifts,
                             interior, projections(net, layers, project))
        bank = filter_bank(min(*xs.shape[2:], *shape[2:]), bank_maps, bank_seed, net.xp, net.dtype) if bank_maps else {}
        terms += _pixel_terms(net, [xs], pixel_stats, shape) + _bank_terms(net, xs, bank, shape)
        return cls(net, terms + _spectrum_terms(net, [xs], spectrum_weight, shape), bank, periodic)

    @classmethod
    def style(cls, net: VGG19, xc, styles, blend=None, content_layer=STYLE_CONTENT_LAYER,
              style_layers=STYLE_LAYERS, content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT,
              tv_weight=TV_WEIGHT, levels: int = 1, drop_pinned: bool = STYLE_DROP_PINNED,
              pixel_stats: str = STYLE_PIXEL_STATS, feature_stats: str = STYLE_FEATURE_STATS,
              content_level: int = STYLE_CONTENT_LEVEL, with_content: bool = True, bank_maps: int = 0,
              bank_seed: int = 0, interior: bool = STYLE_INTERIOR, project: int = 0,
              colour_first: float = STYLE_COLOUR_FIRST, spectrum_weight: float = 0.0, shifts=(),
              layer_weights=None) -> "Objective":
        """Eq. 9: alpha * L_content + beta * L_texture + gamma * R.

        ``styles``: one or more preprocessed style images; their Gram targets are mixed by
        ``blend`` (normalised to sum to 1; equal by default). ``levels``: the style terms' image
        pyramid, as in ``texture``. ``drop_pinned``: leave out the style layers whose Gram matrix
        pins a layout at the content's or a style image's size (``pinned_layers``). ``pixel_stats``:
        a term (weight ``style_weight``) on the colour distribution of the pixels, toward the
        style images' (``PIXEL_STATS``). ``feature_stats``: the statistics matched per style layer
        (``FEATURE_STATS``; the moments are blended like the Gram matrices, the sliced Wasserstein
        target pools the style images' positions and takes equal blends only). ``content_level``:
        the content term reads x 2x2-averaged that many times (the photo's layout at a coarser
        scale, leaving the finer scales to the style terms); 0: the image itself. ``with_content``
        False: no content term (the style statistics of another net of an ensemble). ``bank_maps``
        > 0: the random filter bank's Gram terms too (as in ``texture``, sizes up to half the
        smallest image; targets blended like the Gram matrices), each weighted ``style_weight``.
        ``interior``: the style images' statistics over the positions that see none of the zero
        padding (as in ``texture``). ``project``: the style statistics of random projections of the
        channels (as in ``texture``; the content term is not projected). ``colour_first``: the
        content image's colours moved that fraction of the way to the style images' before anything
        else (``recoloured_content``; start the optimisation from the same image); 0: as given.
        ``spectrum_weight`` > 0: the Fourier-spectrum term toward the style images' power spectra
        (blended like the Gram matrices), that weight on top of its Eq. 4 factor. ``shifts``: the style
        layers' long-range correlations at those distances in px too (``shift_terms``, as in ``texture``).
        ``layer_weights``: one factor per style layer on top of ``style_weight`` (its Gram, moment,
        sliced Wasserstein and long-range terms); None: all 1."""
        net.check_layers([content_layer])
        style_layers = net.check_layers(style_layers)
        per_layer = dict(zip(style_layers, (style_weight * w for w in _weights(layer_weights, len(style_layers),
                                                                                "style layer"))))
        if hasattr(styles, "shape"):  # one image given bare
            styles = [styles]
        styles = list(styles)
        if not styles:
            raise UserError("Objective.style needs at least one style image")
        blend = blend_weights(blend, len(styles))
        xc = recoloured_content(net, xc, styles, colour_first)
        top = max(blend)  # scale first: 1e308 + 1e308 would overflow to inf and zero every weight
        blend = [b / top for b in blend]
        blend = [b / sum(blend) for b in blend]
        if isinstance(content_level, bool) or not isinstance(content_level, (int, np.integer)) or content_level < 0:
            raise UserError(f"the content level must be a whole number >= 0, got {content_level!r}")
        _check_level(net, xc.shape, content_level, [content_layer], "content level", "the content image",
                     "use a lower level or a larger size")
        terms = []
        if with_content:
            xc_level = averaged(net, xc, content_level)
            terms.append(Term(f"content:{content_layer}" + (f"@{content_level}" if content_level else ""), "content",
                              content_layer, net.features(xc_level, [content_layer])[content_layer], content_weight,
                              level=int(content_level)))
        if feature_stats not in FEATURE_STATS:
            raise UserError(f"feature statistics must be one of {', '.join(FEATURE_STATS)}; got {feature_stats!r}")
        if feature_stats.endswith("swd") and len(set(blend)) > 1:
            raise UserError("sliced Wasserstein style terms pool the style images equally: leave out --style-blend "
                            "or use --feature-stats gram / gram+moments")
        style_sizes = [tuple(s.shape[2:]) for s in styles]
        drop = (pinned_layers(style_layers, [tuple(xc.shape[2:])] + style_sizes, levels,
                              inside=style_sizes if interior else (), project=project) if drop_pinned else {})
        proj = projections(net, style_layers, project)
        grams = (_gram_terms(net, styles, blend, style_layers, [per_layer[l] for l in style_layers], xc.shape, levels,
                             drop, interior, proj) if feature_stats.startswith("gram") else [])
        kept = [l for l in style_layers if l not in drop.get(0, ())]
        if not kept:
            raise UserError(f"every style layer of {', '.join(style_layers)} pins the layout at this size "
                            f"(fewer positions than channels): use a larger size or shallower layers")
        terms += grams + shift_terms(net, styles, [(l, per_layer[l]) for l in kept], xc.shape, shifts, interior,
                                     proj, blend)
        if feature_stats.endswith(("moments", "balanced")):
            terms += [Term(f"moments:{l}", "moments", l, _moment_targets(net, styles, l, blend, interior, proj.get(l),
                                                                         feature_stats.endswith("balanced")),
                           per_layer[l], proj=proj.get(l)) for l in kept]
        if feature_stats.endswith("swd"):
            terms += [Term(f"swd:{l}", "swd", l, _swd_target(net, styles, l, _positions(xc.shape[2], xc.shape[3], l),
                                                             interior, proj.get(l)), per_layer[l], proj=proj.get(l))
                      for l in kept]
        for t in _pixel_terms(net, styles, pixel_stats, xc.shape):
            t.weight = style_weight
            terms.append(t)
        bank = {}
        if bank_maps:
            side = min(min(x.shape[2:]) for x in [xc, *styles])
            bank = filter_bank(side, bank_maps, bank_seed, net.xp, net.dtype)
            per_style = [_bank_terms(net, s, bank, xc.shape) for s in styles]
            for k, t in enumerate(per_style[0]):
                t.target = sum(b * ts[k].target for b, ts in zip(blend, per_style))
                t.weight = style_weight
                terms.append(t)
        terms += _spectrum_terms(net, styles, spectrum_weight, xc.shape, blend)
        if tv_weight:
            # calibrated at the content image, whatever the start: its smoothness is the
            # reference, so gamma means the same from noise as from the content image
            terms.append(Term("tv", "tv", target=xc, weight=tv_weight))
        return cls(net, terms, bank)

    # ------------------------------------------------------------------ evaluation

    def _forward(self, x):
        """(x as a Tensor, {pyramid level: {layer: Tensor}}): the net run on x, and on x
        2x2-averaged once per level (the graph runs back through the averaging to x)."""
        xt = Tensor(self.net.to_device(x), requires_grad=True)
        feats = {}
        h = wrap_pad(xt, self.pad, "wrap") if self.pad else xt
        for level in range(max(self.levels) + 1):
            if level:
                h = avgpool2(h, f"pyramid{level}")
            layers = [l for l in self.layers if any(t.layer == l and t.level == level for t in self.terms)]
            if layers:
                feats[level] = self.net.forward(h, layers)
                if self.pad:
                    feats[level] = {l: self._central(f, l, level, xt.shape) for l, f in feats[level].items()}
            if level == 0 and self.bank:
                feats.setdefault(0, {}).update(bank_features(xt, self.bank))
        for t in self.terms:   # each projected layer once, however many terms read it
            key = None if t.proj is None else t.projected_key()
            if key is not None and key not in feats[t.level]:
                feats[t.level][key] = project(feats[t.level][t.layer], t.proj, f"{t.layer}:projected")
        return xt, feats

    def _central(self, f: Tensor, layer: str, level: int, shape) -> Tensor:
        """The part of ``layer``'s map of the wrapped-around image that is x's own map."""
        jump = receptive_field(layer, level, self.net.arch)[0]
        _, rows, cols = map_shape(layer, shape[2] >> level, shape[3] >> level, self.net.arch)
        return crop(f, self.pad // jump, self.pad // jump, rows, cols, f"{layer}:central")

    def calibrate(self, x_start) -> dict:
        """Eq. 4: set every term's factor to 1 / mean|d term / dx| at ``x_start``.

        Returns {term name: factor}. One forward pass, one backward pass per term."""
        factors = {}
        xt, feats = self._forward(x_start)
        for term in self.terms:
            leaf = xt
            if term.kind == "content":
                # the paper's F(x') = 0 reading: back-propagate dL/dF = -F0 / (N M)
                f = feats[term.level][term.layer]
                loss = content_loss(f, _content_probe_target(f.data, term.target), 1.0, term.name)
            elif term.kind == "tv" and term.target is not None:
                leaf = Tensor(self.net.to_device(term.target), requires_grad=True)
                loss = term.loss({}, leaf, scale=1.0)
            else:
                loss = term.loss(feats.get(term.level, {}), xt, scale=1.0)
            leaf.grad = None
            backward(loss, retain_graph=True)  # the next term runs back through the same forward
            g = float(abs(leaf.grad).mean())
            if not np.isfinite(g):
                raise FloatingPointError(f"{term.name}: the weighting pre-process gave a non-finite gradient")
            term.factor = 1.0 / g if g > 0 else 1.0
            factors[term.name] = term.factor
        return factors

    def value_and_grad(self, x):
        """(total loss as a float, gradient w.r.t. x of x's shape, on the net's device).

        Per-term values (weighted, as summed) are left in ``self.last_terms``."""
        xt, feats = self._forward(x)
        losses = [t.loss(feats.get(t.level, {}), xt) for t in self.terms]
        del feats  # the losses hold what their backward needs; the rest is freed as it passes
        total = add(*losses)
        backward(total)
        xp = self.net.xp
        values = backend.to_host(xp.stack([xp.asarray(l.data, dtype=xp.float64) for l in losses]))
        self.last_terms = {t.name: float(v) for t, v in zip(self.terms, values)}
        self.evaluations += 1
        return float(values.sum()), xt.grad


class Ensemble:
    """The sum of objectives on independently drawn nets, for one image: an ensemble of random
    nets. Each part keeps its own terms and Eq. 4 factors (``calibrate`` calibrates every part);
    a term of part k >= 2 is named "net<k>:<name>". Runs where its first part's net runs."""

    def __init__(self, parts: list[Objective]):
        if not parts:
            raise UserError("an ensemble needs at least one objective")
        self.parts = list(parts)
        self.net = self.parts[0].net
        for k, part in enumerate(self.parts[1:], start=2):
            for t in part.terms:
                t.name = f"net{k}:{t.name}"
        self.terms = [t for part in self.parts for t in part.terms]
        self.last_terms: dict[str, float] = {}
        self.evaluations = 0

    def calibrate(self, x_start) -> dict:
        return {name: f for part in self.parts for name, f in part.calibrate(x_start).items()}

    def value_and_grad(self, x):
        total, grad = 0.0, None
        for part in self.parts:
            value, g = part.value_and_grad(x)
            total, grad = total + value, g if grad is None else grad + g
        self.last_terms = {name: v for part in self.parts for name, v in part.last_terms.items()}
        self.evaluations += 1
        return total, grad


def recoloured_content(net: VGG19, xc, styles, t: float):
    """The preprocessed content image ``xc`` (1, 3, H, W) with its colours moved a fraction ``t``
    of the way to the style images' pixels pooled (``engine.io.image.recolour``), preprocessed
    again, on the host in xc's dtype; xc itself for t = 0."""
    if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)) or not 0 <= t <= 1:
        raise UserError(f"the colour-first fraction must be a number from 0 to 1 (0: off), got {t!r}")
    if not t:
        return xc
    mode = net.preprocessing
    rgb = image.deprocess(backend.to_host(xc), mode)
    refs = [image.deprocess(backend.to_host(s), mode) for s in styles]
    return image.preprocess(image.recolour(rgb, refs, float(t)), mode, np.asarray(backend.to_host(xc)).dtype)


def _content_probe_target(f, f0):
    """A target that makes content_loss's gradient equal the paper's F(x') = 0 probe.

    content_loss back-propagates (F - target) / (N M); with target = F + F0 that is
    -F0 / (N M) regardless of the current features, i.e. the gradient at F = 0."""
    return f + f0


def _gram_terms(net: VGG19, images, blend, layers, weights, shape, levels: int, drop=None,
                interior: bool = False, proj=None) -> list[Term]:
    """Gram terms for ``layers`` at pyramid levels 0 .. levels-1 (names "style:relu3_1",
    "style:relu3_1@1", ...), for an image being optimised of ``shape`` (N, 3, H, W).

    Level k matches the Gram matrices of x and of the style images both 2x2-averaged k times:
    a random net's 3x3 filters on a half-size image see twice as far, so the coarse
    arrangement of the texture is constrained as well as its fine grain (a Gaussian-pyramid
    Gram loss, as in Snelgrove 2017; multi-scale random filters, Ustyuzhaninov et al. 2017).
    ``drop``: {level: layers left out there} (``pinned_layers``); a layer whose maps would be
    empty at some size pins the layout there too, so it is left out before it is computed.
    ``proj``: {layer: (K, C)}: those layers' Gram matrices are of their projected channels."""
    if not isinstance(levels, (int, np.integer)) or levels < 1:
        raise UserError(f"pyramid levels must be a whole number >= 1, got {levels!r}")
    drop, proj = drop or {}, proj or {}
    terms = []
    for k in range(levels):
        keep = [(l, wt) for l, wt in zip(layers, weights) if l not in drop.get(k, ())]
        if not keep:
            continue
        h, w = _check_level(net, shape, k, [l for l, _ in keep], "pyramid level", "the image",
                            "use fewer pyramid levels or a larger size")
        small = [averaged(net, img, k) for img in images]
        grams = _gram_targets(net, small, blend, [l for l, _ in keep], (h, w), interior, proj)
        terms += [Term(f"style:{l}" + (f"@{k}" if k else ""), "gram", l, grams[l], wt, level=k, proj=proj.get(l))
                  for l, wt in keep]
    return terms


def check_shifts(shifts) -> tuple:
    """``shifts`` (px) as a sorted tuple of distinct whole numbers >= 1; a UserError otherwise."""
    try:
        out = tuple(sorted({int(d) for d in shifts}))
        if any(isinstance(d, bool) or float(d) != int(d) for d in shifts):
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(f"shifts must be whole numbers of pixels, got {shifts!r}") from None
    if out and out[0] < 1:
        raise UserError(f"shifts must be whole numbers of pixels >= 1, got {list(shifts)}")
    return out


def shift_steps(layers, sizes, shifts, arch: str = DEFAULT_ARCH) -> dict:
    """{layer: [(d px, d / stride positions)]}: the distances of ``shifts`` each of ``layers`` takes,
    those its stride divides and at most half its map's side at every (h, w) of ``sizes`` (the
    output's, the exemplars'). Layers that take none are left out."""
    out = {}
    for l in layers:
        step = receptive_field(l, 0, arch)[0]
        side = min(min(map_shape(l, h, w, arch)[1:]) for h, w in sizes)
        took = [(d, d // step) for d in check_shifts(shifts) if d % step == 0 and 1 <= d // step <= side // 2]
        if took:
            out[l] = took
    return out


def shift_terms(net: VGG19, images, layers, shape, shifts, interior: bool = False, proj=None,
                blend=None) -> list[Term]:
    """Long-range correlation terms (Berger & Memisevic, ICLR 2017): for each (layer, weight) of
    ``layers`` and each distance d of ``shifts`` (px), the Gram matrix of the layer's maps with the
    maps moved d px across, and another moved d px down (``ops.gram.shifted_gram_forward``), of
    ``images`` blended by ``blend`` (equally when None), rescaled to the overlap of an output of
    ``shape``. A Gram term says which features occur together at one place; these say which occur
    d px apart: the arrangement, at distances the layer's own window does not reach. d counts in
    the layer's steps (``shift_steps``: the distances its stride divides, up to half its map's side
    at the output's and every exemplar's size); a UserError when no layer takes any.
    ``proj``: {layer: (K, C)}, as for the Gram terms."""
    shifts, proj = check_shifts(shifts), proj or {}
    if not shifts:
        return []
    blend = [1.0 / len(images)] * len(images) if blend is None else blend
    steps = shift_steps([l for l, _ in layers], [tuple(shape[2:])] + [tuple(x.shape[2:]) for x in images], shifts,
                        net.arch)
    terms = []
    for l, wt in layers:
        if l not in steps:
            continue
        maps = [_projected(_window(net.features(img, [l])[l], l, img.shape[2:], interior, net.arch), proj.get(l))
                for img in images]
        _, oh, ow = map_shape(l, shape[2], shape[3], net.arch)
        for px, d in ((px, d) for px, d in steps[l] if all(d <= min(f.shape[2:]) // 2 for f in maps)):  # interior
            for shift in ((0, d), (d, 0)):
                m_out = (oh - shift[0]) * (ow - shift[1])
                g = sum(shifted_gram_forward(f, shift).mean(axis=0, keepdims=True)
                        * (b * m_out / ((f.shape[2] - shift[0]) * (f.shape[3] - shift[1]))) for f, b in zip(maps, blend))
                way = "across" if shift[0] == 0 else "down"
                terms.append(Term(f"shift:{l}:{px}px {way}", "shifted", l, (g, shift), wt, proj=proj.get(l)))
    if not terms:
        raise UserError(f"no layer of {', '.join(l for l, _ in layers) or 'none'} takes a shift of "
                        f"{', '.join(map(str, shifts))} px at this size: a layer takes the multiples of its "
                        f"stride up to half its map's side; use shorter shifts")
    return terms


def pinned_layers(layers, sizes, levels: int = 1, inside=(), project: int = 0) -> dict:
    """{pyramid level: [layers that pin the layout at one of ``sizes`` ((h, w) of the exemplar,
    the output, ...) averaged down ``level`` times]}; levels with none are left out. The sizes
    also in ``inside`` count only their interior positions (``engine.arch.interior``).
    ``project`` K > 0: the statistics are of at most K projections of the channels, so a layer
    pins the layout only with fewer positions than that."""
    inside = {tuple(s) for s in inside}
    out = {}

    def pins(l, h, w, k):
        if (h, w) not in inside:
            return pins_layout(l, h >> k, w >> k, channels=project)
        _, _, rows, cols = interior_window(l, h >> k, w >> k)
        return min(rows, cols) < 1 or pins_layout(l, h >> k, w >> k, channels=project, positions=rows * cols)

    for k in range(levels):
        hit = [l for l in layers if any(pins(l, h, w, k) for h, w in (tuple(s) for s in sizes))]
        if hit:
            out[k] = hit
    return out


def _stat_terms(net: VGG19, images, layers, weights, shape, levels: int, stats: str, drop_at=None,
                interior: bool = False, project: int = 0) -> list[Term]:
    """The per-layer terms ``stats`` (one of ``FEATURE_STATS``) of ``images`` (blended
    equally), for an image of ``shape`` being optimised; level 0 only for the non-Gram ones.
    ``drop_at``: the exemplars' (h, w) sizes: layers that pin the layout there or at ``shape``
    are left out, per level (counted over their interior positions when ``interior``: the
    statistics of the exemplars are then taken there, ``_window``). ``project`` K > 0: the
    statistics of K random projections of the channels of each layer with more (``projections``)."""
    proj = projections(net, layers, project)
    if stats not in FEATURE_STATS:
        raise UserError(f"feature statistics must be one of {', '.join(FEATURE_STATS)}; got {stats!r}")
    drop = pinned_layers(layers, [tuple(shape[2:]), *drop_at], levels, inside=drop_at if interior else (),
                         project=project) if drop_at else {}
    terms = _gram_terms(net, images, [1.0 / len(images)] * len(images), layers, weights, shape, levels, drop,
                        interior, proj) if stats.startswith("gram") else []
    if not terms and stats.startswith("gram"):
        raise UserError(f"every layer of {', '.join(layers)} pins the layout at this size "
                        f"(fewer positions than channels): use a larger size or shallower layers")
    keep = [(l, w) for l, w in zip(layers, weights) if l not in drop.get(0, ())]
    layers, weights = [l for l, _ in keep], [w for _, w in keep]
    if stats.endswith(("moments", "balanced")):
        terms += [Term(f"moments:{l}", "moments", l, _moment_targets(net, images, l, interior=interior,
                                                                     proj=proj.get(l), balanced=stats.endswith("balanced")),
                       w, proj=proj.get(l))
                  for l, w in zip(layers, weights)]
    if stats.endswith("swd"):
        m = {l: _positions(shape[2], shape[3], l) for l in layers}
        terms += [Term(f"swd:{l}", "swd", l, _swd_target(net, images, l, m[l], interior, proj.get(l)), w,
                       proj=proj.get(l)) for l, w in zip(layers, weights)]
    return terms


def _pixel_terms(net: VGG19, images, stats: str, shape) -> list[Term]:
    """A term on the colour distribution of the pixels (``PIXEL_STATS``): with it a grey
    exemplar gives a grey texture (a zero-variance direction is held at zero)."""
    if stats not in PIXEL_STATS:
        raise UserError(f"pixel statistics must be one of {', '.join(PIXEL_STATS)}; got {stats!r}")
    if stats == "none":
        return []
    x = _pooled([net.to_device(img) for img in images])
    if stats == "moments":
        mu, cov = moments(x)
        return [Term("colour:moments", "moments", PIXELS, (mu.mean(0, keepdims=True), cov.mean(0, keepdims=True), None))]
    dirs = directions(3, SWD_PIXEL_DIRECTIONS, seed=0, xp=net.xp, dtype=x.dtype)
    return [Term("colour:swd", "swd", PIXELS, (sorted_projections(x, dirs, shape[2] * shape[3]), dirs))]


def _spectrum_terms(net: VGG19, images, weight: float, shape, blend=None) -> list[Term]:
    """The Fourier-spectrum term (``ops.spectrum``) when ``weight`` > 0: the |DFT| per colour
    channel of ``images`` (of any sizes, each resampled to ``shape``'s frequencies), their power
    spectra mixed by ``blend`` (equal by default)."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(weight) and weight >= 0):
        raise UserError(f"the spectrum weight must be a number >= 0 (0: off), got {weight!r}")
    if not weight:
        return []
    blend = blend or [1 / len(images)] * len(images)
    power = sum(b * spectrum_target(net.to_device(x), shape) ** 2 for b, x in zip(blend, images))
    return [Term("spectrum", "spectrum", PIXELS, net.xp.sqrt(power), float(weight))]


SWD_PIXEL_DIRECTIONS = 32
BANK_SIZES = (3, 5, 7, 11, 15, 23, 37, 55)
MAX_BANK_MAPS = 1024     # the bank's Gram matrices grow as the square: 10^8 maps would take terabytes


def filter_bank(side: int, maps: int, seed: int, xp=np, dtype=np.float32) -> dict:
    """The multi-scale random filter bank (Ustyuzhaninov, Brendel, Gatys & Bethge, ICLR 2017):
    ``maps`` random filters (O, 3, k, k) for each size k of ``BANK_SIZES`` up to half of
    ``side``: Gaussian, zero-mean per filter (no response to flat brightness: colour is the pixel
    terms' job), scaled by 1 / sqrt(3 k^2). {"bank<k>": filters}."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in (k for k in BANK_SIZES if k <= max(3, side // 2)):
        w = rng.standard_normal((maps, 3, k, k))
        w -= w.mean(axis=(1, 2, 3), keepdims=True)
        out[f"bank{k}"] = xp.asarray((w / np.sqrt(3 * k * k)).astype(dtype))
    return out


def bank_features(x: Tensor, bank: dict) -> dict:
    """{layer: relu(x correlated with its filters)} for a Tensor x (N, 3, H, W)."""
    return {name: relu(fftconv(x, w, name)) for name, w in bank.items()}


def _bank_terms(net: VGG19, xs, bank: dict, shape) -> list[Term]:
    """A Gram term per filter size: the exemplar's Gram rescaled to the output's positions."""
    terms = []
    for name, f in bank_features(Tensor(net.to_device(xs)), bank).items():
        k = bank[name].shape[-1]
        m_out = (shape[2] - k + 1) * (shape[3] - k + 1)
        g = gram_forward(f.data).mean(axis=0, keepdims=True) * (m_out / (f.shape[2] * f.shape[3]))
        terms.append(Term(f"bank:{k}px", "gram", name, g))
    return terms


def _pooled(maps):
    """(N, C, h, w) maps of any sizes -> (1, C, 1, all positions): one distribution."""
    xp = backend.array_module(maps[0])
    return xp.concatenate([m.transpose(1, 0, 2, 3).reshape(1, m.shape[1], 1, -1) for m in maps], axis=3)


def _window(f, layer: str, hw, interior: bool, arch: str):
    """``layer``'s map ``f`` of an image of (h, w) ``hw``: whole, or its interior positions (those
    that see none of the zero padding) when ``interior``."""
    if not interior:
        return f
    top, left, rows, cols = interior_window(layer, *hw, arch=arch)
    if min(rows, cols) < 1:
        raise UserError(f"{layer} has no position that sees only the {hw[1]}x{hw[0]} px image: use a larger "
                        "image, shallower layers, or statistics over the whole map")
    return f[:, :, top:top + rows, left:left + cols]


def _moment_targets(net: VGG19, images, layer, blend=None, interior: bool = False, proj=None, balanced: bool = False):
    """(mean, covariance, scales) of ``layer``'s features (projected by ``proj`` when given), each
    (1, ...): the images' blended by ``blend`` (equal when None); scales: ``moments_loss``'s,
    None for its default, each part relative to its target when ``balanced``."""
    feats = [_projected(_window(net.features(img, [layer])[layer], layer, img.shape[2:], interior, net.arch), proj)
             for img in images]
    mus, covs = zip(*(moments(f) for f in feats))
    blend = [1.0 / len(images)] * len(images) if blend is None else blend
    mu = sum(b * m.mean(0, keepdims=True) for b, m in zip(blend, mus))
    cov = sum(b * c.mean(0, keepdims=True) for b, c in zip(blend, covs))
    return mu, cov, balanced_scales(mu, cov) if balanced else None


def _swd_target(net: VGG19, images, layer, positions, interior: bool = False, proj=None):
    """(sorted projections resampled to ``positions``, directions): one direction per channel
    (of the projected channels when ``proj`` is given)."""
    f = _pooled([_projected(_window(net.features(img, [layer])[layer], layer, img.shape[2:], interior, net.arch), proj)
                 for img in images])
    dirs = directions(f.shape[1], f.shape[1], seed=1, xp=net.xp, dtype=f.dtype)
    return sorted_projections(f, dirs, positions), dirs


def _check_level(net: VGG19, shape, k: int, layers, what: str, image: str, fix: str) -> tuple:
    """(h, w) of an image of ``shape`` 2x2-averaged ``k`` times, checked against ``layers``: a
    UserError naming the level (``what`` ``k``), the size it leaves and ``fix`` otherwise."""
    h, w = (s >> k for s in shape[2:])
    try:
        if min(h, w) < 1:
            raise UserError("nothing is left of it")
        net.check_input((1, 3, h, w), layers)
    except UserError as exc:
        raise UserError(f"{what} {k} averages {image} down to {w}x{h} px: {exc}; {fix}") from None
    return h, w


def averaged(net: VGG19, x, times: int):
    """x (N, 3, H, W) 2x2-averaged ``times`` times, on the net's device."""
    x = net.to_device(x)
    for _ in range(times):
        x = avgpool2_forward(x)
    return x


def _gram_targets(net: VGG19, images, blend, layers, hw, interior: bool = False, proj=None) -> dict:
    """{layer: sum_i blend_i * G_i * M_out / M_i}, each (1, C, C) on the device.

    G = F F^T grows with the number of positions M, so a style image of another size than the
    image being optimised (of size ``hw`` = (H, W)) has its Gram matrices rescaled to the
    output's M: what is matched is the per-position correlation, as the loss's 1/M^2 assumes.
    ``proj``: {layer: (K, C)}: those layers' Gram matrices are of their projected channels."""
    h, w = hw
    proj = proj or {}
    targets = {}
    for img, b in zip(images, blend):
        feats = net.features(img, layers)
        for l in layers:
            f = _projected(_window(feats[l], l, img.shape[2:], interior, net.arch), proj.get(l))
            m_img = f.shape[2] * f.shape[3]
            m_out = _positions(h, w, l)
            g = gram_forward(f).mean(axis=0, keepdims=True) * (b * m_out / m_img)
            targets[l] = g if l not in targets else targets[l] + g
    return targets


PROJECTION_SEED = 7   # the projections are part of the network's definition: one draw for every run


def projections(net: VGG19, layers, k: int) -> dict:
    """{layer: (k, C)} for each of ``layers`` with more than k channels: orthonormal rows, one
    random subspace per layer (``ops.project.projection``; seeded by the layer's place in the
    net, so the texture and style commands and every run use the same ones). k = 0: {}."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise UserError(f"the projection size must be a whole number >= 0 (0: off), got {k!r}")
    if not k:
        return {}
    names = net.layer_names()
    return {l: projection(c, k, PROJECTION_SEED * 1000 + names.index(l), net.xp, net.dtype)
            for l in layers for c in [map_shape(l, 1, 1, net.arch)[0]] if c > k}


def _projected(f, p):
    """f (N, C, h, w) projected by p (K, C), or f itself when p is None."""
    return f if p is None else project_forward(f, p)


def _positions(h: int, w: int, layer: str) -> int:
    """M = h*w of ``layer``'s feature maps for an (h, w) input (2x2 pools, floored; fc: 1)."""
    _, hh, ww = map_shape(layer, h, w)
    return hh * ww


def blend_weights(blend, n: int) -> list:
    """The style images' blend weights checked (one per image, finite, >= 0, not all 0), or
    equal ones for None; a UserError names the problem."""
    return _weights(blend, n, "style image")


def _weights(weights, n, what):
    if weights is None:
        return [1.0] * n
    try:
        weights = [float(w) for w in weights]
    except (TypeError, ValueError):
        raise UserError(f"{what} weights must be numbers, got {weights!r}") from None
    if len(weights) != n:
        raise UserError(f"{len(weights)} weight(s) given for {n} {what}(s): give one per {what}")
    if any(not np.isfinite(w) or w < 0 for w in weights) or max(weights, default=0) <= 0:
        raise UserError(f"{what} weights must be non-negative numbers, not all zero: got {weights}")
    return weights
