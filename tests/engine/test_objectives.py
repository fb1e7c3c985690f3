"""The objectives' conventions: Eq. 4 weighting, Gram targets across sizes, blending."""
import numpy as np
import pytest

from engine import UserError
from engine.autograd import Tensor, backward
from engine.objectives import Objective
from engine.ops.gram import gram_forward
from engine.vgg import VGG19


@pytest.fixture(scope="module")
def net():
    return VGG19.random(seed=0, device="cpu", dtype=np.float64)


def images(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-100, 100, s) for s in shapes]


def term_grad(obj, term, x):
    xt = Tensor(x, requires_grad=True)
    feats = obj.net.forward(xt, obj.layers)
    backward(term.loss(feats, xt))
    return xt.grad


def test_eq4_gram_terms_pull_equally_at_the_start(net):
    """After calibrate(x'), every Gram term's gradient at x' has mean |g| = its user weight,
    whatever the layer's raw scale (relu1_1 and relu4_1 differ by 1e13 here)."""
    xs, x = images((1, 3, 32, 32), (1, 3, 32, 32))
    obj = Objective.texture(net, xs, ["relu1_1", "relu4_1"], weights=[1.0, 3.0])
    factors = obj.calibrate(x)
    assert factors["style:relu4_1"] / factors["style:relu1_1"] > 1e6
    for term, w in zip(obj.terms, (1.0, 3.0)):
        assert np.abs(term_grad(obj, term, x)).mean() == pytest.approx(w, rel=1e-9)


def test_eq4_content_terms_use_the_f_zero_probe(net):
    """Content factors come from the F(x') = 0 probe, so they exist even when the start is
    the target itself (where the actual gradient is exactly zero)."""
    (x0,) = images((1, 3, 32, 32))
    obj = Objective.inversion(net, x0, ["relu2_1", "pool3"])
    factors = obj.calibrate(x0)
    assert all(np.isfinite(f) and f > 0 for f in factors.values())
    assert np.abs(term_grad(obj, obj.terms[0], x0)).max() == 0  # F = F0: no pull at all
    # and the probe is the gradient of ||F||^2 / (2 N M): what the loss gives with target 0
    probe = Objective(net, [obj.terms[0]])
    probe.terms[0].target = np.zeros_like(obj.terms[0].target)
    probe.terms[0].factor = 1.0
    g = term_grad(probe, probe.terms[0], x0)
    assert 1 / np.abs(g).mean() == pytest.approx(factors["content:relu2_1"], rel=1e-9)


def test_gram_targets_are_rescaled_to_the_output_size(net):
    (xs,) = images((1, 3, 32, 32), seed=1)
    small, big = images((1, 3, 32, 32), (1, 3, 64, 64), seed=2)
    kw = dict(style_layers=["relu1_1", "pool2"], tv_weight=0, feature_stats="gram", pixel_stats="none")
    t_small = Objective.style(net, small, [xs], **kw).terms[1:]
    t_big = Objective.style(net, big, [xs], **kw).terms[1:]
    for a, b in zip(t_small, t_big):
        np.testing.assert_allclose(b.target, 4 * a.target, rtol=1e-12)  # 4x the positions


def test_style_blend_mixes_gram_targets(net):
    xc, s1, s2 = images((1, 3, 32, 32), (1, 3, 32, 32), (1, 3, 32, 32), seed=3)
    obj = Objective.style(net, xc, [s1, s2], blend=[3, 1], style_layers=["relu2_1"], tv_weight=0)
    g1, g2 = (gram_forward(net.features(s, ["relu2_1"])["relu2_1"]) for s in (s1, s2))
    np.testing.assert_allclose(obj.terms[1].target, 0.75 * g1 + 0.25 * g2, rtol=1e-12)
    with pytest.raises(UserError, match="1 weight"):
        Objective.style(net, xc, [s1, s2], blend=[1.0])
    with pytest.raises(UserError, match="non-negative"):
        Objective.style(net, xc, [s1, s2], blend=[1.0, -1.0])


