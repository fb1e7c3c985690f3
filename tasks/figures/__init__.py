"""The figures of ``ranvgg experiments``: one module per figure, each with

    TITLE, DEFAULTS (image, layers, nets, seeds, ...), COLUMNS (of results.csv),
    specs(options) -> [run spec, ...]      the independent runs (figures/runs.py executes one)
    report(options, results, out) -> (summary Markdown, [notes])   draws the PNG(s)

figures/executor.py runs the specs in-process or on Dask and keeps results.csv; runs.py runs
one spec; nets.py builds the nets a spec names; common.py holds what the figures share (run
keys, layer lists, summary tables); grid.py draws labelled image grids, plots.py the plots.
"""
from . import arch, fig1, fig3, fig4, fig5, fig6, quality

FIGURES = {"fig1": fig1, "fig3": fig3, "fig4": fig4, "fig5": fig5, "fig6": fig6, "arch": arch, "quality": quality}
