"""One objective evaluation (forward + backward through VGG-19) per layer, median of 7.

    python -m bench.bench_evaluation [--device cpu|gpu|auto] [--size 128]

The end-to-end cost per L-BFGS-B evaluation, which is what a user waits for. Compare
threading layers with NUMBA_THREADING_LAYER=omp|workqueue (the engine picks workqueue).
"""
import argparse
import statistics
import time

import numpy as np

from engine import backend
from engine.objectives import Objective
from engine.vgg import VGG19


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.bench_evaluation", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", choices=backend.DEVICES)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args(argv)
    import numba

    net = VGG19.random(seed=0, device=a.device)
    x0 = np.random.default_rng(0).normal(0, 50, (1, 3, a.size, a.size)).astype(np.float32)
    print(f"device {net.device}, {a.size}x{a.size}, numba threading layer {numba.config.THREADING_LAYER}")
    for layer in ("relu1_1", "pool3", "relu5_1"):
        obj = Objective.inversion(net, x0, layer)
        obj.value_and_grad(x0)  # warm-up: kernels compiled, weights on the device
        times = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            obj.value_and_grad(x0)  # returns a float: the device work is finished
            times.append(time.perf_counter() - t)
        print(f"{layer:8s} {statistics.median(times) * 1e3:8.1f} ms per evaluation (median of {a.repeat})")


if __name__ == "__main__":
    main()
