"""tasks/plots.py: the loss curve (with matplotlib), a one-line note without it, the contact
sheet of --save-every frames, the stacked build's score plot."""
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.cli import console, plots
from tasks import invert

SMALL = ["--device", "cpu", "--size", "32", "--iters", "4", "--print-every", "0", "--layer", "relu2_1"]
HISTORY = [{"iteration": i, "loss": 10.0 / i, "content:relu2_1": 8.0 / i, "tv": 2.0 / i, "seconds": i}
           for i in range(1, 6)]


@pytest.fixture
def no_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import raises ImportError
    monkeypatch.setattr(plots, "_noted", set())


def test_run_writes_its_loss_plot(tmp_path):
    pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) draws the loss curve")
    out = tmp_path / "r.png"
    assert invert.main(SMALL + ["--out", str(out)]) == 0
    with Image.open(tmp_path / "r_loss.png") as im:
        assert im.format == "PNG" and im.size[0] >= 300
        # not a blank canvas: the curves and labels put dark pixels on it
        assert (np.asarray(im.convert("L")) < 100).mean() > 0.005


def test_loss_plot_has_a_line_per_term(tmp_path):
    pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) draws the loss curve")
    from matplotlib.figure import Figure

    made = []
    real_add = Figure.add_subplot

    def spy(self, *a, **k):
        made.append(real_add(self, *a, **k))
        return made[-1]

    Figure.add_subplot = spy
    try:
        assert plots.loss_curve(tmp_path / "l.png", HISTORY) == tmp_path / "l.png"
    finally:
        Figure.add_subplot = real_add
    ax = made[0]
    assert [l.get_label() for l in ax.get_lines()] == ["total", "content:relu2_1", "tv"]
    assert ax.get_yscale() == "log"


def test_without_matplotlib_a_note_and_no_file(tmp_path, no_matplotlib, capsys):
    out = tmp_path / "r.png"
    assert invert.main(SMALL + ["--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    root = Path(console.__file__).resolve().parents[2]   # a checkout: the extra of this folder
    assert f'note: no loss plot: matplotlib is not installed (pip install "{root}[plots]")' in " ".join(stdout.split())
    assert out.exists() and not (tmp_path / "r_loss.png").exists()
    with console.speaking():  # one note per process, not one per plot
        assert plots.loss_curve(tmp_path / "again.png", HISTORY) is None
    assert "note" not in capsys.readouterr().out


def test_save_every_frames_gathered_in_a_contact_sheet(tmp_path):
    out = tmp_path / "f.png"
    assert invert.main(SMALL + ["--out", str(out), "--save-every", "1", "--iters", "3"]) == 0
    assert [p.name for p in sorted(tmp_path.glob("f_iter*.png"))] == ["f_iter1.png", "f_iter2.png", "f_iter3.png"]
    sheet = np.asarray(Image.open(tmp_path / "f_frames.png").convert("RGB"))
    t = plots.THUMB
    assert sheet.shape[1] > 2 * t and sheet.shape[0] > 2 * t    # 3 frames: a 2 x 2 grid, one cell empty
    frame = np.asarray(Image.open(tmp_path / "f_iter2.png").convert("RGB"))
    cell = sheet[4:4 + t, 4 + t + 4:4 + 2 * t + 4]             # row 0, column 1: iteration 2
    expect = np.asarray(Image.fromarray(frame).resize((t, t), Image.Resampling.NEAREST))
    assert np.array_equal(cell, expect)


def test_contact_sheet_labels_and_grid(tmp_path):
    frames = [(f"iter {i}", np.full((20, 30, 3), 40 * i, np.uint8)) for i in range(1, 6)]
    path = plots.contact_sheet(tmp_path / "s.png", frames)
    sheet = np.asarray(Image.open(path).convert("RGB"))
    assert sheet.shape == (2 * (20 + 14 + 4) + 4, 3 * (30 + 4) + 4, 3)  # 5 frames: 3 columns, 2 rows
    assert (sheet[4:24, 4:34] == 40).all() and (sheet[4 + 38:24 + 38, 4 + 34:34 + 34] == 200).all()


def test_candidate_scores_plot(tmp_path):
    pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) draws the scores")
    layers = {"conv1_1": {"scores": [0.3, 0.2, 0.25], "chosen": 1}, "conv1_2": {"scores": [0.1, 0.12], "chosen": 0}}
    path = plots.candidate_scores(tmp_path / "x_scores.png", layers)
    assert Image.open(path).format == "PNG"
    assert plots.candidate_scores(tmp_path / "none.png", {}) is None


def test_candidate_scores_without_matplotlib(tmp_path, no_matplotlib, capsys):
    with console.speaking():
        assert plots.candidate_scores(tmp_path / "x.png", {"conv1_1": {"scores": [1.0], "chosen": 0}}) is None
    assert "note: no candidate scores plot" in capsys.readouterr().out and not (tmp_path / "x.png").exists()
