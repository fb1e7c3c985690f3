"""Synthesise a texture: an image whose Gram matrices match a source image's (Eq. 5-8).

    ranvgg texture --image gravel --device cpu

Starting from white noise, L-BFGS (--optimizer) matches the feature correlations G = F F^T of
--layers, each term scaled by its Eq. 4 weighting factor (mu_l), which is what makes a random VGG
work where Gatys et al. saw white noise. By default it first solves at smaller sizes (--scales
halves: half the size, and down to 64 px, 300 iterations each) and continues from each result
upsampled: the coarse stages settle the arrangement (docs/levers.md, "The coarse stages'
budget"). The log reports the relative Gram error per layer in the network that was optimised
and, so that the score is not the objective itself, in a second, independently seeded random
network and, with --judge-weights, in a trained VGG-19; white noise and shuffled pixels are the
baselines. Gatys et al.: --weights FILE.npz --pooling avg.

--image takes a file or a shipped sample: astronaut, coffee, chelsea, brick, grass, gravel, ihc.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from engine import backend, metrics
from engine import judge as judging
from engine.io import image
from engine.errors import UserError
from engine.arch import periodic_pad
from engine.objectives import FEATURE_STATS, PIXEL_STATS, Ensemble, Objective, pinned_layers
from engine.vgg import VGG19

from .cli import command
from .pipeline import inputs, scoring, network, runner, scales
from .cli.console import quiet_by_default, say

# coarse to fine, judged in a trained VGG-19 against held-out crops (docs/levers.md):
# 128 px: one stage at 64 px; 256 px: 64, 128 (docs/levers.md, "At 256 px"); 300 iterations each: the
# arrangement the coarse stages settle is the part the trained judge finds farthest ("The coarse stages' budget")
SCALES, SCALE_ITERS, PYRAMID = "halves", 300, 1
# an L-BFGS memory of 100 steps (the other tasks: 10): nearer the held-out crops at 256 px on every texture
# measured (12 runs of 15, none farther), level at 128 px, 1.04x the time; 300 steps when the exemplar and
# the synthesis are both 256 px or more: nearer than 100 there on 10 runs of 15, farther on 1, 1.13x the
# time; mixed at 128 px and for a 256 px synthesis from a 128 px exemplar (docs/levers.md, "The L-BFGS
# memory"); 100 when 300 does not fit in memory
HISTORY, LARGE_HISTORY, LARGE_SIDE = 100, 300, 256
DEFAULTS = {"size": 128, "iters": 200, "init": "noise", "out": "out/texture.png", "history": None,
            "history_shown": f"{HISTORY}; {LARGE_HISTORY} when the exemplar at --size and the synthesis are "
                             f"both {LARGE_SIDE} px or larger on their longer side, if that fits in memory"}
LAYERS = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"
# the texture defaults, one set for the command line and run(): measured in docs/levers.md
PINNED, PIXEL, FEATURES, COLOUR_TRANSFER, SPECTRUM = "drop", "moments", "gram+moments", True, 0.0
INTERIOR, PERIODIC = False, False
# long-range terms 4 px apart: nearer held-out crops on brick, gravel and grass (3 seeds, 128 and 256 px)
# and the printed page, level on three, farther on the moon (docs/levers.md, "Long-range correlations")
SHIFTS, SHIFTS_WHY = "4", "; docs/levers.md"


def _parser():
    ap = command.parser("texture", __doc__, DEFAULTS)
    g = ap.add_argument_group("texture")
    g.add_argument("--image", default="gravel", help="source texture: a file or a sample name (default: gravel)")
    g.add_argument("--layers", "--layer", dest="layers", default=LAYERS,
                   help=f"layers whose Gram matrices to match, comma-separated (default: {LAYERS})")
    g.add_argument("--layer-weights", default=None, metavar="W1,W2,...",
                   help="extra weight per layer, on top of the automatic factors (default: all 1)")
    g.add_argument("--out-size", default=None, metavar="WxH",
                   help="size of the synthesised texture in px (any size, from an exemplar of any size; "
                        "coarse stages scale it down with --size); default: the exemplar's size at --size")
    g.add_argument("--pinned-layers", choices=("drop", "keep"), default=PINNED,
                   help="a layer with fewer positions than channels at the exemplar's or the output's size "
                        "(relu4_1, relu5_1 at 128 px) has a Gram matrix that pins the source's layout: "
                        f"drop it (said in the log) or keep it (default: {PINNED})")
    g.add_argument("--pixel-stats", choices=PIXEL_STATS, default=PIXEL,
                   help="also match the colour distribution of the pixels: its mean and covariance (moments; a "
                        "grey exemplar then gives a grey texture) or its whole histogram (swd, sliced Wasserstein: "
                        "nearer for sparse bright points on a dark ground such as a star field, farther on dense "
                        f"textures; docs/levers.md); default: {PIXEL}")
    g.add_argument("--colour-transfer", action=argparse.BooleanOptionalAction, default=COLOUR_TRANSFER,
                   help="map the result's colours linearly to the exemplar's mean and covariance at the end "
                        f"(exact: a grey exemplar gives a grey result; default: {'on' if COLOUR_TRANSFER else 'off'})")
    network.add_interior_option(g, "the exemplar's", INTERIOR)
    g.add_argument("--periodic", action=argparse.BooleanOptionalAction, default=PERIODIC,
                   help="synthesise a periodic texture: the network sees the image wrapped around, so the "
                        "result has no border and tiles seamlessly (about 1.2x the time at 128 px; "
                        f"default: {'on' if PERIODIC else 'off'})")
    network.add_filter_bank_option(g, "half the exemplar")
    network.add_spectrum_option(g, "the exemplar's", SPECTRUM, "; for regular textures")
    network.add_ensemble_option(g, "the colour, filter-bank and spectrum terms",
                                "3 brings granular and sparse textures (gravel, grass, a star field) nearer their "
                                "held-out crops in a trained VGG-19, and brick and the moon a little farther "
                                "(docs/levers.md, \"Three nets\")")
    network.add_ensemble_layers_option(g, "--layers",
                                       "relu1_1 adds only the other nets' first layers: gravel and grass come as "
                                       "near their held-out crops as with whole nets, at about 1.3x the cost for 3 "
                                       "nets; relu2_1,relu3_1 brings the star field nearly as near as whole "
                                       "nets, at about 2x (docs/levers.md, \"Where three nets' gain lies\")")
    network.add_project_option(g, "the exemplar's")
    network.add_shifts_option(g, "the exemplar's", SHIFTS, SHIFTS_WHY)
    g.add_argument("--feature-stats", choices=FEATURE_STATS, default=FEATURES,
                   help="the statistics matched per layer: Gram matrices, and/or mean and covariance, or a "
                        "sliced Wasserstein distance of the features; gram+balanced weighs the mean and the "
                        "covariance each relative to the exemplar's (finer structure, more like the source); "
                        "gram+swd with --pixel-stats swd suits sparse bright points on a dark ground such as a "
                        f"star field, and is farther on dense textures (docs/levers.md) (default: {FEATURES})")
    scales.add_options(ap, SCALES, SCALE_ITERS, PYRAMID)
    scoring.add_options(ap)
    g = ap.add_argument_group("fair judging (the result against parts of the exemplar it never saw)")
    g.add_argument("--held-out", action="store_true",
                   help="read --image with its longer side --exemplar-size, cut it into disjoint --size x --size "
                        "crops, synthesise from the first and judge the result against the others: held-out "
                        "texture distance beside natural crops, a copy of the source, shuffled pixels and "
                        "white noise, and a copy score (docs/quality.md)")
    g.add_argument("--exemplar-size", type=int, default=None, metavar="N",
                   help="with --held-out: the exemplar's longer side in px (default: 3 x --size)")
    return ap


def out_shape(spec, size: int, full: int, src_hw) -> tuple[int, int]:
    """(h, w) of the synthesis at a stage of longer side ``size`` (the last stage: ``full``):
    --out-size scaled by size / full, or the exemplar's own (h, w) at that stage."""
    if spec is None:
        return tuple(src_hw)
    try:
        w, h = (int(v) for v in str(spec).lower().split("x"))
    except ValueError:
        raise UserError(f"--out-size must be WIDTHxHEIGHT in px, e.g. 256x128; got {spec!r}") from None
    if w < 16 or h < 16:
        raise UserError(f"--out-size {spec}: give at least 16x16 px")
    return max(1, round(h * size / full)), max(1, round(w * size / full))


