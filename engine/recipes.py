"""The default network, ranVGG: a stacked net (docs/method.md, section 6) stored as a small JSON recipe.

A stacked net is fully defined by its seed, sigma and the candidate kept for each conv layer,
because every candidate comes from its own seeded stream (``engine.stacked.candidate``) and
candidate 0 is the plain ``VGG19.random`` draw. A recipe holds those choices, the scores behind
them, the settings it was built with, and the sha256 of every layer's float32 weights, so that a
NumPy drawing a different random stream is caught with one clear line instead of giving a
silently different network.

    net = ranvgg(seed=3)                       # shipped recipe (seeds 0-9), or built once and cached
    recipe = load("my.json"); net = to_net(recipe, device="cpu")

Recipes for seeds 0-9 ship in ``engine/ranvgg_recipes/``; any other seed is built once (a couple
of minutes on a CPU) and cached in ``cache_dir()``, never in the package.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from .io import image
from . import stacked
from .errors import UserError
from .io import files
from .io.files import atomic_write
from .arch import CONV_SHAPES, DEFAULT_SIGMA, POOLING
from .vgg import VGG19

FORMAT = "ranvgg-recipe/1"
SHIPPED_DIR = Path(__file__).resolve().parent / "ranvgg_recipes"
REFERENCE = SHIPPED_DIR / "reference.png"
SHIPPED_SEEDS = range(10)

# How the shipped recipes were built (README "The network"; chosen by measurement there).
SETTINGS = {"reference": "reference.png", "size": 64, "candidates": 5, "iters": 50, "top": "conv3_4",
            "history": 10, "init": "noise", "pooling": "avg"}


# ------------------------------------------------------------------ the default network

def ranvgg(seed: int = 0, sigma: float = DEFAULT_SIGMA, pooling: str = "avg", device: str = "auto",
           dtype=np.float32, progress=None) -> VGG19:
    """The stacked ranVGG of ``seed``: from its shipped recipe, the user cache, or built once.

    Any sigma works with the same recipe: with zero biases, ReLU and pooling the net is
    positively homogeneous in its weights, so scaling them only scales each layer's features,
    and the selection scores (relative errors after Eq. 4 weighting) do not depend on sigma.
    progress(line): called with plain progress lines while a recipe is built (None: stderr).
    """
    recipe, cached = _recipe_and_entry(seed, progress)
    try:
        return to_net(recipe, sigma=sigma, pooling=pooling, device=device, dtype=dtype)
    except UserError as exc:
        if cached is None:
            raise
        # a stale cache entry (another NumPy's random stream): ours to replace
        _say(progress, f"rebuilding the cached recipe ({exc})")
        recipe = _build_and_cache(seed, cached, progress)
        return to_net(recipe, sigma=sigma, pooling=pooling, device=device, dtype=dtype)


def recipe_for(seed: int, progress=None) -> dict:
    """The recipe of ``seed`` built with ``SETTINGS``: shipped, cached, or built now and cached."""
    return _recipe_and_entry(seed, progress)[0]


def _recipe_and_entry(seed, progress=None) -> tuple[dict, Path | None]:
    """(recipe, its cache entry or None when shipped). The cache is checked before a build:
    an entry that is not a file is a UserError; an unreadable one is rebuilt; a cache folder
    that cannot be written costs the caching, said in one line, never the build."""
    seed = _check_seed(seed)
    shipped = SHIPPED_DIR / f"seed_{seed}.json"
    if shipped.is_file():
        return load(shipped), None
    cached = cache_dir() / f"ranvgg_seed_{seed}_{settings_key(SETTINGS)}.json"
    if cached.exists() and not cached.is_file():
        raise UserError(f"the recipe cache entry {cached} is not a file; remove it (or set RANVGG_CACHE "
                        "to another folder)")
    if cached.is_file():
        try:
            return load(cached), cached
        except UserError as exc:  # a cache entry is ours to replace, never the user's file
            _say(progress, f"rebuilding the cached recipe ({exc})")
    return _build_and_cache(seed, cached, progress), cached


def _build_and_cache(seed: int, cached: Path, progress) -> dict:
    if files.writable_dir(cached.parent):
        _say(progress, f"ranVGG seed {seed}: no shipped recipe; building it once (cached in {cached.parent})")
    else:
        _say(progress, f"ranVGG seed {seed}: no shipped recipe; building it for this run only (the cache "
                       f"folder {cached.parent} cannot be written; set RANVGG_CACHE to a writable folder)")
        cached = None
    recipe = build(seed, progress=progress)
    if cached is not None:
        try:
            save(recipe, cached)
        except UserError as exc:
            _say(progress, f"note: the recipe was not cached ({exc})")
    return recipe


def cache_dir() -> Path:
    """$RANVGG_CACHE, else the platform's cache folder (``engine.io.files.cache_dir``)."""
    return files.cache_dir()


