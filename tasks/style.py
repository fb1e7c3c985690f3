"""Transfer artistic style: the content of one image in the style of others (Eq. 9).

    ranvgg style --content chelsea --style ihc --device cpu

Minimises alpha * L_content + beta * L_texture + gamma * R(x): content from --content-layer
(default relu1_2; the paper's is conv2_2: --content-layer relu2_2), style from the Gram matrices
of --style-layers, and total variation for smoothness. Every term is first scaled by its Eq. 4 weighting factor, so
the three weights are ratios of pull on the image, comparable across layers and weight scales.
Several --style images may be blended with --style-blend (one weight each; normalised).
By default the content photo's colours are first moved halfway to the style images' (--colour-first
0.5) and the content term holds that recoloured photo: judged in a trained VGG-19, that is what
brings a result nearest the style at equal content error (docs/levers.md). --colour-first 0 keeps
the photo's colours in the objective; --original-colors restores them in the result (luminance
transfer, YIQ).

Images: a file or a shipped sample: astronaut, coffee, chelsea, brick, grass, gravel, ihc.
"""
from __future__ import annotations

import sys

from engine import backend, metrics
from engine import judge as judging
from engine.io import image
from engine.errors import UserError
from engine import objectives
from engine.objectives import Ensemble, Objective
from engine.ops.gram import gram_forward
from engine.ops.project import project_forward
from engine.arch import check_layers

from .cli import command
from .pipeline import inputs, scoring, network, runner, scales
from .cli.console import quiet_by_default, say

SCALES, SCALE_ITERS, PYRAMID = "half", 100, 1  # multi-scale defaults: measured in docs/levers.md
DEFAULTS = {"size": 128, "iters": 200, "init": "content", "out": "out/style.png"}
STYLE_LAYERS = ",".join(objectives.STYLE_LAYERS)
# the API's defaults (engine.objectives), so that the command line and Objective.style agree
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = objectives.CONTENT_WEIGHT, objectives.STYLE_WEIGHT, objectives.TV_WEIGHT
PINNED = "drop" if objectives.STYLE_DROP_PINNED else "keep"
COLOUR_FIRST = objectives.STYLE_COLOUR_FIRST


