"""python -m tasks.texture's size, layer rule and colour options (docs/levers.md)."""
import numpy as np
import pytest

from engine.errors import UserError
from engine.objectives import Objective, pinned_layers
from engine.vgg import VGG19
from tasks import style, texture

QUIET = {"device": "cpu", "print_every": 0}


def chroma(img):
    """mean over pixels of the standard deviation across R, G, B: 0 for a grey image."""
    return float(np.asarray(img, np.float64).std(axis=2).mean())


def test_out_size_gives_that_size_from_an_exemplar_of_another():
    img, log = texture.run(image="brick", size=48, iters=5, out_size="80x40", **QUIET)
    assert img.shape == (40, 80, 3)
    assert log["gram_error"]["total"] < log["baselines"]["white_noise"]["gram_error"]["total"]


@pytest.mark.parametrize("spec", ["80", "80x", "ax40", "8x8"])
def test_bad_out_size_is_a_user_error(spec):
    with pytest.raises(UserError, match="--out-size"):
        texture.run(image="brick", size=48, iters=1, out_size=spec, **QUIET)


def test_an_out_size_too_big_for_memory_is_refused_before_the_network(monkeypatch):
    """--out-size is the synthesis' size whatever --size: checked like --size, saying what fits."""
    from engine import backend
    from tasks.pipeline import network

    built = []
    monkeypatch.setattr(network, "make_net", lambda *a, **k: built.append(1))
    monkeypatch.setattr(backend, "memory_available", lambda device: 2 * 2**30)
    with pytest.raises(UserError, match=r"--out-size 20000x10000: the synthesis at 20000x10000 px does not fit "
                                        r"in memory; use --out-size \d+x\d+ or smaller") as exc:
        texture.run(image="brick", size=32, iters=1, out_size="20000x10000", net="random", **QUIET)
    w, h = (int(v) for v in str(exc.value).split("use --out-size ")[1].split(" ")[0].split("x"))
    assert 16 <= h < w < 20000 and built == []


@pytest.mark.parametrize("maps", [1025, 10**8])
def test_filter_bank_is_bounded(maps):
    with pytest.raises(UserError, match="--filter-bank must be a whole number from 0 to 1024"):
        texture.run(image="brick", size=32, iters=1, filter_bank=maps, net="random", **QUIET)


def test_pinning_layers_are_dropped_per_pyramid_level_and_kept_on_request():
    net = VGG19.random(seed=0, device="cpu")
    xs = np.random.default_rng(0).uniform(-100, 100, (1, 3, 128, 128)).astype(np.float32)
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert pinned_layers(layers, [(128, 128)], 2) == {0: ["relu4_1", "relu5_1"], 1: ["relu4_1", "relu5_1"]}
    obj = Objective.texture(net, xs, layers, levels=2, drop_pinned=True)
    assert [t.name for t in obj.terms] == ["style:relu1_1", "style:relu2_1", "style:relu3_1",
                                           "style:relu1_1@1", "style:relu2_1@1", "style:relu3_1@1"]
    # a larger output does not free a layer whose exemplar Gram is already low-rank
    big = Objective.texture(net, xs, layers, shape=(1, 3, 512, 512), drop_pinned=True)
    assert {t.layer for t in big.terms} == {"relu1_1", "relu2_1", "relu3_1"}
    assert len(Objective.texture(net, xs, layers).terms) == 5


def test_grey_exemplar_gives_a_grey_texture():
    # gravel is grey. Without the colour options a random net tints it (measured: chroma 1.9 with
    # the pixel moments term alone at this budget, more without); the final colour transfer is exact
    img, _ = texture.run(image="gravel", size=48, iters=20, scales="none", **QUIET)
    free, _ = texture.run(image="gravel", size=48, iters=20, scales="none", pixel_stats="none",
                          colour_transfer=False, **QUIET)
    assert chroma(img) < 0.05, chroma(img)
    assert chroma(free) > 1.0, chroma(free)


