"""quality: textures and styles judged against held-out crops (engine.judge, docs/quality.md).

Each texture is read with its longer side --exemplar-size (default 3 x --size) and cut into
disjoint --size tiles: every method synthesises from the first tile; the judge compares the
result with the others. Each style pair ``content:style`` uses the first half of the style image
(read at --size) for the transfer and judges against the second, over a sweep of content
weights (--content-weights), so that methods are compared at equal content error.

Methods: --nets (ranvgg: the texture/style command's default net; random: a plain draw) and,
with --trained FILE.npz, Gatys et al. on the trained VGG-19; every method over --seeds (style:
the first seed). Judges: the trained VGG-19 (with --trained) and an independent random VGG-19.

results.csv holds the runs (the judged columns are filled when the summary is written; the
``*_same_crop`` columns are the Gram error against the very crop the method saw, which is what
Gatys et al. minimise, not a fair score); yardsticks.csv the natural crops, a copy of the
synthesis crop, shuffled pixels and white noise, and for each style pair the unstyled photo and
the photo recoloured toward the style half (``RECOLOURED``: a fraction t of the way to its mean
and covariance, no network); the grids and the style frontier plot.
"""
from __future__ import annotations

import csv
import itertools
import statistics
from pathlib import Path

import numpy as np

from engine import judge as judging
from engine.errors import UserError
from engine.io import image

from ..pipeline import inputs
from .. import texture
from . import common, grid, nets, plots

TITLE = "Quality on held-out crops"
DEFAULTS = {"image": "gravel,brick", "pairs": "chelsea:ihc", "nets": "ranvgg,random", "seeds": "0-1",
            "content_weights": "1,10,100"}
JUDGES = ("trained", "random")
COLUMNS = (["key", "task", "net", "arch", "seed", "image", "style", "content_weight", "size"]
           + [f"distance_{j}" for j in JUDGES] + ["copy_score"]
           + [f"content_error_{j}" for j in JUDGES]
           + ["gram_error_random_judge_same_crop", "gram_error_trained_judge_same_crop",
              "style_error_random_judge_same_crop", "style_error_trained_judge_same_crop",
              "iterations", "seconds", "status"])
YARDSTICKS = ("nature", "copy", "shuffled", "white_noise")
# Gatys et al. on the trained rows, every option the commands' defaults (chosen for the random
# nets) would change pinned: Gram terms alone at relu1_1..relu5_1, every layer kept, no colour or
# centred statistics, no long-range terms, no colour transfer. Texture: after the coarse stages
# like every texture run; style: content at relu4_2, no total variation, one scale, the photo's
# own colours.
GATYS_TEXTURE = {"pinned_layers": "keep", "pixel_stats": "none", "feature_stats": "gram", "colour_transfer": False,
                 "shifts": "none"}
GATYS_STYLE = {"content_layer": judging.CONTENT_LAYER, "style_layers": ",".join(judging.STYLE_LAYERS), "tv_weight": 0.0,
               "pinned_layers": "keep", "pixel_stats": "none", "feature_stats": "gram", "scales": "none",
               "content_level": 0, "colour_first": 0.0, "shifts": "none"}
