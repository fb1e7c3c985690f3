"""What the figure definitions share: run keys and specs, layer lists, summary tables."""
from __future__ import annotations

import re
import statistics
from pathlib import Path

from engine.errors import UserError

POOLS = ["pool1", "pool2", "pool3", "pool4", "pool5"]
FC = ["fc6", "fc7", "fc8"]
TEXTURE_DEPTHS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]


def key(*parts) -> str:
    """A file-name-safe run key: 'random_vgg19_s0_coffee_pool3'."""
    return "_".join(re.sub(r"[^A-Za-z0-9.]+", "-", str(p)).strip("-") for p in parts if p not in (None, ""))


def name_of(image_spec: str) -> str:
    """A short label of an image: the sample name or the file's stem."""
    return Path(image_spec).stem


def image_arg(image_spec: str) -> str:
    """What a worker gets: a sample name as is, a file as an absolute path."""
    p = Path(image_spec)
    return str(p.resolve()) if p.suffix or p.exists() else image_spec


def spec(o, task: str, net: str, seed: int, image: str, layer: str, arch: str = "vgg19", **extra) -> dict:
    """One run of a figure; ``o`` is the parsed experiments options."""
    s = {"task": task, "net": net, "arch": arch, "seed": int(seed), "image": image_arg(image), "layer": layer,
         "size": o.size, "iters": o.iters, "device": o.device, "trained": o.trained}
    s.update(extra)
    label = extra.pop("label", None) or layer
    s["key"] = key(net, arch if arch != "vgg19" else "", f"s{seed}", name_of(image),
                   name_of(extra["style"]) if extra.get("style") else "", label)
    s.pop("label", None)
    return s


def find(rows, **fields):
    """The first row whose fields equal ``fields`` (a None value matches anything), or None."""
    return next((r for r in rows if all(v is None or r.get(k) == v for k, v in fields.items())), None)


def nets_with_trained(o, nets) -> list:
    """The figure's nets, plus "trained" when --trained is given."""
    nets = [n for n in nets if n != "trained"]
    return nets + ["trained"] if o.trained else nets


def check_sizes(o, layers) -> None:
    if any(l in FC for l in layers) and o.size != 256:
        raise UserError(f"fc layers need --size 256, got {o.size}")


def table(rows, group_by, metrics, stats=("median", "min", "max")) -> str:
    """A Markdown table: one line per group (in first-seen order), each metric's statistics
    over the group's rows (n = number of runs)."""
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r.get(g) for g in group_by), []).append(r)
    head = list(group_by) + ["n"] + [f"{m} {s}" if len(stats) > 1 else m for m in metrics for s in stats]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g, rs in groups.items():
        cells = [str(v) for v in g] + [str(len(rs))]
        for m in metrics:
            vals = [r[m] for r in rs if isinstance(r.get(m), (int, float))]
            for s in stats:
                cells.append(_fmt(_stat(vals, s)) if vals else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _stat(vals, s):
    return {"median": statistics.median, "min": min, "max": max, "mean": statistics.fmean}[s](vals)


def _fmt(v) -> str:
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"


def inversion_specs(o) -> list:
    """Inversions of ``o.image`` at each of ``o.layers`` for every net and seed (the trained net:
    one seed, its weights do not depend on it); fig3 and fig4."""
    return [spec(o, "invert", net, seed, o.image, layer)
            for net in nets_with_trained(o, o.nets) for layer in o.layers
            for seed in (o.seeds[:1] if net == "trained" else o.seeds)]