def test_style_drops_the_layers_that_pin_a_layout_when_asked():
    net = VGG19.random(seed=0, device="cpu")
    rng = np.random.default_rng(1)
    xc = rng.uniform(-100, 100, (1, 3, 64, 64)).astype(np.float32)
    xs = rng.uniform(-100, 100, (1, 3, 64, 96)).astype(np.float32)
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    kept = Objective.style(net, xc, [xs], style_layers=layers, drop_pinned=False)
    dropped = Objective.style(net, xc, [xs], style_layers=layers, drop_pinned=True)
    assert {t.layer for t in kept.terms if t.kind == "gram"} == set(layers)
    assert {t.layer for t in dropped.terms if t.kind == "gram"} == {"relu1_1", "relu2_1", "relu3_1"}


def test_held_out_synthesises_from_one_crop_and_judges_against_the_others():
    """--held-out: the result has the crop's size, the log holds the fair figures with their
    yardsticks (natural crops, a copy, noise), and the copy of the source is nearer the
    held-out crops than white noise is (the judge can tell texture from noise)."""
    img, log = texture.run(image="gravel", size=48, iters=3, scales="none", held_out=True, **QUIET)
    assert img.shape == (48, 48, 3)
    rep = log["held_out"]
    assert rep["exemplar_size"] == 144 and len(rep["boxes"]) == 9
    d = rep["distance"]["random"]
    assert d["copy"] < d["white_noise"] and len(d["nature_all"]) == 8
    assert 0 <= rep["copy_score"]["result"] <= 1 and log["copy_score"] == rep["copy_score"]["result"]


@pytest.mark.parametrize("opts, words", [({"exemplar_size": 60, "held_out": True}, "at least twice --size"),
                                         ({"exemplar_size": 200}, "add --held-out")])
def test_bad_exemplar_size_is_a_user_error(opts, words):
    with pytest.raises(UserError, match=words):
        texture.run(image="gravel", size=48, iters=1, **opts, **QUIET)


def test_style_held_out_transfers_one_half_and_judges_against_the_other():
    from tasks import style

    img, log = style.run(content="coffee", style=["ihc"], size=48, iters=3, scales="none", held_out=True, **QUIET)
    rep = log["held_out"]["random"]
    assert rep["unstyled"]["content"] == 0.0 and rep["result"]["content"] > 0
    # the style's own other half is nearer its held-out half than the unstyled photo is
    assert rep["style_half"]["style"] < rep["unstyled"]["style"]


def test_held_out_exemplar_too_large_for_memory_is_refused(monkeypatch):
    from engine import backend

    monkeypatch.setattr(backend, "memory_available", lambda device: 64 * 2**20)
    with pytest.raises(UserError, match="--exemplar-size 20000"):
        texture.run(image="gravel", size=48, iters=1, held_out=True, exemplar_size=20000, **QUIET)


def test_spectrum_weight_adds_the_fourier_term_and_refuses_a_negative_weight():
    _, log = texture.run(image="brick", size=32, iters=3, scales="none", spectrum_weight=2.0, **QUIET)
    assert log["term_weights"]["spectrum"] == 2.0
    with pytest.raises(UserError, match="--spectrum-weight"):
        texture.run(image="brick", size=32, iters=1, spectrum_weight=-0.5, **QUIET)


def test_an_ensemble_sums_its_nets_objectives():
    from engine.objectives import Ensemble
    nets = [VGG19.random(seed=s, device="cpu") for s in (0, 1)]
    xs = np.random.default_rng(4).uniform(-100, 100, (1, 3, 32, 32)).astype(np.float32)
    x = np.random.default_rng(5).uniform(-100, 100, (1, 3, 32, 32)).astype(np.float32)
    parts = [Objective.texture(n, xs, ["relu1_1", "relu2_1"]) for n in nets]
    alone = [p.value_and_grad(x) for p in parts]
    ens = Ensemble(parts)
    value, grad = ens.value_and_grad(x)
    assert value == pytest.approx(alone[0][0] + alone[1][0], rel=1e-6) and alone[1][0] > 0.01 * alone[0][0]
    np.testing.assert_allclose(grad, alone[0][1] + alone[1][1], rtol=1e-5, atol=1e-6 * abs(grad).max())
    assert [t.name for t in ens.terms] == ["style:relu1_1", "style:relu2_1", "net2:style:relu1_1", "net2:style:relu2_1"]


