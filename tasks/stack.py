"""Build the paper's greedy "stacked" ranVGG and save it as a weights file.

    python -m tasks.stack --image astronaut --candidates 3 --out out/stacked.npz

For each conv layer in forward order, with the layers before it fixed, --candidates random
weight sets are drawn; the reference image is reconstructed from the layer's rectified output
with each (same starting noise, same --iters), and the candidate with the smallest relative
feature error ||F(x) - F(x0)||^2 / ||F(x0)||^2 is kept. The scores of every candidate go into
the file's meta and the JSON log. Use the result with --weights in the other tasks.
Ctrl-C saves the layers chosen so far (the others keep their plain random draw).
"""
from __future__ import annotations

import sys
import time

from engine import image, stacked
from engine.errors import UserError
from engine.vgg import CONV_SHAPES

from . import _cli, _files, _inputs, _net

DEFAULTS = {"size": 64, "iters": 50, "init": "noise", "out": "out/stacked.npz"}


def _parser():
    ap = _cli.parser("stack", __doc__, DEFAULTS)
    g = ap.add_argument_group("stacked ranVGG")
    g.add_argument("--image", default="astronaut", help="reference image: a file or a sample name (default: astronaut)")
    g.add_argument("--candidates", type=int, default=3, help="random draws tried per conv layer (default: 3)")
    g.add_argument("--top", default="conv5_4", help="last conv layer to choose (default: conv5_4, all 16)")
    return ap


PARSER = _parser()


def run(**kwargs):
    """Build a stacked ranVGG; returns (the VGG19, log). Options as on the command line."""
    a = _cli.options(PARSER, kwargs)
    _cli.validate(a)
    if a.weights:
        raise UserError("--weights: the stacked net is built from fresh random draws (--seed, --sigma)")
    if not isinstance(a.candidates, int) or a.candidates < 1:
        raise UserError(f"--candidates must be a whole number >= 1, got {a.candidates!r}")
    if not isinstance(a.top, str) or not a.top.startswith("conv") or a.top not in dict(CONV_SHAPES):
        raise UserError(f"--top must be a conv layer ({', '.join(dict(CONV_SHAPES))}), got {a.top!r}")
    out, log_path = _files.output_paths(a)
    est = _cli.preflight(a, a.image, [("content", "relu" + a.top[4:])])
    log = _cli.new_log("stack", a)
    log["memory_estimate_bytes"] = est.total
    net = _net.make_net(a, log)
    x0 = image.preprocess(_inputs.read(a.image, a.size), net.preprocessing)
    net.check_input(x0.shape, ["relu" + a.top[4:]] if a.top.startswith("conv") else [a.top])
    x_start = _inputs.start_image(a, x0.shape, content=x0, mode=net.preprocessing)
    lo, hi = image.pixel_bounds(net.preprocessing)
    bounds = (lo.reshape(1, 3, 1, 1), hi.reshape(1, 3, 1, 1))
    t0 = time.perf_counter()

    def progress(layer, k, score, seconds):
        if a.print_every:
            print(f"{layer} candidate {k}: relative feature error {score:.3e} ({seconds:.1f} s)", flush=True)

    log["status"] = "done"
    try:
        report = stacked.build(net, x0, x_start, bounds, a.candidates, a.iters, a.top, a.history, progress)
        for layer, r in report.items():
            print(f"{layer}: kept candidate {r['chosen']} of {len(r['scores'])} "
                  f"(errors {', '.join(f'{s:.2e}' for s in r['scores'])})")
    except KeyboardInterrupt:
        log["status"] = "interrupted"
        print("\ninterrupted: saving the layers chosen so far", file=sys.stderr)
    except FloatingPointError as exc:
        log["status"] = "failed"
        print(f"error: {exc}; saving the layers chosen so far", file=sys.stderr)
    log["stacked"] = net.meta.get("stacked", {})
    log["seconds"] = round(time.perf_counter() - t0, 3)
    _files.save_outputs(log, [("weights", out, lambda: _save_net(net, out))], log_path)
    return net, log


def _save_net(net, out) -> None:
    """net.save, with a failure to write as one UserError line (the weights file's own writer
    removes its temporary)."""
    try:
        net.save(out)
    except OSError as exc:
        raise UserError(f"{out}: cannot write the weights ({exc.strerror or exc}); "
                        "check that the folder is writable") from None


def main(argv=None) -> int:
    return _cli.main("stack", PARSER, run, argv)


if __name__ == "__main__":
    sys.exit(main())