RECOLOURED = (0.25, 0.5, 1.0)   # the recoloured-photo baseline's fractions (style pairs)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def expand(images) -> list:
    """Image specs with each folder replaced by the image files in it (sorted)."""
    out = []
    for spec in images:
        p = Path(spec)
        if p.is_dir():
            files = sorted(str(f) for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise UserError(f"--images {spec}: no image files in that folder")
            out += files
        else:
            out.append(spec)
    return out


def pairs(o) -> list:
    """[(content, style)] from "content:style,content:style" ("none": textures only)."""
    out = []
    if str(o.pairs).strip() == "none":
        return out
    for item in common_list(o.pairs):
        content, sep, style = item.partition(":")
        if not sep or not content or not style:
            raise UserError(f"--pairs takes CONTENT:STYLE,... (files or sample names), got {item!r}")
        out.append((content, style))
    return out


def common_list(spec) -> list:
    return [s.strip() for s in str(spec or "").split(",") if s.strip()]


def _crop_dir(o) -> Path:
    d = Path(o.out) / "exemplars"
    d.mkdir(parents=True, exist_ok=True)
    return d


def texture_split(o, img_spec) -> dict:
    """split_exemplar of the texture read at --exemplar-size."""
    return judging.split_exemplar(inputs.read(img_spec, o.exemplar_size), o.size)


def style_split(o, style_spec) -> dict:
    """split_style of the style image read at --size (each half as the style command reads it)."""
    return judging.split_style(inputs.read(style_spec, o.size))


def _write_crops(o) -> dict:
    """{("texture" or "style", image spec): path of its synthesis crop}, the crops written under
    OUT/exemplars (one image may be both a texture and a style)."""
    d, out = _crop_dir(o), {}
    for img in o.images:
        name = common.name_of(img)
        split = texture_split(o, img)
        out["texture", img] = _save(d / f"{name}_synthesis.png", split["synthesis"])
        for k, h in enumerate(split["held_out"]):
            _save(d / f"{name}_held_out{k}.png", h)
    for _, st in pairs(o):
        split = style_split(o, st)
        out["style", st] = _save(d / f"{common.name_of(st)}_style_synthesis.png", split["synthesis"])
        _save(d / f"{common.name_of(st)}_style_held_out.png", split["held_out"][0])
    return out


def _save(path: Path, img) -> str:
    image.save_png(path, img)
    return str(path.resolve())


def methods(o) -> list:
    return common.nets_with_trained(o, o.nets)


def specs(o) -> list:
    crops = _write_crops(o)
    out = []
    for img in o.images:
        for net in methods(o):
            for seed in o.seeds:
                s = common.spec(o, "texture", net, seed, crops["texture", img], texture.LAYERS, label="texture",
                                **({"options": dict(GATYS_TEXTURE)} if net == "trained" else {}))
                s.update(source=img, judge_suffix="_same_crop")
                out.append(s)
    for content, st in pairs(o):
        for net in methods(o):
            for w in o.content_weights:
                s = common.spec(o, "style", net, o.seeds[0], content, "", style=crops["style", st],
                                options={"content_weight": w, **(GATYS_STYLE if net == "trained" else {})},
                                label=f"cw{w:g}")
                s.update(source=st, content_weight=w, judge_suffix="_same_crop")
                out.append(s)
    return out


def _judges(o) -> dict:
    out = {"random": nets.judge("random", None, o.device)}
    if o.trained:
        out = {"trained": nets.judge("trained", o.trained, o.device), **out}
    return out


def _img(out: Path, key: str) -> np.ndarray:
    return image.load_image(out / "runs" / f"{key}.png")


def judge_rows(o, results, out: Path):
    """Fill the judged columns of every finished run; returns (rows, yardstick rows, diversity rows)."""
    js = _judges(o)
    rows = results.ordered_rows()
    by_key = {s["key"]: s for s in results.specs}
    yard, div = [], []
    for img in o.images:
        split = texture_split(o, img)
        name = common.name_of(img)
        base = judging.texture_report(split["synthesis"], split, js)
        for y in YARDSTICKS:
            yr = {"image": name, "method": y}
            for j in js:
                yr[f"distance_{j}"] = base["distance"][j][y]
            yr["copy_score"] = {"nature": base["copy_score"]["nature"], "copy": 1.0}.get(
                y, judging.copy_score(_yardstick_img(split, y), split["synthesis"]))
            if y == "nature":
                for j in js:
                    yr[f"distance_{j}_min"] = min(base["distance"][j]["nature_all"])
                    yr[f"distance_{j}_max"] = max(base["distance"][j]["nature_all"])
            yard.append(yr)
        for r in rows:
            spec = by_key[r["key"]]
            if spec["task"] != "texture" or spec.get("source") != img:
                continue
            res = _img(out, r["key"])
            for j, net in js.items():
                r[f"distance_{j}"] = judging.texture_distance(net, res, split["held_out"])
            r["copy_score"] = judging.copy_score(res, split["synthesis"])
        for net in methods(o):
            mine = [r for r in rows if by_key[r["key"]]["task"] == "texture"
                    and by_key[r["key"]].get("source") == img and r["net"] == net]
            scores = [judging.copy_score(_img(out, a["key"]), _img(out, b["key"]))
                      for a, b in itertools.combinations(mine, 2)]
            if scores:
                div.append({"image": name, "method": net, "diversity": statistics.median(scores), "pairs": len(scores)})
    for content, st in pairs(o):
        split = style_split(o, st)
        c_img = inputs.read(content, o.size)
        unstyled = {"image": common.name_of(content), "style": common.name_of(st), "method": "unstyled"}
        for j, net in js.items():
            s = judging.style_scores(net, c_img, c_img, split["held_out"])
            unstyled[f"distance_{j}"], unstyled[f"content_error_{j}"] = s["style"], s["content"]
        yard.append(unstyled)
        for t in RECOLOURED:   # the free baseline: the photo's colours moved toward the style half's
            recoloured = {"image": common.name_of(content), "style": common.name_of(st), "method": f"recoloured photo t={t:g}"}
            shifted = image.recolour(c_img, [split["synthesis"]], t)
            for j, net in js.items():
                s = judging.style_scores(net, shifted, c_img, split["held_out"])
                recoloured[f"distance_{j}"], recoloured[f"content_error_{j}"] = s["style"], s["content"]
            yard.append(recoloured)
        for r in rows:
            spec = by_key[r["key"]]
            if spec["task"] != "style" or spec.get("source") != st or spec["image"] != common.image_arg(content):
                continue
            res = _img(out, r["key"])
            for j, net in js.items():
                s = judging.style_scores(net, res, c_img, split["held_out"])
                r[f"distance_{j}"], r[f"content_error_{j}"] = s["style"], s["content"]
    for r in rows:     # back into results.csv
        results.rows[r["key"]].update({k: v for k, v in r.items() if k.startswith(("distance_", "content_error_", "copy_score"))})
    results._write()
    return rows, yard, div


def _yardstick_img(split, y):
    from engine import metrics
    if y == "shuffled":
        return metrics.shuffled_pixels(split["synthesis"], 0)
    return metrics.white_noise_like(split["synthesis"], 0)


def report(o, results, out):
    rows, yard, div = judge_rows(o, results, out)
    js = list(_judges(o))
    notes = []
    _write_csv(out / "yardsticks.csv", yard)
    _write_csv(out / "diversity.csv", div)
    by_key = {s["key"]: s for s in results.specs}
    tex = [dict(r, image=common.name_of(by_key[r["key"]]["source"]), method=r["net"])
           for r in rows if r["task"] == "texture"]
    parts = []
    if tex:
        parts.append(texture_table(tex, yard, div, js))
        notes.append(f"wrote {draw_textures(o, results, out)}")
    sty = [dict(r, image=common.name_of(r["image"]), style=common.name_of(by_key[r["key"]]["source"]), method=r["net"])
           for r in rows if r["task"] == "style"]
    if sty:
        parts.append(style_table(sty, yard, js))
        notes.append(f"wrote {draw_styles(o, results, out)}")
        why = plots.available()
        if why:
            notes.append(why)
        else:
            notes.append(f"wrote {frontier_plot(sty, yard, js, out / 'frontier.png')}")
    return "\n\n".join(parts), notes


def _write_csv(path: Path, rows: list) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})


