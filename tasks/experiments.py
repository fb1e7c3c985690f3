"""The paper's figures as commands, and the comparison of architectures it left for later.

    ranvgg experiments fig3 --seeds 0-2 --trained vgg19.npz --out out/fig3

FIGURE is one of
  fig1   reconstruction by layer (paper Fig. 1-2): pool1..pool5 (fc6-fc8 at --size 256), a grid
  fig3   variation over networks: PSNR / SSIM / feature error over --seeds per layer, box plots
  fig4   convergence: loss and feature error against the iteration (relu5_1), a line plot
  fig5   texture by depth: Gram matching up to relu1_1 .. relu4_1 for several textures, a grid
  fig6   style grid: contents x styles, one row per net, scores under each image
  arch   random VGG-11/13/16/19, plain and stacked: the same inversion and texture measures
  quality  textures and styles judged against held-out crops (docs/quality.md): held-out
         distance, copy score, diversity, the style frontier over --content-weights

Each writes OUT/ with the figure PNG(s), results.csv (one row per run), curves.csv (loss per
iteration), runs/KEY.png (every result image), settings.json and summary.md. Nets (--nets):
ranvgg (the default stacked VGG-19), random (a plain draw), stacked (a greedy stack
built here: convs up to block 3, 3 candidates, 20 iterations, 48 px, astronaut), and trained
(added whenever --trained FILE.npz is given). Texture and style results are scored in an
independent random VGG-19 (seed 1000003) and in the trained net, with the free baselines.

Runs are independent: --workers N spreads them over a local Dask cluster (N worker
processes, loopback only), --scheduler ADDRESS over an existing one (its workers need this
project installed and the image/weights paths readable). The CSV keeps the spec order whatever
finishes first. Interrupted (Ctrl-C), a figure keeps its finished rows; the same command again
resumes without redoing them (--fresh starts over).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from engine import backend
from engine.errors import UserError
from engine.arch import ARCHS, FC_LAYERS, check_layers

from .cli import command, signals
from .figures import FIGURES, nets
from .figures.executor import Results, check_dask, run_all
from .cli.console import guarded_stdout

DEFAULTS = {"size": 64, "iters": 100}
MAX_SEEDS = 10000
MAX_WORKERS = 4 * (os.cpu_count() or 1)   # local worker processes: more only wait for cores   # a sweep of more runs than this is a typo (--seeds 0-100000000)
# what ranvgg writes into --out (anything else there is the user's and is never removed)
OWN_FILES = ("results.csv", "curves.csv", "settings.json", "summary.md")


def _parser():
    first, _, rest = __doc__.strip().partition("\n\n")
    rest += "\n\nEach figure's defaults:\n" + "\n".join(
        f"  {name:5s}  " + "; ".join(f"{k} {v or 'pool1..pool5 (and fc6-fc8 at 256 px)'}" for k, v in fig.DEFAULTS.items())
        for name, fig in FIGURES.items())
    ap = command._Parser(prog="ranvgg experiments", description=first, epilog=rest,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("figure", choices=tuple(FIGURES), help="which figure")
    ap.add_argument("--out", metavar="DIR", help="output folder (default: out/experiments/FIGURE)")
    ap.add_argument("--image", "--images", dest="image", help="photo (fig1/3/4/arch), textures (fig5) or contents (fig6): a file or a "
                    "sample name, comma-separated where several (default: the figure's)")
    ap.add_argument("--styles", help="fig6: style images, comma-separated (default: ihc,brick)")
    ap.add_argument("--pairs", metavar="C:S,...", help="quality: style pairs content:style (default: chelsea:ihc)")
    ap.add_argument("--content-weights", metavar="W,...", help="quality: the content weights of the style sweep "
                    "(default: 1,10,100)")
    ap.add_argument("--exemplar-size", type=int, metavar="PX", help="quality: the texture's longer side before it "
                    "is cut into --size tiles (default: 3 x --size)")
    ap.add_argument("--textures", help="arch: texture images, comma-separated (default: gravel)")
    ap.add_argument("--layers", help="layers, comma-separated (default: the figure's)")
    ap.add_argument("--nets", help="ranvgg, random, stacked, comma-separated (default: the figure's)")
    ap.add_argument("--seeds", help="seeds: 0-9 or 0,3,5 (default: the figure's)")
    ap.add_argument("--trained", metavar="FILE.npz", help="a trained VGG-19: adds the trained rows and judge")
    ap.add_argument("--size", type=int, default=DEFAULTS["size"], help="longer image side, px (default: 64)")
    ap.add_argument("--iters", type=int, default=DEFAULTS["iters"], help="L-BFGS-B iterations (default: 100)")
    ap.add_argument("--device", default="auto", choices=backend.DEVICES,
                    help="cpu, gpu, or auto: the GPU when CuPy sees one (default: auto)")
    ap.add_argument("--workers", type=int, default=0, metavar="N", help="local Dask cluster of N processes")
    ap.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786")
    ap.add_argument("--fresh", action="store_true", help="delete OUT's earlier results first")
    ap.add_argument("--redraw", action="store_true", help="run nothing: redraw the figure and summary from the "
                    "rows already in OUT (same settings)")
    ap.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    return ap


PARSER = _parser()


def seeds(spec) -> list:
    """"0-2" -> [0, 1, 2]; "0,3" -> [0, 3]."""
    out = []
    try:
        for part in str(spec).split(","):
            lo, _, hi = part.strip().partition("-")
            if hi and int(hi) - int(lo) + 1 > MAX_SEEDS:
                raise UserError(f"--seeds {spec}: {int(hi) - int(lo) + 1} seeds; at most {MAX_SEEDS} in one sweep")
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
            if len(out) > MAX_SEEDS:
                raise UserError(f"--seeds {spec}: more than {MAX_SEEDS} seeds in one sweep")
    except ValueError:
        raise UserError(f"--seeds must look like 0-9 or 0,3,5, got {spec!r}") from None
    if not out or min(out) < 0:
        raise UserError(f"--seeds must name at least one seed >= 0, got {spec!r}")
    return list(dict.fromkeys(out))


def resolve(a) -> argparse.Namespace:
    """The figure's defaults filled in and every option checked before any work."""
    fig = FIGURES[a.figure]
    d = fig.DEFAULTS
    o = argparse.Namespace(**vars(a))
    o.seeds_text = a.seeds or d["seeds"]
    o.seeds = seeds(o.seeds_text)
    o.images = _list(a.image or d["image"])
    if a.figure == "quality":
        from .figures import quality
        o.images = [] if o.images == ["none"] else quality.expand(o.images)   # none: styles only
        o.pairs = a.pairs or d["pairs"]
        o.content_weights = _floats(a.content_weights or d["content_weights"], "--content-weights")
        o.exemplar_size = a.exemplar_size or 3 * a.size
        if o.exemplar_size < 2 * a.size:
            raise UserError(f"--exemplar-size {o.exemplar_size} holds fewer than two --size {a.size} tiles: "
                            f"use at least {2 * a.size}")
    o.image = o.images[0] if o.images else None
    o.styles = _list(a.styles or d.get("styles", "ihc"))
    o.textures = _list(a.textures or d.get("textures", "gravel"))
    layers = a.layers or d.get("layers")
    o.layers = check_layers(_list(layers)) if layers else None
    o.nets = _list(a.nets or d["nets"])
    for n in o.nets:
        if n not in nets.KINDS or n == "trained":
            raise UserError(f"--nets: unknown net {n!r}; use ranvgg, random or stacked (trained: --trained FILE)")
    if a.figure == "arch" and o.layers:
        for arch in ARCHS:
            nets.get_net("random", 0, arch).check_layers(o.layers)
    for name in ("size", "iters"):
        if getattr(a, name) < 1:
            raise UserError(f"--{name} must be a whole number >= 1, got {getattr(a, name)}")
    if a.size < 32:
        raise UserError(f"--size {a.size} is too small: use at least 32 px (pool5)")
    if a.workers < 0 or a.workers > MAX_WORKERS:
        raise UserError(f"--workers must be between 0 and {MAX_WORKERS}, got {a.workers}")
    check_dask(a.workers, a.scheduler)
    if a.trained:
        path = Path(a.trained)
        if not path.is_file():
            raise UserError(f"--trained {a.trained!r}: no such file (convert one with ranvgg weights)")
        o.trained = str(path.resolve())
    from .pipeline import inputs
    pair_images = [p for pair in quality_pairs(o) for p in pair] if a.figure == "quality" else []
    _check_names(o, a.figure)
    for img in o.images + (o.styles if a.figure == "fig6" else []) + (o.textures if a.figure == "arch" else []) + pair_images:
        inputs.image_path(img)
    _check_memory(o, pair_images)   # before any image is decoded at --size
    if o.layers and a.figure != "fig5":   # a photo too small for the deepest layer fails now, not mid-sweep
        x = np.zeros((1, 3) + inputs.read(o.image, a.size).shape[:2], np.float32)
        nets.get_net("random", 0, "vgg19").check_input(x.shape, [l for l in o.layers if l not in FC_LAYERS])
    o.out = Path(a.out or f"out/experiments/{a.figure}")
    return o