def settings_key(settings: dict) -> str:
    """A short hash of the build settings: a cache entry built with other settings is not reused."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


# ------------------------------------------------------------------ building

def build(seed: int, sigma: float = DEFAULT_SIGMA, settings: dict | None = None, device: str = "auto",
          progress=None, reference=None) -> dict:
    """Build the stacked net of ``seed`` (``SETTINGS``, overridden by ``settings``); its recipe.

    reference: the image file to build on (default: the shipped reference)."""
    s = {**SETTINGS, **(settings or {})}
    net, x0, x_start, bounds = prepare(seed, sigma, s, device, reference)
    report = stacked.build(net, x0, x_start, bounds, s["candidates"], s["iters"], s["top"], s["history"],
                           progress_lines(progress, s))
    return from_net(net, s, report)


def prepare(seed: int, sigma: float, settings: dict, device: str = "auto", reference=None):
    """(plain net, reference x0 (1, 3, H, W), starting noise, pixel bounds) for a build."""
    net = VGG19.random(seed=seed, sigma=sigma, pooling=settings["pooling"], device=device)
    x0 = image.preprocess(image.load_image(reference or REFERENCE, size=settings["size"]), net.preprocessing)
    net.check_input(x0.shape, ["relu" + settings["top"][4:]])
    lo, hi = image.pixel_bounds(net.preprocessing)
    return net, x0, start_noise(seed, x0.shape, net.preprocessing), (lo.reshape(1, 3, 1, 1), hi.reshape(1, 3, 1, 1))


def start_noise(seed: int, shape, mode: str = "caffe") -> np.ndarray:
    """The seeded white noise every candidate starts from (as the tasks' ``--init noise``)."""
    h, w = shape[2:]
    return image.preprocess(np.random.default_rng(seed).uniform(0, 255, (h, w, 3)).astype(np.float32), mode)


def from_net(net: VGG19, settings: dict, report: dict | None = None) -> dict:
    """The recipe of a net built by ``stacked.build`` (complete or interrupted).

    report: {layer: {"scores", "chosen"}}; default the one in ``net.meta``. Layers with no
    entry keep their plain draw (candidate 0, no scores)."""
    report = report if report is not None else net.meta.get("stacked", {}).get("layers", {})
    layers = {}
    for name, _ in CONV_SHAPES:
        r = report.get(name, {})
        layers[name] = {"chosen": int(r.get("chosen", 0)), "scores": [float(v) for v in r.get("scores", [])],
                        "sha256": checksum(net.params[name][0])}
    chosen = [n for n, _ in CONV_SHAPES if n in report]
    return {"format": FORMAT, "seed": int(net.meta["seed"]), "sigma": float(net.meta["sigma"]),
            "pooling": net.pooling, "settings": dict(settings),
            "complete": bool(chosen) and chosen[-1] == settings.get("top", chosen[-1]),
            "rule": stacked.RULE, "numpy": np.__version__, "layers": layers}


def checksum(weight) -> str:
    """sha256 of a weight array's float32 bytes, C order."""
    return hashlib.sha256(np.ascontiguousarray(weight, dtype=np.float32).tobytes()).hexdigest()


# ------------------------------------------------------------------ recipe -> network

def to_net(recipe: dict, sigma: float | None = None, pooling: str | None = None, device: str = "auto",
           dtype=np.float32, where: str = "recipe") -> VGG19:
    """Regenerate the net of ``recipe``; its checksums are verified at the recipe's sigma.

    sigma: None keeps the recipe's; another value gives the same draws scaled (see ``ranvgg``).
    A checksum mismatch is a UserError naming the layer and both NumPy versions."""
    check(recipe, where)
    seed, base = recipe["seed"], recipe["sigma"]
    net = _draw(recipe, base, pooling, device, dtype)
    key = json.dumps([seed, base, recipe["layers"]], sort_keys=True)  # the draws depend on all three
    if key not in _VERIFIED:  # once per process: the same recipe always regenerates the same weights
        _verify(net, recipe, where)
        _VERIFIED.add(key)
    if sigma is not None and sigma != base:
        net = _draw(recipe, sigma, pooling, device, dtype)
    sig = base if sigma is None else sigma
    net.meta.update(kind="ranvgg", sigma=float(sig), recipe={
        "seed": seed, "sigma_built": base, "pooling_built": recipe["pooling"], "settings": recipe["settings"],
        "chosen": {n: r["chosen"] for n, r in recipe["layers"].items()}})
    return net


_VERIFIED: set = set()


def _verify(net: VGG19, recipe: dict, where: str) -> None:
    for name, _ in CONV_SHAPES:
        if checksum(net.params[name][0]) != recipe["layers"][name]["sha256"]:
            made_by = recipe.get("numpy", "?")
            why = (f"the recipe was changed after it was built (this NumPy, {made_by}, made it)"
                   if made_by == np.__version__ else
                   f"this NumPy ({np.__version__}) draws another random stream than the one that made it "
                   f"(NumPy {made_by})")
            raise UserError(
                f"{where}: seed {recipe['seed']}, {name}: the regenerated weights do not match the recipe's "
                f"checksum; {why}; rebuild it (ranvgg stack --seed {recipe['seed']} "
                f"--out FILE.json, then --net FILE.json) or use --net random")


def _draw(recipe: dict, sigma: float, pooling, device, dtype) -> VGG19:
    """VGG19.random(seed, sigma) with each chosen candidate put in its layer."""
    seed = recipe["seed"]
    net = VGG19.random(seed=seed, sigma=sigma, pooling=pooling or recipe["pooling"], device=device, dtype=dtype)
    for index, (name, shape) in enumerate(CONV_SHAPES):
        k = recipe["layers"][name]["chosen"]
        if k:
            net.set_layer(name, stacked.candidate(seed, index, k, shape, sigma), net.params[name][1])
    return net


# ------------------------------------------------------------------ files

def save(recipe: dict, path) -> None:
    """Write ``recipe`` as JSON (atomically: a cache never holds half a file)."""
    path = files.as_path(path, "recipe path")
    text = json.dumps(recipe, indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()), "recipe")


