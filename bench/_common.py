"""Shared by the bench commands: the machine, timing (A/B alternation, medians), peak memory,
one evaluation of the engine, and the same evaluation in PyTorch (an optional bench extra)."""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from types import SimpleNamespace

import numpy as np

from engine import UserError, backend


def fail(exc: UserError):
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--sizes {text!r}: give image sides separated by commas, e.g. 128,256,512") from None
    if not sizes or min(sizes) < 32:
        raise UserError(f"--sizes {text!r}: every side must be at least 32 (pool5 needs 5 poolings)")
    return sizes


def parse_args(ap, argv, sizes: str, repeat: int):
    """--device/--sizes/--layer/--repeat on top of ``ap``'s own; returns (args, sizes, device),
    or exits with one ``error:`` line."""
    ap.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    ap.add_argument("--sizes", default=sizes, help=f"image sides, comma-separated (default {sizes})")
    ap.add_argument("--layer", default="pool5", help="the content layer (conv/relu/pool)")
    ap.add_argument("--repeat", type=int, default=repeat, help=f"timed evaluations per contender and size (default {repeat})")
    args = ap.parse_args(argv)
    try:
        from engine.arch import check_layers

        check_layers([args.layer])
        return args, parse_sizes(args.sizes), backend.resolve_device(args.device)
    except UserError as exc:
        fail(exc)


def machine(device: str) -> str:
    """One line: CPU model and cores (and GPU name), library versions, thread layers."""
    import numba

    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from engine.parallel import blas_kernels

    kernels = blas_kernels() or "unknown"
    forced = os.environ.get("OPENBLAS_CORETYPE")
    line = (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy {np.__version__}, "
            f"numba {numba.__version__} ({numba.config.THREADING_LAYER} layer); OpenBLAS kernels {kernels}"
            + (f" (OPENBLAS_CORETYPE={forced})" if forced else ""))
    if device == "gpu":
        cupy = backend.xp_for("gpu")
        line += f"; GPU {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}"
    return line


def sync(device: str) -> None:
    if device == "gpu":
        backend.xp_for("gpu").cuda.Device().synchronize()
        try:
            import torch
            torch.cuda.synchronize()
        except Exception:
            pass


def alternate(fns: dict, repeat: int, device: str = "cpu") -> dict:
    """{name: median seconds}, the calls interleaved A, B, A, B... after one warm-up each, so a
    busy neighbour slows every contender alike (the CPU here is shared)."""
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeat):
        for k, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def ask_rounds(workers, rounds: int, pause: float = 0.0) -> dict:
    """{name: [ms, ...]} from timing workers [(name, Popen)], each of which answers a line on its
    stdin with one evaluation's milliseconds: ``rounds`` rounds, every worker once a round, the
    order reversed every other round, ``pause`` seconds of quiet before each."""
    times = {name: [] for name, _ in workers}
    for r in range(rounds):
        for name, p in (workers if r % 2 == 0 else workers[::-1]):
            time.sleep(pause)
            p.stdin.write("go\n")
            p.stdin.flush()
            times[name].append(float(p.stdout.readline()))
    return times