def test_ensemble_option_runs_k_nets_and_refuses_what_it_cannot_draw(tmp_path):
    _, log = texture.run(image="brick", size=32, iters=2, scales="none", ensemble=2, net="random", **QUIET)
    assert log["ensemble_seeds"] == [0, 1] and "net2:style:relu1_1" in log["weighting_factors"]
    assert "net2:colour:moments" not in log["weighting_factors"]
    for bad, words in ((0, "--ensemble must be a whole number >= 1"), (1.5, "ensemble=1.5: give a whole number")):
        with pytest.raises(UserError, match=words):
            texture.run(image="brick", size=32, iters=1, ensemble=bad, **QUIET)
    weights = tmp_path / "w.npz"
    VGG19.random(seed=0, device="cpu").save(weights)
    with pytest.raises(UserError, match="--ensemble 2 .*weights file"):
        texture.run(image="brick", size=32, iters=1, ensemble=2, weights=str(weights), **QUIET)


def test_ensemble_layers_keep_the_other_nets_terms_at_those_layers_only():
    _, log = texture.run(image="brick", size=32, iters=2, scales="none", ensemble=3, ensemble_layers="relu1_1",
                         net="random", **QUIET)
    assert log["ensemble_layers"] == ["relu1_1"]
    others = sorted(k for k in log["weighting_factors"] if k.startswith("net"))
    assert others == sorted(f"net{k}:{t}" for k in (2, 3) for t in
                            ("style:relu1_1", "moments:relu1_1", "shift:relu1_1:4px across", "shift:relu1_1:4px down"))
    assert "style:relu2_1" in log["weighting_factors"]  # the first net keeps every layer
    # a distance only the first net's layers take is left out of the others' terms
    _, log = texture.run(image="brick", size=32, iters=1, scales="none", ensemble=2, ensemble_layers="relu2_1",
                         shifts="2,4", net="random", **QUIET)
    assert "shift:relu1_1:2px across" in log["weighting_factors"]
    assert "net2:shift:relu2_1:2px across" in log["weighting_factors"]
    assert not any(k.startswith("net2:shift:relu1_1") for k in log["weighting_factors"])
    # relu3_1 pins the layout at the 32 px coarse stage of a 64 px synthesis: the other net sits it out
    _, log = texture.run(image="brick", size=64, iters=1, scale_iters=1, ensemble=2, ensemble_layers="relu3_1",
                         net="random", **QUIET)
    assert [s["size"] for s in log["scales"]] == [32] and "net2:style:relu3_1" in log["weighting_factors"]
    for kw, words in ((dict(ensemble=1, ensemble_layers="relu1_1"), "give --ensemble 2 or more"),
                      (dict(ensemble=2, ensemble_layers="relu4_2"), "--ensemble-layers relu4_2: not in --layers"),
                      (dict(ensemble=2, ensemble_layers="relu4_1"), "--ensemble-layers relu4_1: fewer positions")):
        with pytest.raises(UserError, match=words):
            texture.run(image="brick", size=32, iters=1, scales="none", net="random", **kw, **QUIET)


