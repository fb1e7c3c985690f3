"""Build the paper's greedy "stacked" ranVGG and write its recipe (a small JSON file).

    python -m tasks.stack --seed 12 --out out/ranvgg_seed12.json
    python -m tasks.invert --image coffee --net out/ranvgg_seed12.json

For each conv layer in forward order, up to --top, with the layers before it fixed, --candidates
random weight sets are drawn (candidate 0 is the plain random net's draw); the reference image is
reconstructed from the layer's rectified output with each (same seeded starting noise, same
--iters), and the candidate with the smallest relative feature error ||F(x) - F(x0)||^2 /
||F(x0)||^2 is kept. The recipe holds the seed, sigma, the choice and scores per layer, these
settings and a checksum of every layer's weights; --net FILE.json regenerates the net from it in
a second. The defaults are the settings of the shipped ranVGG recipes (seeds 0-9), so
`--seed N` with no other option makes what `--net ranvgg --seed N` builds and caches.
--save-weights also writes the weights (.npz, about 80 MB). Ctrl-C writes the layers chosen so
far (the others keep their plain random draw).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from engine import recipes, stacked
from engine.errors import UserError
from engine.vgg import CONV_SHAPES

from . import _cli, _files, _inputs

S = recipes.SETTINGS
DEFAULTS = {"size": S["size"], "iters": S["iters"], "init": S["init"], "out": "out/stacked.json"}


def _parser():
    ap = _cli.parser("stack", __doc__, DEFAULTS, image_task=False)
    g = ap.add_argument_group("stacked ranVGG")
    g.add_argument("--image", default="reference", help="reference image: a file or a sample name (default: "
                   "reference, the image shipped with the recipes, which no sample image is)")
    g.add_argument("--candidates", type=int, default=S["candidates"],
                   help=f"random draws tried per conv layer (default: {S['candidates']})")
    g.add_argument("--top", default=S["top"], help=f"last conv layer to choose; the deeper ones keep their plain "
                   f"draw (default: {S['top']})")
    out = [grp for grp in ap._action_groups if grp.title == "output"][0]
    out.add_argument("--out", default=DEFAULTS["out"], metavar="FILE.json",
                     help=f"the recipe (default: {DEFAULTS['out']})")
    out.add_argument("--save-weights", metavar="FILE.npz", help="also write the weights (about 80 MB)")
    helps = {"pooling": "2x2 average or max pooling while choosing (default: avg)",
             "print_every": "0: no line per candidate, only the summary (default: 10: a line per candidate)",
             "log": "the build's log as JSON: every candidate's score, seconds (default: OUT_log.json)",
             "size": f"scale the reference so the longer side is N px (default: {DEFAULTS['size']})",
             "iters": f"L-BFGS-B iterations per candidate (default: {DEFAULTS['iters']})"}
    for action in ap._actions:
        action.help = helps.get(action.dest, action.help)
    return ap


PARSER = _parser()


def run(**kwargs):
    """Build a stacked ranVGG; returns (the VGG19, log). Options as on the command line;
    the recipe is ``log["recipe"]``."""
    a = _cli.options(PARSER, kwargs)
    _cli.validate(a)
    if not isinstance(a.candidates, int) or a.candidates < 1:
        raise UserError(f"--candidates must be a whole number >= 1, got {a.candidates!r}")
    if a.seed < 0:
        raise UserError(f"--seed must be a whole number >= 0, got {a.seed}")
    out = Path(a.out)
    if not recipes.is_recipe_file(out):
        raise UserError(f"--out {a.out}: the recipe is a .json file (use --save-weights FILE.npz for the weights)")
    weights = Path(a.save_weights) if a.save_weights else None
    if weights is not None and weights.suffix.lower() != ".npz":
        raise UserError(f"--save-weights {a.save_weights}: give a .npz file name")
    log_path = Path(a.log) if a.log else out.with_name(out.stem + "_log.json")
    for path, what in ((out, "--out"), (log_path, "--log"), (weights, "--save-weights")):
        if path is not None:
            _files.check_writable(path, what)
    reference = recipes.REFERENCE if a.image == "reference" else _inputs.image_path(a.image)
    settings = {**S, "reference": S["reference"] if a.image == "reference" else str(a.image), "size": a.size,
                "candidates": a.candidates, "iters": a.iters, "top": a.top, "history": a.history,
                "pooling": a.pooling or "avg"}
    if a.top not in [n for n, _ in CONV_SHAPES]:
        raise UserError(f"--top must be a conv layer ({', '.join(n for n, _ in CONV_SHAPES)}), got {a.top!r}")
    log = _cli.new_log("stack", a)
    net, x0, x_start, bounds = recipes.prepare(a.seed, a.sigma, settings, a.device, reference)
    shown = "the shipped image" if a.image == "reference" else a.image
    print(f"device: {net.device}; seed {a.seed}, sigma {a.sigma}, {net.pooling} pooling; reference {shown} "
          f"at {x0.shape[3]}x{x0.shape[2]}; {a.candidates} candidates x {a.iters} iterations per conv layer "
          f"up to {a.top}")
    log.update(device=net.device, seed=a.seed, status="done")
    t0 = time.perf_counter()
    try:
        stacked.build(net, x0, x_start, bounds, a.candidates, a.iters, a.top, a.history,
                      recipes.progress_lines(print if a.print_every else (lambda line: None), settings))
    except KeyboardInterrupt:
        log["status"] = "interrupted"
        print("\ninterrupted: writing the layers chosen so far", file=sys.stderr)
    except FloatingPointError as exc:
        log["status"] = "failed"
        print(f"error: {exc}; writing the layers chosen so far", file=sys.stderr)
    recipe = recipes.from_net(net, settings)
    for layer, r in recipe["layers"].items():
        if r["scores"]:
            print(f"{layer}: kept candidate {r['chosen']} of {len(r['scores'])} "
                  f"(errors {', '.join(f'{s:.2e}' for s in r['scores'])})")
    log.update(recipe=recipe, stacked=net.meta.get("stacked", {}), seconds=round(time.perf_counter() - t0, 3))
    recipes.save(recipe, out)
    if weights is not None:
        net.save(weights)
    _files.write_log(log_path, log)
    print(f"saved {out}" + (f", {weights}" if weights else "") + f" and {log_path}")
    return net, log


def main(argv=None) -> int:
    return _cli.main("stack", PARSER, run, argv)


if __name__ == "__main__":
    sys.exit(main())