def _check_names(o, figure: str) -> None:
    """Each image of a list names its runs (runs/KEY.png): two that give the same name (the same
    image twice, a_b.png and a-b.png, x.png in two folders) are refused before any work."""
    from .figures import common

    lists = {"fig5": [("--image", o.images)], "fig6": [("--image", o.images), ("--styles", o.styles)],
             "arch": [("--textures", o.textures)],
             "quality": [("--image", o.images), ("--pairs", quality_pairs(o))]}
    for option, items in lists.get(figure, []):
        seen = {}
        for item in items:
            parts = item if isinstance(item, tuple) else (item,)
            name, item = "_".join(common.key(common.name_of(p)) for p in parts), ":".join(parts)
            if name in seen:
                raise UserError(f"{option}: {seen[name]} and {item} would give their runs the same name "
                                f"({name!r}); give each once, renaming a file if two differ only in folder "
                                "or punctuation")
            seen[name] = item


def quality_pairs(o) -> list:
    from .figures import quality
    return quality.pairs(o)


def _floats(spec, option) -> list:
    try:
        out = [float(v) for v in _list(spec)]
    except ValueError:
        raise UserError(f"{option} takes numbers, comma-separated, got {spec!r}") from None
    if not out or min(out) < 0:
        raise UserError(f"{option} takes numbers >= 0, got {spec!r}")
    return out


