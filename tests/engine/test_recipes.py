"""ranVGG recipes: recipe -> net, checksums, the shipped recipes, the user cache, --net."""
import copy
import os
import argparse
import json
import re
import time

import numpy as np
import pytest

from engine import recipes, stacked
from engine.errors import UserError
from engine.arch import CONV_SHAPES
from engine.vgg import VGG19
from tasks.pipeline import network
from tasks import invert, stack

# tiny builds: seconds, not minutes
TINY = {"size": 32, "candidates": 2, "iters": 3, "top": "conv1_2"}
QUIET = {"device": "cpu", "print_every": 0, "size": 32, "iters": 3}


@pytest.fixture(scope="module")
def tiny_recipe():
    return recipes.build(4, settings=TINY, device="cpu", progress=lambda line: None)


def _conv_weights(net):
    return {name: net.params[name][0] for name, _ in CONV_SHAPES}


def test_recipe_gives_the_net_built_directly(tiny_recipe):
    s = {**recipes.SETTINGS, **TINY}
    net, x0, x_start, bounds = recipes.prepare(4, 0.015, s, "cpu")
    report = stacked.build(net, x0, x_start, bounds, s["candidates"], s["iters"], s["top"], s["history"])
    assert {n: r["chosen"] for n, r in report.items()} == {n: tiny_recipe["layers"][n]["chosen"] for n in report}
    back = recipes.to_net(tiny_recipe, device="cpu")
    for name, w in _conv_weights(net).items():
        np.testing.assert_array_equal(back.params[name][0], w)
        assert recipes.checksum(w) == tiny_recipe["layers"][name]["sha256"]
    assert back.meta["kind"] == "ranvgg" and back.meta["recipe"]["seed"] == 4
    # the file round trip, and the layers above --top keep the plain draw
    assert tiny_recipe["complete"] and tiny_recipe["layers"]["conv2_1"] == {
        "chosen": 0, "scores": [], "sha256": recipes.checksum(VGG19.random(seed=4).params["conv2_1"][0])}


def test_file_round_trip(tiny_recipe, tmp_path):
    recipes.save(tiny_recipe, tmp_path / "r.json")
    assert recipes.load(tmp_path / "r.json") == json.loads(json.dumps(tiny_recipe))


def test_a_changed_checksum_is_refused_in_one_line(tiny_recipe, tmp_path, capsys):
    bad = json.loads(json.dumps(tiny_recipe))
    bad["layers"]["conv1_2"]["sha256"] = "0" * 64
    bad["numpy"] = "1.0.0"
    with pytest.raises(UserError, match=r"conv1_2: the regenerated weights do not match the recipe's checksum; "
                                        r"this NumPy .* draws another random stream .*\(NumPy 1.0.0\)"):
        recipes.to_net(bad, device="cpu")
    bad["numpy"] = np.__version__      # made by this very NumPy: the file was edited, NumPy is not to blame
    with pytest.raises(UserError, match=r"conv1_2: .* checksum; the recipe was changed after it was built") as exc:
        recipes.to_net(bad, device="cpu")
    assert "random stream" not in str(exc.value)
    recipes.save(bad, tmp_path / "bad.json")
    code = invert.main(["--net", str(tmp_path / "bad.json"), "--image", "coffee", "--layer", "relu1_1",
                        "--size", "32", "--iters", "1", "--device", "cpu", "--out", str(tmp_path / "i.png")])
    err = capsys.readouterr().err
    assert code == 2 and "checksum" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "i.png").exists()


