"""Where one evaluation's time goes: each Winograd conv's forward and backward, timed inside one
evaluation, in each memory mode (RANVGG_MEMORY), modes alternating in one process.

    python -m bench.layers [--size 256] [--layer pool5] [--modes lean,fast] [--repeat 5] [--steps]

One evaluation = forward to --layer, content loss, input gradient (what bench.iteration times).
Rows are keyed by the conv's input shape (channels, height, width) and Winograd tile (F2, F4);
layers of the same shape are summed. im2col layers (the RGB input, maps below 16x16) and the
rest of the evaluation make up the difference between the rows' sum and the total.

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

from engine.ops import winograd

from ._common import engine_evaluation


def _timed(acc: dict, rows: dict):
    """Wrap each function of engine/ops/winograd.py named in ``rows`` ({name: f(args) -> the row's
    key}) so that each call adds its seconds to ``acc[f(args)]``; returns the originals."""
    originals = {}
    for name, row in rows.items():
        f = originals[name] = getattr(winograd, name)

        def timed(*args, _f=f, _row=row, **kwargs):
            t = time.perf_counter()
            out = _f(*args, **kwargs)
            acc[_row(args)] += time.perf_counter() - t
            return out

        setattr(winograd, name, timed)
    return originals


# Rows by layer: each Winograd conv's forward and backward, keyed by (pass, input (C, H, W), m).
LAYER_ROWS = {"winograd_conv": lambda args: ("forward", tuple(args[0].shape[1:]), args[2]),
              "winograd_conv_backward": lambda args: ("backward", tuple(args[0].shape[1:]), args[2])}

# --steps: the functions of engine/ops/winograd.py timed, all called from the calling thread.
STEPS = {
    "_split": "phase split of the input",
    "_input_transform": "input transform B^T d B",
    "matmul": "GEMMs, U kept",
    "_made_matmul": "GEMMs, U made beside them",
    "_output_transform": "output transform A^T M A",
    "_grad_input_transform": "gradient split A gy A^T",
    "_grad_output_transform": "gradient scatter B M B^T",
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
    originals = _timed(acc, {name: (lambda args, _n=name: _n) for name in STEPS} if a.steps else LAYER_ROWS)
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
        for name, f in originals.items():
            setattr(winograd, name, f)
        if before is None:
            os.environ.pop("RANVGG_MEMORY", None)
        else:
            os.environ["RANVGG_MEMORY"] = before
    print(f"one evaluation at {a.size} px to {a.layer}, medians of {a.repeat} (ms); "
          f"load average {os.getloadavg()[0]:.1f}")
    if a.steps:
        print(f"{'step':>28} " + " ".join(f"{m:>8}" for m in modes))
        for name, label in STEPS.items():
            cells = [f"{np.median(rows[m][name]) * 1e3:8.1f}" if name in rows[m] else f"{'-':>8}" for m in modes]
            print(f"{label:>28} " + " ".join(cells))
        print(f"{'rest':>28} " + " ".join(f"{np.median(rests[m]) * 1e3:8.1f}" for m in modes))
        print(f"{'total':>28} " + " ".join(f"{np.median(totals[m]) * 1e3:8.1f}" for m in modes))
        return
    print(f"{'pass':>8} {'input (C, H, W)':>16} {'tile':>4} " + " ".join(f"{m:>8}" for m in modes))
    keys = sorted({k for m in modes for k in rows[m]}, key=lambda k: (k[0] != "forward", -k[1][1], k[1][0]))
    for key in keys:
        cells = [f"{np.median(rows[m][key]) * 1e3:8.1f}" if key in rows[m] else f"{'-':>8}" for m in modes]
        print(f"{key[0]:>8} {str(key[1]):>16} {'F' + str(key[2]):>4} " + " ".join(cells))
    print(f"{'total':>8} {'':>16} {'':>4} " + " ".join(f"{np.median(totals[m]) * 1e3:8.1f}" for m in modes))


if __name__ == "__main__":
    main()
