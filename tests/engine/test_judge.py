"""engine.judge: scores in a network other than the one optimised, and the tasks' --judge-weights."""
import numpy as np
import pytest

from engine import metrics
from engine.judge import CONTENT_LAYER, STYLE_LAYERS, Judge
from engine.vgg import VGG19
from tasks.pipeline import inputs
from tasks import style, texture

QUIET = {"device": "cpu", "print_every": 0}


@pytest.fixture(scope="module")
def net():
    return VGG19.random(seed=11, device="cpu")


@pytest.fixture(scope="module")
def photos():
    return inputs.read("chelsea", 48), inputs.read("ihc", 48), inputs.read("brick", 48)


def test_the_reference_itself_scores_zero(net, photos):
    content, ihc, _ = photos
    assert Judge(net, style=[ihc]).score(ihc)["style"]["total"] == pytest.approx(0.0, abs=1e-9)
    judge = Judge(net, style=[ihc], content=content)
    assert judge.score(content)["content"] == 0.0
    scores = judge.score(content)
    assert set(scores["style"]) == {*STYLE_LAYERS, "total"} and scores["style"]["total"] > 0.1


def test_style_error_is_the_metrics_gram_error_for_one_same_size_image(net, photos):
    _, ihc, brick = photos
    layers = ["relu1_1", "relu3_1"]
    expected = metrics.gram_relative_error(net.features(_pre(brick), layers), net.features(_pre(ihc), layers))
    got = Judge(net, style=[ihc], style_layers=layers).score(brick)["style"]
    for k in expected:
        assert got[k] == pytest.approx(expected[k], rel=1e-5)


def test_blend_weights_pick_the_style(net, photos):
    content, ihc, brick = photos
    only_ihc = Judge(net, style=[ihc, brick], blend=[1, 0])
    assert only_ihc.score(ihc)["style"]["total"] == pytest.approx(0.0, abs=1e-9)
    assert only_ihc.score(brick)["style"]["total"] > 0.1
    # a half-half blend is nearer to both than each is to the other
    half = Judge(net, style=[ihc, brick])
    assert half.score(brick)["style"]["total"] < only_ihc.score(brick)["style"]["total"]


def test_content_error_orders_a_blurred_copy_before_noise(net, photos):
    from scipy import ndimage
    content, _, _ = photos
    judge = Judge(net, content=content)
    blurred = ndimage.gaussian_filter(content, (1, 1, 0))
    assert "style" not in judge.score(blurred)
    assert judge.score(blurred)["content"] < judge.score(metrics.white_noise_like(content))["content"] / 3
    assert CONTENT_LAYER == "relu4_2"


def test_texture_logs_judges_and_beats_noise_in_a_second_net(tmp_path):
    """--judge-weights (here a saved random net standing in for trained weights): the log holds
    the result and both baselines in both judges; a short synthesis beats white noise there."""
    VGG19.random(seed=77, device="cpu").save(tmp_path / "judge.npz")
    _, log = texture.run(image="brick", size=48, iters=30, judge_weights=str(tmp_path / "judge.npz"),
                         out=str(tmp_path / "t.png"), **QUIET)
    assert set(log["judge"]) == {"random", "trained"}
    for scores in log["judge"].values():
        assert set(scores) == {"result", "white_noise", "shuffled_pixels"}
        assert scores["result"]["style"]["total"] < scores["white_noise"]["style"]["total"] / 10


def test_style_logs_the_unstyled_photo_as_baseline(tmp_path):
    _, log = style.run(content="chelsea", style=["ihc"], size=48, iters=5, out=str(tmp_path / "s.png"), **QUIET)
    base = log["judge"]["random"]["content_image"]
    assert base["content"] == 0.0 and base["style"]["total"] > 0
    assert log["judge"]["random"]["result"]["content"] > 0


def _pre(img):
    from engine.io import image
    return image.preprocess(img)
