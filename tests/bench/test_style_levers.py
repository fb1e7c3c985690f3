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
