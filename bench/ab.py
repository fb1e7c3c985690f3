"""This checkout's engine against another checkout's, one evaluation at a time, interleaved.

    python -m bench.ab --base ../other-checkout [--size 256] [--layer pool5] [--rounds 10] [--workers 6]

On a shared machine one contender's time moves by 10-20% from one minute to the next, more than
most changes: timing each version in its own run compares the minutes, not the code. Here each
version runs in ``--workers`` persistent processes (each imports its own checkout's ``engine``),
all started before any timing; then, round after round, every process runs one evaluation (what
``bench.iteration`` times: forward to pool5, or ``--layer``, content loss, input gradient, batch 1,
float32),
the order reversed every other round. Prints the medians, their ratio, and in how many paired
evaluations this checkout was the faster.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from ._common import ask_rounds

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a worker: this source, run with its checkout first on sys.path; one line per evaluation asked
WORKER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from bench._common import engine_evaluation
fn = engine_evaluation(int(sys.argv[2]), sys.argv[3], "cpu")[3]
fn(); fn()
print("ready", flush=True)
for _ in sys.stdin:
    t = time.perf_counter(); fn(); print(f"{(time.perf_counter() - t) * 1e3:.3f}", flush=True)
"""


def compare(base: str, size: int, rounds: int, workers: int, layer: str = "pool5") -> dict:
    """{"base": [ms, ...], "this": [ms, ...]}: one evaluation per process per round."""
    sides = [("base", os.path.abspath(base)), ("this", HERE)] * workers
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, root, str(size), layer], cwd=root, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _, root in sides]
    try:
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise SystemExit("a worker failed to start: run its checkout's tests first")
        return ask_rounds([(name, p) for (name, _), p in zip(sides, procs)], rounds)
    finally:
        for p in procs:
            if p.stdin:
                p.stdin.close()
            p.wait()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="the other checkout (a git worktree of another commit)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--layer", default="pool5", help="the content loss's layer (default: pool5)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=6,
                    help="processes per version (default 6: with 2, two copies of one commit came out 1.13 and "
                         "1.02 apart at 256 px; with 6, 0.98 and 0.98)")
    a = ap.parse_args(argv)
    if not os.path.isdir(os.path.join(a.base, "engine")):
        raise SystemExit(f"--base {a.base}: no engine/ there; give another checkout of this repository "
                         "(git worktree add DIR COMMIT)")
    t = compare(a.base, a.size, a.rounds, a.workers, a.layer)
    b, m = statistics.median(t["base"]), statistics.median(t["this"])
    faster = sum(x < y for x, y in zip(t["this"], t["base"]))
    print(f"{a.size} px, {a.layer}: base {b:.1f} ms, this checkout {m:.1f} ms, ratio {m / b:.3f} "
          f"({len(t['this'])} evaluations each; this one faster in {faster} of the {len(t['this'])} pairs)")


if __name__ == "__main__":
    main()