@pytest.mark.parametrize("change, expect", [
    (lambda r: r.update(format="other"), "not a ranvgg recipe"),
    (lambda r: r["layers"].pop("conv3_1"), "layer conv3_1 needs"),
    (lambda r: r["layers"]["conv1_1"].update(chosen=-1), "layer conv1_1 needs"),
    (lambda r: r["layers"]["conv1_1"].update(chosen=10**12), "conv1_1 chose candidate 1000000000000, but the "
                                                              r"recipe was built with 2 \(0 to 1\)"),
    (lambda r: r["settings"].update(candidates=True), "needs its build \"settings\""),
])
def test_malformed_recipes_are_refused(tiny_recipe, tmp_path, change, expect):
    bad = json.loads(json.dumps(tiny_recipe))
    change(bad)
    recipes.save(bad, tmp_path / "bad.json")
    with pytest.raises(UserError, match=expect):
        recipes.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(UserError, match="not a readable recipe"):
        recipes.load(tmp_path / "junk.json")


def test_other_sigma_scales_the_same_draws(tiny_recipe):
    base = recipes.to_net(tiny_recipe, device="cpu")
    big = recipes.to_net(tiny_recipe, sigma=0.15, device="cpu")
    for name, w in _conv_weights(base).items():
        np.testing.assert_allclose(big.params[name][0], w * 10, rtol=1e-6)
    assert big.meta["sigma"] == 0.15 and big.meta["recipe"]["sigma_built"] == 0.015


def test_selection_does_not_depend_on_sigma(tiny_recipe):
    """Why one recipe serves every sigma: a zero-bias ReLU net is positively homogeneous and
    the scores are scale-free, so a build at 10x sigma keeps the same candidates."""
    big = recipes.build(4, sigma=0.15, settings=TINY, device="cpu", progress=lambda line: None)
    for name in ("conv1_1", "conv1_2"):
        assert big["layers"][name]["chosen"] == tiny_recipe["layers"][name]["chosen"]
        np.testing.assert_allclose(big["layers"][name]["scores"], tiny_recipe["layers"][name]["scores"], rtol=0.05)