def load(path) -> dict:
    """Read and check a recipe file; a UserError says what is wrong with it."""
    path = files.as_path(path, "recipe path")
    try:
        if path.stat().st_size > MAX_RECIPE_BYTES:
            raise UserError(f"{path}: {path.stat().st_size} bytes is not a recipe (they take a few KB)")
        if not path.is_file():
            raise UserError(f"{path}: not a regular file; give a recipe (.json)")
        recipe = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"recipe {str(path)!r} not found") from None
    except RecursionError:
        raise UserError(f"{path}: not a recipe (nested too deep)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: not a readable recipe ({exc.__class__.__name__}: {exc})") from None
    check(recipe, str(path))
    return recipe


MAX_RECIPE_BYTES = 1 << 20   # a recipe is a few KB; a bigger .json is something else


def is_recipe_file(path) -> bool:
    """A .json weights argument is a recipe; anything else is a weights file."""
    return str(path).lower().endswith(".json")


def check(recipe, where: str = "recipe") -> None:
    """The recipe's structure; a UserError names the first problem."""
    if not isinstance(recipe, dict) or recipe.get("format") != FORMAT:
        raise UserError(f"{where}: not a ranvgg recipe (expected \"format\": \"{FORMAT}\")")
    if not isinstance(recipe.get("seed"), int) or isinstance(recipe.get("seed"), bool) or recipe["seed"] < 0 \
            or not isinstance(recipe.get("sigma"), (int, float)) or not (0 < recipe["sigma"] < float("inf")):
        raise UserError(f"{where}: the recipe needs an integer seed >= 0 and a positive sigma")
    if recipe.get("pooling") not in POOLING:
        raise UserError(f"{where}: the recipe needs a \"pooling\" ({' or '.join(POOLING)})")
    settings = recipe.get("settings")
    if not isinstance(settings, dict) or type(settings.get("candidates")) is not int or settings["candidates"] < 1 \
            or not isinstance(settings.get("top"), str):
        raise UserError(f"{where}: the recipe needs its build \"settings\" (candidates, top, ...)")
    layers = recipe.get("layers")
    for index, (name, _) in enumerate(CONV_SHAPES):
        r = layers.get(name) if isinstance(layers, dict) else None
        if not isinstance(r, dict) or type(r.get("chosen")) is not int or r["chosen"] < 0 \
                or not isinstance(r.get("sha256"), str):
            raise UserError(f"{where}: layer {name} needs a \"chosen\" candidate (>= 0) and a \"sha256\"")
        if r["chosen"] >= settings["candidates"]:
            raise UserError(f"{where}: layer {name} chose candidate {r['chosen']}, but the recipe was built "
                            f"with {settings['candidates']} (0 to {settings['candidates'] - 1})")


# ------------------------------------------------------------------ helpers

def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"--seed must be a whole number >= 0, got {seed!r}")
    return int(seed)


def _say(progress, line: str) -> None:
    (progress or (lambda s: print(s, file=sys.stderr, flush=True)))(line)


def progress_lines(progress, settings: dict):
    """stacked.build's per-reconstruction callback: a line with an ETA for ``progress(line)``;
    progress None: stderr, one self-updating line on a terminal, plain lines otherwise."""
    names = [n for n, _ in CONV_SHAPES]
    top = names.index(settings["top"]) + 1
    total = top * settings["candidates"]
    # a try on a deeper layer costs more (a longer forward/backward); weigh tries by depth for the ETA
    todo = sum(range(1, top + 1)) * settings["candidates"]
    state = {"n": 0, "done": 0, "t0": time.perf_counter()}
    bar = progress is None and sys.stderr.isatty()

    def report(layer, k, score, seconds):
        state["n"] += 1
        state["done"] += names.index(layer) + 1
        spent = time.perf_counter() - state["t0"]
        eta = spent * (todo - state["done"]) / state["done"]
        # within 80 columns: "[12/60] conv3_4 cand. 4: rel. error 1.23e-04 (12.3 s), ETA 2m03s"
        line = (f"[{state['n']}/{total}] {layer} cand. {k}: rel. error {score:.2e} ({seconds:.1f} s), "
                f"ETA {int(eta) // 60}m{int(eta) % 60:02d}s")
        if bar:
            end = "\n" if state["n"] == total else ""
            print(f"\r{line:79s}", end=end, file=sys.stderr, flush=True)
        else:
            _say(progress, line)

    return report
