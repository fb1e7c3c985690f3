"""Where one evaluation's time goes: each Winograd (and direct) conv's forward and backward, timed
inside one evaluation, in each memory mode (RANVGG_MEMORY), modes alternating in one process.

    python -m bench.layers [--size 256] [--layer pool5] [--modes lean,fast] [--repeat 5] [--steps]

One evaluation = forward to --layer, content loss, input gradient (what bench.iteration times).
Rows are keyed by the conv's input shape (channels, height, width) and algorithm (Winograd
F2, F4, or the image layer's direct sums); layers of the same shape are summed. im2col layers
(maps below 16x16) and the rest of the evaluation make up the difference between the rows' sum
and the total.

With --steps, rows are the steps of every Winograd conv together instead (``STEPS``: the phase
split, the four transforms, the GEMMs of layers that keep their Winograd weights U and of those
that make U beside their GEMMs), and a last row "rest" is everything else (im2col layers,
pooling, ReLU, the loss, Python).
"""
from __future__ import annotations

import argparse
import collections
import os
import time

import numpy as np

from engine.ops import direct, winograd

from ._common import engine_evaluation


def _timed(acc: dict, rows: dict):
    """Wrap each function named in ``rows`` ({(module, name): f(args) -> the row's key}) so that
    each call adds its seconds to ``acc[f(args)]``; returns the originals."""
    originals = {}
    for (module, name), row in rows.items():
        f = originals[module, name] = getattr(module, name)

        def timed(*args, _f=f, _row=row, **kwargs):
            t = time.perf_counter()
            out = _f(*args, **kwargs)
            acc[_row(args)] += time.perf_counter() - t
            return out

        setattr(module, name, timed)
    return originals


# Rows by layer: each conv's forward and backward, keyed by (pass, input (C, H, W), algorithm).
LAYER_ROWS = {(winograd, "winograd_conv"): lambda args: ("forward", tuple(args[0].shape[1:]), f"F{args[2]}"),
              (winograd, "winograd_conv_backward"): lambda args: ("backward", tuple(args[0].shape[1:]),
                                                                 f"F{args[2]}"),
              (direct, "conv_forward"): lambda args: ("forward", tuple(args[0].shape[1:]), "direct"),
              (direct, "conv_backward"): lambda args: ("backward", tuple(args[0].shape[1:]), "direct")}

# --steps: the functions of engine/ops/winograd.py timed, all called from the calling thread.
STEPS = {
    "_split": "phase split of the input",
    "_input_transform": "input transform B^T d B",
    "matmul": "GEMMs, U kept",
    "_made_matmul": "GEMMs, U made beside them",
    "_output_transform": "output transform A^T M A",
    "_grad_input_transform": "gradient split A gy A^T",
    "_grad_output_transform": "gradient scatter B M B^T",
    "_grad_output_whole": "gradient scatter B M B^T",   # one image of whole tiles
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.layers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--layer", default="pool5")
    ap.add_argument("--modes", default="lean,fast", help="RANVGG_MEMORY values to compare (default lean,fast)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--steps", action="store_true",
                    help="time each step of the Winograd convs (split, transforms, GEMMs), all layers together")
    a = ap.parse_args(argv)
    modes = a.modes.split(",")
    for mode in modes:
        if mode not in winograd.MEMORY_MODES:
            ap.error(f"--modes: {mode!r} is not a memory mode ({', '.join(winograd.MEMORY_MODES)})")
    before = os.environ.get("RANVGG_MEMORY")
    acc = collections.defaultdict(float)
    steps = {(winograd, name): (lambda args, _label=label: _label) for name, label in STEPS.items()}
    originals = _timed(acc, steps if a.steps else LAYER_ROWS)
    try:
        fns = {}
        for mode in modes:   # each mode its own net: what a layer keeps is decided at its first call
            os.environ["RANVGG_MEMORY"] = mode
            fns[mode] = engine_evaluation(a.size, a.layer, "cpu")[3]
            fns[mode]()
        rows = {mode: collections.defaultdict(list) for mode in modes}
        totals = {mode: [] for mode in modes}
        rests = {mode: [] for mode in modes}   # what no row timed
        for _ in range(a.repeat):
            for mode in modes:
                os.environ["RANVGG_MEMORY"] = mode
                acc.clear()
                t = time.perf_counter()
                fns[mode]()
                totals[mode].append(time.perf_counter() - t)
                rests[mode].append(totals[mode][-1] - sum(acc.values()))
                for key, sec in acc.items():
                    rows[mode][key].append(sec)
    finally:
        for (module, name), f in originals.items():
            setattr(module, name, f)
        if before is None:
            os.environ.pop("RANVGG_MEMORY", None)
        else:
            os.environ["RANVGG_MEMORY"] = before
    print(f"one evaluation at {a.size} px to {a.layer}, medians of {a.repeat} (ms); "
          f"load average {os.getloadavg()[0]:.1f}")
    if a.steps:
        print(f"{'step':>28} " + " ".join(f"{m:>8}" for m in modes))
        for label in dict.fromkeys(STEPS.values()):
            cells = [f"{np.median(rows[m][label]) * 1e3:8.1f}" if label in rows[m] else f"{'-':>8}" for m in modes]
            print(f"{label:>28} " + " ".join(cells))
        print(f"{'rest':>28} " + " ".join(f"{np.median(rests[m]) * 1e3:8.1f}" for m in modes))
        print(f"{'total':>28} " + " ".join(f"{np.median(totals[m]) * 1e3:8.1f}" for m in modes))
        return
    print(f"{'pass':>8} {'input (C, H, W)':>16} {'algorithm':>9} " + " ".join(f"{m:>8}" for m in modes))
    keys = sorted({k for m in modes for k in rows[m]}, key=lambda k: (k[0] != "forward", -k[1][1], k[1][0]))
    for key in keys:
        cells = [f"{np.median(rows[m][key]) * 1e3:8.1f}" if key in rows[m] else f"{'-':>8}" for m in modes]
        print(f"{key[0]:>8} {str(key[1]):>16} {key[2]:>9} " + " ".join(cells))
    print(f"{'total':>8} {'':>16} {'':>9} " + " ".join(f"{np.median(totals[m]) * 1e3:8.1f}" for m in modes))


if __name__ == "__main__":
    main()