def test_style_ensemble_layers_keep_the_other_nets_style_terms_at_those_layers():
    _, log = style.run(content="chelsea", style="ihc", size=32, iters=2, scales="none", net="random", ensemble=2,
                       ensemble_layers="relu1_1,relu2_1", **QUIET)
    assert log["ensemble_layers"] == ["relu1_1", "relu2_1"]
    assert {k for k in log["weighting_factors"] if k.startswith("net2:")} == {
        f"net2:{s}:{l}" for s in ("style", "moments") for l in ("relu1_1", "relu2_1")}
    with pytest.raises(UserError, match="--ensemble-layers relu1_2: not in --style-layers"):
        style.run(content="chelsea", style="ihc", size=32, iters=1, ensemble=2, ensemble_layers="relu1_2", **QUIET)
    with pytest.raises(UserError, match="--ensemble-layers: unknown layer 'relu9'"):
        style.run(content="chelsea", style="ihc", size=32, iters=1, ensemble=2, ensemble_layers="relu9", **QUIET)


def test_style_ensemble_adds_the_other_nets_style_terms_only():
    """--ensemble K in the style command: the second net brings its style statistics; the content,
    colour and total-variation terms are the first net's alone; the errors are read in the first."""
    _, one = style.run(content="chelsea", style="ihc", size=32, iters=2, scales="none", net="random", **QUIET)
    _, log = style.run(content="chelsea", style="ihc", size=32, iters=2, scales="none", net="random", ensemble=2,
                       **QUIET)
    assert log["ensemble_seeds"] == [0, 1]
    second = {n.split(":", 1)[1] for n in log["weighting_factors"] if n.startswith("net2:")}
    first = {n for n in log["weighting_factors"] if not n.startswith("net2:")}
    assert second and all(n.startswith(("style:", "moments:")) for n in second) and second < first
    assert any(n.startswith("content:") for n in first)
    assert log["start_content_error"] == pytest.approx(one["start_content_error"])
    assert log["start_style_error"]["total"] == pytest.approx(one["start_style_error"]["total"])
    with pytest.raises(UserError, match="--ensemble must be a whole number >= 1"):
        style.run(content="chelsea", style="ihc", size=32, iters=1, ensemble=0, **QUIET)


def test_style_filter_bank_adds_a_term_per_filter_size():
    """--filter-bank on the style command: one Gram term per size up to half the smallest image
    (the 21 x 32 content here: 3, 5, 7 px), each with its Eq. 4 factor."""
    _, log = style.run(content="chelsea", style=["brick"], size=32, iters=3, filter_bank=2, net="random", **QUIET)
    assert [k for k in log["weighting_factors"] if k.startswith("bank:")] == ["bank:3px", "bank:5px", "bank:7px"]
    _, log = style.run(content="chelsea", style=["brick"], size=32, iters=1, net="random", **QUIET)
    assert not [k for k in log["weighting_factors"] if k.startswith("bank:")]


@pytest.mark.parametrize("maps", [-1, 1025])
def test_style_filter_bank_is_bounded(maps):
    with pytest.raises(UserError, match="--filter-bank must be a whole number from 0 to 1024"):
        style.run(content="chelsea", style=["brick"], size=32, iters=1, filter_bank=maps, net="random", **QUIET)


def test_periodic_synthesis_from_interior_statistics():
    """--periodic --interior: the net sees the image wrapped around by the border its kept layers
    need (relu1_1 alone at the 24 px stage, relu2_1 at 48 px, where relu3_1 has too few interior
    positions). That the objective has no border is tests/engine/test_border.py's."""
    img, log = texture.run(image="brick", size=48, iters=5, periodic=True, interior=True, **QUIET)
    assert img.shape == (48, 48, 3)
    assert log["periodic_pad_px"] == {"24": 1, "48": 4}
    assert log["pinned_layers"] == {"0": ["relu3_1", "relu4_1", "relu5_1"]}


