"""The greedy stacked ranVGG (docs/method.md, section 6)."""
import json

import numpy as np
import pytest

from engine import recipes, stacked
from engine.vgg import VGG19
from tasks import stack

QUIET = {"device": "cpu", "print_every": 0, "size": 32, "iters": 5}


def test_one_candidate_is_the_plain_random_net(tmp_path):
    net, log = stack.run(candidates=1, top="conv1_2", out=str(tmp_path / "s.json"), **QUIET)
    plain = VGG19.random(seed=0, device="cpu")
    for name in ("conv1_1", "conv1_2", "conv2_1"):
        np.testing.assert_array_equal(net.params[name][0], plain.params[name][0])
    assert [len(r["scores"]) for r in log["stacked"]["layers"].values()] == [1, 1]


def test_keeps_the_candidate_with_the_smallest_relative_error(tmp_path):
    out = tmp_path / "s.npz"
    net, log = stack.run(candidates=3, top="conv2_1", seed=4, out=str(tmp_path / "s.json"), save_weights=str(out),
                         **QUIET)
    layers = log["stacked"]["layers"]
    assert list(layers) == ["conv1_1", "conv1_2", "conv2_1"]
    plain = VGG19.random(seed=4, device="cpu")
    for index, (name, r) in enumerate(layers.items()):
        assert len(r["scores"]) == 3 and r["chosen"] == int(np.argmin(r["scores"]))
        k = r["chosen"]
        want = plain.params[name][0] if k == 0 else stacked.candidate(4, index, k, plain.params[name][0].shape, 0.015)
        np.testing.assert_array_equal(net.params[name][0], want)
    assert any(r["chosen"] != 0 for r in layers.values())  # the selection did something
    # the file: weights and every candidate's score in meta, usable with --weights
    back = VGG19.load(out, device="cpu")
    assert back.meta["kind"] == "stacked" and back.meta["stacked"]["layers"] == json.loads(json.dumps(layers))
    np.testing.assert_array_equal(back.params["conv1_2"][0], net.params["conv1_2"][0])
    from tasks import invert

    _, inv = invert.run(image="coffee", layer="relu2_1", weights=str(out), out=str(tmp_path / "i.png"), **QUIET)
    assert inv["status"] == "done"


def test_candidates_are_drawn_one_at_a_time(monkeypatch):
    """--candidates N keeps one draw in memory, not N: each is drawn after the one before was
    tried (10^8 candidates of conv5 would be terabytes drawn up front)."""
    events, real = [], stacked.candidate
    monkeypatch.setattr(stacked, "candidate", lambda seed, index, k, *a: events.append(("draw", k)) or
                        real(seed, index, k, *a))
    s = {**recipes.SETTINGS, "size": 32, "candidates": 3, "iters": 1, "top": "conv1_1"}
    net, x0, x_start, bounds = recipes.prepare(0, 0.015, s, "cpu")
    report = stacked.build(net, x0, x_start, bounds, 3, 1, "conv1_1",
                           progress=lambda layer, k, *_: events.append(("tried", k)))
    best = report["conv1_1"]["chosen"]
    tries = [("draw", 1), ("tried", 1), ("draw", 2), ("tried", 2)]
    assert events == [("tried", 0)] + tries + ([("draw", best)] if best else [])


def test_interrupt_saves_the_layers_chosen_so_far(tmp_path, monkeypatch):
    import engine.stacked as st

    real, calls = st.lbfgs, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(st, "lbfgs", flaky)
    out, npz = tmp_path / "s.json", tmp_path / "s.npz"
    code = stack.main(["--device", "cpu", "--size", "32", "--iters", "3", "--candidates", "2", "--top", "conv2_1",
                       "--print-every", "0", "--out", str(out), "--save-weights", str(npz)])
    assert code == 130
    meta = VGG19.load(npz, device="cpu").meta
    assert list(meta["stacked"]["layers"]) == ["conv1_1"]  # conv1_2 was interrupted: plain draw kept
    np.testing.assert_array_equal(VGG19.load(npz, device="cpu").params["conv1_2"][0],
                                  VGG19.random(seed=0, device="cpu").params["conv1_2"][0])
    recipe = recipes.load(out)  # the recipe says the same, and that it is not complete
    layers = recipe["layers"]
    assert not recipe["complete"] and layers["conv1_1"]["scores"] and not layers["conv1_2"]["scores"]
    np.testing.assert_array_equal(recipes.to_net(recipe, device="cpu").params["conv1_1"][0], meta_weights(npz))


@pytest.mark.parametrize("argv, expect", [
    (["--candidates", "0"], "--candidates must be a whole number >= 1"),
    (["--top", "pool3"], "--top must be a conv layer"),
    (["--weights", "x.npz"], "unrecognized arguments: --weights"),
    (["--out", "x.npz"], "the recipe is a .json file"),
    (["--save-weights", "x.png"], "give a .npz file name"),
])
def test_bad_input(argv, expect, capsys):
    code = stack.main(["--device", "cpu", "--size", "32", "--iters", "1"] + argv)
    err = capsys.readouterr().err
    assert code == 2 and expect in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def meta_weights(npz):
    return VGG19.load(npz, device="cpu").params["conv1_1"][0]