def _parser():
    ap = command.parser("style", __doc__, DEFAULTS)
    g = ap.add_argument_group("style transfer")
    g.add_argument("--content", default="chelsea", help="content image: a file or a sample name (default: chelsea)")
    g.add_argument("--style", action="append", default=None, metavar="IMG",
                   help="style image (repeat for several; default: ihc)")
    g.add_argument("--style-blend", default=None, metavar="W1,W2,...",
                   help="one weight per --style image, normalised to sum to 1 (default: equal)")
    g.add_argument("--content-layer", default=objectives.STYLE_CONTENT_LAYER,
                   help=f"content layer (default: {objectives.STYLE_CONTENT_LAYER})")
    g.add_argument("--style-layers", "--layers", "--layer", dest="style_layers", default=STYLE_LAYERS,
                   help=f"style layers, comma-separated (default: {STYLE_LAYERS})")
    g.add_argument("--layer-weights", default=None, metavar="W1,W2,...",
                   help="extra weight per style layer, on top of beta: its Gram, moment, sliced Wasserstein and "
                        "long-range terms (default: all 1)")
    g.add_argument("--content-level", type=int, default=objectives.STYLE_CONTENT_LEVEL, metavar="K",
                   help="the content term reads the image 2x2-averaged K times: the photo's layout held at a "
                        "coarser scale, the finer scales left to the style (default: "
                        f"{objectives.STYLE_CONTENT_LEVEL}, the image itself)")
    g.add_argument("--content-weight", type=float, default=CONTENT_WEIGHT,
                   help=f"alpha (default: {CONTENT_WEIGHT:g})")
    g.add_argument("--style-weight", type=float, default=STYLE_WEIGHT,
                   help=f"beta, per style layer (default: {STYLE_WEIGHT:g})")
    g.add_argument("--tv-weight", type=float, default=TV_WEIGHT, help=f"gamma (default: {TV_WEIGHT:g})")
    g.add_argument("--pinned-layers", choices=("drop", "keep"), default=PINNED,
                   help="a style layer with fewer positions than channels at the content's or a style image's "
                        "size (relu4_1, relu5_1 at 128 px) has a Gram matrix that pins that image's layout: "
                        f"drop it (said in the log) or keep it (default: {PINNED})")
    g.add_argument("--pixel-stats", choices=objectives.PIXEL_STATS, default=objectives.STYLE_PIXEL_STATS,
                   help="also pull the colour distribution of the pixels toward the style's: mean and covariance, "
                        f"or the sliced Wasserstein distance (default: {objectives.STYLE_PIXEL_STATS})")
    g.add_argument("--feature-stats", choices=objectives.FEATURE_STATS, default=objectives.STYLE_FEATURE_STATS,
                   help="the statistics matched per style layer: Gram matrices, and/or mean and covariance, or a "
                        "sliced Wasserstein distance of the features; gram+balanced weighs the mean and the "
                        "covariance each relative to the style's (docs/levers.md) "
                        f"(default: {objectives.STYLE_FEATURE_STATS})")
    network.add_filter_bank_option(g, "half the smallest image; each term toward the style's")
    network.add_interior_option(g, "the style images'", objectives.STYLE_INTERIOR)
    network.add_ensemble_option(g, "the content, colour, filter-bank and total-variation terms")
    network.add_ensemble_layers_option(g, "--style-layers")
    network.add_project_option(g, "the style images'")
    network.add_shifts_option(g, "the style images' (blended like the Gram matrices)")
    network.add_spectrum_option(g, "the style images' (power spectra blended like the Gram matrices)", 0.0)
    g.add_argument("--original-colors", action="store_true", help="keep the content image's colours")
    g.add_argument("--colour-first", type=float, default=COLOUR_FIRST, metavar="T",
                   help="before the transfer, move the content image's colours a fraction T of the way to the "
                        "style images' (their mean and covariance, exactly at 1): the content term then holds "
                        "the recoloured photo, and the style terms add the rest; 0: off "
                        f"(default: {COLOUR_FIRST:g})")
    scales.add_options(ap, SCALES, SCALE_ITERS, PYRAMID)
    scoring.add_options(ap)
    g = ap.add_argument_group("fair judging (the result against a part of the style image it never saw)")
    g.add_argument("--held-out", action="store_true",
                   help="cut each --style image in two halves along its longer side, transfer the first and judge "
                        "the result against the second: content error and held-out style distance, beside the "
                        "unstyled content image and the style's own first half (docs/quality.md)")
    return ap


PARSER = _parser()