def test_a_periodic_coarse_result_is_upsampled_periodically():
    """Upsampling commutes with a shift of the periodic image (no edge is special), where the
    plain upsampling's edges are clamped."""
    from tasks.pipeline import scales
    img = np.random.default_rng(5).uniform(0, 255, (16, 20, 3)).astype(np.float32)
    up = scales.start_from(img, (1, 3, 32, 40), "caffe", periodic=True)
    shifted = scales.start_from(np.roll(img, (3, 5), axis=(0, 1)), (1, 3, 32, 40), "caffe", periodic=True)
    np.testing.assert_allclose(np.roll(up, (6, 10), axis=(2, 3)), shifted, atol=1e-3)
    plain = scales.start_from(img, (1, 3, 32, 40), "caffe")
    assert np.abs(np.roll(plain, (6, 10), axis=(2, 3)) -
                  scales.start_from(np.roll(img, (3, 5), axis=(0, 1)), (1, 3, 32, 40), "caffe")).max() > 1


def test_style_interior_takes_the_style_images_statistics_off_their_border():
    net = VGG19.random(seed=0, device="cpu", dtype=np.float64)
    rng = np.random.default_rng(4)
    xc, xs = rng.uniform(-100, 100, (2, 1, 3, 32, 32))
    kw = dict(style_layers=["relu1_1", "relu2_1"], content_layer="relu1_2")
    plain = {t.name: t.target for t in Objective.style(net, xc, [xs], **kw).terms}
    inner = {t.name: t.target for t in Objective.style(net, xc, [xs], interior=True, **kw).terms}
    assert plain.keys() == inner.keys()
    assert not np.allclose(plain["style:relu2_1"], inner["style:relu2_1"], rtol=1e-3)
    np.testing.assert_array_equal(plain["content:relu1_2"], inner["content:relu1_2"])
    img, _ = style.run(content="chelsea", style=["brick"], size=32, iters=3, interior=True, **QUIET)
    assert img.shape[:2] == (21, 32) or max(img.shape[:2]) == 32


@pytest.mark.parametrize("k, message", [(-1, "--project must be a whole number >= 0"),
                                        (2.5, "project=2.5: give a whole number")])
def test_project_is_a_whole_number(k, message):
    with pytest.raises(UserError, match=message):
        texture.run(image="brick", size=32, iters=1, project=k, net="random", **QUIET)
    with pytest.raises(UserError, match=message):
        style.run(content="chelsea", style=["brick"], size=32, iters=1, project=k, net="random", **QUIET)


def test_project_keeps_the_deep_layers_and_says_nothing_is_pinned():
    """--project 32 at 64 px: relu4_1 (8 x 8 positions) is kept, relu5_1 (4 x 4) is still left out;
    without it both are."""
    _, log = texture.run(image="brick", size=64, iters=3, project=32, net="random", **QUIET)
    assert log["pinned_layers"] == {"0": ["relu5_1"]}
    assert {"style:relu4_1", "moments:relu4_1"} <= set(log["final_terms"]) and "style:relu5_1" not in log["final_terms"]
    _, log = texture.run(image="brick", size=64, iters=3, net="random", **QUIET)
    assert log["pinned_layers"] == {"0": ["relu4_1", "relu5_1"]}
    assert "style:relu4_1" not in log["final_terms"]


def test_style_project_reports_the_projected_errors():
    """--project on the style command: the log's per-layer Gram errors are of the projected
    channels (relu2_1 at 32 px: 128 channels, 16 x 16 positions, projected to 48), and fall."""
    _, log = style.run(content="chelsea", style=["brick"], size=32, iters=5, project=48, net="random",
                       style_layers="relu1_1,relu2_1", **QUIET)
    assert log["style_error"]["relu2_1"] < log["start_style_error"]["relu2_1"]