def test_style_filter_bank_terms_blend_the_style_images(net):
    """--filter-bank on style: one Gram term per filter size up to half the smallest image, its
    target the blend of the style images' (each rescaled to the content's positions), weighted
    like the style layers."""
    from engine.objectives import bank_features

    xc, s1, s2 = images((1, 3, 16, 16), (1, 3, 16, 16), (1, 3, 24, 24), seed=6)
    obj = Objective.style(net, xc, [s1, s2], blend=[3, 1], style_layers=["relu1_1"], tv_weight=0, style_weight=2.0,
                          pixel_stats="none", feature_stats="gram", bank_maps=4)
    bank = [t for t in obj.terms if t.name.startswith("bank:")]
    assert [t.name for t in bank] == ["bank:3px", "bank:5px", "bank:7px"] and sorted(obj.bank) == ["bank3", "bank5", "bank7"]
    assert all(t.weight == 2.0 for t in bank)
    f1, f2 = (bank_features(Tensor(s), {"bank5": obj.bank["bank5"]})["bank5"].data for s in (s1, s2))
    g1 = gram_forward(f1) * (12 * 12) / (12 * 12)
    g2 = gram_forward(f2) * (12 * 12) / (20 * 20)
    np.testing.assert_allclose(bank[1].target, 0.75 * g1 + 0.25 * g2, rtol=1e-12)
    assert not [t for t in Objective.style(net, xc, [s1], style_layers=["relu1_1"]).terms if t.name.startswith("bank")]


def test_style_feature_stats_blend_the_moments_and_follow_the_layer_rule(net):
    from engine.ops.stats import moments

    xc, s1, s2 = images((1, 3, 32, 32), (1, 3, 32, 32), (1, 3, 48, 48), seed=5)
    obj = Objective.style(net, xc, [s1, s2], blend=[3, 1], style_layers=["relu1_1", "relu2_1"], tv_weight=0,
                          feature_stats="gram+moments", pixel_stats="none")
    assert [t.name for t in obj.terms] == ["content:relu1_2", "style:relu1_1", "style:relu2_1",
                                           "moments:relu1_1", "moments:relu2_1"]
    (mu1, c1), (mu2, c2) = (moments(net.features(s, ["relu2_1"])["relu2_1"]) for s in (s1, s2))
    mu, cov, scales = obj.terms[4].target
    assert scales is None  # gram+moments: the default weighing of mean and covariance
    np.testing.assert_allclose(mu, 0.75 * mu1 + 0.25 * mu2, rtol=1e-12)
    np.testing.assert_allclose(cov, 0.75 * c1 + 0.25 * c2, rtol=1e-12)
    # moments alone, and a layer that pins the layout (pool4: 2x2 positions at 32 px) left out of both kinds
    obj = Objective.style(net, xc, [s1], style_layers=["relu1_1", "pool4"], tv_weight=0, feature_stats="moments",
                          drop_pinned=True, pixel_stats="none")
    assert [t.name for t in obj.terms] == ["content:relu1_2", "moments:relu1_1"]
    swd = Objective.style(net, xc, [s1, s2], style_layers=["relu1_1"], tv_weight=0, feature_stats="gram+swd",
                          pixel_stats="none")
    assert [t.kind for t in swd.terms] == ["content", "gram", "swd"]
    with pytest.raises(UserError, match="pool the style images equally"):
        Objective.style(net, xc, [s1, s2], blend=[3, 1], feature_stats="swd")
    with pytest.raises(UserError, match="feature statistics must be one of"):
        Objective.style(net, xc, [s1], feature_stats="covariance")


def test_style_layer_weights_scale_each_layers_terms(net):
    """A style layer's weight multiplies beta for its Gram, moment and long-range terms, and no other layer's."""
    xc, xs = images((1, 3, 32, 32), (1, 3, 32, 32), seed=7)
    kw = dict(style_layers=["relu1_1", "relu2_1"], tv_weight=0, pixel_stats="none", style_weight=2.0,
              feature_stats="gram+moments", colour_first=0, shifts=[4])
    plain = Objective.style(net, xc, [xs], **kw)
    weighed = Objective.style(net, xc, [xs], layer_weights=[3.0, 0.5], **kw)
    assert [t.name for t in weighed.terms] == [t.name for t in plain.terms]
    factor = {"relu1_1": 3.0, "relu2_1": 0.5}
    for a, b in zip(plain.terms, weighed.terms):
        assert b.weight == pytest.approx(a.weight * factor.get(a.layer, 1.0) if a.kind != "content" else a.weight)
    assert {t.kind for t in weighed.terms} >= {"content", "gram", "moments"} and len(weighed.terms) > 5
    for bad, msg in (([1.0], "1 weight"), ([0.0, 0.0], "not all zero"), ([1.0, float("nan")], "non-negative")):
        with pytest.raises(UserError, match=msg):
            Objective.style(net, xc, [xs], layer_weights=bad, **kw)