def alternate_processes(contenders, size: int, layer: str, device: str, repeat: int,
                        pause: float = 0.2) -> dict:
    """{contender: median seconds} for "engine" and/or "torch", each in a process of its own
    (``python -m bench._timer``), one evaluation at a time, the order reversed every other round,
    with ``pause`` seconds of quiet before each. In one process the contender timed right after
    PyTorch runs slower than alone (PyTorch's OpenMP threads and its allocations stay in the
    process; which of them costs the time is not measured): at 256 px the engine took 235 ms there and 210-216 ms in a
    process of its own, PyTorch the same either way (docs/performance.md, "Each contender in a
    process of its own"). In their own processes neither sees the other's state."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    procs = {c: subprocess.Popen([sys.executable, "-m", "bench._timer", c, str(size), layer, device], cwd=root,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for c in contenders}
    try:
        for c, p in procs.items():
            if p.stdout.readline().strip() != "ready":
                raise UserError(f"the {c} timing process failed to start: run `python -m bench._timer {c} "
                                f"{size} {layer} {device}` to see why")
        times = ask_rounds(list(procs.items()), repeat, pause)
        return {c: statistics.median(v) / 1e3 for c, v in times.items()}
    finally:
        for p in procs.values():
            if p.stdin:
                p.stdin.close()
            p.wait()


def peak_bytes(contender: str, size: int, layer: str, device: str = "cpu", runs: int = 3) -> int | None:
    """Peak memory of one evaluation by ``contender`` ("engine" | "torch"), measured in a fresh
    process (``python -m bench._memory``) so that neither allocator's cache hides the other:
    peak RSS (or the GPU pools' peak) minus the level once the inputs are made, first
    evaluation included (the engine's Winograd weights are made there). The median of ``runs``
    processes: PyTorch's CPU peak at 256 px moves between 108 and 160 MiB from one process to
    the next (the engine's by under 1 MiB)."""
    import subprocess

    cmd = [sys.executable, "-m", "bench._memory", contender, str(size), layer, device]
    peaks = []
    for _ in range(runs):
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
        try:
            peaks.append(int(out.stdout.split()[-1]))
        except (ValueError, IndexError):
            return None
    return int(np.median(peaks))


def optimiser_cost(size: int, iters: int = 20, method=None, history: int = 10) -> float:
    """Seconds per iteration of an L-BFGS (scipy's L-BFGS-B unless ``method``) with a memory of
    ``history`` steps for a (1, 3, size, size) image on an objective that costs almost nothing:
    what the optimiser itself adds to each iteration on the host."""
    from engine.optim import lbfgs

    rng = np.random.default_rng(0)
    target = rng.uniform(-100, 100, (1, 3, size, size))
    curve = rng.uniform(1, 100, target.shape)  # ill-conditioned: no convergence in 20 steps

    class Free:  # a quadratic bowl: the objective itself costs a few elementwise passes
        net = SimpleNamespace(xp=np, dtype=np.float32)  # what the device L-BFGS asks of an objective

        def value_and_grad(self, x):
            d = x - target
            return float(0.5 * (curve * d * d).sum()), curve * d

    res = (method or lbfgs)(Free(), np.zeros_like(target), bounds=(-128.0, 128.0), iters=iters, history=history)
    return res.seconds / max(res.iterations, 1)


def mib(n) -> str:
    return "-" if n is None else f"{n / 2**20:.0f} MiB"


# ----------------------------------------------------------------------------- the evaluation

def engine_evaluation(size: int, layer: str, device: str, seed: int = 0):
    """(net, x0, x, fn): fn() runs one Objective.value_and_grad for a content loss at ``layer``
    on a (1, 3, size, size) image (what L-BFGS-B calls each step) and returns (loss, grad). The
    objective (the target's forward pass) is made at the first call, so that a memory
    measurement around the first call sees everything a run adds to the net and the image."""
    from engine.objectives import Objective
    from engine.vgg import VGG19

    net = VGG19.random(seed=seed, device=device)
    rng = np.random.default_rng(seed)
    x0 = rng.normal(0, 50, (1, 3, size, size)).astype(np.float32)
    x = rng.normal(0, 50, (1, 3, size, size)).astype(np.float32)
    made = {}

    def run():
        if "obj" not in made:
            made["obj"] = Objective.inversion(net, x0, layer)
        return made["obj"].value_and_grad(x)

    return net, x0, x, run


def torch_precision(tf32: bool) -> None:
    """PyTorch on the GPU: strict float32 (TF32 off in cuBLAS and cuDNN) or TF32, and cuDNN's
    autotuner on (it picks the fastest conv algorithm per shape at the first call)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def torch_evaluation(net, x0, x, layer: str, device: str, tf32: bool = False):
    """The same evaluation in PyTorch (nn.Conv2d/ReLU/AvgPool2d or MaxPool2d, the net's own
    weights, autograd for the input gradient), or None when torch is not installed. On the GPU
    each call runs with ``tf32`` (strict float32 by default) and cuDNN's autotuner on."""
    try:
        import torch
    except ImportError:
        return None
    from engine.arch import LAYERS

    import numba

    dev = "cuda" if device == "gpu" else "cpu"
    torch.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # as many threads as the engine
    mods = []
    for name, kind, owner in LAYERS[:[n for n, _, _ in LAYERS].index(layer) + 1]:
        if kind == "conv":
            w, b = net.params[owner]
            conv = torch.nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
            conv.weight.data, conv.bias.data = torch.from_numpy(w.copy()), torch.from_numpy(b.copy())
            conv.requires_grad_(False)
            mods.append(conv)
        elif kind == "relu":
            mods.append(torch.nn.ReLU())
        elif kind == "pool":
            mods.append(torch.nn.AvgPool2d(2) if net.pooling == "avg" else torch.nn.MaxPool2d(2))
        else:
            raise UserError(f"--layer {layer}: the PyTorch comparison covers conv/relu/pool layers only")
    model = torch.nn.Sequential(*mods).to(dev)
    xt, made = torch.from_numpy(x).to(dev), {}

    def run():
        if dev == "cuda":
            torch_precision(tf32)
        if "target" not in made:  # at the first call, as the engine's objective
            with torch.no_grad():
                made["target"] = model(torch.from_numpy(x0).to(dev))
        target = made["target"]
        xi = xt.clone().requires_grad_(True)
        f = model(xi)
        loss = ((f - target) ** 2).sum() / (2 * f.numel())
        loss.backward()
        return float(loss.detach()), xi.grad

    return run