def test_recolour_moves_the_photo_toward_the_style_colours():
    """t = 0: the photo; t = 1: the style pixels' mean and covariance exactly; between: a blend."""
    rng = np.random.default_rng(3)
    photo = rng.uniform(0, 255, (12, 10, 3)).astype(np.float32)
    s1, s2 = (rng.normal(m, 12, (8, 9, 3)).astype(np.float32) for m in ((170, 90, 80), (150, 110, 70)))  # no clipping
    from engine.io.image import recolour

    assert np.array_equal(recolour(photo, [s1], 0.0), photo)
    full = recolour(photo, [s1, s2], 1.0).reshape(-1, 3).astype(np.float64)
    pooled = np.concatenate([s1.reshape(-1, 3), s2.reshape(-1, 3)]).astype(np.float64)
    np.testing.assert_allclose(full.mean(0), pooled.mean(0), atol=0.05)
    np.testing.assert_allclose(np.cov(full.T, bias=True), np.cov(pooled.T, bias=True), rtol=0.02, atol=0.5)
    half = recolour(photo, [s1, s2], 0.5)
    np.testing.assert_allclose(half, 0.5 * photo + 0.5 * full.reshape(photo.shape), atol=1e-3)


def test_style_colour_first_holds_the_recoloured_photo():
    """--colour-first 1: the content term's target is the photo in the style's colours, so the
    result starts (--init content) and stays near them: its mean colour is the style's, not the photo's."""
    kw = dict(content="chelsea", style=["ihc"], size=32, iters=3, scale_iters=2, net="random", **QUIET)
    img, _ = style.run(colour_first=1.0, **kw)
    plain, _ = style.run(colour_first=0.0, **kw)
    from tasks.pipeline import inputs
    target = inputs.read("ihc", 32).reshape(-1, 3).mean(0)
    assert np.abs(img.reshape(-1, 3).mean(0) - target).max() < 0.5 * np.abs(plain.reshape(-1, 3).mean(0) - target).max()
    for bad in (-0.1, 1.5):
        with pytest.raises(UserError, match="--colour-first must be a fraction from 0 to 1"):
            style.run(colour_first=bad, **kw)


def test_shifts_add_long_range_terms_scaled_at_the_coarse_stage():
    """--shifts 8: across and down at every kept layer that can hold it; the 32 px stage before
    the 64 px one sees the texture at half the size, so its terms are at 4 px."""
    _, log = texture.run(image="brick", size=64, iters=2, scale_iters=2, shifts="8", **QUIET)
    shifted = sorted(k for k in log["weighting_factors"] if k.startswith("shift:"))
    assert shifted == sorted(f"shift:{l}:8px {w}" for l in ("relu1_1", "relu2_1", "relu3_1")
                             for w in ("across", "down"))
    from argparse import Namespace
    from tasks.pipeline import network
    assert network.shifts(Namespace(shifts="8,32,1", size=64), 32) == (4, 16)   # 1 px at half size: gone
    assert network.shifts(Namespace(shifts=None, size=64)) == ()


@pytest.mark.parametrize("spec", ["x", "8,-1", "0", "2.5"])
def test_bad_shifts_are_one_line_errors(spec):
    with pytest.raises(UserError, match=r"--shifts must be comma-separated whole numbers of px >= 1"):
        texture.run(image="brick", size=32, iters=1, shifts=spec, **QUIET)


def test_style_shifts_blend_the_style_images_long_range_statistics():
    """--shifts on the style command: a term per kept style layer, distance and direction, toward
    the style images' blend; at the blend 1, 0 the target is the first image's alone."""
    from engine.objectives import shift_terms
    _, log = style.run(content="chelsea", style=["brick", "gravel"], style_blend="0.7,0.3", size=32, iters=3,
                       shifts="4", net="random", style_layers="relu1_1,relu2_1", **QUIET)
    assert sorted(k for k in log["weighting_factors"] if k.startswith("shift:")) == sorted(
        f"shift:{l}:4px {w}" for l in ("relu1_1", "relu2_1") for w in ("across", "down"))
    net = VGG19.random(seed=0, device="cpu")
    a, b = np.random.default_rng(5).uniform(-100, 100, (2, 1, 3, 24, 24)).astype(np.float32)
    one = shift_terms(net, [a, b], [("relu1_1", 1.0)], a.shape, (4,), blend=[1.0, 0.0])
    alone = shift_terms(net, [a], [("relu1_1", 1.0)], a.shape, (4,))
    np.testing.assert_allclose(one[0].target[0], alone[0].target[0], rtol=1e-6)


