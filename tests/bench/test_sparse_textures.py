"""bench.sparse_textures: the two sparse test textures are what their docstring says."""
import numpy as np
from PIL import Image

from bench import sparse_textures


def test_sparse_texture_is_mostly_black_with_bright_points_and_the_same_every_run():
    a = sparse_textures.sparse_texture(seed=3, count=60, colour=True, size=64)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, sparse_textures.sparse_texture(seed=3, count=60, colour=True, size=64))
    grey = a.mean(axis=2)
    assert np.median(grey) < 10 and grey.max() > 100        # a black ground, bright spots
    assert a.std(axis=2).mean() > 0                         # tinted


def test_grey_texture_is_exactly_grey_with_its_spot_where_the_seed_puts_it():
    g = sparse_textures.sparse_texture(seed=4, count=1, colour=False, size=32)
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()
    rng = np.random.default_rng(4)   # the first draw is the spot's centre
    y, x = rng.uniform(0, 32, 2)
    peak = np.unravel_index(np.argmax(g[..., 0]), g.shape[:2])
    assert abs(peak[0] - y) <= 1.5 and abs(peak[1] - x) <= 1.5


def test_main_writes_both_textures_and_never_replaces_a_file(tmp_path, capsys):
    assert sparse_textures.main([str(tmp_path / "tex")]) == 0
    for name in sparse_textures.TEXTURES:
        img = np.asarray(Image.open(tmp_path / "tex" / f"{name}.png"))
        assert img.shape == (sparse_textures.SIZE, sparse_textures.SIZE, 3)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "snow.png").write_bytes(b"the user's own")
    assert sparse_textures.main([str(mine)]) == 2
    assert "snow.png already exists: give an empty or new folder" in capsys.readouterr().err
    assert (mine / "snow.png").read_bytes() == b"the user's own" and not (mine / "synthstars.png").exists()