def _check_memory(o, more_images=()) -> None:
    """The tasks' memory check, for the largest run of the sweep (its size and deepest layer):
    the largest of the figure's image and ``more_images`` (quality's style pairs)."""
    import types

    from . import texture
    from .pipeline import inputs, network

    deepest = [l for l in (o.layers or ["pool5"]) if l not in FC_LAYERS] or ["pool5"]
    # the largest L-BFGS memory the sweep's tasks need (a texture takes more only where it fits)
    history = max(command.HISTORY, texture.HISTORY)
    a = types.SimpleNamespace(device=o.device, history=history, pooling="avg", net="random", weights=None)
    shape = max((inputs.planned_shape(img, o.size) for img in [o.image, *more_images] if img),
                key=lambda s: s[2] * s[3])
    try:
        network.check_memory(a, shape, [("gram", l) for l in deepest] + [("content", l) for l in deepest],
                             extra_nets=2)
    except UserError as exc:
        raise UserError(f"{exc} (each run of the sweep)") from None
    if getattr(o, "exemplar_size", None):
        _check_exemplar_memory(o)


def _check_exemplar_memory(o) -> None:
    """quality reads each texture at --exemplar-size before cutting it into tiles."""
    from .pipeline import network

    for img in o.images:
        network.check_exemplar_memory(img, o.exemplar_size, o.size)


