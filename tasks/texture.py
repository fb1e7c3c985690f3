"""Synthesise a texture: an image whose Gram matrices match a source image's (Eq. 5-8).

    ranvgg texture --image gravel --device cpu

Starting from white noise, L-BFGS-B matches the feature correlations G = F F^T of --layers,
each term scaled by its Eq. 4 weighting factor (mu_l), which is what makes a random VGG work
where Gatys et al. saw white noise. By default it first solves at half the size (--scales half)
and continues from that result upsampled: measured in a trained VGG-19, with relu5_1 added this
halved the error on ihc and retina and barely changed it on another image (README). The log reports the relative Gram error per
layer in the network that was optimised and, so that the score is not the objective itself,
in a second, independently seeded random network and, with --judge-weights, in a trained
VGG-19; white noise and shuffled pixels are the baselines. Gatys et al.: --weights FILE.npz --pooling avg.

--image takes a file or a shipped sample: astronaut, coffee, chelsea, brick, grass, gravel, ihc.
"""
from __future__ import annotations

import sys

from engine import backend, metrics
from engine.io import image
from engine.objectives import Objective
from engine.vgg import VGG19

from .cli import command
from .pipeline import inputs, scoring, network, runner, scales
from .cli.console import quiet_by_default, say

# coarse to fine (half size first) and relu5_1: chosen from measurements in a trained VGG-19 (README)
SCALES, SCALE_ITERS, PYRAMID = "half", 100, 1
DEFAULTS = {"size": 128, "iters": 200, "init": "noise", "out": "out/texture.png"}
LAYERS = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"


def _parser():
    ap = command.parser("texture", __doc__, DEFAULTS)
    g = ap.add_argument_group("texture")
    g.add_argument("--image", default="gravel", help="source texture: a file or a sample name (default: gravel)")
    g.add_argument("--layers", "--layer", dest="layers", default=LAYERS,
                   help=f"layers whose Gram matrices to match, comma-separated (default: {LAYERS})")
    g.add_argument("--layer-weights", default=None, metavar="W1,W2,...",
                   help="extra weight per layer, on top of the automatic factors (default: all 1)")
    scales.add_options(ap, SCALES, SCALE_ITERS, PYRAMID)
    scoring.add_options(ap)
    return ap


PARSER = _parser()


def gram_scorer(net: VGG19, x_ref, layers):
    """score(x) -> relative Gram error per layer (and total) of x against x_ref in ``net``;
    the reference's features are computed once."""
    ref = {l: backend.to_host(f) for l, f in net.features(x_ref, layers).items()}

    def score(x):
        return metrics.gram_relative_error({l: backend.to_host(f) for l, f in net.features(x, layers).items()}, ref)

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
    weights = command.floats(a.layer_weights, "--layer-weights")
    est = command.preflight(a, a.image, [("gram", l) for l in layers], extra_nets=1, layers=layers)  # + the check net
    log = command.new_log("texture", a)
    scales.sizes(a, layers)  # a bad --scales fails before the network is built
    log["memory_estimate_bytes"] = est.total
    net = network.make_net(a, log)

    def build(size, start):
        """(Objective, x_start) at ``size``: from ``start`` (a coarser result) or the --init."""
        src = inputs.fit_for_fc(inputs.read(a.image, size), layers, net, size, log)
        x_src = image.preprocess(src, net.preprocessing)
        net.check_input(x_src.shape, layers)
        x0 = (inputs.start_image(a, x_src.shape, content=x_src, mode=net.preprocessing) if start is None
              else scales.start_from(start, x_src.shape, net.preprocessing))
        return Objective.texture(net, x_src, layers, weights, levels=a.pyramid), x0

    try:
        coarse = scales.coarse_to_fine(a, net, build, layers, log)
    except scales.Interrupted as stop:
        return stop.args[0]
    img = inputs.fit_for_fc(inputs.read(a.image, a.size), layers, net, a.size, log)
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
        log["gram_error"] = score(x)
        log["gram_error_check_net"] = score_check(x)
        base = log["baselines"]["white_noise"]
        say(f"relative Gram error (sum over layers): {log['gram_error']['total']:.3g} "
              f"(white noise {base['gram_error']['total']:.3g}); in an independent net: "
              f"{log['gram_error_check_net']['total']:.3g} (white noise {base['gram_error_check_net']['total']:.3g})")
        log["judge"] = scoring.score(judges, {"result": out_img, **base_imgs})
        scoring.report(log["judge"])
        return out_img

    return runner.optimize(a, net, runner.Setup(obj, x_start, finish), log)


def main(argv=None) -> int:
    return command.main("texture", PARSER, run, argv)


if __name__ == "__main__":
    sys.exit(main())
