"""Cost of one evaluation against image size: time and peak memory from 64 to 1024 px.

    python -m bench.scaling [--device cpu|gpu] [--sizes 64,128,256,512,1024] [--layer pool5] [--repeat 3]

Work grows with the pixels (every conv is H*W*Cin*Cout*9); "per Mpx" divides the median time by
the megapixels, and "vs linear" compares it with the largest size's (1.00 = linear). Small
images cost more per pixel (fixed per-call costs, deep maps too small for Winograd tiles, more
threads than work); the first size whose per-pixel cost is within 15% of the largest's is where
the cost has become linear in the pixels.
"""
from __future__ import annotations

import argparse

from ._common import alternate, engine_evaluation, machine, mib, parse_args, peak_bytes


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n\n")[0])
    a, sizes, device = parse_args(ap, argv, "64,128,256,512,1024", 3)
    print(f"machine: {machine(device)}")
    print(f"one evaluation (forward to {a.layer}, content loss, input gradient), float32, median of {a.repeat}")
    rows = []
    for size in sizes:
        _, _, _, fn = engine_evaluation(size, a.layer, device)
        sec = alternate({"engine": fn}, a.repeat, device)["engine"]
        rows.append((size, sec, peak_bytes("engine", size, a.layer, device, runs=1)))
        print(f"  {size} px: {sec * 1e3:.0f} ms", flush=True)
    per_px = [sec / (size * size / 1e6) for size, sec, _ in rows]
    ref = per_px[-1]
    print(f"{'size':>5} {'ms':>9} {'ms per Mpx':>11} {'vs linear':>10} {'peak memory':>12}")
    for (size, sec, peak), p in zip(rows, per_px):
        print(f"{size:>5} {sec * 1e3:>9.0f} {p * 1e3:>11.0f} {p / ref:>10.2f} {mib(peak):>12}")
    linear = next((size for (size, _, _), p in zip(rows, per_px) if p / ref < 1.15), sizes[-1])
    print(f"cost per pixel within 15% of the largest size's from {linear} px up")


if __name__ == "__main__":
    main()
