"""bench.texture_levers --diversity: the copy score between seeds' results and between held-out crops."""
import numpy as np

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
