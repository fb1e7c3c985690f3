"""bench.style_levers --summary: ratios to Gatys' frontier at equal content error, the photo as floor."""
import csv

from bench import style_levers


def _write(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(style_levers.COLUMNS)
        for pair, config, cw, seed, content, style in rows:
            w.writerow([pair, config, cw, seed, content, style, 0.1, 1.0, 5, 2, 10])


def test_summary_interpolates_gatys_at_the_configs_content_error(tmp_path):
    path = tmp_path / "style.csv"
    _write(path, [("c/s", "unstyled_photo", "", 0, 0, 3.0),
                  ("c/s", "gatys", 1, 0, 0.4, 0.5), ("c/s", "gatys", 10, 0, 0.1, 1.0),
                  ("c/s", "default", 30, 0, 0.1, 2.0), ("c/s", "default", 30, 1, 0.2, 4.0),
                  ("c/s", "default", 30, 2, 0.4, 1.0),
                  ("c/s", "far", 30, 0, 0.01, 2.0),
                  ("c/s", "part", 30, 0, 0.01, 2.0), ("c/s", "part", 30, 1, 0.1, 3.0)])
    lines = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[1:-1]]
             for line in style_levers.summary(path).splitlines()[2:]}
    d = lines["default"]
    assert d[3] == "3" and d[4] == "0.2 [0.1-0.4]" and d[5] == "2 [1-4]"
    # Gatys at 0.2 on the log-log line from (0.1, 1.0) to (0.4, 0.5): 1 / sqrt(2); ratios 2, 5.66, 2
    assert d[6] == "2 [2-5.66]"
    assert d[9] == "1 of 3"                     # style 4.0 above the photo's 3.0
    assert lines["far"][6] == "beyond Gatys' sweep" and lines["gatys"][6] == "1"
    assert lines["part"][6] == "3 (1 of 2 within Gatys' sweep)"


def test_frontiers_read_each_sweep_at_gatys_content_errors(tmp_path):
    path = tmp_path / "style.csv"
    _write(path, [("c/s", "unstyled_photo", "", 0, 0, 3.0),
                  ("c/s", "gatys", 1, 0, 0.4, 0.5), ("c/s", "gatys", 10, 0, 0.1, 1.0),
                  # seed 0: (0.05, 4) .. (0.4, 1); at 0.1 the log-log line gives 4 * 2^(-2/3)
                  ("c/s", "lever", 10, 0, 0.4, 1.0), ("c/s", "lever", 100, 0, 0.05, 4.0),
                  # seed 1: exactly twice Gatys' at both of his points
                  ("c/s", "lever", 10, 1, 0.4, 1.0), ("c/s", "lever", 100, 1, 0.1, 2.0),
                  ("c/s", "short", 10, 0, 0.2, 1.0), ("c/s", "short", 100, 0, 0.15, 2.0),
                  ("c/s", "one", 30, 0, 0.1, 1.0)])
    lines = style_levers.frontiers(path).splitlines()
    assert lines[0] == "| config | c/s at 0.1 | c/s at 0.4 |"
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in lines[2:]}
    assert rows["lever"] == [f"{(4 * 2 ** (-2 / 3) + 2) / 2:.3g} [2-{4 * 2 ** (-2 / 3):.3g}]", "2 [2-2]"]
    assert "short" not in rows and "one" not in rows      # no sweep reaches Gatys' points / no sweep at all


def test_figure_draws_a_row_per_pair_and_says_what_is_missing(tmp_path):
    import argparse

    import numpy as np
    import pytest
    from PIL import Image

    _write(tmp_path / "style.csv", [("coffee/s", "default", 15, 0, 0.1, 2.0)])
    tile = np.full((16, 32, 3), 128, np.uint8)
    for name in ("s_style_seen.png", "s_style_heldout.png", "coffee_s_default_cw15_s0.png"):
        Image.fromarray(tile).save(tmp_path / name)
    a = argparse.Namespace(out=str(tmp_path), seeds="0", size=32, pairs="coffee:s", content=None, style=None,
                           figure=str(tmp_path / "fig.png"), figure_cells="default@15")
    with Image.open(style_levers.figure(a)) as im:
        assert im.size[0] > 4 * 96 and im.size[1] > 96      # four cells, enlarged to 96 px
    a.figure_cells = "default@15,gatys@3"
    with pytest.raises(SystemExit, match="no gatys at alpha 3, seed 0, for coffee/s"):
        style_levers.figure(a)


def test_tables_of_a_missing_csv_are_a_one_line_error(tmp_path):
    import pytest

    for table in (style_levers.summary, style_levers.frontiers):
        with pytest.raises(SystemExit, match="no .*style.csv: run the configurations"):
            table(tmp_path / "style.csv")
