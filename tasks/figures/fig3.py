"""fig3: variation over networks: per layer, the spread of PSNR / SSIM / feature error over
--seeds for plain random nets and for ranVGG, one trained row; box plots."""
from __future__ import annotations

from . import common, plots
from .fig1 import COLUMNS  # noqa: F401  (same measures as fig1)

TITLE = "Variation over networks"
DEFAULTS = {"image": "coffee", "layers": "pool1,pool3,pool5", "nets": "ranvgg,random", "seeds": "0-2"}


def specs(o) -> list:
    common.check_sizes(o, o.layers)
    return common.inversion_specs(o)


def report(o, results, out):
    rows = results.ordered_rows()
    notes = []
    plots.draw(notes, lambda: plots.boxes(
        rows, "layer", "net", ["psnr", "ssim", "feature_error"], out / "fig3.png",
        f"{TITLE}: {common.name_of(o.image)}, {o.size} px, {o.iters} it, seeds {o.seeds_text}"))
    summary = common.table(rows, ["net", "layer"], ["psnr", "ssim", "feature_error"])
    return summary, notes