PARSER = _parser()


def periodic_margin(a, layers, hw) -> int:
    """The px a --periodic synthesis of (h, w) ``hw`` adds on each side for the net to see it
    wrapped around (``engine.arch.periodic_pad`` of the layers kept there); 0 without --periodic."""
    if not a.periodic:
        return 0
    drop = pinned_layers(layers, [hw], a.pyramid, inside=[hw] if a.interior else (), project=a.project) \
        if a.pinned_layers == "drop" else {}
    pairs = [(l, k) for k in range(a.pyramid) for l in layers if l not in drop.get(k, ())]
    return periodic_pad(pairs) if pairs else 0


def _check_sizes(a, layers) -> None:
    """--out-size sets the synthesis' own size, whatever --size: the memory check of the run at
    that size (preflight checked the exemplar's), with the largest --out-size that fits. A
    --periodic synthesis is checked with the border the net sees around it."""
    terms = [("gram", l) for l in layers]
    if a.out_size is None:
        if a.periodic:
            _, _, h, w = inputs.planned_shape(a.image, a.size, layers)
            p = periodic_margin(a, layers, (h, w))
            network.check_memory(a, (1, 3, h + 2 * p, w + 2 * p), terms, extra_nets=a.ensemble)
        return
    h, w = out_shape(a.out_size, a.size, a.size, (0, 0))

    def fits(f):
        p = periodic_margin(a, layers, (max(16, int(h * f)), max(16, int(w * f))))
        try:
            network.check_memory(a, (1, 3, max(16, int(h * f)) + 2 * p, max(16, int(w * f)) + 2 * p), terms,
                                 extra_nets=1)
            return True
        except UserError:
            return False

    if fits(1.0):
        return
    f = 0.95
    while f > 0.01 and not fits(f):
        f *= 0.95
    fix = (f"use --out-size {max(16, int(w * f))}x{max(16, int(h * f))} or smaller" if f > 0.01
           else "free some memory")
    raise UserError(f"--out-size {a.out_size}: the synthesis at {w}x{h} px does not fit in memory; {fix}")