def test_other_seeds_are_built_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("RANVGG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(recipes, "SETTINGS", {**recipes.SETTINGS, **TINY})
    real, calls = stacked.build, []
    monkeypatch.setattr(stacked, "build", lambda *a, **k: calls.append(1) or real(*a, **k))
    lines = []
    net = recipes.ranvgg(seed=12, device="cpu", progress=lines.append)
    assert len(calls) == 1 and any("building it once" in l for l in lines) and any("ETA" in l for l in lines)
    cached = list((tmp_path / "cache").glob("ranvgg_seed_12_*.json"))
    assert len(cached) == 1 and recipes.load(cached[0])["seed"] == 12
    again = recipes.ranvgg(seed=12, device="cpu", progress=lines.append)
    assert len(calls) == 1  # reused, not rebuilt
    for name, w in _conv_weights(net).items():
        np.testing.assert_array_equal(again.params[name][0], w)
    # other build settings do not reuse that entry
    monkeypatch.setattr(recipes, "SETTINGS", {**recipes.SETTINGS, "candidates": 1})
    recipes.ranvgg(seed=12, device="cpu", progress=lines.append)
    assert len(calls) == 2 and len(list((tmp_path / "cache").glob("ranvgg_seed_12_*.json"))) == 2


def test_cache_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("RANVGG_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert recipes.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("RANVGG_CACHE")
    assert recipes.cache_dir() == tmp_path / "x" / "ranvgg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert recipes.cache_dir() == tmp_path / "h" / ".cache" / "ranvgg"


@pytest.mark.parametrize("seed", recipes.SHIPPED_SEEDS)
def test_shipped_recipes_are_complete(seed):
    recipe = recipes.load(recipes.SHIPPED_DIR / f"seed_{seed}.json")
    assert recipe["seed"] == seed and recipe["complete"] and recipe["settings"] == recipes.SETTINGS
    top = [n for n, _ in CONV_SHAPES].index(recipes.SETTINGS["top"])
    layers = list(recipe["layers"].values())
    assert all(len(r["scores"]) == recipes.SETTINGS["candidates"] and r["chosen"] == int(np.argmin(r["scores"]))
               for r in layers[:top + 1])
    assert all(r["chosen"] == 0 and not r["scores"] for r in layers[top + 1:])


def test_shipped_recipe_of_seed_3_reproduces_its_checksums():
    recipe = recipes.load(recipes.SHIPPED_DIR / "seed_3.json")
    net = recipes.to_net(recipe, device="cpu")  # raises on any mismatch
    want = [r["sha256"] for r in recipe["layers"].values()]
    assert [recipes.checksum(w) for w in _conv_weights(net).values()] == want


@pytest.mark.slow
@pytest.mark.parametrize("seed", recipes.SHIPPED_SEEDS)
def test_every_shipped_recipe_reproduces_its_checksums(seed):
    recipes.to_net(recipes.load(recipes.SHIPPED_DIR / f"seed_{seed}.json"), device="cpu")


def _args(**kw):
    base = {"device": "cpu", "seed": 3, "sigma": 0.015, "pooling": None, "net": None, "weights": None}
    return argparse.Namespace(**{**base, **kw})


def test_default_net_is_ranvgg_from_the_shipped_recipe_without_a_build(monkeypatch, tmp_path):
    monkeypatch.setenv("RANVGG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(stacked, "build", lambda *a, **k: pytest.fail("a shipped seed must not be built"))
    t0 = time.perf_counter()
    log = {}
    net = network.make_net(_args(), log)
    assert time.perf_counter() - t0 < 15  # a draw and checksums, no optimisation (about 1 s)
    shipped = recipes.load(recipes.SHIPPED_DIR / "seed_3.json")
    assert net.meta["kind"] == "ranvgg" and log["network"]["net"] == "ranvgg"
    for name, r in shipped["layers"].items():
        assert recipes.checksum(net.params[name][0]) == r["sha256"]
    assert not (tmp_path / "cache").exists()


def test_net_random_is_the_plain_draw():
    net = network.make_net(_args(net="random", seed=5), {})
    plain = VGG19.random(seed=5)
    for name, w in _conv_weights(plain).items():
        np.testing.assert_array_equal(net.params[name][0], w)


def test_net_file_and_weights_agree(tiny_recipe, tmp_path):
    recipes.save(tiny_recipe, tmp_path / "r.json")
    a = network.make_net(_args(net=str(tmp_path / "r.json")), {})
    b = network.make_net(_args(weights=str(tmp_path / "r.json")), {})
    np.testing.assert_array_equal(a.params["conv1_2"][0], b.params["conv1_2"][0])
    with pytest.raises(UserError, match="give one of them"):
        network.make_net(_args(net="random", weights=str(tmp_path / "r.json")), {})
    with pytest.raises(UserError, match="use ranvgg, random, a recipe"):
        network.make_net(_args(net="ranvg"), {})


def test_stack_writes_a_recipe_and_weights_only_when_asked(tmp_path):
    net, log = stack.run(seed=4, candidates=2, top="conv1_2", out=str(tmp_path / "r.json"), **QUIET)
    written = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith("_scores.png"))  # plot: matplotlib
    assert written == ["r.json", "r_log.json"]
    recipe = recipes.load(tmp_path / "r.json")
    built = recipes.build(4, settings=TINY, device="cpu", progress=lambda line: None)
    assert {n: r["chosen"] for n, r in recipe["layers"].items()} == {n: r["chosen"] for n, r in built["layers"].items()}
    stack.run(seed=4, candidates=2, top="conv1_2", out=str(tmp_path / "s.json"), save_weights=str(tmp_path / "w.npz"),
              **QUIET)
    saved = VGG19.load(tmp_path / "w.npz", device="cpu")
    for name, w in _conv_weights(recipes.to_net(recipe, device="cpu")).items():
        np.testing.assert_array_equal(saved.params[name][0], w)


def test_stack_help_shows_only_what_applies(capsys):
    assert stack.main(["--help"]) == 0
    out = capsys.readouterr().out
    options = set(re.findall(r"^  (--[\w-]+)", out, flags=re.M))
    assert options == {"--device", "--seed", "--sigma", "--pooling", "--size", "--iters", "--history",
                       "--print-every", "--log", "--out", "--save-weights", "--image", "--candidates", "--top"}
    assert "FILE.png" not in out and "--out FILE.json" in out


def test_recipe_reader_is_bounded(tmp_path, tiny_recipe):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 10000 + "]" * 10000)
    with pytest.raises(UserError, match="nested too deep|not a ranvgg recipe"):
        recipes.load(deep)
    for drop in ("pooling", "settings"):
        bad = {k: v for k, v in tiny_recipe.items() if k != drop}
        p = tmp_path / f"no_{drop}.json"
        recipes.save(bad, p)
        with pytest.raises(UserError, match=f'needs .*"{drop}"'):
            recipes.load(p)
    fifo = tmp_path / "f.json"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        recipes.load(fifo)


def test_recipe_cache_is_checked_before_a_build(tmp_path, monkeypatch, tiny_recipe):
    monkeypatch.setenv("RANVGG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(recipes, "SETTINGS", {**recipes.SETTINGS, **TINY})
    calls, real = [], recipes.build
    monkeypatch.setattr(recipes, "build", lambda *a, **k: calls.append(1) or real(*a, **k))
    entry = recipes.cache_dir() / f"ranvgg_seed_12_{recipes.settings_key(recipes.SETTINGS)}.json"
    entry.mkdir(parents=True)          # a folder where the entry goes: refused before any build
    with pytest.raises(UserError, match="is not a file; remove it"):
        recipes.ranvgg(seed=12, device="cpu", progress=lambda line: None)
    assert calls == []
    entry.rmdir()
    stale = {**copy.deepcopy(tiny_recipe), "seed": 12}   # seed 4's checksums: as if drawn by another NumPy
    recipes.save(stale, entry)         # another NumPy's stream: rebuilt, not blamed on the user
    lines = []
    net = recipes.ranvgg(seed=12, device="cpu", progress=lines.append)
    assert calls == [1] and any("rebuilding the cached recipe" in l for l in lines)
    assert recipes.load(entry)["layers"]["conv1_1"]["sha256"] != tiny_recipe["layers"]["conv1_1"]["sha256"]
    assert net.meta["kind"] == "ranvgg"


@pytest.mark.parametrize("entry_text", [
    "[" * 10000 + "]" * 10000,                                       # nested ten thousand deep
    "no pooling", "no settings", "{not json", "",
])
def test_malformed_cache_entry_is_rebuilt(tmp_path, monkeypatch, tiny_recipe, entry_text):
    """A cache entry is ours: one that does not load is rebuilt and replaced, never blamed on the user."""
    monkeypatch.setenv("RANVGG_CACHE", str(tmp_path / "cache"))
    rebuilt = {**copy.deepcopy(tiny_recipe), "seed": 12}
    calls = []
    monkeypatch.setattr(recipes, "build", lambda *a, **k: calls.append(a) or rebuilt)
    entry = recipes.cache_dir() / f"ranvgg_seed_12_{recipes.settings_key(recipes.SETTINGS)}.json"
    entry.parent.mkdir(parents=True)
    if entry_text.startswith("no "):
        recipes.save({k: v for k, v in rebuilt.items() if k != entry_text[3:]}, entry)
    else:
        entry.write_text(entry_text)
    lines = []
    assert recipes.recipe_for(12, progress=lines.append) == rebuilt
    assert calls == [(12,)] and any("rebuilding the cached recipe" in l for l in lines)
    assert recipes.load(entry) == json.loads(json.dumps(rebuilt))


def test_unwritable_recipe_cache_builds_for_the_run(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("RANVGG_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(recipes, "SETTINGS", {**recipes.SETTINGS, **TINY})
    lines = []
    net = recipes.ranvgg(seed=12, device="cpu", progress=lines.append)
    assert net.meta["kind"] == "ranvgg" and any("for this run only" in l for l in lines)