def test_content_level_holds_the_averaged_photo(net):
    from engine.ops.pooling import avgpool2_forward

    xc, xs = images((1, 3, 32, 32), (1, 3, 32, 32), seed=6)
    obj = Objective.style(net, xc, [xs], style_layers=["relu1_1"], tv_weight=0, content_level=2, colour_first=0)
    content = obj.terms[0]
    assert content.name == "content:relu1_2@2" and content.level == 2 and obj.levels == [0, 2]
    small = avgpool2_forward(avgpool2_forward(xc))
    np.testing.assert_allclose(content.target, net.features(small, ["relu1_2"])["relu1_2"], rtol=1e-12)
    obj.calibrate(xc)
    obj.value_and_grad(xc)
    assert obj.last_terms["content:relu1_2@2"] == 0.0
    # the fine grain is free: a checkerboard averages out at level 1 and costs the content term nothing
    board = xc + 5.0 * (np.indices((32, 32)).sum(0) % 2 * 2 - 1)
    obj1 = Objective.style(net, xc, [xs], style_layers=["relu1_1"], tv_weight=0, content_level=1, colour_first=0)
    obj1.calibrate(xc)
    obj1.value_and_grad(board)
    assert obj1.last_terms["content:relu1_2@1"] == pytest.approx(0.0, abs=1e-20)
    with pytest.raises(UserError, match="content level must be a whole number"):
        Objective.style(net, xc, [xs], content_level=-1)
    with pytest.raises(UserError, match="content level 5 averages the content image down to 1x1 px"):
        Objective.style(net, xc, [xs], content_layer="relu3_1", content_level=5)


def test_value_and_grad_reports_terms_that_sum_to_the_total(net):
    xc, xs, x = images((1, 3, 32, 32), (1, 3, 32, 32), (1, 3, 32, 32), seed=4)
    obj = Objective.style(net, xc, [xs], style_layers=["relu1_1", "relu3_1"], tv_weight=0.5, feature_stats="gram", pixel_stats="none",
                          drop_pinned=False)
    obj.calibrate(xc)
    value, grad = obj.value_and_grad(x)
    assert grad.shape == x.shape and obj.evaluations == 1
    assert set(obj.last_terms) == {"content:relu1_2", "style:relu1_1", "style:relu3_1", "tv"}
    assert value == pytest.approx(sum(obj.last_terms.values()), rel=1e-12)


def test_style_defaults_are_one_set_for_the_api_and_the_command_line(net):
    """Objective.style's defaults and python -m tasks.style's are the same numbers."""
    import inspect

    from engine import objectives
    from tasks.cli import command
    from tasks import style

    cli = command.defaults_of(style.PARSER)
    api = inspect.signature(Objective.style).parameters
    assert api["content_weight"].default == cli["content_weight"] == objectives.CONTENT_WEIGHT
    assert api["style_weight"].default == cli["style_weight"] == objectives.STYLE_WEIGHT
    assert api["tv_weight"].default == cli["tv_weight"] == objectives.TV_WEIGHT
    assert api["content_layer"].default == cli["content_layer"]
    assert ",".join(api["style_layers"].default) == cli["style_layers"]
    assert api["levels"].default == cli["pyramid"]
    assert api["feature_stats"].default == cli["feature_stats"]
    assert api["pixel_stats"].default == cli["pixel_stats"]
    assert api["content_level"].default == cli["content_level"]
    assert api["colour_first"].default == cli["colour_first"] == objectives.STYLE_COLOUR_FIRST
    (xc, xs) = images((1, 3, 32, 32), (1, 3, 32, 32))
    weights = {t.name: t.weight for t in Objective.style(net, xc, [xs]).terms}
    assert weights["content:relu1_2"] == objectives.CONTENT_WEIGHT and weights["tv"] == objectives.TV_WEIGHT


def test_pyramid_levels_match_the_averaged_images(net):
    """Level k's Gram target is the Gram of the style image 2x2-averaged k times, and its
    term is met exactly (zero loss and gradient) at the style image itself."""
    from engine.ops.pooling import avgpool2_forward

    (xs,) = images((1, 3, 32, 32), seed=4)
    obj = Objective.texture(net, xs, ["relu1_1", "relu2_1"], levels=3)
    assert [t.name for t in obj.terms] == ["style:relu1_1", "style:relu2_1", "style:relu1_1@1",
                                           "style:relu2_1@1", "style:relu1_1@2", "style:relu2_1@2"]
    quarter = avgpool2_forward(avgpool2_forward(xs))
    f = net.features(quarter, ["relu2_1"])["relu2_1"]
    np.testing.assert_allclose(obj.terms[-1].target, gram_forward(f), rtol=1e-10)
    obj.calibrate(images((1, 3, 32, 32), seed=5)[0])
    value, grad = obj.value_and_grad(xs)
    assert abs(value) < 1e-12 and np.abs(grad).max() < 1e-9
    value_off, _ = obj.value_and_grad(images((1, 3, 32, 32), seed=6)[0])
    assert value_off > 1e-3


