"""Every op at every VGG-19 shape: the engine's op against a plain array-op baseline, GFLOP/s.

    python -m bench.ops [--device cpu|gpu|auto] [--size 256] [--repeat N] [--dtype float32]

Convs: all 16 VGG-19 layers at their map size for a size x size image, with the algorithm the
engine picks there (im2col, Winograd F(2x2) or F(4x4): ``conv3x3.choose``); GFLOP/s counts the
direct conv's 2*Cin*Cout*9*H*W multiply-adds whatever the algorithm, and "of GEMM" is that rate
over the machine's own measured GEMM rate (a 2048^3 float32 matmul, timed first): above 100%
means fewer multiplies than direct, not a faster GEMM.

For every op: check the engine's result (on the chosen device) against the baseline computed
with NumPy on a small input, warm up, then time forward and backward and report medians. The
baselines are written with whole-array ops only (pad + slices, reshape, einsum), so the same
code runs on NumPy and CuPy; the ratio column is baseline time / engine time (above 1: the
engine is faster). GPU timings use CUDA events around each call; CPU timings use perf_counter.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from engine import UserError, backend
from engine.ops import conv3x3, gram, pooling, relu, tv

# ----------------------------------------------------------------------------- baselines (any xp)


def im2col_slices(x):
    """(N, C, H, W) -> (N, C*9, H*W), from a padded copy and nine shifted slices."""
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    xpad = xp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    taps = [xpad[:, :, ky:ky + h, kx:kx + w] for ky in range(3) for kx in range(3)]
    return xp.stack(taps, axis=2).reshape(n, c * 9, h * w)  # (N, C, 9, H, W) -> (N, C*9, H*W)


def conv_slices(x, w_mat):
    n, _, h, w = x.shape
    return backend.array_module(x).matmul(w_mat, im2col_slices(x)).reshape(n, w_mat.shape[0], h, w)


def windows(x):
    """(N, C, H, W) -> (N, C, H//2, W//2, 4): each 2x2 window, row-major (odd edges dropped)."""
    n, c, h, w = x.shape
    ho, wo = h // 2, w // 2
    x = x[:, :, :2 * ho, :2 * wo].reshape(n, c, ho, 2, wo, 2)
    return x.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho, wo, 4)


def unwindows(v, shape):
    """Inverse of ``windows`` into a zero map of ``shape``."""
    xp = backend.array_module(v)
    n, c, ho, wo, _ = v.shape
    out = xp.zeros(shape, dtype=v.dtype)
    out[:, :, :2 * ho, :2 * wo] = v.reshape(n, c, ho, wo, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, 2 * ho, 2 * wo)
    return out


def maxpool_windows(x):
    win = windows(x)
    arg = win.argmax(axis=-1)  # the first maximum wins ties, as in the engine
    return win.max(axis=-1), arg.astype(np.uint8)


def maxpool_unwindows(gy, arg, shape):
    xp = backend.array_module(gy)
    hit = arg[..., None] == xp.arange(4, dtype=np.uint8)
    return unwindows(xp.where(hit, gy[..., None], 0).astype(gy.dtype), shape)


def tv_slices(x):
    xp = backend.array_module(x)
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    g = xp.zeros_like(x)
    g[..., :, 1:] += 2 * dx
    g[..., :, :-1] -= 2 * dx
    g[..., 1:, :] += 2 * dy
    g[..., :-1, :] -= 2 * dy
    return (dx * dx).sum() + (dy * dy).sum(), g


def gram_einsum(f):
    fm = f.reshape(f.shape[0], f.shape[1], -1)  # (N, C, h, w) -> (N, C, M)
    return backend.array_module(f).einsum("ncm,ndm->ncd", fm, fm)


def gram_bwd_einsum(gg, f):
    fm = f.reshape(f.shape[0], f.shape[1], -1)
    return backend.array_module(f).einsum("ncd,ndm->ncm", gg + gg.transpose(0, 2, 1), fm).reshape(f.shape)


def shifted_gram_slices(f, d):
    """A B^T of f's maps against themselves moved d columns across, from sliced copies."""
    a, b = f[..., :, :-d], f[..., :, d:]
    n, c = f.shape[:2]
    return backend.array_module(f).einsum("ncm,ndm->ncd", a.reshape(n, c, -1), b.reshape(n, c, -1))


def shifted_gram_bwd_slices(gg, f, d):
    xp = backend.array_module(f)
    n, c, h, w = f.shape
    a, b = f[..., :, :-d].reshape(n, c, -1), f[..., :, d:].reshape(n, c, -1)
    g = xp.zeros_like(f)
    g[..., :, :-d] += xp.einsum("ncd,ndm->ncm", gg, b).reshape(n, c, h, w - d)
    g[..., :, d:] += xp.einsum("ndc,ndm->ncm", gg, a).reshape(n, c, h, w - d)
    return g


# ----------------------------------------------------------------------------- the cases


