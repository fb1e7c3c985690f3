"""The GPU path, proven in one command: every check a GPU can answer, in about 9 minutes on an H200.

    pip install ".[gpu,test]"            (from the repository root; add torch for the cuDNN rows)
    python -m bench.gpu_proof --out DIR  [--steps NAME,NAME] [--device gpu|cpu]

Each step runs in its own subprocess with its own timeout (a hang or a crash fails that step
only). DIR receives report.md (each step: command, status, seconds, the tail of its output),
junit.xml (one test case per step) and every step's full log. The exit status is 1 when any
step failed or timed out, 0 otherwise; a step that cannot apply here (no compute-sanitizer, no
torch) is "skipped" with its reason and does not fail the run.

The steps (``STEPS``; ``--steps`` picks some, ``--list`` prints them):
  env          driver, CUDA runtime, CuPy, NVRTC, cuBLAS, torch/cuDNN versions; the device check
  tests        the GPU test suite with RANVGG_REQUIRE_GPU=1 (a skip is a failure)
  gradcheck    python -m tasks.gradcheck on the device (finite differences, float64)
  network      a 512 px float64 forward to pool5 + content loss + input gradient, GPU vs CPU
  wrap         kernels over more elements (or planes) than one grid covers: every grid-stride loop wraps
  memcheck     compute-sanitizer memcheck on a small evaluation (where the tool exists)
  launches     kernel launches per evaluation and host syncs per device-L-BFGS iteration
  ops          python -m bench.ops on the device
  iteration    python -m bench.iteration: one evaluation against PyTorch strict fp32 and TF32
  optimizers   ms per iteration of scipy's L-BFGS-B and of the device L-BFGS, and whether the
               device L-BFGS reaches scipy's loss (then it can become the GPU default)
  invert, texture, style, stack   a 50-iteration run of each task on the device

``--device cpu`` runs the same plan on the CPU at small sizes: how the test suite exercises this
command (tests/bench/test_gpu_proof.py), so its first run on a GPU is not its first run.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

ROOT = Path(__file__).resolve().parents[1]
TAIL_LINES = 40


@dataclass
class Step:
    name: str
    what: str
    argv: list[str]                      # the subprocess (a list: no shell)
    timeout: float                       # seconds
    env: dict = field(default_factory=dict)
    skip: str | None = None              # why it cannot run here (then it is not run)


@dataclass
class Outcome:
    step: Step
    status: str                          # passed | failed | timeout | skipped
    seconds: float
    returncode: int | None
    tail: str


def _me(*args) -> list[str]:
    """A step run by this module itself (``--run-step NAME``), in a fresh interpreter."""
    return [sys.executable, "-m", "bench.gpu_proof", "--run-step", *args]


def plan(device: str, out: Path) -> list[Step]:
    """Every step, in order, for ``device`` ("gpu": the proof; "cpu": the same plan, small)."""
    gpu = device == "gpu"
    py = sys.executable
    size = "256" if gpu else "32"
    tasks = {
        "invert": ["--image", "astronaut", "--layer", "pool3"],
        "texture": ["--image", "brick"],
        "style": ["--content", "chelsea", "--style", "ihc"],
    }
    steps = [
        Step("env", "versions: driver, CUDA, CuPy, NVRTC, cuBLAS, torch/cuDNN; the device check",
             _me("env", device), 60),
        Step("tests", "the GPU test suite, RANVGG_REQUIRE_GPU=1",
             [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "tests/engine/test_gpu_parity.py",
              "tests/kernels", f"--junitxml={out / 'pytest-gpu.xml'}"],
             150, env={"RANVGG_REQUIRE_GPU": "1"},
             skip=None if gpu else "the GPU suite needs a GPU (the CPU suite covers the rest)"),
        Step("gradcheck", "finite-difference gradients on the device, float64",
             [py, "-m", "tasks.gradcheck", "--device", device] + ([] if gpu else ["--only", "relu"]), 150),
        Step("network", "512 px float64 network (pool5, content loss, input gradient): device vs CPU",
             _me("network", device, "512" if gpu else "32"), 150),
        Step("wrap", "grid-stride loops that wrap: more elements than one grid covers",
             _me("wrap", device), 60, skip=None if gpu else "needs 7 GB of device memory and a GPU's speed"),
        Step("memcheck", "compute-sanitizer memcheck on a small evaluation",
             ["compute-sanitizer", "--tool", "memcheck", "--error-exitcode", "1", "--leak-check", "no",
              *_me("evaluate", device)], 120,
             skip=("compute-sanitizer checks device memory: GPU only" if not gpu
                   else None if shutil.which("compute-sanitizer") else "compute-sanitizer is not on PATH")),
        Step("launches", "kernel launches per evaluation, host syncs per device-L-BFGS iteration",
             _me("launches", device, size), 60),
        Step("ops", "every op at every VGG-19 shape against array-op baselines",
             [py, "-m", "bench.ops", "--device", device, "--size", size] + ([] if gpu else ["--repeat", "1"]), 90),
        Step("iteration", "one evaluation: ranvgg against PyTorch strict fp32 and TF32",
             [py, "-m", "bench.iteration", "--device", device, "--sizes", "256,512" if gpu else "32",
              "--repeat", "5" if gpu else "1"], 120),
        Step("iteration_f4", "the same with Winograd F(4x4) forced (RANVGG_CONV=f4): is it faster than F(2x2)",
             [py, "-m", "bench.iteration", "--device", device, "--sizes", "256,512" if gpu else "32",
              "--repeat", "3" if gpu else "1"], 90, env={"RANVGG_CONV": "f4"}),
        Step("optimizers", "ms per iteration, scipy vs device L-BFGS; does the device L-BFGS reach scipy's loss",
             _me("optimizers", device, size, "50" if gpu else "5"), 120),
    ]
    for task, args in tasks.items():
        steps.append(Step(task, f"a 50-iteration {task} run on the device",
                          [py, "-m", f"tasks.{task}", "--device", device, "--size", size,
                           "--iters", "50" if gpu else "3", "--print-every", "0",
                           "--out", str(out / f"{task}.png"), *args], 90))
    return steps


# ----------------------------------------------------------------------------- running


def run_step(step: Step, out: Path) -> Outcome:
    """Run one step in a subprocess under its timeout; its whole log goes to DIR/<name>.log."""
    log = out / f"{step.name}.log"
    if step.skip:
        log.write_text(f"skipped: {step.skip}\n")
        return Outcome(step, "skipped", 0.0, None, step.skip)
    env = {**os.environ, **step.env, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    with open(log, "w") as f:
        f.write(f"$ {shlex.join(step.argv)}\n")
        f.flush()
        try:
            proc = subprocess.Popen(step.argv, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as exc:   # the program itself is missing
            f.write(f"could not start: {exc}\n")
            return Outcome(step, "failed", time.perf_counter() - t0, None, f"could not start: {exc}")
        try:
            rc = proc.wait(timeout=step.timeout)
            status = "passed" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            rc, status = None, "timeout"
    seconds = time.perf_counter() - t0
    lines = log.read_text(errors="replace").splitlines()
    tail = "\n".join(lines[-TAIL_LINES:])
    if status == "timeout":
        tail += f"\n(stopped after {step.timeout:.0f} s)"
    return Outcome(step, status, seconds, rc, tail)


def _kill_group(proc) -> None:
    """End the step's process group (the step and anything it started), then reap it."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue


