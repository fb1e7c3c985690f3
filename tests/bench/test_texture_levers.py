"""bench.texture_levers --diversity: the copy score between seeds' results and between held-out crops."""
import numpy as np
import pytest

from bench import texture_levers
from engine.io import image


def test_diversity_scores_a_shifted_copy_1_and_independent_noise_near_0(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 255, (32, 32, 3)).astype(np.float32)
    image.save_image(str(tmp_path / "tex_same_s0.png"), a)
    image.save_image(str(tmp_path / "tex_same_s1.png"), np.roll(a, (5, 7), axis=(0, 1)))
    for k in range(3):
        image.save_image(str(tmp_path / f"tex_heldout{k}.png"), rng.uniform(0, 255, (32, 32, 3)).astype(np.float32))
    lines = texture_levers.diversity([str(tmp_path)]).splitlines()
    assert lines[0] == "| config | tex |"
    nature = next(line for line in lines if line.startswith("| nature"))
    same = next(line for line in lines if line.startswith("| same "))
    assert same == "| same | 1.00 (1) |"
    assert float(nature.split("|")[2].split()[0]) < 0.3 and "(3)" in nature


def test_out2x_synthesises_twice_the_side_and_judges_its_top_left_piece(tmp_path):
    """The out2x config: a synthesis twice the exemplar's side, saved whole, judged (and saved
    for the figures) on its top-left piece the exemplar's size."""
    import csv

    from engine.vgg import VGG19

    weights = tmp_path / "w.npz"
    VGG19.random(seed=3).save(str(weights))
    src = tmp_path / "tex.png"
    image.save_image(str(src), np.random.default_rng(0).uniform(0, 255, (64, 96, 3)).astype(np.float32))
    out = tmp_path / "run"
    texture_levers.main(["--images", str(src), "--weights", str(weights), "--out", str(out), "--configs", "out2x",
                         "--seeds", "0", "--size", "32", "--iters", "2", "--scale-iters", "1"])
    full = image.load_image(str(out / "tex_out2x_s0_full.png"))
    piece = image.load_image(str(out / "tex_out2x_s0.png"))
    assert full.shape[:2] == (64, 64) and piece.shape[:2] == (32, 32)
    np.testing.assert_array_equal(piece, full[:32, :32])
    with open(out / "levers.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["config"] for r in rows if r["config"] == "out2x"] == ["out2x"]


@pytest.mark.parametrize("key, option, config, value", [
    ("scale_iters", "--scale-iters", "scale_iters100", 100),   # the coarse stages' budget
    ("history", "--history", "history10", 10),                 # the L-BFGS memory
])
def test_an_option_is_the_commands_unless_the_command_line_or_a_config_says(tmp_path, monkeypatch, key, option,
                                                                              config, value):
    """Left out: the texture command's own default reaches the run (texture.run gets nothing);
    given, it does; a config's value (scale_iters100, history10 ...) wins over the command line's."""
    from engine.vgg import VGG19
    from tasks import texture

    weights = tmp_path / "w.npz"
    VGG19.random(seed=3).save(str(weights))
    src = tmp_path / "tex.png"
    image.save_image(str(src), np.random.default_rng(0).uniform(0, 255, (64, 64, 3)).astype(np.float32))
    seen = []

    def run(**kw):
        seen.append(kw.get(key))
        return np.zeros((32, 32, 3), np.float32), {}

    monkeypatch.setattr(texture, "run", run)
    base = ["--images", str(src), "--weights", str(weights), "--seeds", "0", "--size", "32", "--iters", "1"]
    texture_levers.main(base + ["--out", str(tmp_path / "a"), "--configs", "default"])
    texture_levers.main(base + ["--out", str(tmp_path / "b"), "--configs", f"default,{config}", option, "7"])
    assert seen == [None, 7, value]