def last_stage_shapes(a, layers) -> tuple[tuple[int, int], tuple[int, int]]:
    """((h, w) of the exemplar, (h, w) of the synthesis) at the last stage, from the options and
    the image's header (a --held-out exemplar is cut into --size squares)."""
    hw = (a.size, a.size) if a.held_out else tuple(inputs.planned_shape(a.image, a.size, layers)[2:])
    return hw, out_shape(a.out_size, a.size, a.size, hw)


def choose_history(a, layers, terms) -> str | None:
    """--history left out: LARGE_HISTORY steps of L-BFGS memory when the exemplar at --size and
    the synthesis (--out-size, or the exemplar's size) are both LARGE_SIDE px or more on their
    longer side and the run fits in memory with them; HISTORY otherwise. Sets a.history;
    returns a note when the larger memory was wanted and did not fit."""
    if a.history is not None:
        return None
    a.history = HISTORY
    command.check_inputs(a)   # the exemplar's header is read below: a missing file fails as preflight says it
    hw, (h, w) = last_stage_shapes(a, layers)
    if min(max(h, w), max(hw)) < LARGE_SIDE:
        return None
    p = periodic_margin(a, layers, (h, w))
    a.history = LARGE_HISTORY
    try:
        network.check_memory(a, (1, 3, h + 2 * p, w + 2 * p), terms, extra_nets=a.ensemble)
    except UserError:
        a.history = HISTORY
        return (f"L-BFGS memory of {HISTORY} steps: the {LARGE_HISTORY} a {w}x{h} px synthesis from a "
                f"{hw[1]}x{hw[0]} px exemplar gets by default do not fit in the free memory")
    return None


def _exemplar_size(a) -> int:
    if a.exemplar_size is None:
        return 3 * a.size
    if not isinstance(a.exemplar_size, (int, np.integer)) or a.exemplar_size < 2 * a.size:
        raise UserError(f"--exemplar-size must be a whole number of px at least twice --size ({2 * a.size}), "
                        f"to hold two disjoint crops; got {a.exemplar_size!r}")
    if not a.held_out:
        raise UserError("--exemplar-size is for --held-out judging: add --held-out, or leave it out")
    return a.exemplar_size


