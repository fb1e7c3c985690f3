"""Invert a layer's representation: reconstruct an image from what one layer keeps of it.

    ranvgg invert --image astronaut --layer pool3 --device cpu

Starting from white noise, L-BFGS (--optimizer) morphs the image until its features at --layer match the
original's (Eq. 1 of He, Wang & Hopcroft 2016, no image prior). Several layers may be given,
comma-separated: each is scaled by its Eq. 4 weighting factor. The log reports the relative
feature error (before and after), PSNR and SSIM against the original, and the same figures for
white noise and for the original's pixels shuffled (baselines that cost nothing). --tv-weight
adds a smoothness prior (not in the paper) that helps the deepest layers.

--image takes a file or a shipped sample: astronaut, coffee, chelsea, brick, grass, gravel, ihc.
The paper's "conv5_1" is relu5_1 here (--list-layers shows all names).
"""
from __future__ import annotations

import sys

from engine import backend, metrics
from engine.io import image
from engine.errors import UserError
from engine.objectives import Objective

from .cli import command
from .pipeline import inputs, network, runner
from .cli.console import quiet_by_default, say

DEFAULTS = {"size": 128, "iters": 200, "init": "noise", "out": "out/invert.png"}


def _parser():
    ap = command.parser("invert", __doc__, DEFAULTS)
    g = ap.add_argument_group("inversion")
    g.add_argument("--image", default="astronaut", help="image to invert: a file or a sample name (default: astronaut)")
    g.add_argument("--layer", "--layers", dest="layer", default="pool3",
                   help="layer(s) whose representation to invert, comma-separated (default: pool3)")
    g.add_argument("--tv-weight", type=float, default=0.0,
                   help="total-variation prior, relative to the feature term after Eq. 4 scaling (default: 0, "
                        "none, as in the paper; 0.01 cleans up deep layers)")
    return ap


PARSER = _parser()


@quiet_by_default
def run(image_spec=None, **kwargs):
    """Invert ``layer`` of ``image``; returns (image (H, W, 3) float32 in [0, 255], log dict).

    Takes the command-line options as keywords (``image="coffee", layer="relu3_1",
    size=64, iters=100, device="cpu", out="inv.png"``, ...).

    Quiet, and no file written, unless asked: ``verbose=True`` prints what the command line
    prints; ``out="FILE.png"`` (or .jpg, .tif) saves the result (and its log, loss plot),
    ``log="FILE.json"`` the log alone."""
    if image_spec is not None:
        kwargs["image"] = image_spec
    a = command.options(PARSER, kwargs)
    command.validate(a)
    if not (a.tv_weight >= 0 and a.tv_weight < float("inf")):
        raise UserError(f"--tv-weight must be a number >= 0, got {a.tv_weight!r}")
    layers = command.layer_list(a.layer)
    terms = [("content", l) for l in layers] + ([("tv", None)] if a.tv_weight else [])
    est = command.preflight(a, a.image, terms, layers=layers)
    log = command.new_log("invert", a)
    log["memory_estimate_bytes"] = est.total
    net = network.make_net(a, log)
    img = inputs.fit_for_fc(inputs.read(a.image, a.size), layers, net, a.size, log)
    x0 = image.preprocess(img, net.preprocessing)
    net.check_input(x0.shape, layers)
    obj = Objective.inversion(net, x0, layers, tv_weight=a.tv_weight)
    x_start = inputs.start_image(a, x0.shape, content=x0, mode=net.preprocessing)
    targets = {t.layer: backend.to_host(t.target) for t in obj.terms if t.kind == "content"}

    def feature_error(x):
        f = net.features(x, layers)
        return {l: metrics.relative_error(backend.to_host(f[l]), targets[l]) for l in layers}

    log["start_feature_error"] = feature_error(x_start)
    noise = metrics.white_noise_like(img, a.seed)
    shuffled = metrics.shuffled_pixels(img, a.seed)
    log["baselines"] = {
        name: {"feature_error": feature_error(image.preprocess(b, net.preprocessing)),
               "psnr": metrics.psnr(b, img), "ssim": metrics.ssim(b, img)}
        for name, b in (("white_noise", noise), ("shuffled_pixels", shuffled))}

    def finish(out_img, x, log):
        log["feature_error"] = feature_error(x)
        log["psnr"] = metrics.psnr(out_img, img)
        log["ssim"] = metrics.ssim(out_img, img)
        log["relative_l2"] = metrics.relative_l2(out_img, img)
        errs = ", ".join(f"{l} {log['start_feature_error'][l]:.3g} -> {e:.3g}" for l, e in log["feature_error"].items())
        say(f"relative feature error {errs}; PSNR {log['psnr']:.2f} dB, SSIM {log['ssim']:.3f} "
              f"(white noise: PSNR {log['baselines']['white_noise']['psnr']:.2f} dB)")
        return out_img

    return runner.optimize(a, net, runner.Setup(obj, x_start, finish), log)


def main(argv=None) -> int:
    return command.main("invert", PARSER, run, argv)


if __name__ == "__main__":
    sys.exit(main())
