"""Build the paper's greedy "stacked" ranVGG and write its recipe (a small JSON file).

    ranvgg stack --seed 12 --out out/ranvgg_seed12.json
    ranvgg invert --image coffee --net out/ranvgg_seed12.json

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
from engine.io.files import same_file
from engine.arch import CONV_SHAPES

from .cli import command, outputs, plots
from .pipeline import inputs
from .cli.console import quiet_by_default, say

S = recipes.SETTINGS
DEFAULTS = {"size": S["size"], "iters": S["iters"], "init": S["init"], "out": "out/stacked.json"}


def _parser():
    ap = command.parser("stack", __doc__, DEFAULTS, image_task=False)
    g = ap.add_argument_group("stacked ranVGG")
    g.add_argument("--image", default="reference", help="reference image: a file or a sample name (default: "
                   "reference, the image shipped with the recipes, which no sample image is)")
    g.add_argument("--candidates", type=int, default=S["candidates"],
                   help=f"random draws tried per conv layer (default: {S['candidates']})")
    g.add_argument("--top", default=S["top"], help=f"last conv layer to choose; the deeper ones keep their plain "
                   f"draw (default: {S['top']})")
    out = [grp for grp in ap._action_groups if grp.title == "output"][0]
    out.add_argument("--out", default=None, metavar="FILE.json",
                     help=f"the recipe (default: {DEFAULTS['out']}, numbered if taken: never replaced)")
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


@quiet_by_default
def run(**kwargs):
    """Build a stacked ranVGG; returns (the VGG19, log). Options as on the command line;
    the recipe is ``log["recipe"]``. Quiet, and no file written unless asked (``verbose=True``,
    ``out="FILE.json"``, ``save_weights="FILE.npz"``)."""
    a = command.options(PARSER, kwargs)
    command.validate(a)
    if not isinstance(a.candidates, int) or a.candidates < 1:
        raise UserError(f"--candidates must be a whole number >= 1, got {a.candidates!r}")
    if a.top not in [n for n, _ in CONV_SHAPES]:
        raise UserError(f"--top must be a conv layer ({', '.join(n for n, _ in CONV_SHAPES)}), got {a.top!r}")
    out = Path(a.out) if a.out else None
    if out is not None and not recipes.is_recipe_file(out):
        raise UserError(f"--out {a.out}: the recipe is a .json file (use --save-weights FILE.npz for the weights)")
    weights = Path(a.save_weights) if a.save_weights else None
    if weights is not None and weights.suffix.lower() != ".npz":
        raise UserError(f"--save-weights {a.save_weights}: give a .npz file name")
    log_path = Path(a.log) if a.log else (out.with_name(out.stem + "_log.json") if out else None)
    reference = recipes.REFERENCE if a.image == "reference" else inputs.image_path(a.image)
    paths = [(p, w) for p, w in ((out, "--out"), (log_path, "--log"), (weights, "--save-weights")) if p is not None]
    for i, (p, what) in enumerate(paths):
        for q, other in paths[i + 1:]:
            if same_file(p, q):
                raise UserError(f"{what} and {other} are the same file {str(p)!r}: give them different names")
        if same_file(p, reference):
            raise UserError(f"{what} {str(p)!r} is the reference image: writing it would destroy it")
        outputs.check_writable(p, what)
    est = command.preflight(a, str(reference), [("content", "relu" + a.top[4:])], check_outputs=False)
    settings = {**S, "reference": S["reference"] if a.image == "reference" else str(a.image), "size": a.size,
                "candidates": a.candidates, "iters": a.iters, "top": a.top, "history": a.history,
                "pooling": a.pooling or "avg"}
    log = command.new_log("stack", a)
    log["memory_estimate_bytes"] = est.total
    net, x0, x_start, bounds = recipes.prepare(a.seed, a.sigma, settings, a.device, reference)
    shown = "the shipped image" if a.image == "reference" else a.image
    say(f"device: {net.device}; seed {a.seed}, sigma {a.sigma}, {net.pooling} pooling; reference {shown} "
        f"at {x0.shape[3]}x{x0.shape[2]}; {a.candidates} candidates x {a.iters} iterations per conv layer "
        f"up to {a.top}")
    log.update(device=net.device, seed=a.seed, status="done")
    t0 = time.perf_counter()
    try:
        stacked.build(net, x0, x_start, bounds, a.candidates, a.iters, a.top, a.history,
                      recipes.progress_lines(say if a.print_every else (lambda line: None), settings))
    except KeyboardInterrupt:
        log["status"] = "interrupted"
        say("\ninterrupted: writing the layers chosen so far", err=True)
    except FloatingPointError as exc:
        log["status"] = "failed"
        say(f"error: {exc}; writing the layers chosen so far", err=True)
    recipe = recipes.from_net(net, settings)
    for layer, r in recipe["layers"].items():
        if r["scores"]:
            say(f"{layer}: kept candidate {r['chosen']} of {len(r['scores'])} "
                f"(errors {', '.join(f'{s:.2e}' for s in r['scores'])})")
    log.update(recipe=recipe, stacked=net.meta.get("stacked", {}), seconds=round(time.perf_counter() - t0, 3))
    savers = [] if out is None else [("recipe", out, lambda: recipes.save(recipe, out))]
    if weights is not None:
        savers.append(("weights", weights, lambda: net.save(weights)))
    outputs.save_outputs(log, savers, log_path)
    if weights is not None and str(weights) not in " ".join(log["save_errors"]):
        say(f"{weights}: the weights, about 80 MB with the fc layers")
    if out is not None and not log["save_errors"]:
        plots.candidate_scores(plots.companion(out, "scores"), log["stacked"].get("layers", {}))
    return net, log


def main(argv=None) -> int:
    return command.main("stack", PARSER, run, argv)


if __name__ == "__main__":
    sys.exit(main())
