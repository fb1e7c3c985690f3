"""One L-BFGS-B evaluation (forward to a layer, content loss, input gradient): this engine
against PyTorch, alternating; the optimiser's own cost; peak memory.

    python -m bench.iteration [--device cpu|gpu] [--sizes 128,256,512] [--layer pool5] [--repeat 5] [--in-process]

Before timing, the engine's loss and gradient are checked against PyTorch's (same weights).
On the CPU each contender is timed in a process of its own, the two alternating one evaluation
at a time with a pause before each (``bench._common.alternate_processes``): in one process the
engine ran 8-10% slower than in a process of its own. ``--in-process`` times both in
this process, alternating (the GPU's default: there the work is on the device).
ratio = engine / PyTorch (below 1: the engine is faster). Without torch installed (it is an
optional bench extra, never needed to run ranvgg) only the engine's own figures are printed.
Both use the same thread count: NUMBA_NUM_THREADS (and OPENBLAS_NUM_THREADS for the engine's
GEMMs); set both to 1 for a single-thread comparison. The optimiser column is the device's
default L-BFGS alone (``--optimizer auto``: the device L-BFGS on the CPU, scipy's L-BFGS-B on the
GPU), on a free objective of the same size: what each iteration costs on top of its
evaluations (about 1.05-1.2 evaluations per iteration in practice).
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from engine import UserError, backend
from tasks.pipeline.runner import AUTO, OPTIMIZERS
from ._common import (alternate, alternate_processes, optimiser_cost, engine_evaluation, fail, machine, mib, parse_args,
                      peak_bytes, torch_evaluation)


def check(engine_fn, torch_fn) -> str:
    le, ge = engine_fn()
    lt, gt = torch_fn()
    ge, gt = backend.to_host(ge).astype(np.float64), gt.detach().cpu().numpy().astype(np.float64)
    lerr = abs(le - lt) / abs(lt)
    # a norm, not the largest element: a ReLU near 0 that flips in one float32 run and not the
    # other moves single elements by 1e-2 of the maximum (float64 agrees to 1e-14 either way)
    gerr = float(np.linalg.norm(ge - gt) / np.linalg.norm(gt))
    if lerr > 1e-3 or gerr > 1e-2:
        raise SystemExit(f"engine and PyTorch disagree: loss {le:.6g} vs {lt:.6g}, gradient error {gerr:.1e}")
    return f"loss rel. diff {lerr:.0e}, gradient {gerr:.0e} (norm)"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.iteration", description=__doc__.split("\n\n")[0])
    ap.add_argument("--in-process", action="store_true",
                    help="time both contenders in this process, alternating (default on the GPU; on the CPU each "
                         "runs in a process of its own)")
    a, sizes, device = parse_args(ap, argv, "128,256,512", 5)
    in_process = a.in_process or device == "gpu"
    import numba

    pinned = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(f"machine: {machine(device)}; {numba.config.NUMBA_NUM_THREADS} thread(s) each"
          + (f", on CPUs {pinned}" if pinned is not None else "") + f"; load average {os.getloadavg()[0]:.1f}")
    print(f"one evaluation = forward to {a.layer} + content loss + input gradient, batch 1, float32; "
          f"medians of {a.repeat}, contenders alternating"
          + (" in this process" if in_process else ", each in a process of its own"))
    head = f"{'size':>5} {'contender':>13} {'time':>11} {'ratio':>6} {'optimiser/it':>13} {'peak':>12} {'ratio':>6}  check"
    print(head)
    print("-" * len(head))
    for size in sizes:
        net, x0, x, engine_fn = engine_evaluation(size, a.layer, device)
        try:
            torch_fn = torch_evaluation(net, x0, x, a.layer, device)
        except UserError as exc:
            fail(exc)
        fns = {"engine": engine_fn}
        note = "torch not installed: engine only"
        if torch_fn is not None:
            note = check(engine_fn, torch_fn)   # strict float32 on both sides
            fns["torch"] = torch_fn
            if device == "gpu":                 # a second PyTorch row: TF32 convs and GEMMs
                fns["torch TF32"] = torch_evaluation(net, x0, x, a.layer, device, tf32=True)
        if device == "gpu":
            with backend.counting() as c:
                engine_fn()
            note += (f"; {c['launches']} raw-kernel launches, {c['fused']} fused kernels, "
                     f"{c['syncs']} host sync(s) per evaluation")
        if in_process:
            med = alternate(fns, a.repeat, device)
        else:   # the timing processes build their own: only the names stay here
            names = list(fns)
            del net, x0, x, engine_fn, torch_fn, fns
            med = alternate_processes(names, size, a.layer, device, a.repeat)
            fns = dict.fromkeys(names)
        peaks = {k: peak_bytes(k, size, a.layer, device) for k in ("engine", "torch") if k in fns}
        opt = optimiser_cost(size, method=OPTIMIZERS[AUTO[device]][0])
        for k in fns:
            t = med[k]
            ratio = "" if k == "engine" else f"{med['engine'] / t:.2f}"
            rival = "" if k == "engine" else f"{t * 1e3:.1f}ms"
            label = "ranvgg" if k == "engine" else ("PyTorch fp32" if k == "torch" else "PyTorch TF32")
            peak = mib(peaks.get(k)) if k in peaks else ""
            mem_ratio = ("" if k == "engine" or not peaks.get(k) or not peaks.get("engine")
                         else f"{peaks['engine'] / peaks[k]:.2f}")
            print(f"{size:>5} {label:>13} {med['engine'] * 1e3 if k == 'engine' else t * 1e3:>9.1f}ms "
                  f"{ratio:>6} {opt * 1e3 if k == 'engine' else 0:>11.1f}ms {peak:>12} {mem_ratio:>6}  "
                  f"{note if k == 'engine' else ''}".rstrip(), flush=True)
    print("ratio = ranvgg / that row, for time and for peak memory (below 1: ranvgg is faster, or needs less); "
          "PyTorch fp32 has TF32 off in cuBLAS and cuDNN, "
          "cudnn.benchmark on; peak = how far memory rose during one evaluation (RSS high-water mark on the CPU), median of 3 fresh processes")


if __name__ == "__main__":
    main()