@dataclass
class Case:
    """One op at one shape. ``make(xp, dtype, s)`` builds the inputs for map size ``s``."""

    name: str
    shape: Callable[[int], tuple]  # map size -> (N, C, H, W) of the input
    baseline: str
    make: Callable
    fwd: Callable
    bwd: Callable
    base_fwd: Callable
    base_bwd: Callable
    flops: float | None = None     # direct-conv multiply-adds x 2, per input pixel of the map
    cin: int = 0
    cout: int = 0


def rng_array(xp, shape, dtype, seed, scale=1.0):
    a = np.random.default_rng(seed).standard_normal(shape).astype(dtype) * dtype(scale)
    return xp.asarray(a)


def conv_case(name, cin, cout, div):
    def make(xp, dtype, s):
        shape = (1, cin, s // div, s // div)
        w = rng_array(xp, (cout, cin, 3, 3), dtype, 1, np.sqrt(2.0 / (9 * cin)))
        return {"x": rng_array(xp, shape, dtype, 0), "gy": rng_array(xp, (1, cout, *shape[2:]), dtype, 2),
                "p": conv3x3.ConvWeights(w, xp.zeros(cout, dtype=dtype))}

    return Case(
        f"{name} {cin}->{cout}", lambda s: (1, cin, s // div, s // div), "pad+slices im2col, same GEMM", make,
        lambda a: conv3x3.conv3x3_forward(a["x"], a["p"]),
        lambda a: conv3x3.conv3x3_backward(a["gy"], a["p"]),
        lambda a: conv_slices(a["x"], a["p"].w_fwd),
        lambda a: conv_slices(a["gy"], a["p"].w_bwd),
        flops=2 * cin * cout * 9, cin=cin, cout=cout,
    )


def map_case(name, channels, baseline, fwd, bwd, base_fwd, base_bwd, extra=None):
    """An op on one (1, C, s, s) map; ``extra(a)`` adds inputs computed from x (y, arg, gy)."""
    def make(xp, dtype, s):
        a = {"x": rng_array(xp, (1, channels, s, s), dtype, 0)}
        a["gy"] = rng_array(xp, (1, channels, s, s), dtype, 2)
        a["gy_pool"] = rng_array(xp, (1, channels, s // 2, s // 2), dtype, 3)
        a["gg"] = rng_array(xp, (1, channels, channels), dtype, 4)
        if extra:
            a.update(extra(a))
        return a

    return Case(name, lambda s: (1, channels, s, s), baseline, make, fwd, bwd, base_fwd, base_bwd)


def im2col_case(channels, div):
    def make(xp, dtype, s):
        return {"x": rng_array(xp, (1, channels, s // div, s // div), dtype, 0)}

    return Case(f"im2col {channels}ch", lambda s: (1, channels, s // div, s // div), "pad+slices im2col", make,
                lambda a: conv3x3.im2col3x3(a["x"]), None, lambda a: im2col_slices(a["x"]), None)


def _vgg_convs():
    from engine.arch import CONV_SHAPES

    out = []
    for name, (cout, cin, _, _) in CONV_SHAPES:
        block = int(name[4])
        out.append(conv_case(name, cin, cout, 2 ** (block - 1)))
    return out


CASES = [
    im2col_case(64, 1),
    im2col_case(512, 16),
    *_vgg_convs(),
    map_case("relu", 64, "xp.where",
             lambda a: relu.relu_forward(a["x"]), lambda a: relu.relu_backward(a["y"], a["gy"]),
             lambda a: backend.array_module(a["x"]).where(a["x"] > 0, a["x"], 0),
             lambda a: a["gy"] * (a["y"] > 0),
             extra=lambda a: {"y": relu.relu_forward(a["x"])}),
    map_case("avgpool2", 64, "reshape + mean",
             lambda a: pooling.avgpool2_forward(a["x"]), lambda a: pooling.avgpool2_backward(a["gy_pool"], a["x"].shape),
             lambda a: windows(a["x"]).mean(axis=-1),
             lambda a: unwindows(backend.array_module(a["x"]).repeat(a["gy_pool"][..., None], 4, axis=-1) * 0.25,
                                 a["x"].shape)),
    map_case("maxpool2", 64, "reshape + argmax",
             lambda a: pooling.maxpool2_forward(a["x"]),
             lambda a: pooling.maxpool2_backward(a["gy_pool"], a["arg"], a["x"].shape),
             lambda a: maxpool_windows(a["x"]),
             lambda a: maxpool_unwindows(a["gy_pool"], a["arg"], a["x"].shape),
             extra=lambda a: {"arg": pooling.maxpool2_forward(a["x"])[1]}),
    map_case("tv (fwd+bwd)", 3, "array slices",
             lambda a: tv.tv_forward_backward(a["x"]), None,
             lambda a: tv_slices(a["x"]), None),
    map_case("gram", 64, "einsum",
             lambda a: gram.gram_forward(a["x"]), lambda a: gram.gram_backward(a["gg"], a["x"]),
             lambda a: gram_einsum(a["x"]), lambda a: gram_bwd_einsum(a["gg"], a["x"])),
    map_case("shifted gram (4 across)", 64, "sliced copies + einsum",
             lambda a: gram.shifted_gram_forward(a["x"], (0, 4)),
             lambda a: gram.shifted_gram_backward(a["gg"], a["x"], (0, 4)),
             lambda a: shifted_gram_slices(a["x"], 4), lambda a: shifted_gram_bwd_slices(a["gg"], a["x"], 4)),
]


# ----------------------------------------------------------------------------- check and time


def flat(out):
    return out if isinstance(out, tuple) else (out,)


def check(case: Case, xp, dtype, size: int) -> None:
    """Engine on the device vs the baseline in NumPy, same small inputs (raises on mismatch)."""
    host = case.make(np, dtype, size)
    dev = case.make(xp, dtype, size)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    for what, engine_fn, base_fn in (("forward", case.fwd, case.base_fwd), ("backward", case.bwd, case.base_bwd)):
        if engine_fn is None:
            continue
        for got, want in zip(flat(engine_fn(dev)), flat(base_fn(host))):
            got, want = backend.to_host(got), np.asarray(want)
            atol = rtol * float(np.abs(want).max(initial=0.0))
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"{case.name} {what}")


def timer(device: str):
    """A function ``t(fn, a) -> milliseconds`` for one call of ``fn(a)`` on ``device``."""
    if device == "gpu":
        cupy = backend.xp_for("gpu")
        start, end = cupy.cuda.Event(), cupy.cuda.Event()

        def t(fn, a):
            start.record()
            fn(a)
            end.record()
            end.synchronize()
            return cupy.cuda.get_elapsed_time(start, end)
    else:
        def t(fn, a):
            t0 = time.perf_counter()
            fn(a)
            return (time.perf_counter() - t0) * 1e3
    return t


def median_ms(t, fn, a, repeat: int, warmup: int):
    if fn is None:
        return None
    for _ in range(warmup):
        t(fn, a)
    return statistics.median(t(fn, a) for _ in range(repeat))


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.ops", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=backend.DEVICES)
    ap.add_argument("--size", type=int, default=256, help="image side; deeper layers get size/4, size/16")
    ap.add_argument("--repeat", type=int, default=None, help="timed calls per op (default 10 on CPU, 30 on GPU)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--check-size", type=int, default=None,
                    help="image side of the correctness check (default: --size, the timed shapes themselves)")
    args = ap.parse_args(argv)
    try:
        device = backend.resolve_device(args.device)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    xp, dtype = backend.xp_for(device), getattr(np, args.dtype)
    repeat = args.repeat or (30 if device == "gpu" else 10)
    warmup = 3 if device == "gpu" else 1
    t = timer(device)

    ceiling = gemm_ceiling(xp, dtype, t)
    print(f"ranvgg op benchmarks: device={device}, dtype={args.dtype}, size={args.size}, "
          f"repeat={repeat}, medians in ms; ratio = baseline / engine; GEMM ceiling {ceiling:.0f} GFLOP/s")
    head = (f"{'op':<20} {'input (N,C,H,W)':<18} {'algo':<6} {'fwd':>8} {'bwd':>8} {'GFLOP/s f':>9} {'b':>5} "
            f"{'of GEMM':>8}   {'baseline':<30} {'fwd':>8} {'bwd':>8} {'ratio f':>8} {'ratio b':>8}")
    print(head)
    print("-" * len(head))
    for case in CASES:
        check(case, xp, dtype, args.check_size or args.size)
        a = case.make(xp, dtype, args.size)
        ms = [median_ms(t, fn, a, repeat, warmup) for fn in (case.fwd, case.bwd, case.base_fwd, case.base_bwd)]
        ratio_f = ms[2] / ms[0]
        ratio_b = None if ms[1] is None else ms[3] / ms[1]
        n, c, h, w = case.shape(args.size)
        shape = f"{n}x{c}x{h}x{w}"
        algo, gf, gb, frac = "-", None, None, None
        if case.flops:
            algo = conv3x3.choose(case.cin, case.cout, h, w, xp)
            gf, gb = (case.flops * h * w / (v * 1e6) for v in ms[:2])
            frac = f"{100 * gf / ceiling:.0f}%"
        print(f"{case.name:<20} {shape:<18} {algo:<6} {fmt(ms[0]):>8} {fmt(ms[1]):>8} {fmt(gf, '.0f'):>9} "
              f"{fmt(gb, '.0f'):>5} {frac or '-':>8}   {case.baseline:<30} {fmt(ms[2]):>8} {fmt(ms[3]):>8} "
              f"{fmt(ratio_f):>8} {fmt(ratio_b):>8}", flush=True)
        del a
    print("checked: every op matched its NumPy baseline at the timed shapes before it was timed")


def gemm_ceiling(xp, dtype, t, n: int = 2048) -> float:
    """GFLOP/s of one large square matmul on the device: what BLAS / cuBLAS can do here."""
    a = rng_array(xp, (n, n), dtype, 0)
    b = rng_array(xp, (n, n), dtype, 1)
    ms = median_ms(t, lambda _: a @ b, None, 5, 1)
    return 2 * n ** 3 / (ms * 1e6)


if __name__ == "__main__":
    main()
