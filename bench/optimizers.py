"""What a user waits for: one objective evaluation per layer (median of 7), and with --optimizers the
cost per iteration of scipy's L-BFGS-B and of the device L-BFGS.

    python -m bench.optimizers [--device cpu|gpu|auto] [--size 128] [--tf32] [--optimizers]

The end-to-end cost per L-BFGS-B evaluation, which is what a user waits for. Compare
threading layers with NUMBA_THREADING_LAYER=omp|workqueue (the engine picks workqueue).
--tf32 times the GPU with TF32 GEMMs (run once with and once without). --optimizers adds the
time per iteration of scipy's L-BFGS-B and of --optimizer lbfgs-device on pool3, alternating,
and what each costs beyond its evaluations (the host step and copies vs the device step).
"""
import argparse
import statistics
import time

import numpy as np

from engine import backend
from engine.objectives import Objective
from engine.vgg import VGG19


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.optimizers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", choices=backend.DEVICES)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--tf32", action="store_true", help="GPU: TF32 tensor-core GEMMs (engine.backend.set_tf32)")
    ap.add_argument("--optimizers", action="store_true", help="also time 20 iterations of each L-BFGS, alternating")
    a = ap.parse_args(argv)
    import numba

    net = VGG19.random(seed=0, device=a.device)
    if net.device == "gpu":
        backend.set_tf32(a.tf32)
        print("TF32 GEMMs" if a.tf32 else "strict float32 GEMMs")
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
    if a.optimizers:
        optimizer_costs(net, x0, a.repeat)


def optimizer_costs(net, x0, repeat, iters=20):
    """Seconds per iteration of each optimiser on pool3, and its overhead beyond the evaluations."""
    from engine.io import image
    from engine.optim.device_lbfgs import lbfgs_device
    from engine.optim import lbfgs

    obj = Objective.inversion(net, x0, "pool3")
    obj.calibrate(x0)
    lo, hi = image.pixel_bounds(net.preprocessing)
    bounds = (lo.reshape(1, 3, 1, 1), hi.reshape(1, 3, 1, 1))
    x_start = np.random.default_rng(1).normal(0, 50, x0.shape).astype(np.float32)
    t = time.perf_counter()
    for _ in range(repeat):
        obj.value_and_grad(x_start)
    per_eval = (time.perf_counter() - t) / repeat
    runs = {"lbfgs": [], "lbfgs-device": []}
    for _ in range(max(1, repeat // 2)):  # alternating A/B, so drift hits both alike
        for name, method in (("lbfgs", lbfgs), ("lbfgs-device", lbfgs_device)):
            res = method(obj, x_start, bounds, iters=iters)
            runs[name].append((res.seconds / res.iterations, res.seconds - res.evaluations * per_eval, res))
    for name, rs in runs.items():
        per_it = statistics.median(r[0] for r in rs)
        overhead = statistics.median(r[1] / r[2].iterations for r in rs)
        last = rs[-1][2]
        print(f"{name:13s} {per_it * 1e3:8.1f} ms per iteration, {last.evaluations / last.iterations:.2f} evaluations "
              f"per iteration, about {overhead * 1e3:.1f} ms per iteration beyond the evaluations "
              f"(final loss {last.loss:.4e} after {last.iterations})")


if __name__ == "__main__":
    main()