def prepare_folder(out: Path, fresh: bool) -> None:
    """--out is ranvgg's own folder (its settings.json), or new, or empty: results are never
    mixed into a folder of other files, and --fresh removes only what ranvgg wrote there."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder (it is created if missing)")
    own = (out / "settings.json").is_file()
    if out.is_dir() and not own and any(out.iterdir()):
        raise UserError(f"--out {out} holds files ranvgg did not write (no settings.json there); "
                        "give a new or empty folder")
    runs_dir = out / "runs"
    if os.path.lexists(runs_dir) and not runs_dir.is_dir():   # a file, or a link to nowhere
        what = "a file" if runs_dir.is_file() else "a link to nowhere" if runs_dir.is_symlink() else "a special file"
        raise UserError(f"{runs_dir} is {what}, not the runs folder; remove it or give another --out")
    if fresh and own:
        for name in OWN_FILES:
            (out / name).unlink(missing_ok=True)
        for p in out.glob("*.png"):     # the figures
            p.unlink()
        if runs_dir.is_dir():
            for p in runs_dir.glob("*.png"):
                p.unlink()
            if not any(runs_dir.iterdir()):
                runs_dir.rmdir()
    from engine.io.files import writable_dir

    if not writable_dir(out):
        raise UserError(f"cannot write in --out {out} (read-only or not a folder); give another --out")


def _list(spec) -> list:
    return [s.strip() for s in str(spec).split(",") if s.strip()]


def settings_of(o) -> dict:
    """What results depend on; a folder made with other settings is not resumed into."""
    keep = ("figure", "images", "styles", "textures", "layers", "nets", "seeds", "trained", "size", "iters", "device",
            "pairs", "content_weights", "exemplar_size")
    return {k: getattr(o, k) for k in keep if hasattr(o, k)}


def run(argv=None, **kwargs):
    """Run a figure. ``argv`` as on the command line, or keywords (``figure="fig3", size=32``)."""
    a = PARSER.parse_args(argv if argv is not None else _argv(kwargs))
    o = resolve(a)
    prepare_folder(o.out, a.fresh)
    signals.clear()
    fig = FIGURES[a.figure]
    specs = fig.specs(o)
    results = Results(o.out, specs, fig.COLUMNS, settings_of(o))
    if not a.redraw:
        print(f"{a.figure}: {len(specs)} runs ({len(results.todo())} to do) "
              f"{'on Dask' if a.workers or a.scheduler else 'in this process'}; writing {o.out}", flush=True)
    interrupted = False
    try:
        if not a.redraw:
            run_all(results, a.workers, a.scheduler, a.quiet)
    except KeyboardInterrupt:
        interrupted = True
        print(f"\n{signals.stopped_by()}: {len(results.rows)} of {len(specs)} runs kept in "
              f"{o.out / 'results.csv'}; the same command resumes", file=sys.stderr)
    if results.rows:
        with signals.deferred("writing the summary"):   # a (second) Ctrl-C waits for it
            write_summary(o, fig, results, argv if argv is not None else _argv(kwargs))
        interrupted = interrupted or signals.pending()
    return results, interrupted


def write_summary(o, fig, results, argv) -> None:
    table, notes = fig.report(o, results, o.out)
    pngs = sorted(p.name for p in o.out.glob("*.png"))
    text = [f"# {o.figure}: {fig.TITLE}", "",
            f"Command: `ranvgg experiments {' '.join(shlex.quote(str(x)) for x in argv if x != '--redraw')}`", "",
            f"Settings: {json.dumps(settings_of(o))}", "",
            f"{len(results.rows)} of {len(results.specs)} runs done.", "",
            table, ""] + [f"![{p}]({p})" for p in pngs] + [""] + [f"- {n}" for n in notes if not n.startswith("wrote")]
    (o.out / "summary.md").write_text("\n".join(text) + "\n")
    for n in notes:
        print(n)
    print(f"wrote {o.out / 'summary.md'} and {o.out / 'results.csv'}")


def _argv(kwargs: dict) -> list:
    kwargs = dict(kwargs)
    out = [kwargs.pop("figure")]
    for k, v in kwargs.items():
        if v is True:
            out.append(f"--{k.replace('_', '-')}")
        elif v not in (None, False):
            out += [f"--{k.replace('_', '-')}", str(v)]
    return out


def main(argv=None) -> int:
    # a closed or full stdout (| head, > /dev/full) never raises; SIGTERM and SIGHUP stop the
    # sweep as Ctrl-C does (finished runs kept, the summary written), exit 143 / 129
    with signals.handling(), guarded_stdout():
        return signals.exit_status(_main(argv))


def _main(argv=None) -> int:
    try:
        _, interrupted = run(argv if argv is not None else sys.argv[1:])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else command.EXIT_ERROR
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return command.EXIT_ERROR
    except MemoryError:
        print("error: out of memory; use a smaller --size (or --exemplar-size) or fewer --workers",
              file=sys.stderr)
        return command.EXIT_ERROR
    except KeyboardInterrupt:   # before the sweep began (checks, folder, exemplar crops)
        print("\ninterrupted: the same command resumes where this one stopped", file=sys.stderr)
        return command.EXIT_INTERRUPTED
    return command.EXIT_INTERRUPTED if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
