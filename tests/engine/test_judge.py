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


# ----------------------------------------------------------------------------- the fair judge

from engine import judge as judging
from engine.errors import UserError


def test_split_is_disjoint_and_its_crops_are_the_boxes():
    img = np.random.default_rng(0).uniform(0, 255, (100, 230, 3)).astype(np.float32)
    split = judging.split_exemplar(img, 32, max_held_out=20)
    boxes = split["boxes"]
    assert len(boxes) == 3 * 7 and len(split["held_out"]) == 20
    mask = np.zeros(img.shape[:2], int)
    for (t, l, h, w), crop in zip(boxes, [split["synthesis"]] + split["held_out"]):
        assert (h, w) == (32, 32) and crop.shape == (32, 32, 3)
        np.testing.assert_array_equal(crop, img[t:t + h, l:l + w])
        mask[t:t + h, l:l + w] += 1
    assert mask.max() == 1 and mask.sum() == 21 * 32 * 32          # disjoint, and covers 21 tiles
    assert len(judging.split_exemplar(img, 32, max_held_out=3)["held_out"]) == 3
    with pytest.raises(UserError, match="fewer than two"):
        judging.split_exemplar(img[:, :120], 64)          # one 64 px tile only
    halves = judging.split_style(img)
    assert halves["synthesis"].shape == halves["held_out"][0].shape == (100, 115, 3)
    np.testing.assert_array_equal(np.concatenate([halves["synthesis"], halves["held_out"][0]], 1), img)


def test_copy_score_finds_a_shifted_copy_and_not_independent_noise():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 255, (64, 64, 3))
    assert judging.copy_score(np.roll(a, (17, -5), (0, 1)), a) == pytest.approx(1.0, abs=1e-9)
    assert judging.copy_score(255 - a, a) < 0.1                      # an inverted image is not a copy
    assert judging.copy_score(rng.uniform(0, 255, (64, 64, 3)), a) < 0.1
    assert judging.copy_score(np.full((64, 64, 3), 7.0), a) == 0.0


@pytest.fixture(scope="module")
def gravel_split():
    return judging.split_exemplar(inputs.read("gravel", 192), 64)


def test_a_copy_is_at_natures_level_in_distance_but_wins_the_copy_score(net, gravel_split):
    """The held-out distance alone cannot tell a copy from a new sample: the copy score can."""
    rep = judging.texture_report(gravel_split["synthesis"], gravel_split, {"random": net})
    d = rep["distance"]["random"]
    assert d["result"] == pytest.approx(d["copy"])
    assert min(d["nature_all"]) / 2 <= d["copy"] <= 2 * max(d["nature_all"])
    assert d["white_noise"] > 10 * d["nature"] and d["shuffled"] > 2 * d["nature"]
    c = rep["copy_score"]
    assert c["result"] == pytest.approx(1.0) and c["nature"] < 0.6 and max(c["nature_all"]) < 0.9
    assert len(c["nature_all"]) == len(gravel_split["held_out"]) == 8
    assert set(rep["layers"]["random"]) == set(STYLE_LAYERS)
    lines = judging.report_lines(rep)
    assert len(lines) == 2 and "natural crops" in lines[0] and "copy score" in lines[1]


def test_texture_distance_is_the_relative_gram_error_to_the_pooled_references(net, gravel_split):
    img, refs = gravel_split["synthesis"], gravel_split["held_out"][:2]
    layers = ["relu1_1", "relu2_1"]

    def gram(x, l):   # per-position Gram of one image
        f = np.asarray(net.features(_pre(x), [l])[l], np.float64)[0]
        f = f.reshape(f.shape[0], -1)
        return f @ f.T / f.shape[1]

    expected = sum(metrics.relative_error(gram(img, l), (gram(refs[0], l) + gram(refs[1], l)) / 2) for l in layers)
    assert judging.texture_distance(net, img, refs, layers) == pytest.approx(expected, rel=1e-5)
    assert judging.texture_distance(net, refs[0], refs[:1]) == pytest.approx(0.0, abs=1e-12)
    # a reference of another size: per-position Grams make a tiled copy score zero
    assert judging.texture_distance(net, np.tile(refs[0], (2, 2, 1)), refs[:1], layers[:1]) < 0.05


def test_style_scores_and_the_frontier_at_a_matched_content_error(net, photos):
    content, ihc, _ = photos
    s = judging.style_scores(net, content, content, [ihc])
    assert s["content"] == 0.0 and s["style"] > 0
    # the frontier keeps the points no other beats in both errors, sorted by content error
    pts = [(0.30, 0.69), (0.06, 3.15), (0.5, 2.0), (0.65, 0.27)]
    assert judging.frontier(pts) == [(0.06, 3.15), (0.30, 0.69), (0.65, 0.27)]
    # log-log interpolation: 3.15 at 0.06 and 0.69 at 0.30 give 2.72 at 0.07
    t = np.log(0.07 / 0.06) / np.log(0.30 / 0.06)
    assert judging.style_at(pts, 0.07) == pytest.approx(3.15 ** (1 - t) * 0.69 ** t) == pytest.approx(2.72, abs=0.01)
    assert judging.style_at(pts, 0.30) == pytest.approx(0.69)
    assert np.isnan(judging.style_at(pts, 0.05)) and np.isnan(judging.style_at(pts, 0.7))
