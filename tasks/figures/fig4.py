"""fig4: convergence: the loss and the relative feature error against the iteration
(relu5_1 by default), ranVGG vs trained: a line plot; the curves are in curves.csv."""
from __future__ import annotations

from . import common, plots
from .fig1 import COLUMNS  # noqa: F401

TITLE = "Convergence"
DEFAULTS = {"image": "coffee", "layers": "relu5_1", "nets": "ranvgg", "seeds": "0"}


def specs(o) -> list:
    return common.inversion_specs(o)


def report(o, results, out):
    rows = results.ordered_rows()

    def draw():
        series = {}
        for r in rows:
            pts = results.curve(r["key"])
            first = pts[0]["loss"] if pts else 1.0
            series[f"{r['net']} s{r['seed']} {r['layer']}"] = [
                {**p, "loss / first loss": p["loss"] / first} for p in pts]
        return plots.lines(series, ["loss / first loss", "feature_error"], out / "fig4.png",
                           f"{TITLE}: {common.name_of(o.image)}, {o.size} px")

    notes = []
    plots.draw(notes, draw)
    summary = common.table(rows, ["net", "layer"], ["feature_error", "psnr", "ssim"])
    return summary, notes