def gram_scorer(net: VGG19, x_ref, layers):
    """score(x) -> relative error of the per-position Gram matrices F F^T / M, per layer (and
    total), of x against x_ref in ``net`` (x may have another size); the reference's Grams are
    computed once. For equal sizes this is ``metrics.gram_relative_error``."""
    def grams(x):
        out = {}
        for l, f in net.features(x, layers).items():
            f = backend.to_host(f).astype("float64").reshape(f.shape[1], -1)
            out[l] = f @ f.T / f.shape[1]
        return out

    ref = grams(x_ref)

    def score(x):
        err = {l: metrics.relative_error(g, ref[l]) for l, g in grams(x).items()}
        err["total"] = float(sum(err.values()))
        return err

    return score


@quiet_by_default
def run(**kwargs):
    """Synthesise a texture like ``image``; returns (image (H, W, 3) float32 in [0, 255], log).

    Takes the command-line options as keywords (``image="brick", layers="relu1_1,relu2_1",
    size=64, iters=100, device="cpu"``, ...).

    Quiet, and no file written, unless asked: ``verbose=True`` prints what the command line
    prints; ``out="FILE.png"`` (or .jpg, .tif) saves the result (and its log, loss plot),
    ``log="FILE.json"`` the log alone."""
    a = command.options(PARSER, kwargs)
    command.validate(a)
    layers = command.layer_list(a.layers, "--layers")
    weights = command.layer_weights(a.layer_weights, layers)
    network.check_filter_bank(a)
    network.check_project(a)
    exemplar_size = _exemplar_size(a)
    if a.held_out:
        network.check_exemplar_memory(a.image, exemplar_size, a.size)
    network.check_spectrum(a)
    network.check_ensemble(a)
    chosen = None if a.ensemble_layers is None else command.layer_list(a.ensemble_layers, "--ensemble-layers")
    ens_layers, ens_weights = network.ensemble_layers(a.ensemble, chosen, layers, weights, "--layers")
    # extra nets: the check net and the ensemble's other nets
    # each long-range term holds a target of a Gram matrix's size: counted as one more Gram term
    grams = [("gram", l) for l in layers] * (1 + 2 * len(network.shifts(a)))
    history_note = choose_history(a, layers, grams)
    est = command.preflight(a, a.image, grams, extra_nets=a.ensemble, layers=layers)
    log = command.new_log("texture", a)
    if history_note:
        log.setdefault("notes", []).append(history_note)
        say(history_note)
    split = None
    if a.held_out:  # read and cut before the network is built: a too small exemplar fails first
        split = judging.split_exemplar(inputs.read(a.image, exemplar_size), a.size)
        log["held_out"] = {"exemplar_size": exemplar_size, "boxes": split["boxes"]}
        say(f"held-out judging: synthesis from the crop at {split['boxes'][0][:2]} (top, left) of the exemplar at "
            f"{exemplar_size} px; {len(split['held_out'])} held-out crops")

    def source(size):
        """The exemplar at a stage of longer side ``size``: the image, or its synthesis crop."""
        if split is None:
            return inputs.read(a.image, size)
        crop = split["synthesis"]
        return crop if size == a.size else image.resize(crop, size, size)

    scales.sizes(a, layers)  # a bad --scales fails before the network is built
    _check_sizes(a, layers)
    if a.shifts:  # a distance no layer takes at the last stage fails before the first
        hw, out_hw = last_stage_shapes(a, layers)
        network.shifts(a, a.size, layers, [out_hw, hw])
    log["memory_estimate_bytes"] = est.total
    net = network.make_net(a, log)
    others = network.ensemble(a, log, chosen)

    def build(size, start):
        """(Objective, x_start) at ``size``: from ``start`` (a coarser result) or the --init."""
        src = inputs.fit_for_fc(source(size), layers, net, size, log)
        x_src = image.preprocess(src, net.preprocessing)
        net.check_input(x_src.shape, layers)
        shape = (1, 3, *out_shape(a.out_size, size, a.size, x_src.shape[2:]))
        net.check_input(shape, layers)
        content = x_src if shape == x_src.shape else scales.start_from(src, shape, net.preprocessing)
        x0 = (inputs.start_image(a, shape, content=content, mode=net.preprocessing) if start is None
              else scales.start_from(start, shape, net.preprocessing, periodic=a.periodic))
        drop = a.pinned_layers == "drop"
        pinned = pinned_layers(layers, [x_src.shape[2:], shape[2:]], a.pyramid,
                               inside=[x_src.shape[2:]] if a.interior else (), project=a.project)
        if pinned and size == a.size:
            note = "; ".join(f"{', '.join(ls)}" + (f" (pyramid level {k})" if k else "") for k, ls in pinned.items())
            note = (f"{note}: fewer positions than channels at this size, so the Gram matrix pins the source's layout; "
                    + ("left out (--pinned-layers keep uses them)" if drop else "kept (--pinned-layers drop leaves them out)"))
            log.setdefault("notes", []).append(note)
            log["pinned_layers"] = {str(k): ls for k, ls in pinned.items()}
            say(note)
        kept = [l for l in layers if not (drop and l in pinned.get(0, ()))]
        shifts = network.shifts(a, size, kept, [shape[2:], x_src.shape[2:]])
        obj = Objective.texture(net, x_src, layers, weights, levels=a.pyramid, shape=shape, pixel_stats=a.pixel_stats,
                                feature_stats=a.feature_stats, drop_pinned=drop, bank_maps=a.filter_bank,
                                bank_seed=a.seed, spectrum_weight=a.spectrum_weight, interior=a.interior,
                                periodic=a.periodic, project=a.project, shifts=shifts)
        if a.periodic:  # the border, in px, the net sees around the periodic image at this stage
            log.setdefault("periodic_pad_px", {})[str(size)] = obj.pad
        ens_kept, ens_shifts = network.ensemble_stage(ens_layers, kept, [shape[2:], x_src.shape[2:]], shifts,
                                                      last=size == a.size) if others else ([], ())
        if ens_kept:  # the other nets' terms (at --ensemble-layers); the pixel, bank and spectrum terms once
            obj = Ensemble([obj] + [Objective.texture(n, x_src, ens_layers, ens_weights, levels=a.pyramid,
                                                      shape=shape, feature_stats=a.feature_stats, drop_pinned=drop,
                                                      interior=a.interior, periodic=a.periodic, project=a.project,
                                                      shifts=ens_shifts)
                                    for n in others])
        return obj, x0

    try:
        coarse = scales.coarse_to_fine(a, net, build, layers, log)
    except scales.Interrupted as stop:
        return stop.args[0]
    img = inputs.fit_for_fc(source(a.size), layers, net, a.size, log)
    xs = image.preprocess(img, net.preprocessing)
    obj, x_start = build(a.size, coarse)
    check_seed = a.seed + scoring.RANDOM_JUDGE_SEED_OFFSET
    log["check_network_seed"] = check_seed
    check_net = scoring.random_net_for(a, net)
    score, score_check = gram_scorer(net, xs, layers), gram_scorer(check_net, xs, layers)
    base_imgs = {"white_noise": metrics.white_noise_like(img, a.seed), "shuffled_pixels": metrics.shuffled_pixels(img, a.seed)}
    baselines = {k: image.preprocess(b, net.preprocessing) for k, b in base_imgs.items()}
    log["baselines"] = {k: {"gram_error": score(b), "gram_error_check_net": score_check(b)}
                        for k, b in baselines.items()}
    judges = scoring.judges(a, net, style=[img], random_net=check_net)
    log["start_gram_error"] = score(x_start)

    def finish(out_img, x, log):
        if a.colour_transfer:
            out_img = image.colour_transfer(out_img, img)
            x = image.preprocess(out_img, net.preprocessing)
        log["gram_error"] = score(x)
        log["gram_error_check_net"] = score_check(x)
        base = log["baselines"]["white_noise"]
        say(f"relative Gram error (sum over layers): {log['gram_error']['total']:.3g} "
              f"(white noise {base['gram_error']['total']:.3g}); in an independent net: "
              f"{log['gram_error_check_net']['total']:.3g} (white noise {base['gram_error_check_net']['total']:.3g})")
        log["judge"] = scoring.score(judges, {"result": out_img, **base_imgs})
        scoring.report(log["judge"])
        log["copy_score"] = judging.copy_score(out_img, img)
        if split is None:
            say(f"copy score (max normalised cross-correlation with the source, 1 for a shifted copy): "
                f"{log['copy_score']:.2f}; --held-out adds a natural crop's for comparison")
        else:
            rep = judging.texture_report(out_img, split, {k: j.net for k, j in judges.items()}, seed=a.seed)
            log["held_out"].update(rep)
            for line in judging.report_lines(rep):
                say(line)
        return out_img

    return runner.optimize(a, net, runner.Setup(obj, x_start, finish), log)


def main(argv=None) -> int:
    return command.main("texture", PARSER, run, argv)


if __name__ == "__main__":
    sys.exit(main())
