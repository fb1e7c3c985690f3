"""tasks.pipeline.scales: coarse to fine (--scales) and the image pyramid (--pyramid) in the tasks."""
import numpy as np
import pytest

from engine import UserError
from engine.io import image
from engine.objectives import Objective
from tasks import style, texture
from tasks.pipeline import scales

QUIET = {"device": "cpu", "print_every": 0}
L4 = "relu1_1,relu2_1,relu3_1,relu4_1"  # relu5_1 would need 16 px at every pyramid level


def test_coarse_stage_runs_first_and_starts_the_fine_one(tmp_path):
    _, log = texture.run(image="brick", size=48, iters=5, scales="24", scale_iters=4, pyramid=2, layers=L4,
                         out=str(tmp_path / "t.png"), **QUIET)
    assert log["status"] == "done"
    (stage,) = log["scales"]
    assert stage["size"] == 24 and stage["shape"] == [24, 24] and stage["iterations"] == 4
    assert {"style:relu1_1", "style:relu1_1@1"} <= set(log["weighting_factors"])
    # the fine stage starts from the upsampled coarse result, not from white noise: its Gram
    # error at the start is far below white noise's
    assert log["start_gram_error"]["total"] < log["baselines"]["white_noise"]["gram_error"]["total"] / 10


@pytest.mark.parametrize("size, want", [(24, []), (32, [16]), (64, [32]), (128, [64]), (200, [50, 100]),
                                         (256, [64, 128]), (512, [64, 128, 256])])
def test_halves_halve_down_to_64_px_and_match_half_up_to_128(size, want):
    assert scales.halves(size) == want
    if size <= 128:
        assert want == ([size // 2] if size // 2 >= 16 else [])


def test_texture_with_halves(tmp_path):
    _, log = texture.run(image="brick", size=48, iters=2, scales="halves", scale_iters=2, layers=L4,
                         out=str(tmp_path / "t.png"), **QUIET)
    assert [s["size"] for s in log["scales"]] == [24] and log["status"] == "done"


def test_style_with_half_scale(tmp_path):
    _, log = style.run(content="chelsea", style=["ihc"], size=64, iters=3, scales="half", scale_iters=2,
                       out=str(tmp_path / "s.png"), **QUIET)
    assert [s["size"] for s in log["scales"]] == [32] and log["status"] == "done"


@pytest.mark.parametrize("opts, words", [
    ({"scales": "64"}, "increasing sizes between 16 and --size"),
    ({"scales": "32,24"}, "increasing sizes"),
    ({"scales": "big"}, "comma-separated sizes"),
    ({"pyramid": 0}, "--pyramid must be"),
    ({"scale_iters": 0, "scales": "24"}, "--scale-iters must be"),
    ({"pyramid": 4, "size": 32, "pinned_layers": "keep"}, "pyramid level 3"),
])
def test_bad_multiscale_options_are_user_errors(tmp_path, opts, words):
    kw = {"size": 48, "iters": 2, "layers": L4, "scales": "none", **opts}
    with pytest.raises(UserError, match=words):
        texture.run(image="brick", out=str(tmp_path / "t.png"), **kw, **QUIET)


def test_ctrl_c_in_a_coarse_stage_saves_its_result(tmp_path, monkeypatch):
    real = Objective.value_and_grad
    calls = {"n": 0}

    def interrupting(self, x):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(Objective, "value_and_grad", interrupting)
    img, log = texture.run(image="brick", size=48, iters=5, scales="24", scale_iters=10,
                           out=str(tmp_path / "t.png"), **QUIET)
    assert log["status"] == "interrupted" and img.shape == (24, 24, 3)
    assert (tmp_path / "t.png").exists() and (tmp_path / "t.json").exists()
    assert np.array_equal(image.load_image(tmp_path / "t.png"), np.round(img).astype(np.float32))


def test_a_pyramid_level_too_small_for_a_layer_leaves_it_out_when_pinned_layers_drop(tmp_path):
    """At 32 px, level 3 is 4x4 px: too small for relu2_1 and beyond and a layout pin for
    relu1_1 (16 positions, 64 channels): the whole level is left out and said so, not refused."""
    _, log = texture.run(image="brick", out=str(tmp_path / "t.png"), size=32, iters=2, layers=L4, scales="none",
                         pyramid=4, **QUIET)
    assert log["status"] == "done"
    grams = sorted(k for k in log["weighting_factors"] if k.startswith("style:"))
    assert grams == ["style:relu1_1", "style:relu1_1@1", "style:relu1_1@2", "style:relu2_1"]
    assert log["pinned_layers"]["3"] == L4.split(",")