def write_report(outcomes: list[Outcome], out: Path, header: str) -> None:
    failed = [o for o in outcomes if o.status in ("failed", "timeout")]
    total = sum(o.seconds for o in outcomes)
    lines = ["# ranvgg GPU proof", "", header, "",
             f"{len(outcomes) - len(failed)} of {len(outcomes)} steps passed or skipped, "
             f"{len(failed)} failed; {total:.0f} s in all.", "",
             "| step | status | seconds | what |", "|---|---|---|---|"]
    lines += [f"| {o.step.name} | {o.status} | {o.seconds:.1f} | {o.step.what} |" for o in outcomes]
    for o in outcomes:
        lines += ["", f"## {o.step.name}: {o.status}", "", f"`{shlex.join(o.step.argv)}`", "", "```", o.tail, "```"]
    (out / "report.md").write_text("\n".join(lines) + "\n")

    cases = []
    for o in outcomes:
        body = ""
        if o.status == "skipped":
            body = f"<skipped message={quoteattr(o.tail)}/>"
        elif o.status != "passed":
            kind = "timed out" if o.status == "timeout" else f"exit status {o.returncode}"
            body = f"<failure message={quoteattr(kind)}>{escape(o.tail)}</failure>"
        body += f"<system-out>{escape(o.tail)}</system-out>"
        cases.append(f'  <testcase classname="gpu_proof" name={quoteattr(o.step.name)} '
                     f'time="{o.seconds:.3f}">{body}</testcase>')
    skipped = sum(o.status == "skipped" for o in outcomes)
    xml = (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="gpu_proof" tests="{len(outcomes)}" '
           f'failures="{len(failed)}" errors="0" skipped="{skipped}" time="{total:.3f}">\n'
           + "\n".join(cases) + "\n</testsuite>\n")
    (out / "junit.xml").write_text(xml)