def _med(vals):
    vals = [v for v in vals if isinstance(v, (int, float)) and np.isfinite(v)]
    return statistics.median(vals) if vals else float("nan")


def _f(v) -> str:
    return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3g}"


def texture_table(tex, yard, div, js) -> str:
    """Per image: each method's medians over seeds, then the yardsticks."""
    head = ["image", "method", "n"] + [f"held-out distance ({j} net)" for j in js] + ["copy score", "diversity"]
    lines = ["Textures: median over seeds; held-out distance = relative Gram error relu1_1..relu4_1 to the "
             "held-out crops (mean); copy score = max normalised cross-correlation with the synthesis crop; "
             "diversity = the same between two seeds' results. Nature = each held-out crop against the others "
             "(median [min-max]).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in dict.fromkeys(r["image"] for r in tex):
        for m in dict.fromkeys(r["method"] for r in tex if r["image"] == name):
            rs = [r for r in tex if r["image"] == name and r["method"] == m]
            d = next((x["diversity"] for x in div if x["image"] == name and x["method"] == m), None)
            lines.append("| " + " | ".join([name, m, str(len(rs))] + [_f(_med(r.get(f"distance_{j}") for r in rs)) for j in js]
                                           + [_f(_med(r.get("copy_score") for r in rs)), _f(d)]) + " |")
        for y in (y for y in yard if y["image"] == name and "style" not in y):
            cells = []
            for j in js:
                c = _f(y.get(f"distance_{j}"))
                if y["method"] == "nature":
                    c += f" [{_f(y[f'distance_{j}_min'])}-{_f(y[f'distance_{j}_max'])}]"
                cells.append(c)
            lines.append("| " + " | ".join([name, f"*{y['method']}*", ""] + cells + [_f(y.get("copy_score")), ""]) + " |")
    return "\n".join(lines)


def style_table(sty, yard, js) -> str:
    """Per pair and method: content and held-out style error per content weight; then each
    method's style error interpolated at the others' content errors."""
    lines = []
    for j in js:
        head = ["content", "style", "method", "content weight", f"content error ({j} relu4_2)",
                f"held-out style distance ({j})", "style distance same crop (Gatys' objective)",
                "the other methods' held-out style distance at this content error (interpolated)"]
        lines += [f"Style, judged in the {j} net:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for pair in dict.fromkeys((r["image"], r["style"]) for r in sty):
            rs = [r for r in sty if (r["image"], r["style"]) == pair]
            fronts = {m: [(r[f"content_error_{j}"], r[f"distance_{j}"]) for r in rs if r["method"] == m]
                      for m in dict.fromkeys(r["method"] for r in rs)}
            for r in rs:
                at = "; ".join(f"{m} {_f(judging.style_at(pts, r[f'content_error_{j}']))}"
                               for m, pts in fronts.items() if m != r["method"])
                same = r.get(f"style_error_{j}_judge_same_crop")
                lines.append("| " + " | ".join([pair[0], pair[1], r["method"], f"{r['content_weight']:g}",
                                                _f(r[f"content_error_{j}"]), _f(r[f"distance_{j}"]), _f(same), at]) + " |")
            for u in (y for y in yard if y.get("style") == pair[1] and y["image"] == pair[0]):
                name = "unstyled photo" if u["method"] == "unstyled" else f"{u['method']} (no network)"
                lines.append("| " + " | ".join([pair[0], pair[1], f"*{name}*", "", _f(u[f"content_error_{j}"]),
                                                _f(u[f"distance_{j}"]), "", ""]) + " |")
        lines.append("")
    return "\n".join(lines)


def draw_textures(o, results, out) -> Path:
    """Rows: image x seed; columns: synthesis crop | each method | a held-out crop."""
    cells, labels = [], []
    ms = methods(o)
    rows = {r["key"]: r for r in results.ordered_rows()}
    for img in o.images:
        split = texture_split(o, img)
        for seed in o.seeds:
            row = [split["synthesis"]]
            for m in ms:
                s = next((s for s in results.specs if s["task"] == "texture" and s.get("source") == img
                          and s["net"] == m and s["seed"] == seed), None)
                r = rows.get(s["key"]) if s else None
                row.append((out / "runs" / f"{r['key']}.png", _caption(r)) if r else None)
            row.append(split["held_out"][0])
            cells.append(row)
            labels.append(f"{common.name_of(img)} s{seed}")
    return grid.draw(cells, labels, ["synthesis crop"] + ms + ["held-out crop"], out / "textures.png",
                     f"Textures, {o.size} px, {o.iters} it; caption: held-out distance trained (t) / random (r), copy score (c)")


def _caption(r) -> str:
    parts = []
    for j, k in (("trained", "t"), ("random", "r")):
        if isinstance(r.get(f"distance_{j}"), float):
            parts.append(f"{k} {r[f'distance_{j}']:.2g}")
    if isinstance(r.get("copy_score"), float):
        parts.append(f"c {r['copy_score']:.2f}")
    return " ".join(parts)


def draw_styles(o, results, out) -> Path:
    """Rows: pair x content weight; columns: content | style (seen) | each method | held-out style."""
    cells, labels = [], []
    ms = methods(o)
    rows = {r["key"]: r for r in results.ordered_rows()}
    for content, st in pairs(o):
        split = style_split(o, st)
        for w in o.content_weights:
            row = [inputs.read(content, o.size), split["synthesis"]]
            for m in ms:
                s = next((s for s in results.specs if s["task"] == "style" and s.get("source") == st and
                          s["image"] == common.image_arg(content) and s["net"] == m and s["content_weight"] == w), None)
                r = rows.get(s["key"]) if s else None
                cap = ""
                if r and isinstance(r.get("distance_trained", r.get("distance_random")), float):
                    j = "trained" if isinstance(r.get("distance_trained"), float) else "random"
                    cap = f"{j[0]} c {r[f'content_error_{j}']:.2g} s {r[f'distance_{j}']:.2g}"
                row.append((out / "runs" / f"{r['key']}.png", cap) if r else None)
            row.append(split["held_out"][0])
            cells.append(row)
            labels.append(f"{common.name_of(content)}/{common.name_of(st)} cw {w:g}")
    return grid.draw(cells, labels, ["content", "style (seen)"] + ms + ["style (held out)"], out / "styles.png",
                     f"Style, {o.size} px, {o.iters} it; caption: content error / held-out style distance")


def frontier_plot(sty, yard, js, path: Path) -> Path:
    """Held-out style distance against content error (log-log), one panel per pair, a line per
    method over its content weights; the unstyled photo as a dashed line, the recoloured photo
    (no network) as a dotted one."""
    import matplotlib.pyplot as plt

    j = js[0]
    pairs_ = list(dict.fromkeys((r["image"], r["style"]) for r in sty))
    fig, axes = plt.subplots(1, len(pairs_), figsize=(4.5 * len(pairs_), 3.6), squeeze=False)
    for ax, pair in zip(axes[0], pairs_):
        rs = [r for r in sty if (r["image"], r["style"]) == pair]
        for k, m in enumerate(dict.fromkeys(r["method"] for r in rs)):
            pts = sorted((r[f"content_error_{j}"], r[f"distance_{j}"], r["content_weight"]) for r in rs if r["method"] == m)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{k}", label=m)
            for c, s, w in pts:
                ax.annotate(f"{w:g}", (c, s), fontsize=7, xytext=(3, 3), textcoords="offset points")
        base = [y for y in yard if y.get("style") == pair[1] and y["image"] == pair[0]]
        for u in (y for y in base if y["method"] == "unstyled"):
            ax.axhline(u[f"distance_{j}"], ls="--", color="grey", label="unstyled photo")
        pts = sorted((y[f"content_error_{j}"], y[f"distance_{j}"]) for y in base if y["method"] != "unstyled")
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], ":", color="grey", label="recoloured photo (no network)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"content error ({j} relu4_2)")
        ax.set_ylabel("held-out style distance")
        ax.set_title(f"{pair[0]} / {pair[1]}")
        ax.grid(alpha=0.3)
    return plots._save(fig, axes, path, f"Style frontier, judged in the {j} net (labels: content weight)")
