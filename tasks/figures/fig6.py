"""fig6: style grid: contents x styles, the ranVGG row vs the trained row, with their scores in
an independent random VGG-19 and (with --trained) the trained one; the unstyled content image is
the free baseline."""
from __future__ import annotations

from ..pipeline import inputs
from . import common, grid

TITLE = "Style transfer"
DEFAULTS = {"image": "chelsea", "styles": "ihc,brick", "nets": "ranvgg", "seeds": "0"}
COLUMNS = ["key", "task", "net", "arch", "seed", "image", "style", "size", "content_error", "style_error",
           "content_error_random_judge", "style_error_random_judge", "content_error_trained_judge",
           "style_error_trained_judge", "iterations", "seconds", "status"]


def specs(o) -> list:
    out = []
    for content in o.images:
        for st in o.styles:
            st = common.image_arg(st)
            for net in common.nets_with_trained(o, o.nets):
                for seed in (o.seeds[:1] if net == "trained" else o.seeds):
                    out.append(common.spec(o, "style", net, seed, content, "", style=st))
            out.append(common.spec(o, "baseline", "content", o.seeds[0], content, "", style=st, kind="style"))
    return out


def report(o, results, out):
    rows = results.ordered_rows()
    cells, labels = [], []
    for content in o.images:
        for net in common.nets_with_trained(o, o.nets) + ["content"]:
            row = [inputs.read(content, o.size)]
            for st in o.styles:
                r = common.find(rows, net=net, image=common.image_arg(content), style=common.image_arg(st))
                row.append((out / "runs" / f"{r['key']}.png", _caption(r)) if r else None)
            cells.append(row)
            labels.append(f"{common.name_of(content)}: {net if net != 'content' else 'unstyled'}")
    path = grid.draw(cells, labels, ["content"] + [common.name_of(s) for s in o.styles], out / "fig6.png",
                     f"{TITLE}, {o.size} px, {o.iters} it; caption: style / content error in a random (r) "
                     "or trained (t) VGG-19")
    cols = ["style_error_random_judge", "content_error_random_judge"]
    if o.trained:
        cols += ["style_error_trained_judge", "content_error_trained_judge"]
    summary = common.table([dict(r, style=common.name_of(r["style"])) for r in rows], ["image", "style", "net"],
                           cols, ("median",))
    return summary, [f"wrote {path}"]


def _caption(r) -> str:
    t = r.get("style_error_trained_judge")
    s = f"r {r['style_error_random_judge']:.2g}/{r['content_error_random_judge']:.2g}"
    return s + (f" t {t:.2g}/{r['content_error_trained_judge']:.2g}" if isinstance(t, float) else "")
