"""Synthesise a texture: an image whose Gram matrices match a source image's (Eq. 5-8).

    python -m tasks.texture --image gravel --device cpu

Starting from white noise, L-BFGS-B matches the feature correlations G = F F^T of --layers,
each term scaled by its Eq. 4 weighting factor (mu_l), which is what makes a random VGG work
where Gatys et al. saw white noise. The log reports the relative Gram error per layer in the
network that was optimised and, so that the score is not the objective itself, in a second,
independently seeded random network; white noise and shuffled pixels are the baselines.

--image takes a file or a shipped sample: astronaut, coffee, chelsea, brick, grass, gravel, ihc.
"""
from __future__ import annotations

import sys

from engine import backend, image, metrics
from engine.objectives import Objective
from engine.vgg import VGG19

from . import _cli, _inputs, _net, _run

DEFAULTS = {"size": 128, "iters": 200, "init": "noise", "out": "out/texture.png"}
LAYERS = "relu1_1,relu2_1,relu3_1,relu4_1"


def _parser():
    ap = _cli.parser("texture", __doc__, DEFAULTS)
    g = ap.add_argument_group("texture")
    g.add_argument("--image", default="gravel", help="source texture: a file or a sample name (default: gravel)")
    g.add_argument("--layers", default=LAYERS, help=f"layers whose Gram matrices to match (default: {LAYERS})")
    g.add_argument("--layer-weights", default=None, metavar="W1,W2,...",
                   help="extra weight per layer, on top of the automatic factors (default: all 1)")
    return ap


PARSER = _parser()


def gram_scorer(net: VGG19, x_ref, layers):
    """score(x) -> relative Gram error per layer (and total) of x against x_ref in ``net``;
    the reference's features are computed once."""
    ref = {l: backend.to_host(f) for l, f in net.features(x_ref, layers).items()}

    def score(x):
        return metrics.gram_relative_error({l: backend.to_host(f) for l, f in net.features(x, layers).items()}, ref)

    return score


def run(**kwargs):
    """Synthesise a texture like ``image``; returns (image (H, W, 3) float32 in [0, 255], log).

    Takes the command-line options as keywords (``image="brick", layers="relu1_1,relu2_1",
    size=64, iters=100, device="cpu"``, ...)."""
    a = _cli.options(PARSER, kwargs)
    _cli.validate(a)
    layers = _cli.layer_list(a.layers)
    weights = _cli.floats(a.layer_weights, "--layer-weights")
    log = _cli.new_log("texture", a)
    net = _net.make_net(a, log)
    img = _inputs.fit_for_fc(_inputs.read(a.image, a.size), layers, net, a.size, log)
    xs = image.preprocess(img, net.preprocessing)
    net.check_input(xs.shape, layers)
    obj = Objective.texture(net, xs, layers, weights)
    x_start = _inputs.start_image(a, xs.shape, content=xs, mode=net.preprocessing)
    check_seed = a.seed + 1000003
    log["check_network_seed"] = check_seed
    check_net = VGG19.random(seed=check_seed, sigma=net.meta.get("sigma") or 0.015, pooling=net.pooling,
                             device=net.device, arch=net.arch)
    score, score_check = gram_scorer(net, xs, layers), gram_scorer(check_net, xs, layers)
    baselines = {"white_noise": image.preprocess(metrics.white_noise_like(img, a.seed), net.preprocessing),
                 "shuffled_pixels": image.preprocess(metrics.shuffled_pixels(img, a.seed), net.preprocessing)}
    log["baselines"] = {k: {"gram_error": score(b), "gram_error_check_net": score_check(b)}
                        for k, b in baselines.items()}
    log["start_gram_error"] = score(x_start)

    def finish(out_img, x, log):
        log["gram_error"] = score(x)
        log["gram_error_check_net"] = score_check(x)
        base = log["baselines"]["white_noise"]
        print(f"relative Gram error (sum over layers): {log['gram_error']['total']:.3g} "
              f"(white noise {base['gram_error']['total']:.3g}); in an independent net: "
              f"{log['gram_error_check_net']['total']:.3g} (white noise {base['gram_error_check_net']['total']:.3g})")
        return out_img

    return _run.optimize(a, net, _run.Setup(obj, x_start, finish), log)


def main(argv=None) -> int:
    return _cli.main("texture", PARSER, run, argv)


if __name__ == "__main__":
    sys.exit(main())
