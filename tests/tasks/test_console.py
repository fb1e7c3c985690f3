"""tasks/console.py: quiet unless speaking, progress as a bar (terminal) or lines, and every
line a run prints fits in 80 columns."""
import re

import pytest

from tasks.cli import console
from tasks import stack, style


def lines_of(text):
    """Lines as a terminal shows them: tqdm redraws with carriage returns."""
    return [l for chunk in text.split("\n") for l in chunk.split("\r")]


def test_style_run_prints_within_80_columns(tmp_path, capsys):
    """Style matches 7 terms: its progress lines were 217 columns wide."""
    assert style.main(["--device", "cpu", "--size", "32", "--iters", "3", "--print-every", "1",
                       "--out", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    progress = [l for l in out.splitlines() if l.startswith("iter ")]
    assert len(progress) == 3 and all("ETA" in l and "content" in l and "style" in l for l in progress)
    assert max(map(len, lines_of(out))) <= 80, max(lines_of(out), key=len)


def test_stack_shows_overall_progress_with_eta(tmp_path, capsys):
    out_file = tmp_path / "st.json"
    assert stack.main(["--device", "cpu", "--size", "32", "--iters", "2", "--candidates", "2",
                       "--top", "conv1_2", "--out", str(out_file), "--save-weights", str(tmp_path / "st.npz")]) == 0
    out = capsys.readouterr().out
    tries = [l for l in out.splitlines() if l.startswith("[")]
    assert [l.split()[0] for l in tries] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]  # across both layers
    assert all("ETA" in l for l in tries) and "conv1_2 cand. 1" in tries[-1]
    assert "about 80 MB" in out and max(map(len, lines_of(out))) <= 80


def test_quiet_prints_nothing(capsys):
    bar = console.Progress(5, every=1)
    for n in range(1, 6):
        bar.step(n, "loss 1")
    console.say("hello")
    assert capsys.readouterr() == ("", "")


def test_lines_every_n_and_at_the_end(capsys):
    with console.speaking():
        bar = console.Progress(7, every=3, bar=False)
        for n in range(1, 8):
            bar.step(n, "loss 1.0e+00", "a 1 b 2")
    shown = [l.split()[1] for l in capsys.readouterr().out.splitlines()]
    assert shown == ["3/7", "6/7", "7/7"]


def test_long_detail_is_dropped_not_wrapped(capsys):
    with console.speaking():
        console.Progress(10, every=1, bar=False).step(1, "loss 1.0e+00", "x" * 90)
    line = capsys.readouterr().out.rstrip("\n")
    assert len(line) <= 80 and "xxx" not in line and "ETA" in line


def test_bar_on_a_terminal_has_an_eta(capsys):
    pytest.importorskip("tqdm", reason="tqdm (the progress extra) draws the bar")
    with console.speaking():
        bar = console.Progress(4, every=1, bar=True)
        for n in range(1, 5):
            bar.step(n, "loss 2.0e+00")
        bar.close()
    out = capsys.readouterr().out
    assert re.search(r"4/4 \[\d\d:\d\d<\d\d:\d\d", out) and "loss 2.0e+00" in out  # elapsed<remaining
    assert max(map(len, lines_of(out))) <= 80


def test_say_wraps_to_80_columns_but_keeps_paths_whole(capsys):
    path = "/a/" + "p" * 90
    with console.speaking():
        console.say("word " * 40 + path)
    lines = capsys.readouterr().out.splitlines()
    assert all(len(l) <= 80 for l in lines if path not in l) and any(path in l for l in lines)
    assert len(lines) >= 3 and all(l.startswith("  ") for l in lines[1:])