def run_all(steps: list[Step], out: Path, header: str = "", echo=print, budget: float | None = None) -> int:
    """Run ``steps`` in order, write the report and JUnit XML; 1 if any failed, else 0.
    ``budget``: seconds for the whole run; each step's timeout is cut to what is left of it."""
    out.mkdir(parents=True, exist_ok=True)
    outcomes = []
    t0 = time.perf_counter()
    for step in steps:
        echo(f"[{step.name}] {step.what} ...", flush=True)
        left = None if budget is None else budget - (time.perf_counter() - t0)
        if left is not None and left < 1.0 and not step.skip:
            o = Outcome(step, "timeout", 0.0, None, f"not run: the whole run's budget of {budget:.0f} s was spent")
            (out / f"{step.name}.log").write_text(o.tail + "\n")
        else:
            if left is not None and not step.skip:
                step = replace(step, timeout=min(step.timeout, left))
            o = run_step(step, out)
        outcomes.append(o)
        echo(f"[{step.name}] {o.status} in {o.seconds:.1f} s" + (f" ({o.step.skip})" if o.step.skip else ""),
             flush=True)
        write_report(outcomes, out, header)   # a report even if the run is cut short
    bad = [o.step.name for o in outcomes if o.status in ("failed", "timeout")]
    echo(f"report: {out / 'report.md'}; junit: {out / 'junit.xml'}; "
         + (f"FAILED: {', '.join(bad)}" if bad else "every step passed or was skipped"), flush=True)
    return 1 if bad else 0


# ----------------------------------------------------------------------------- the steps this module runs


def step_env(device: str) -> int:
    """Versions and the device check; fails when the device cannot be used."""
    import platform

    import numpy as np

    from engine import backend

    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.platform()}")
    try:
        import cupy
        print(f"cupy {cupy.__version__}")
        rt = cupy.cuda.runtime
        for label, fn in (("CUDA driver", rt.driverGetVersion), ("CUDA runtime", rt.runtimeGetVersion)):
            try:
                print(f"{label} {fn()}")
            except Exception as exc:
                print(f"{label}: unknown ({exc})")
        try:
            from cupy_backends.cuda.libs import nvrtc
            print(f"NVRTC {nvrtc.getVersion()}")
        except Exception as exc:
            print(f"NVRTC: unavailable ({exc})")
        try:
            print(f"cuBLAS {cupy.cuda.cublas.getVersion(cupy.cuda.device.get_cublas_handle())}")
        except Exception as exc:
            print(f"cuBLAS: unavailable ({exc})")
        try:
            props = rt.getDeviceProperties(0)
            print(f"GPU {props['name'].decode()}, sm_{props['major']}{props['minor']}, "
                  f"{props['totalGlobalMem'] / 2**30:.0f} GiB")
        except Exception as exc:
            print(f"GPU: none ({exc})")
    except ImportError:
        print("cupy: not installed")
    try:
        import torch
        cudnn = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {cudnn}")
    except ImportError:
        print("torch: not installed (the PyTorch rows of the iteration step are left out)")
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True)
        print(f"nvidia-smi: {smi.stdout.strip() or smi.stderr.strip()}")
    reason = backend.gpu_unavailable_reason()
    print(f"device check: {'GPU usable' if reason is None else reason}")
    return 0 if device == "cpu" or reason is None else 1


