"""Transfer artistic style: the content of one image in the style of others (Eq. 9).

    python -m tasks.style --content chelsea --style ihc --device cpu

Minimises alpha * L_content + beta * L_texture + gamma * R(x): content from --content-layer
(default relu2_2, the paper's conv2_2), style from the Gram matrices of --style-layers, and
total variation for smoothness. Every term is first scaled by its Eq. 4 weighting factor, so
the three weights are ratios of pull on the image, comparable across layers and weight scales.
Several --style images may be blended with --style-blend (one weight each; normalised).
--original-colors keeps the content's colours (luminance transfer, YIQ).

Images: a file or a shipped sample: astronaut, coffee, chelsea, brick, grass, gravel, ihc.
"""
from __future__ import annotations

import sys

from engine import backend, image, metrics
from engine.errors import UserError
from engine.objectives import Objective
from engine.ops.gram import gram_forward
from engine.vgg import check_layers

from . import _cli, _inputs, _net, _run
from ._console import quiet_by_default, say

DEFAULTS = {"size": 128, "iters": 200, "init": "content", "out": "out/style.png"}
STYLE_LAYERS = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"
# Not the paper's 100:1:1000: with every term normalised by Eq. 4 (TV included) that ratio lets
# TV dominate (a blur; measured in the README). 10:1:0.1 keeps content and style in balance.
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 10.0, 1.0, 0.1


def _parser():
    ap = _cli.parser("style", __doc__, DEFAULTS)
    g = ap.add_argument_group("style transfer")
    g.add_argument("--content", default="chelsea", help="content image: a file or a sample name (default: chelsea)")
    g.add_argument("--style", action="append", default=None, metavar="IMG",
                   help="style image (repeat for several; default: ihc)")
    g.add_argument("--style-blend", default=None, metavar="W1,W2,...",
                   help="one weight per --style image, normalised to sum to 1 (default: equal)")
    g.add_argument("--content-layer", default="relu2_2", help="content layer (default: relu2_2)")
    g.add_argument("--style-layers", default=STYLE_LAYERS, help=f"style layers (default: {STYLE_LAYERS})")
    g.add_argument("--content-weight", type=float, default=CONTENT_WEIGHT,
                   help=f"alpha (default: {CONTENT_WEIGHT:g})")
    g.add_argument("--style-weight", type=float, default=STYLE_WEIGHT,
                   help=f"beta, per style layer (default: {STYLE_WEIGHT:g})")
    g.add_argument("--tv-weight", type=float, default=TV_WEIGHT, help=f"gamma (default: {TV_WEIGHT:g})")
    g.add_argument("--original-colors", action="store_true", help="keep the content image's colours")
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
    a = _cli.options(PARSER, kwargs)
    _cli.validate(a)
    styles = a.style or ["ihc"]
    if isinstance(styles, str):
        styles = [styles]
    blend = _cli.floats(a.style_blend, "--style-blend")
    if blend is not None and len(blend) != len(styles):
        raise UserError(f"--style-blend has {len(blend)} weight(s) for {len(styles)} --style image(s): "
                                "give one weight per style image")
    for name in ("content_weight", "style_weight", "tv_weight"):
        v = getattr(a, name)
        if not (v >= 0 and v < float("inf")):
            raise UserError(f"--{name.replace('_', '-')} must be a number >= 0, got {v!r}")
    content_layer = check_layers([a.content_layer])[0]
    style_layers = _cli.layer_list(a.style_layers)
    terms = [("content", content_layer)] + [("gram", l) for l in style_layers] + ([("tv", None)] if a.tv_weight else [])
    est = _cli.preflight(a, a.content, terms, layers=[content_layer, *style_layers])
    log = _cli.new_log("style", a)
    log["memory_estimate_bytes"] = est.total
    net = _net.make_net(a, log)
    content = _inputs.fit_for_fc(_inputs.read(a.content, a.size), [content_layer, *style_layers], net, a.size, log)
    xc = image.preprocess(content, net.preprocessing)
    net.check_input(xc.shape, [content_layer, *style_layers])
    xs = []
    for spec in styles:
        s = _inputs.read(spec, a.size)
        xs.append(image.preprocess(s, net.preprocessing))
        net.check_input(xs[-1].shape, style_layers)
    obj = Objective.style(net, xc, xs, blend, content_layer, style_layers,
                          a.content_weight, a.style_weight, a.tv_weight)
    x_start = _inputs.start_image(a, xc.shape, content=xc, mode=net.preprocessing)
    # keyed by kind too: the content layer may also be a style layer
    targets = {(t.kind, t.layer): backend.to_host(t.target) for t in obj.terms if t.kind != "tv"}

    def errors(x):
        """Relative content error, and relative Gram error per style layer against the
        (blended, size-matched) style targets."""
        f = {k: backend.to_host(v) for k, v in net.features(x, [content_layer, *style_layers]).items()}
        style = {l: metrics.relative_error(gram_forward(f[l]), targets["gram", l]) for l in style_layers}
        style["total"] = sum(style.values())
        return metrics.relative_error(f[content_layer], targets["content", content_layer]), style

    log["start_content_error"], log["start_style_error"] = errors(x_start)

    def finish(out_img, x, log):
        log["content_error"], log["style_error"] = errors(x)
        say(f"content error {log['start_content_error']:.3g} -> {log['content_error']:.3g}; "
              f"style (Gram) error {log['start_style_error']['total']:.3g} -> {log['style_error']['total']:.3g}")
        if a.original_colors:
            out_img = image.luminance_transfer(out_img, content)
            log["original_colors"] = True
        return out_img

    return _run.optimize(a, net, _run.Setup(obj, x_start, finish), log)


def main(argv=None) -> int:
    return _cli.main("style", PARSER, run, argv)


if __name__ == "__main__":
    sys.exit(main())