def test_a_shift_no_layer_takes_fails_before_the_first_stage(monkeypatch):
    """--shifts 500 at 64 px: a one-line error naming the distance, before any network is built."""
    from tasks.pipeline import network
    monkeypatch.setattr(network, "make_net", lambda *a, **k: pytest.fail("the network was built"))
    with pytest.raises(UserError, match=r"--shifts 500: no layer of relu1_1, relu2_1 takes that distance at 64x64 px"):
        texture.run(image="brick", size=64, iters=1, shifts="8,500", layers="relu1_1,relu2_1", **QUIET)
    with pytest.raises(UserError, match=r"--shifts 500: no layer of relu1_1, relu2_1 takes that distance"):
        style.run(content="chelsea", style=["brick"], size=64, iters=1, shifts="500",
                  style_layers="relu1_1,relu2_1", **QUIET)


def spy_history(monkeypatch) -> list:
    """The L-BFGS memory each optimisation of a run is given, in order."""
    from tasks.pipeline import runner

    seen = []
    for name, (method, what) in list(runner.OPTIMIZERS.items()):
        def spy(*args, _method=method, **kw):
            seen.append(kw["history"])
            return _method(*args, **kw)
        monkeypatch.setitem(runner.OPTIMIZERS, name, (spy, what))
    return seen


def test_texture_keeps_a_longer_lbfgs_memory_at_every_stage(monkeypatch):
    """The texture command's L-BFGS memory is 100 steps (the other commands': 10), at the coarse
    stage and the last one alike, unless --history says otherwise."""
    from tasks.cli import command

    seen = spy_history(monkeypatch)
    _, log = texture.run(image="brick", size=32, iters=2, scale_iters=2, layers="relu1_1", **QUIET)
    assert seen == [100, 100]                       # the 16 px stage, then the 32 px one
    assert log["args"]["history"] == 100
    seen.clear()
    texture.run(image="brick", size=32, iters=2, scale_iters=2, layers="relu1_1", history=7, **QUIET)
    assert seen == [7, 7]
    assert style.PARSER.parse_args([]).history == command.HISTORY == 10
    assert texture.PARSER.parse_args([]).history is None    # chosen per run
    assert "300 when the exemplar at --size and the synthesis are both 256 px" in " ".join(texture.PARSER.format_help().split())


def test_a_large_synthesis_gets_the_larger_memory_where_it_fits(monkeypatch):
    """An exemplar read at 256 px or more and a synthesis as large get 300 steps at every stage;
    a large synthesis from a small exemplar, or a small one from a large exemplar, 100; where 300
    do not fit in memory 100, and the log says so; a --history given is kept whatever the size."""
    from engine.errors import UserError
    from tasks.pipeline import network

    seen = spy_history(monkeypatch)
    run = dict(image="brick", size=256, out_size="256x64", iters=1, scale_iters=1, layers="relu1_1", **QUIET)
    _, log = texture.run(**run)
    assert seen == [300, 300, 300] and log["args"]["history"] == 300 and not log.get("notes")
    for other in ({"out_size": "255x64"}, {"size": 32}, {"history": 40}):
        seen.clear()
        texture.run(**{**run, **other})
        assert seen == [other.get("history", 100)] * (2 if "size" in other else 3), other

    check = network.check_memory
    asked = []

    def short(a, *args, **kw):   # the free memory holds 100 steps, not 300
        asked.append(a.history)
        if a.history > 100:
            raise UserError("this run needs more memory than is free")
        return check(a, *args, **kw)

    monkeypatch.setattr(network, "check_memory", short)
    seen.clear()
    _, log = texture.run(**run)
    assert asked[0] == 300 and seen == [100, 100, 100] and log["args"]["history"] == 100
    assert any("L-BFGS memory of 100 steps" in n and "256x64 px synthesis from a 256x256 px exemplar" in n
               for n in log["notes"])