def step_network(device: str, size: int) -> int:
    """float64 net at ``size`` px: loss and input gradient of a pool5 content loss, device vs CPU."""
    import numpy as np

    from engine import backend
    from engine.objectives import Objective
    from engine.vgg import VGG19

    rng = np.random.default_rng(0)
    x0, x = (rng.normal(0, 50, (1, 3, size, size)) for _ in range(2))
    got = {}
    for dev in dict.fromkeys([device, "cpu"]):
        net = VGG19.random(seed=0, device=dev, dtype=np.float64)
        t = time.perf_counter()
        value, grad = Objective.inversion(net, x0, "pool5").value_and_grad(x)
        got[dev] = (value, backend.to_host(grad))
        print(f"{dev}: loss {value:.15e} in {time.perf_counter() - t:.2f} s")
    (v, g), (vc, gc) = got[device], got["cpu"]
    lerr = abs(v - vc) / abs(vc)
    gerr = float(np.linalg.norm(g - gc) / np.linalg.norm(gc))
    print(f"relative difference: loss {lerr:.1e}, gradient {gerr:.1e} (norm); limit 1e-9")
    return 0 if lerr <= 1e-9 and gerr <= 1e-9 else 1


def _im2col_equal(x, cols) -> bool:
    """Whether cols (N, C*9, H*W) holds x's 3x3 zero-padded neighbourhoods, compared one tap at a
    time (no second copy of cols: the wrap step's is 4.8 GB)."""
    from engine import backend

    xp = backend.array_module(x)
    n, c, h, w = x.shape
    xpad = xp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    taps = cols.reshape(n, c, 9, h, w)
    return all(bool((taps[:, :, 3 * ky + kx] == xpad[:, :, ky:ky + h, kx:kx + w]).all())
               for ky in range(3) for kx in range(3))