def test_projected_statistics_are_those_of_the_projected_channels(net):
    """project=K: layers with more than K channels get fixed orthonormal projections (K, C), their
    Gram and moment targets are P G P^T and (P mu, P S P^T), the others are left as they are; the
    same projections for every objective (one draw, part of the net's definition)."""
    from engine.objectives import projections
    from engine.ops.stats import moments

    xs, = images((1, 3, 32, 32), seed=7)
    obj = Objective.texture(net, xs, ["relu1_1", "relu3_1"], feature_stats="gram+moments", project=96)
    kinds = {t.name: t for t in obj.terms}
    assert kinds["style:relu1_1"].proj is kinds["moments:relu1_1"].proj is None     # 64 channels, not more than 96
    p = kinds["style:relu3_1"].proj
    assert p.shape == (96, 256) and kinds["moments:relu3_1"].proj is p
    np.testing.assert_allclose(p @ p.T, np.eye(96), atol=1e-12)
    f = net.features(xs, ["relu3_1"])["relu3_1"]
    np.testing.assert_allclose(kinds["style:relu3_1"].target, p @ gram_forward(f) @ p.T, rtol=1e-10)
    mu, cov = moments(f)
    np.testing.assert_allclose(kinds["moments:relu3_1"].target[0], mu @ p.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(kinds["moments:relu3_1"].target[1], p @ cov @ p.T, rtol=1e-10, atol=1e-12)
    again = projections(net, ["relu1_1", "relu3_1"], 96)
    assert list(again) == ["relu3_1"] and np.array_equal(again["relu3_1"], p)
    # the loss reads the projected features: zero at the exemplar itself, positive elsewhere
    feats = net.forward(Tensor(xs), obj.layers)
    assert float(kinds["style:relu3_1"].loss(feats, Tensor(xs)).data) < 1e-20
    other, = images((1, 3, 32, 32), seed=8)
    assert float(kinds["style:relu3_1"].loss(net.forward(Tensor(other), obj.layers), Tensor(other)).data) > 0
    assert projections(net, ["relu3_1"], 0) == {}
    for bad in (-1, 2.5, True):
        with pytest.raises(UserError, match="projection size must be a whole number"):
            projections(net, ["relu3_1"], bad)


def test_projection_frees_the_layers_that_pin_the_layout(net):
    """With K projections a layer pins the layout only with fewer positions than K: at 128 px
    relu4_1 (256 positions) and relu5_1 (64) are kept at K = 64, relu5_1 is left out at K = 128."""
    from engine.objectives import pinned_layers

    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert pinned_layers(layers, [(128, 128)]) == {0: ["relu4_1", "relu5_1"]}
    assert pinned_layers(layers, [(128, 128)], project=64) == {}
    assert pinned_layers(layers, [(128, 128)], project=128) == {0: ["relu5_1"]}
    xs, = images((1, 3, 64, 64), seed=9)
    obj = Objective.texture(net, xs, ["relu1_1", "relu4_1", "relu5_1"], drop_pinned=True, project=32)
    assert [t.name for t in obj.terms] == ["style:relu1_1", "style:relu4_1"]   # relu5_1: 4 x 4 < 32


def test_style_colour_first_recolours_the_content_target(net):
    """colour_first t: the content term holds the photo with its colours moved t of the way to
    the style's (deprocessed, recoloured in RGB, preprocessed again); t = 0 holds the photo."""
    from engine.io import image
    from engine.objectives import recoloured_content

    rng = np.random.default_rng(11)
    photo = rng.uniform(60, 200, (32, 32, 3)).astype(np.float32)
    art = np.clip(rng.normal((200, 80, 40), 15, (32, 32, 3)), 0, 255).astype(np.float32)
    xc, xs = (image.preprocess(v, net.preprocessing, np.float64) for v in (photo, art))
    want = image.preprocess(image.recolour(photo, [art], 0.5), net.preprocessing, np.float64)
    np.testing.assert_allclose(recoloured_content(net, xc, [xs], 0.5), want, atol=1e-3)
    assert recoloured_content(net, xc, [xs], 0) is xc
    kw = dict(style_layers=["relu1_1"], tv_weight=0, pixel_stats="none")
    half = Objective.style(net, xc, [xs], colour_first=0.5, **kw).terms[0].target
    np.testing.assert_allclose(half, net.features(want, ["relu1_2"])["relu1_2"], rtol=1e-5, atol=1e-6)
    plain = Objective.style(net, xc, [xs], colour_first=0.0, **kw).terms[0].target
    np.testing.assert_allclose(plain, net.features(xc, ["relu1_2"])["relu1_2"], rtol=1e-12)
    with pytest.raises(UserError, match="colour-first fraction must be a number from 0 to 1"):
        Objective.style(net, xc, [xs], colour_first=2.0, **kw)


def test_a_projected_layer_is_projected_once_per_evaluation(monkeypatch):
    """Gram and moment terms of one layer read the same projected features: one projection per
    layer and evaluation, whatever the number of terms (and the same loss as projecting per term)."""
    from engine import objectives

    net = VGG19.random(seed=0, device="cpu", dtype=np.float64)
    rng = np.random.default_rng(9)
    xs, x = rng.uniform(-100, 100, (2, 1, 3, 32, 32))
    obj = Objective.texture(net, xs, ["relu2_1", "relu3_1"], feature_stats="gram+moments", project=16)
    assert sum(t.proj is not None for t in obj.terms) == 4
    value, _ = obj.value_and_grad(x)
    calls = []
    real = objectives.project
    monkeypatch.setattr(objectives, "project", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    again, _ = obj.value_and_grad(x)
    assert sorted(calls) == ["relu2_1:projected", "relu3_1:projected"] and again == value
    feats = net.forward(Tensor(x), obj.layers)     # a term alone projects for itself: the same value
    alone = sum(float(t.loss(feats, Tensor(x)).data) for t in obj.terms)
    assert alone == pytest.approx(value, rel=1e-12)


def test_shift_terms_take_the_distances_each_layer_can_hold():
    """A layer takes the multiples of its stride up to half its map's side, across and down; the
    exemplar scores zero against itself, and a shift no layer can hold is a one-line error."""
    from engine.objectives import shift_terms
    net = VGG19.random(seed=0, device="cpu", dtype=np.float64)
    xs = np.random.default_rng(9).uniform(-100, 100, (1, 3, 32, 32))
    obj = Objective.texture(net, xs, ["relu1_1", "relu2_1", "relu3_1"], shifts=(2, 8, 16))
    names = [t.name for t in obj.terms if t.kind == "shifted"]
    # relu1_1 (stride 1, 32 positions): 2, 8, 16 px; relu2_1 (stride 2, 16): 2, 8, 16 px (1, 4, 8
    # positions); relu3_1 (stride 4, 8): 8 px only (2 is not a multiple of 4; 16 px is 4 positions
    # of 8: kept; half the side)
    assert names == [f"shift:{l}:{d}px {w}" for l, ds in (("relu1_1", (2, 8, 16)), ("relu2_1", (2, 8, 16)),
                                                          ("relu3_1", (8, 16))) for d in ds for w in ("across", "down")]
    obj.calibrate(xs)
    obj.value_and_grad(xs)
    assert all(obj.last_terms[n] < 1e-20 for n in names)
    with pytest.raises(UserError, match="no layer of relu3_1 takes a shift of 2 px"):
        shift_terms(net, [xs], [("relu3_1", 1.0)], xs.shape, (2,))
    with pytest.raises(UserError, match="shifts must be whole numbers of pixels >= 1"):
        Objective.texture(net, xs, ["relu1_1"], shifts=(0,))


def test_shift_targets_are_size_free():
    """A texture's per-position long-range statistics do not depend on how much of it is seen: the
    target from a periodic exemplar of 4x the area, rescaled to the output's overlap, is within a few
    per cent of the one from the output's own size (4x apart without the rescaling)."""
    from engine.objectives import shift_terms
    net = VGG19.random(seed=0, device="cpu", dtype=np.float64)
    tile = np.random.default_rng(10).uniform(-100, 100, (1, 3, 8, 8))
    big = np.tile(tile, (1, 1, 16, 16))      # 128 x 128 px, period 8
    small = big[:, :, :64, :64]
    a = shift_terms(net, [big], [("relu1_1", 1.0)], small.shape, (8,), interior=True)
    b = shift_terms(net, [small], [("relu1_1", 1.0)], small.shape, (8,), interior=True)
    assert len(a) == len(b) == 2
    for ta, tb in zip(a, b):
        err = np.linalg.norm(ta.target[0] - tb.target[0]) / np.linalg.norm(tb.target[0])
        assert err < 0.03, err