@quiet_by_default
def run(**kwargs):
    """Style transfer; returns (image (H, W, 3) float32 in [0, 255], log).

    Takes the command-line options as keywords (``content="coffee", style=["ihc", "brick"],
    style_blend="0.7,0.3", size=64, iters=100, device="cpu"``, ...).

    Quiet, and no file written, unless asked: ``verbose=True`` prints what the command line
    prints; ``out="FILE.png"`` (or .jpg, .tif) saves the result (and its log, loss plot),
    ``log="FILE.json"`` the log alone."""
    a = command.options(PARSER, kwargs)
    command.validate(a)
    styles = a.style or ["ihc"]
    if isinstance(styles, str):
        styles = [styles]
    blend = command.floats(a.style_blend, "--style-blend")
    if blend is not None and len(blend) != len(styles):
        raise UserError(f"--style-blend has {len(blend)} weight(s) for {len(styles)} --style image(s): "
                                "give one weight per style image")
    if blend is not None:
        objectives.blend_weights(blend, len(styles))   # before any work
    for name in ("content_weight", "style_weight", "tv_weight"):
        v = getattr(a, name)
        if not (v >= 0 and v < float("inf")):
            raise UserError(f"--{name.replace('_', '-')} must be a number >= 0, got {v!r}")
    if not (isinstance(a.colour_first, (int, float)) and 0 <= a.colour_first <= 1):
        raise UserError(f"--colour-first must be a fraction from 0 to 1 (0: off, 1: the style's colours), "
                        f"got {a.colour_first!r}")
    if a.content_level < 0:
        raise UserError(f"--content-level must be a whole number >= 0, got {a.content_level}")
    network.check_ensemble(a)
    network.check_filter_bank(a)
    network.check_project(a)
    network.check_spectrum(a)
    if a.content_weight == 0 and a.style_weight == 0:
        raise UserError("--content-weight and --style-weight are both 0: nothing to match (--tv-weight alone "
                        "only smooths the starting image); give one of them a weight > 0")
    content_layer = check_layers([a.content_layer])[0]
    style_layers = command.layer_list(a.style_layers, "--style-layers")
    layer_weights = command.layer_weights(a.layer_weights, style_layers)
    chosen = None if a.ensemble_layers is None else command.layer_list(a.ensemble_layers, "--ensemble-layers")
    ens_layers, ens_weights = network.ensemble_layers(a.ensemble, chosen, style_layers, layer_weights,
                                                      "--style-layers")
    grams = [("gram", l) for l in style_layers] * (1 + 2 * len(network.shifts(a)))   # a long-range term: a Gram's target
    terms = [("content", content_layer)] + grams + ([("tv", None)] if a.tv_weight else [])
    est = command.preflight(a, a.content, terms, extra_nets=a.ensemble - 1, layers=[content_layer, *style_layers])
    log = command.new_log("style", a)
    every_layer = [content_layer, *style_layers]
    scales.sizes(a, every_layer)  # a bad --scales fails before the network is built
    if a.shifts:  # a distance no style layer takes at the last stage fails before the first
        network.shifts(a, a.size, style_layers, [inputs.planned_shape(a.content, a.size, every_layer)[2:]])
    log["memory_estimate_bytes"] = est.total
    net = network.make_net(a, log)
    others = network.ensemble(a, log, chosen)

    def read(size):
        """The content (H, W, 3) and style images read at ``size``, checked against the net."""
        content = inputs.fit_for_fc(inputs.read(a.content, size), every_layer, net, size, log)
        style_imgs = [inputs.read(spec, size) for spec in styles]
        if a.held_out:
            style_imgs = [judging.split_style(s)["synthesis"] for s in style_imgs]
        # with --pinned-layers drop, a layer too small for an image pins its layout and is left out
        used = style_layers
        if a.pinned_layers == "drop":
            pinned = objectives.pinned_layers(style_layers, [content.shape[:2]] + [s.shape[:2] for s in style_imgs],
                                              project=a.project)
            used = [l for l in style_layers if l not in pinned.get(0, ())] or style_layers
        net.check_input((1, 3, *content.shape[:2]), [content_layer, *used])
        for s in style_imgs:
            net.check_input((1, 3, *s.shape[:2]), used)
        return content, style_imgs

    def build(size, start):
        """(Objective, x_start) at ``size``: from ``start`` (a coarser result) or the --init."""
        content, style_imgs = read(size)
        xc = image.preprocess(content, net.preprocessing)
        xs = [image.preprocess(s, net.preprocessing) for s in style_imgs]
        drop = a.pinned_layers == "drop"
        pinned = objectives.pinned_layers(style_layers, [xc.shape[2:]] + [x.shape[2:] for x in xs], a.pyramid,
                                          inside=[x.shape[2:] for x in xs] if a.interior else (), project=a.project)
        if pinned and size == a.size:
            note = "; ".join(", ".join(ls) + (f" (pyramid level {k})" if k else "") for k, ls in pinned.items())
            note = (f"{note}: fewer positions than channels at this size, so the Gram matrix pins a layout; "
                    + ("left out (--pinned-layers keep uses them)" if drop else "kept (--pinned-layers drop leaves them out)"))
            log.setdefault("notes", []).append(note)
            log["pinned_layers"] = {str(k): ls for k, ls in pinned.items()}
            say(note)
        kept = [l for l in style_layers if not (drop and l in pinned.get(0, ()))]
        shifts = network.shifts(a, size, kept, [xc.shape[2:]] + [x.shape[2:] for x in xs])
        # the photo recoloured once: the content term holds it (colour_first=0 below) and --init content starts there
        xc = objectives.recoloured_content(net, xc, xs, a.colour_first)
        obj = Objective.style(net, xc, xs, blend, content_layer, style_layers,
                              a.content_weight, a.style_weight, a.tv_weight, levels=a.pyramid, drop_pinned=drop,
                              pixel_stats=a.pixel_stats, feature_stats=a.feature_stats,
                              content_level=a.content_level, bank_maps=a.filter_bank, bank_seed=a.seed,
                              interior=a.interior, project=a.project, colour_first=0.0,
                              spectrum_weight=a.spectrum_weight, shifts=shifts, layer_weights=layer_weights)
        ens_kept, ens_shifts = network.ensemble_stage(ens_layers, kept, [xc.shape[2:]] + [x.shape[2:] for x in xs],
                                                      shifts, last=size == a.size) if others else ([], ())
        if ens_kept:  # the other nets' style terms (at --ensemble-layers); content, colour, total variation once
            obj = Ensemble([obj] + [Objective.style(n, xc, xs, blend, content_layer, ens_layers, 0.0, a.style_weight,
                                                    0.0, levels=a.pyramid, drop_pinned=drop, pixel_stats="none",
                                                    feature_stats=a.feature_stats, with_content=False,
                                                    interior=a.interior, project=a.project, colour_first=0.0,
                                                    shifts=ens_shifts, layer_weights=ens_weights)
                                    for n in others])
        x0 = (inputs.start_image(a, xc.shape, content=xc, mode=net.preprocessing) if start is None
              else scales.start_from(start, xc.shape, net.preprocessing))
        return obj, x0

    try:
        coarse = scales.coarse_to_fine(a, net, build, every_layer, log)
    except scales.Interrupted as stop:
        return stop.args[0]
    content, style_imgs = read(a.size)
    obj, x_start = build(a.size, coarse)
    # keyed by kind too: the content layer may also be a style layer; the Gram targets of the
    # image itself (pyramid level 0), the content target at its own level
    first = obj.parts[0] if isinstance(obj, Ensemble) else obj   # the errors are read in the first net
    targets = {(t.kind, t.layer): backend.to_host(t.target) for t in first.terms
               if t.kind == "content" or (t.kind == "gram" and t.level == 0)}
    projected = {t.layer: backend.to_host(t.proj) for t in first.terms   # --project: the Grams of P F
                 if t.kind == "gram" and t.level == 0 and t.proj is not None}

    def errors(x):
        """Relative content error (at --content-level), and relative Gram error per style layer
        against the (blended, size-matched) style targets."""
        f = {k: backend.to_host(v) for k, v in net.features(x, [l for l in style_layers if ("gram", l) in targets]).items()}
        f = {k: project_forward(v, projected[k]) if k in projected else v for k, v in f.items()}
        fc = backend.to_host(net.features(objectives.averaged(net, x, a.content_level), [content_layer])[content_layer])
        style = {l: metrics.relative_error(gram_forward(f[l]), targets["gram", l]) for l in style_layers
                 if ("gram", l) in targets}
        style["total"] = sum(style.values())
        return metrics.relative_error(fc, targets["content", content_layer]), style

    log["start_content_error"], log["start_style_error"] = errors(x_start)
    judges = scoring.judges(a, net, style=style_imgs, content=content, blend=blend)
    held = [judging.split_style(inputs.read(spec, a.size))["held_out"][0] for spec in styles] if a.held_out else None

    def finish(out_img, x, log):
        log["content_error"], log["style_error"] = errors(x)
        say(f"content error {log['start_content_error']:.3g} -> {log['content_error']:.3g}; "
              f"style (Gram) error {log['start_style_error']['total']:.3g} -> {log['style_error']['total']:.3g}")
        if a.original_colors:
            out_img = image.luminance_transfer(out_img, content)
            log["original_colors"] = True
        log["judge"] = scoring.score(judges, {"result": out_img, "content_image": content})
        scoring.report(log["judge"])
        if a.held_out:
            log["held_out"] = _held_out_report(out_img, content, style_imgs, held, judges)
        return out_img

    return runner.optimize(a, net, runner.Setup(obj, x_start, finish), log)


def _held_out_report(out_img, content, seen, held, judges) -> dict:
    """{judge: {"result", "unstyled", "style_half": {"content": ..., "style": ...}}}: the result,
    the content image itself and the style half the transfer saw, each judged against the
    held-out halves (content error at the judge's relu4_2; style: held-out texture distance).
    Printed one line per judge."""
    rep = {}
    for name, j in judges.items():
        r = {"result": judging.style_scores(j.net, out_img, content, held),
             "unstyled": judging.style_scores(j.net, content, content, held),
             "style_half": {"style": float(sum(judging.texture_distance(j.net, s, held) for s in seen) / len(seen))}}
        rep[name] = r
        say(f"held-out style distance in the {name} net: result {r['result']['style']:.3g} at content error "
            f"{r['result']['content']:.3g} (the unstyled content image {r['unstyled']['style']:.3g}; the style's "
            f"other half {r['style_half']['style']:.3g})")
    return rep


def main(argv=None) -> int:
    return command.main("style", PARSER, run, argv)


if __name__ == "__main__":
    sys.exit(main())