def step_wrap(device: str) -> int:
    """Every grid-stride loop wraps: ReLU over more elements than the largest grid's threads;
    im2col (plain and ReLU-masked) over one plane of more positions than its grid's x covers, and
    over more rows (N*C*9) than gridDim.y's limit; Winograd over more planes than gridDim.y's."""
    import math

    import numpy as np

    from engine import backend
    from engine.ops import conv3x3, relu

    xp = backend.xp_for(device)
    cover = backend.MAX_BLOCKS * backend.THREADS          # threads in the largest grid launched
    n = cover + 4099
    x = xp.arange(n, dtype=xp.float32) % 7 - 3
    y = relu.relu_forward(x)
    ok_relu = bool((y == xp.maximum(x, 0)).all())
    print(f"relu over {n} elements ({n / cover:.3f} grids): {'equal' if ok_relu else 'DIFFERENT'} to maximum(x, 0)")
    del x, y
    # im2col's 2-D grid: x over one row's H*W positions, y over the N*C*9 rows
    side = math.isqrt(cover) + 2
    wide = (1, 1, cover // side + 2, side)                          # H*W > the x extent's threads
    tall = (2, backend.MAX_PLANE_BLOCKS // 18 + 2, 5, 6)            # N*C*9 > gridDim.y's limit
    rng = np.random.default_rng(0)
    ok_cols = True
    for shape in (wide, tall):
        img = xp.asarray(rng.standard_normal(shape, dtype=np.float32))
        mask = xp.maximum(xp.asarray(rng.standard_normal(shape, dtype=np.float32)), 0)
        for relu_out in (None, mask):
            cols = conv3x3.im2col3x3(img, relu_out)
            same = _im2col_equal(img if relu_out is None else img * (relu_out > 0), cols)
            rows, hw = cols.shape[0] * cols.shape[1], cols.shape[2]
            del cols
            ok_cols = ok_cols and same
            print(f"im2col{'' if relu_out is None else ' masked by a ReLU'} of {shape}: {rows} rows "
                  f"({rows / backend.MAX_PLANE_BLOCKS:.3f} grids in y) of {hw} positions ({hw / cover:.3f} grids "
                  f"in x): {'equal' if same else 'DIFFERENT'} to the padded image's shifted slices")
        del img, mask
    # Winograd's 2-D grid: more planes (images x channels) than gridDim.y's 65535
    planes = backend.MAX_PLANE_BLOCKS + 4467
    rng = np.random.default_rng(1)
    many = xp.asarray(rng.standard_normal((planes, 1, 5, 6)), dtype=xp.float32)
    p = conv3x3.ConvWeights(xp.asarray(rng.standard_normal((2, 1, 3, 3)), dtype=xp.float32),
                            xp.asarray(rng.standard_normal(2), dtype=xp.float32))
    got = conv3x3.conv3x3_forward(many, p, relu=True, algorithm="f2")
    ref = conv3x3.conv3x3_forward(many, p, relu=True, algorithm="im2col")
    err = float(xp.abs(got - ref).max() / xp.abs(ref).max())
    ok_wino = err <= 1e-5
    print(f"Winograd F(2x2) over {planes} planes ({planes / backend.MAX_PLANE_BLOCKS:.3f} grids in y): "
          f"largest difference to im2col {err:.1e} of the scale (limit 1e-5)")
    return 0 if ok_relu and ok_cols and ok_wino else 1


def step_evaluate(device: str) -> int:
    """One small evaluation (for compute-sanitizer): 64 px, pool5, max pooling, TV, float32."""
    import numpy as np

    from engine.objectives import Objective
    from engine.vgg import VGG19

    net = VGG19.random(seed=0, device=device, pooling="max")
    x0 = np.random.default_rng(0).normal(0, 50, (1, 3, 64, 64)).astype(np.float32)
    obj = Objective.inversion(net, x0, "pool5", tv_weight=0.1)
    value, _ = obj.value_and_grad(x0[:, :, ::-1].copy())
    print(f"loss {value:.6e}")
    return 0 if np.isfinite(value) else 1


def step_launches(device: str, size: int) -> int:
    """Kernel launches per evaluation and host syncs per device-L-BFGS iteration (backend.counts)."""
    import numpy as np

    from engine import backend
    from engine.objectives import Objective
    from engine.optim.device_lbfgs import lbfgs_device
    from engine.vgg import VGG19

    net = VGG19.random(seed=0, device=device)
    x0 = np.random.default_rng(0).normal(0, 50, (1, 3, size, size)).astype(np.float32)
    obj = Objective.inversion(net, x0, "pool5")
    obj.calibrate(x0)
    obj.value_and_grad(x0)
    with backend.counting() as per_eval:
        obj.value_and_grad(x0)
    print(f"one evaluation: {per_eval['launches']} raw-kernel launches, {per_eval['fused']} fused kernels, "
          f"{per_eval['syncs']} host syncs")
    marks, evals = [], {"n": 0}

    def counted(x):
        evals["n"] += 1
        return real(x)

    real, obj.value_and_grad = obj.value_and_grad, counted
    with backend.counting() as run:
        res = lbfgs_device(obj, x0[:, :, ::-1].copy(), iters=10,
                           callback=lambda *a: marks.append((backend.COUNTS["lbfgs_syncs"], evals["n"])))
    steps = [(r1 - r0, e1 - e0) for (r0, e0), (r1, e1) in zip(marks, marks[1:])]
    plain = [r for r, e in steps if e == 1]
    print(f"device L-BFGS: {res.iterations} iterations, {res.evaluations} evaluations, "
          f"{run['launches']} raw-kernel launches, {run['fused']} fused kernels, {run['syncs']} host syncs in all, "
          f"{run['lbfgs_syncs']} of them the optimiser's own")
    print(f"optimiser reads per iteration after the first (reads, evaluations): {steps}")
    ok = bool(plain) and all(r == 1 for r in plain) and all(r <= e for r, e in steps)
    print("at most one optimiser read per iteration of one evaluation: " + ("yes" if ok else "NO"))
    return 0 if ok else 1


def step_optimizers(device: str, size: int, iters: int) -> int:
    """scipy's L-BFGS-B and the device L-BFGS on the same pool3 inversion: ms per iteration, and
    whether the device one reaches scipy's loss (within 5 %: float32 paths differ)."""
    import numpy as np

    from engine.io import image
    from engine.objectives import Objective
    from engine.optim import lbfgs, lbfgs_device
    from engine.vgg import VGG19

    net = VGG19.random(seed=0, device=device)
    rng = np.random.default_rng(0)
    x0 = rng.normal(0, 50, (1, 3, size, size)).astype(np.float32)
    obj = Objective.inversion(net, x0, "pool3")
    obj.calibrate(x0)
    lo, hi = image.pixel_bounds(net.preprocessing)
    bounds = (lo.reshape(1, 3, 1, 1), hi.reshape(1, 3, 1, 1))
    start = rng.normal(0, 50, x0.shape).astype(np.float32)
    obj.value_and_grad(start)  # warm-up
    res = {}
    for name, method in (("scipy L-BFGS-B", lbfgs), ("device L-BFGS", lbfgs_device)):
        r = method(obj, start, bounds, iters=iters)
        res[name] = r
        print(f"{name:15s} {r.seconds / max(r.iterations, 1) * 1e3:8.1f} ms per iteration, "
              f"{r.evaluations / max(r.iterations, 1):.2f} evaluations per iteration, "
              f"final loss {r.loss:.6e} after {r.iterations} ({r.stop})")
    ref, dev = res["scipy L-BFGS-B"].loss, res["device L-BFGS"].loss
    reached = dev <= ref * 1.05
    print(f"device L-BFGS {'reaches' if reached else 'does NOT reach'} scipy's loss: {dev:.6e} vs {ref:.6e} "
          f"(ratio {dev / ref:.3f}, accepted up to 1.05)")
    return 0 if reached else 1


STEP_FUNCTIONS = {"env": step_env, "network": step_network, "wrap": step_wrap, "evaluate": step_evaluate,
                  "launches": step_launches, "optimizers": step_optimizers}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_proof", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="folder for report.md, junit.xml and the step logs")
    ap.add_argument("--device", default="gpu", choices=("gpu", "cpu"),
                    help="gpu: the proof (default); cpu: the same plan at small sizes, as the tests run it")
    ap.add_argument("--steps", help="comma-separated step names (default: all; --list shows them)")
    ap.add_argument("--list", action="store_true", help="print the steps and exit")
    ap.add_argument("--budget", type=float, default=540.0,
                    help="seconds for the whole run; each step's own limit is cut to what is left (default 540)")
    ap.add_argument("--run-step", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.run_step:
        name, *args = a.run_step
        fn = STEP_FUNCTIONS[name]
        return fn(args[0], *(int(v) for v in args[1:]))
    out = Path(a.out or "gpu_proof").resolve()
    steps = plan(a.device, out)
    if a.list:
        for s in steps:
            print(f"{s.name:12s} {s.timeout:5.0f} s  {s.what}")
        return 0
    if a.steps:
        wanted = [s.strip() for s in a.steps.split(",") if s.strip()]
        unknown = sorted(set(wanted) - {s.name for s in steps})
        if unknown:
            print(f"error: --steps: no step named {', '.join(unknown)}; --list shows them", file=sys.stderr)
            return 2
        steps = [s for s in steps if s.name in wanted]
    header = (f"`python -m bench.gpu_proof --out {out}` on {a.device}; "
              f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; time limits: "
              + json.dumps({s.name: s.timeout for s in steps}))
    return run_all(steps, out, header, budget=a.budget)


if __name__ == "__main__":
    sys.exit(main())
