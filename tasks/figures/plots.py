"""Box and line plots with matplotlib, an optional extra: without it the figure's CSV and
summary are still written, and the caller reports one line saying why the plot is missing."""
from __future__ import annotations

from pathlib import Path


def available() -> str | None:
    """None when matplotlib can be used, else the one-line reason."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
    except ImportError:
        from ..cli.console import install_hint
        return (f"matplotlib is not installed ({install_hint('plots', 'matplotlib')}): plots skipped, "
                "the CSV and summary are written")
    return None


def draw(notes: list, make) -> None:
    """Call ``make()`` (which draws a plot and returns its path) when matplotlib can be used and
    note the path written; otherwise note why the plot is missing."""
    why = available()
    notes.append(why if why else f"wrote {make()}")


def boxes(rows, x: str, group: str, metrics: list, path: Path, title: str = "") -> Path:
    """One panel per metric: for each value of ``x`` (e.g. the layer), a box per ``group``
    (e.g. the net) over the rows (e.g. the seeds)."""
    import matplotlib.pyplot as plt

    xs = list(dict.fromkeys(r[x] for r in rows))
    groups = list(dict.fromkeys(r[group] for r in rows))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    width = 0.8 / max(len(groups), 1)
    for ax, m in zip(axes[0], metrics):
        for j, g in enumerate(groups):
            data = [[r[m] for r in rows if r[x] == v and r[group] == g and isinstance(r.get(m), (int, float))]
                    for v in xs]
            pos = [i + (j - (len(groups) - 1) / 2) * width for i in range(len(xs))]
            keep = [(p, d) for p, d in zip(pos, data) if d]
            if keep:
                bp = ax.boxplot([d for _, d in keep], positions=[p for p, _ in keep], widths=width * 0.9,
                                patch_artist=True, manage_ticks=False)
                for box in bp["boxes"]:
                    box.set_facecolor(f"C{j}")
                    box.set_alpha(0.6)
            ax.plot([], [], color=f"C{j}", lw=6, alpha=0.6, label=g)
        ax.set_xticks(range(len(xs)), xs)
        ax.set_title(m)
        if m == "feature_error":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    return _save(fig, axes, path, title)


def lines(series: dict, panels: list, path: Path, title: str = "") -> Path:
    """series: {label: [{"iteration": i, panel: value, ...}, ...]}; one log-scale panel each."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
    for ax, p in zip(axes[0], panels):
        for j, (label, pts) in enumerate(series.items()):
            pts = [c for c in pts if isinstance(c.get(p), (int, float))]
            ax.plot([c["iteration"] for c in pts], [c[p] for c in pts], color=f"C{j % 10}", label=label)
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(p)
        ax.grid(alpha=0.3)
    return _save(fig, axes, path, title)


def _save(fig, axes, path: Path, title: str) -> Path:
    """Legend in the first panel, the title, then write and free the figure."""
    import matplotlib.pyplot as plt

    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)
