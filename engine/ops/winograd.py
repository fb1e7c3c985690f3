"""Winograd F(m x m, 3 x 3) convolution on the CPU: the same conv as conv3x3.py, fewer multiplies.

A 3x3 conv over an (m+2) x (m+2) input tile d gives an m x m output tile; Winograd (Lavin &
Gray 2016) writes it as

    Y = A^T [ (G g G^T) * (B^T d B) ] A           * elementwise over the a x a = (m+2)^2 points

Summed over input channels, the elementwise products become one GEMM per transform point k:

    U[k] (Cout, Cin) = (G g G^T)[k]                once per network: weights never change
    V[k] (Cin, P)    = (B^T d B)[k]                input transform, P tiles (numba)
    M[k] (Cout, P)   = U[k] @ V[k]                 a x a batched GEMMs (BLAS)
    y tile           = A^T M A                     output transform (+ bias, ReLU) (numba)

F(2x2): 16 GEMMs of K = Cin for 4 outputs per tile, 2.25x fewer multiplies than direct;
F(4x4): 36 GEMMs for 16 outputs, 4x fewer. The price is rounding: the transforms mix values of
different size, so float32 error grows with m (tests/engine/test_winograd.py measures it). In float64 the
result is exact to rounding, so gradient checks see the same conv.

The input gradient runs the same steps transposed, in reverse, with the same U (no second set of
transformed weights, which for F(4x4) would take 4x the conv weights again):

    W[k] (Cout, P)   = (A gy_t A^T)[k]             per m x m tile of the output gradient (numba)
    M[k] (Cin, P)    = U[k]^T @ W[k]               a x a batched GEMMs, U read transposed (BLAS)
    gx               += B M_t B^T                  per tile, (m+2) x (m+2), overlapping (numba)

a ReLU that followed the conv is applied as a mask as gy's tiles are read.

Tiles are cut from a zero-padded copy of the input (one channel's rows padded to a whole number
of tiles), so the transform loops have no bounds checks. Scratch buffers (the padded copy, V, M)
are kept between calls (``scratch``, one set per thread): they are the size of the largest layer and would
otherwise be allocated, and page-faulted, on every conv.

The transforms run channel by channel, in parallel runs of channels (``_chunks``). On one image
of whole tiles in one band (the small maps of the deep layers) the backward's scatter runs
over a run of channels at once, their tiles laid end to end (``_grad_output_whole``): on a
16 x 16 map a channel's pass is a few dozen tiles, too short to pay for its calls.
"""
from __future__ import annotations

import os
import threading

import numpy as np

from ..parallel import CACHE, matmul, numba, parallel_jit, run_split, split, threads

# ----------------------------------------------------------------------------- the transforms
# Points 0, 1, -1 (m = 2) and 0, 1, -1, 2, -2 (m = 4), plus infinity (Lavin & Gray 2016).
_G = {
    2: np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]),
    4: np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                 [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
}
BT = {
    2: np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float),
    4: np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float),
}
AT = {
    2: np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float),
    4: np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                 [0, 1, -1, 8, -8, 1]], float),
}
TILES = tuple(_G)


def weight_transform(weight, m: int, dtype):
    """(Cout, Cin, 3, 3) -> U (a*a, Cout, Cin) = G g G^T, computed in float64, stored as dtype."""
    g = _G[m]
    u = np.einsum("iu,ocuv,jv->ijoc", g, np.asarray(weight, np.float64), g)
    a = m + 2
    return np.ascontiguousarray(u.reshape(a * a, *weight.shape[:2]), dtype=dtype)


# A layer's U takes (m+2)^2 / 9 times its conv weights (4x for F(4x4)): kept for every layer it
# would be the largest thing a run holds (225 MiB for VGG-19 to pool5 at 256 px, against 81 MiB
# of activations). A small U is kept (made once, in float64, then cast); a larger one is made
# again at each call, point by point beside its GEMMs (``_made_matmul``, below).
U_CACHE_BYTES = 4 * 2**20
# The network's first layers keep theirs, counted at F(4x4)'s size in forward order: on a small
# map making U at each call is a large part of a conv's work, and the U of the first layers is
# small beside their maps. Up to U_PREFIX_BYTES for all of them together while the call's map
# is at most SMALL_SIDE px on its shorter side (a 128 px run to pool3 keeps every U, 37 MB for
# VGG-19), and up to U_PREFIX_BYTES_LARGE on larger maps (a 256 px run keeps conv1_1 to conv3_1,
# 9 MB, and makes conv3_2's onwards at each call: kept there, the 28 MB of conv3_2-3_4 would
# save under 4% of an evaluation; docs/performance.md). A U kept on a small map is let
# go when the same layer meets a larger one (a coarse stage, then the full size).
U_PREFIX_BYTES = 48 * 2**20
U_PREFIX_BYTES_LARGE = 10 * 2**20
SMALL_SIDE = 32
# RANVGG_MEMORY=fast trades memory for time: every U is kept and maps run in bands of up to
# FAST_BAND_BYTES (measured in docs/performance.md); "lean", the default, is the above.
MEMORY_MODES = ("lean", "fast")
FAST_BAND_BYTES = 64 * 2**20


def memory_mode() -> str:
    """RANVGG_MEMORY: "lean" (the default) or "fast"; another value is a UserError."""
    mode = os.environ.get("RANVGG_MEMORY", "lean")
    if mode not in MEMORY_MODES:
        from ..errors import UserError
        raise UserError(f"RANVGG_MEMORY={mode!r}: use lean (the default: least memory) or fast "
                        "(keeps the Winograd weights of every layer: faster, more memory)")
    return mode


def u_cache_bytes() -> float:
    """The largest U (and im2col backward layout) a layer keeps."""
    return float("inf") if memory_mode() == "fast" else U_CACHE_BYTES


# A U that is not kept is made at each call fused with its GEMMs (``_made_matmul``), never whole:
# each thread takes a contiguous run of the a*a points (``parallel.run_split``), and for each
# block of U_POINT_ELEMENTS of one point's U (a block of output channels in the forward, of
# input channels in the backward) it makes G g for the rows of G its points use (``_g_rows``,
# three values a kernel a row), then, point by point, that point's U block from them
# (``_u_point``, in cache) and at once the point's GEMM. Nothing waits between making U and
# using it, and each thread holds its rows of G g and one point's block (``u_block_elements``).
# Every U value and every GEMM is computed the same way whichever thread runs it, and the blocks
# follow the shapes alone: the same bits on any thread count.
U_POINT_ELEMENTS = 64 * 1024


@numba.njit(nogil=True, fastmath={"contract"}, cache=CACHE)
def _g_rows(w, g, r0, r1, t):
    """t[(i - r0) * 3 + x, o, c] = (g w[o, c])[i, x] = sum_y g[i, y] w[o, c, y, x] for the rows
    r0 <= i < r1 of g (a, 3); w: (Cout', Cin', 3, 3), any strides; t: (3 (r1 - r0), Cout', Cin')."""
    co, ci = w.shape[0], w.shape[1]
    w9 = np.empty((9, ci), w.dtype)  # w[o] tap-major: the loops below are unit-stride
    for o in range(co):
        wo = w[o]
        for y in range(3):  # one tap at a time, over all channels: unit-stride stores
            for x in range(3):
                d = w9[3 * y + x]
                for c in range(ci):
                    d[c] = wo[c, y, x]
        for i in range(r0, r1):
            g0, g1, g2 = g[i, 0], g[i, 1], g[i, 2]
            for x in range(3):
                dst, a0, a1, a2 = t[(i - r0) * 3 + x, o], w9[x], w9[3 + x], w9[6 + x]
                for c in range(ci):
                    dst[c] = g0 * a0[c] + g1 * a1[c] + g2 * a2[c]


@numba.njit(nogil=True, fastmath={"contract"}, cache=CACHE)
def _u_point(t, row, h, u):
    """u[e] = sum_x h[x] t[row + x, e]: one point's U (flattened) from ``_g_rows``' t (flattened
    to (3 rows, Cout' Cin')), h = g[j]."""
    h0, h1, h2 = h[0], h[1], h[2]
    t0, t1, t2 = t[row], t[row + 1], t[row + 2]
    for e in range(u.shape[0]):
        u[e] = h0 * t0[e] + h1 * t1[e] + h2 * t2[e]


def _point_blocks(outer: int, inner: int) -> list:
    """Slices of the ``outer`` channel axis: blocks of one point's U of at most U_POINT_ELEMENTS
    (at least one channel), ``inner`` channels deep."""
    step = max(1, U_POINT_ELEMENTS // inner)
    return [slice(c, min(c + step, outer)) for c in range(0, outer, step)]


def _made_matmul(w, m: int, v, mm, backward: bool):
    """The GEMMs of a layer whose U is made at each call from its conv weights w (Cout, Cin, 3, 3):
    forward mm[k] = U[k] @ v[k], backward mm[k] = U[k]^T @ v[k], for the a*a points k."""
    a = m + 2
    g = _coefs(_G, m, w.dtype)
    cout, cin = w.shape[:2]
    blocks = _point_blocks(*((cin, cout) if backward else (cout, cin)))

    def work(k0, k1):
        r0, r1 = k0 // a, (k1 - 1) // a + 1  # the rows of G this run of points uses
        for blk in blocks:
            wb = w[:, blk] if backward else w[blk]
            t = scratch("t", (3 * (r1 - r0), *wb.shape[:2]), w.dtype)
            _g_rows(wb, g, r0, r1, t)
            t2 = t.reshape(t.shape[0], -1)
            u = scratch("u", wb.shape[:2], w.dtype)
            for k in range(k0, k1):
                i, j = divmod(k, a)
                _u_point(t2, 3 * (i - r0), g[j], u.reshape(-1))
                np.matmul(u.T if backward else u, v[k], out=mm[k, blk])

    run_split(work, a * a)


def keeps_u(cin: int, cout: int, m: int, itemsize: int, prefix=None, side=None) -> bool:
    """Whether a layer's U is kept between calls (small, or among the network's first layers:
    ``prefix`` from ``u_prefixes``, against U_PREFIX_BYTES on maps of at most SMALL_SIDE px on
    the shorter side ``side`` (None: small) and U_PREFIX_BYTES_LARGE on larger ones) or made at
    each call."""
    if weight_elements(cin, cout, m) * itemsize <= u_cache_bytes():
        return True
    if prefix is None:
        return False
    return prefix <= (U_PREFIX_BYTES if side is None or side <= SMALL_SIDE else U_PREFIX_BYTES_LARGE)


def u_prefixes(conv_shapes, itemsize: int) -> dict:
    """{conv name: bytes of F(4x4) U of it and every conv before it} for [(name, (Cout, Cin, 3,
    3))] in forward order (``engine.arch.layer_table``): what ``keeps_u`` weighs against
    U_PREFIX_BYTES."""
    total, out = 0, {}
    for name, shape in conv_shapes:
        total += weight_elements(shape[1], shape[0], 4) * itemsize
        out[name] = total
    return out


# Layout. Tile (ty, tx) reads padded rows m*ty .. m*ty + m+1 and columns m*tx .. m*tx + m+1.
# ``_split`` stores the padded input phase by phase in both directions,
#     xs[b, c, qy, qx, ty, tx] = xpad[b, c, m*ty + qy, m*tx + qx],   (N, C, m, m, th+1, tw+1)
# so that "row m*ty + r of every tile" is the contiguous run xs[b, c, r % m, qx, r // m:][:th],
# and likewise for columns. Each tile row carries one junk tile (tx = tw) made of padding: the
# shift by one column then runs on into it instead of wrapping. Every transform step is then one
# unit-stride pass over all P tiles that reads the a (or m) vectors of a tile row or column and
# writes all its outputs at once (``_bt4`` .. ``_a2``: B^T, B, A^T and A written out, with their
# common terms: SIMD, no per-tile overhead, each vector read once). The GEMMs carry the junk tiles
# too (P = th*(tw+1) columns); the output transform drops them.
#
# The matrices' products, written out (tests/engine/test_winograd.py checks each against the
# tables above). d: outputs, s: inputs, 1-D views of one length.


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _bt4(s0, s1, s2, s3, s4, s5, d0, d1, d2, d3, d4, d5, k):
    """d = B^T s for F(4x4) (BT[4], 6 x 6)."""
    k2, k4, k5 = k[1], k[2], k[3]
    for t in range(d0.shape[0]):
        x0, x1, x2, x3, x4, x5 = s0[t], s1[t], s2[t], s3[t], s4[t], s5[t]
        p, q = x4 - k4 * x2, x3 - k4 * x1
        r, u = x4 - x2, k2 * (x3 - x1)
        d0[t] = k4 * x0 - k5 * x2 + x4
        d1[t] = p + q
        d2[t] = p - q
        d3[t] = r + u
        d4[t] = r - u
        d5[t] = k4 * x1 - k5 * x3 + x5


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _bt2(s0, s1, s2, s3, d0, d1, d2, d3):
    """d = B^T s for F(2x2) (BT[2], 4 x 4)."""
    for t in range(d0.shape[0]):
        x0, x1, x2, x3 = s0[t], s1[t], s2[t], s3[t]
        d0[t] = x0 - x2
        d1[t] = x1 + x2
        d2[t] = x2 - x1
        d3[t] = x1 - x3


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _b4(s0, s1, s2, s3, s4, s5, d0, d1, d2, d3, d4, d5, k):
    """d = B s for F(4x4) (the transpose of BT[4])."""
    k2, k4, k5 = k[1], k[2], k[3]
    for t in range(d0.shape[0]):
        x0, x1, x2, x3, x4, x5 = s0[t], s1[t], s2[t], s3[t], s4[t], s5[t]
        e, q, u, w = x1 + x2, x1 - x2, x3 + x4, x3 - x4
        d0[t] = k4 * x0
        d1[t] = k4 * (x5 - q) - k2 * w
        d2[t] = -(k5 * x0 + k4 * e + u)
        d3[t] = q + k2 * w - k5 * x5
        d4[t] = x0 + e + u
        d5[t] = x5


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _b2(s0, s1, s2, s3, d0, d1, d2, d3):
    """d = B s for F(2x2)."""
    for t in range(d0.shape[0]):
        x0, x1, x2, x3 = s0[t], s1[t], s2[t], s3[t]
        d0[t] = x0
        d1[t] = x1 - x2 + x3
        d2[t] = x1 + x2 - x0
        d3[t] = -x3


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _at4(s0, s1, s2, s3, s4, s5, d0, d1, d2, d3, k):
    """d = A^T s for F(4x4) (AT[4], 4 x 6)."""
    k2, k4, k8 = k[1], k[2], k[4]
    for t in range(d0.shape[0]):
        x0, x1, x2, x3, x4, x5 = s0[t], s1[t], s2[t], s3[t], s4[t], s5[t]
        e, q, u, w = x1 + x2, x1 - x2, x3 + x4, x3 - x4
        d0[t] = x0 + e + u
        d1[t] = q + k2 * w
        d2[t] = e + k4 * u
        d3[t] = q + k8 * w + x5


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _at2(s0, s1, s2, s3, d0, d1):
    """d = A^T s for F(2x2) (AT[2], 2 x 4)."""
    for t in range(d0.shape[0]):
        x1, x2 = s1[t], s2[t]
        d0[t] = s0[t] + x1 + x2
        d1[t] = x1 - x2 - s3[t]


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _a4(s0, s1, s2, s3, d0, d1, d2, d3, d4, d5, k):
    """d = A s for F(4x4) (the transpose of AT[4])."""
    k2, k4, k8 = k[1], k[2], k[4]
    for t in range(d0.shape[0]):
        x0, x1, x2, x3 = s0[t], s1[t], s2[t], s3[t]
        e, o = x0 + x2, x1 + x3
        e4, o8 = x0 + k4 * x2, k2 * x1 + k8 * x3
        d0[t] = x0
        d1[t] = e + o
        d2[t] = e - o
        d3[t] = e4 + o8
        d4[t] = e4 - o8
        d5[t] = x3


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _a2(s0, s1, d0, d1, d2, d3):
    """d = A s for F(2x2)."""
    for t in range(d0.shape[0]):
        x0, x1 = s0[t], s1[t]
        d0[t] = x0
        d1[t] = x0 + x1
        d2[t] = x0 - x1
        d3[t] = -x1


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _edge(row, keep, masked, off, seg, tx, zero):
    """``_phases`` for one tile tx of one row, whose columns may lie outside the row."""
    m, w = seg.shape[0], row.shape[0]
    for q in range(m):
        c = m * tx + q + off
        seg[q, tx] = row[c] if 0 <= c < w and (not masked or keep[c] > 0) else zero


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _phases(x, keep, masked, y0, off, dst, k):
    """dst[q, t, tx] = x[y0 + m*t, m*tx + q + off] for dst (m, T', T), zero where that row or
    column lies outside x (H, W), and where keep (x's shape) is <= 0 when ``masked`` (a ReLU's
    backward). The tiles inside a row go in one pass with a tile's m reads side by side (SIMD
    loads and shuffles, not m strided passes); a select, not a branch, applies the mask.
    k: ``_consts``."""
    m, nr, nt = dst.shape
    h, w = x.shape
    zero = k[0]
    lo = 1 if off < 0 else 0                                  # the tiles wholly inside a row
    hi = max(lo, min(nt, (w - m - off) // m + 1))
    for t in range(nr):
        y = y0 + m * t
        seg = dst[:, t]
        if y < 0 or y >= h:
            seg[:] = zero
            continue
        row, kr = x[y], keep[y]
        if m == 4:
            s0, s1, s2, s3 = seg[0], seg[1], seg[2], seg[3]
            if masked:
                for tx in range(lo, hi):
                    c = 4 * tx + off
                    r0, r1, r2, r3 = row[c], row[c + 1], row[c + 2], row[c + 3]
                    k0, k1, k2, k3 = kr[c], kr[c + 1], kr[c + 2], kr[c + 3]
                    s0[tx] = r0 if k0 > 0 else zero
                    s1[tx] = r1 if k1 > 0 else zero
                    s2[tx] = r2 if k2 > 0 else zero
                    s3[tx] = r3 if k3 > 0 else zero
            else:
                for tx in range(lo, hi):
                    c = 4 * tx + off
                    s0[tx], s1[tx], s2[tx], s3[tx] = row[c], row[c + 1], row[c + 2], row[c + 3]
        else:
            s0, s1 = seg[0], seg[1]
            if masked:
                for tx in range(lo, hi):
                    c = 2 * tx + off
                    r0, r1, k0, k1 = row[c], row[c + 1], kr[c], kr[c + 1]
                    s0[tx] = r0 if k0 > 0 else zero
                    s1[tx] = r1 if k1 > 0 else zero
            else:
                for tx in range(lo, hi):
                    c = 2 * tx + off
                    s0[tx], s1[tx] = row[c], row[c + 1]
        for tx in range(lo):
            _edge(row, kr, masked, off, seg, tx, zero)
        for tx in range(hi, nt):
            _edge(row, kr, masked, off, seg, tx, zero)


CHUNKS = 64  # runs of channels per parallel transform (``_chunks``)


@numba.njit(cache=CACHE)
def _chunks(total: int):
    """(runs, step): ``range(total)`` in at most CHUNKS runs of ``step`` for a parallel loop, so
    that a transform's per-channel scratch is made once per run, not per channel (on small maps
    making it took as long as the channel's work). Every channel is computed the same way in
    any run: the runs never show in the result."""
    if total == 0:
        return 0, 1
    step = -(-total // min(total, CHUNKS))
    return -(-total // step), step


@parallel_jit
def _split(x, top, xs, k):
    """xs[b, c, qy, qx, ty, tx] = x[b, c, m*ty + qy - 1 + top, m*tx + qx - 1], zero outside x.
    x: (N, C, H, W), any strides (a band of rows is a view); top: 1 when x's first row is the
    row above the output rows (a band's halo), else 0; xs: (N, C, m, m, th+1, tw+1); k:
    ``_consts``."""
    n, c = x.shape[0], x.shape[1]
    m = xs.shape[2]
    for p in numba.prange(n * c):
        b, ci = p // c, p % c
        for qy in range(m):
            _phases(x[b, ci], x[b, ci], False, qy - 1 + top, -1, xs[b, ci, qy], k)


@parallel_jit
def _input_transform(xs, v, k):
    """v[i*a + j, c, b*P + t] = (B^T d B)[i, j] for tile t of image b, P = th*(tw+1) tiles
    (junk tiles included). xs: from ``_split``; v: (a*a, C, N*P); k: ``_consts``."""
    n, c, m, _, ty1, tw1 = xs.shape
    a = m + 2
    npt = (ty1 - 1) * tw1
    n_chunks, step = _chunks(n * c)
    for chunk in numba.prange(n_chunks):  # scratch made once per run of channels
        col = np.empty((a, m, npt + 1), xs.dtype)  # B^T d: along y, still phase-split in x
        for p in range(chunk * step, min((chunk + 1) * step, n * c)):
            b, ci = p // c, p % c
            for qx in range(m):  # row r of every tile: phase r % m, shifted by r // m tile rows
                p0 = xs[b, ci, 0, qx].reshape(ty1 * tw1)
                p1 = xs[b, ci, 1, qx].reshape(ty1 * tw1)
                if m == 4:
                    p2 = xs[b, ci, 2, qx].reshape(ty1 * tw1)
                    p3 = xs[b, ci, 3, qx].reshape(ty1 * tw1)
                    _bt4(p0[:npt], p1[:npt], p2[:npt], p3[:npt], p0[tw1:tw1 + npt], p1[tw1:tw1 + npt],
                         col[0, qx, :npt], col[1, qx, :npt], col[2, qx, :npt], col[3, qx, :npt],
                         col[4, qx, :npt], col[5, qx, :npt], k)
                else:
                    _bt2(p0[:npt], p1[:npt], p0[tw1:tw1 + npt], p1[tw1:tw1 + npt],
                         col[0, qx, :npt], col[1, qx, :npt], col[2, qx, :npt], col[3, qx, :npt])
            col[:, :, npt] = 0  # read only by the last junk tile
            t0, t1 = b * npt, (b + 1) * npt
            for i in range(a):  # along x: column q of every tile is col[i, q % m] shifted by q // m
                e = col[i]
                r = i * a
                if m == 4:
                    _bt4(e[0, :npt], e[1, :npt], e[2, :npt], e[3, :npt], e[0, 1:], e[1, 1:],
                         v[r, ci, t0:t1], v[r + 1, ci, t0:t1], v[r + 2, ci, t0:t1],
                         v[r + 3, ci, t0:t1], v[r + 4, ci, t0:t1], v[r + 5, ci, t0:t1], k)
                else:
                    _bt2(e[0, :npt], e[1, :npt], e[0, 1:], e[1, 1:],
                         v[r, ci, t0:t1], v[r + 1, ci, t0:t1], v[r + 2, ci, t0:t1], v[r + 3, ci, t0:t1])


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _at_rows(s, bias, relu, r, y, k):
    """y[m*ty + r, m*tx + q] = (A^T s[:, t])[q] + bias, ReLU'd if ``relu`` (NaN stays NaN, as
    in relu.py), for the tiles t = ty*(tw+1) + tx (the junk tile tx = tw left out); s: (a, P),
    y: (m*th, m*tw), one channel's map; k: ``_consts``."""
    a = s.shape[0]
    m = a - 2
    th, tw = y.shape[0] // m, y.shape[1] // m
    zero, k2, k4, k8 = k[0], k[1], k[2], k[4]
    for ty in range(th):
        out, t0 = y[m * ty + r], ty * (tw + 1)
        if a == 6:
            for tx in range(tw):
                t = t0 + tx
                x0, x1, x2, x3, x4, x5 = s[0, t], s[1, t], s[2, t], s[3, t], s[4, t], s[5, t]
                e, q, u, w = x1 + x2, x1 - x2, x3 + x4, x3 - x4
                o0, o1 = bias + (x0 + e + u), bias + (q + k2 * w)
                o2, o3 = bias + (e + k4 * u), bias + (q + k8 * w + x5)
                if relu:
                    o0, o1 = (zero if o0 < 0 else o0), (zero if o1 < 0 else o1)
                    o2, o3 = (zero if o2 < 0 else o2), (zero if o3 < 0 else o3)
                out[4 * tx], out[4 * tx + 1], out[4 * tx + 2], out[4 * tx + 3] = o0, o1, o2, o3
        else:
            for tx in range(tw):
                t = t0 + tx
                x1, x2 = s[1, t], s[2, t]
                o0, o1 = bias + (s[0, t] + x1 + x2), bias + (x1 - x2 - s[3, t])
                if relu:
                    o0, o1 = (zero if o0 < 0 else o0), (zero if o1 < 0 else o1)
                out[2 * tx], out[2 * tx + 1] = o0, o1


@parallel_jit
def _output_transform(mm, bias, relu, y, k):
    """y[b, co, m*ty + r, m*tx + q] = (A^T M A)[r, q] + bias[co], ReLU'd if ``relu``, for every
    real tile. mm: (a*a, Cout, N*P), P = th*(tw+1); y: (N, Cout, m*th, m*tw); k: ``_consts``."""
    n, cout = y.shape[0], y.shape[1]
    a = 6 if mm.shape[0] == 36 else 4
    m = a - 2
    th, tw = y.shape[2] // m, y.shape[3] // m
    npt = th * (tw + 1)
    n_chunks, step = _chunks(n * cout)
    for chunk in numba.prange(n_chunks):  # scratch made once per run of channels
        rows = np.empty((m, a, npt), mm.dtype)   # A^T M along i
        for p in range(chunk * step, min((chunk + 1) * step, n * cout)):
            b, co = p // cout, p % cout
            t0, t1 = b * npt, (b + 1) * npt
            for j in range(a):
                if m == 4:
                    _at4(mm[j, co, t0:t1], mm[a + j, co, t0:t1], mm[2 * a + j, co, t0:t1],
                         mm[3 * a + j, co, t0:t1], mm[4 * a + j, co, t0:t1], mm[5 * a + j, co, t0:t1],
                         rows[0, j], rows[1, j], rows[2, j], rows[3, j], k)
                else:
                    _at2(mm[j, co, t0:t1], mm[a + j, co, t0:t1], mm[2 * a + j, co, t0:t1],
                         mm[3 * a + j, co, t0:t1], rows[0, j], rows[1, j])
            for r in range(m):  # ... then along j, written straight into y's rows
                _at_rows(rows[r], bias[co], relu, r, y[b, co], k)


@parallel_jit
def _grad_input_transform(gy, mask, v, k):
    """The adjoint of ``_output_transform``: v[i*a + j, c, b*P + t] = (A gy_t A^T)[i, j] for
    the m x m tile t of gy (zero past the edge, times (mask > 0) when mask has gy's shape),
    P = th*tw tiles, t = ty*tw + tx. gy: (N, C, H, W); v: (a*a, C, N*P); k: ``_consts``.
    Tiles do not overlap here: gy is split by phase, gs[qy, qx, t] = gy[m*ty + qy, m*tx + qx]
    (one pass over each row, ``_phases``), and every step is one pass over all P tiles,
    as in ``_input_transform``."""
    n, c, h, w = gy.shape
    a = 6 if v.shape[0] == 36 else 4
    m = a - 2
    th, tw = -(-h // m), -(-w // m)
    npt = th * tw
    masked = mask.shape[0] == n
    n_chunks, step = _chunks(n * c)
    for chunk in numba.prange(n_chunks):  # scratch made once per run of channels
        g4 = np.empty((m, m, th, tw), gy.dtype)
        left = np.empty((a, m, npt), gy.dtype)     # A gs along qy, for each qx
        for p in range(chunk * step, min((chunk + 1) * step, n * c)):
            b, ci = p // c, p % c
            for qy in range(m):
                if masked:
                    _phases(gy[b, ci], mask[b, ci], True, qy, 0, g4[qy], k)
                else:
                    _phases(gy[b, ci], gy[b, ci], False, qy, 0, g4[qy], k)
            gs = g4.reshape(m, m, npt)
            for qx in range(m):
                if m == 4:
                    _a4(gs[0, qx], gs[1, qx], gs[2, qx], gs[3, qx], left[0, qx], left[1, qx],
                        left[2, qx], left[3, qx], left[4, qx], left[5, qx], k)
                else:
                    _a2(gs[0, qx], gs[1, qx], left[0, qx], left[1, qx], left[2, qx], left[3, qx])
            t0, t1 = b * npt, (b + 1) * npt
            for i in range(a):                         # ... then along qx
                s, r = left[i], i * a
                if m == 4:
                    _a4(s[0], s[1], s[2], s[3], v[r, ci, t0:t1], v[r + 1, ci, t0:t1], v[r + 2, ci, t0:t1],
                        v[r + 3, ci, t0:t1], v[r + 4, ci, t0:t1], v[r + 5, ci, t0:t1], k)
                else:
                    _a2(s[0], s[1], v[r, ci, t0:t1], v[r + 1, ci, t0:t1], v[r + 2, ci, t0:t1],
                        v[r + 3, ci, t0:t1])


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _join(dst, src, shift, tw, fix, keep):
    """dst[t] += src[t + shift] for every t with t + shift inside (one unit-stride pass), left
    as it was at the tiles t = ty*tw + fix (0 <= fix < tw) when ``fix`` >= 0: the tiles whose
    neighbour ``shift`` away in the flat tile order lies in another tile row (shift = +-1).
    keep: scratch of at least len(dst) // tw."""
    n = dst.shape[0]
    rows = n // tw if fix >= 0 else 0
    for i in range(rows):
        keep[i] = dst[i * tw + fix]
    if shift >= 0:
        for t in range(n - shift):
            dst[t] += src[t + shift]
    else:
        for t in range(-shift, n):
            dst[t] += src[t + shift]
    for i in range(rows):
        dst[i * tw + fix] = keep[i]


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _add_tiles(d, out):
    """out[m*tx + q] += d[q + 1, tx] for the tiles tx of one row and q = 0 .. m-1, where that
    column lies inside out: a row of tiles whose overlaps are already summed (``_join``), put
    back in place, the m adds of a tile side by side (SIMD). d: (a, T), rows 0 and a-1 unread."""
    m, nt, w = d.shape[0] - 2, d.shape[1], out.shape[0]
    whole = min(nt, w // m)   # tiles wholly inside out
    if m == 4:
        d1, d2, d3, d4 = d[1], d[2], d[3], d[4]
        for tx in range(whole):
            c = 4 * tx
            out[c] += d1[tx]
            out[c + 1] += d2[tx]
            out[c + 2] += d3[tx]
            out[c + 3] += d4[tx]
    else:
        d1, d2 = d[1], d[2]
        for tx in range(whole):
            c = 2 * tx
            out[c] += d1[tx]
            out[c + 1] += d2[tx]
    for tx in range(whole, nt):
        for q in range(m):
            if m * tx + q < w:
                out[m * tx + q] += d[q + 1, tx]


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _bmbt(mm, bm, d, keep, tw, k):
    """d = B M B^T for every tile of mm (a*a, T) (T tiles, rows of tw), the overlapping columns
    of neighbouring tiles already joined (``_join``): d[r, s] of each tile, s = 1 .. m holding
    the sums. bm, d: (a, a, T) scratch; keep: at least T // tw."""
    a = bm.shape[0]
    m = a - 2
    for j in range(a):
        if m == 4:
            _b4(mm[j], mm[a + j], mm[2 * a + j], mm[3 * a + j], mm[4 * a + j], mm[5 * a + j],
                bm[0, j], bm[1, j], bm[2, j], bm[3, j], bm[4, j], bm[5, j], k)
        else:
            _b2(mm[j], mm[a + j], mm[2 * a + j], mm[3 * a + j], bm[0, j], bm[1, j], bm[2, j], bm[3, j])
    for r in range(a):
        e, o = bm[r], d[r]
        if m == 4:
            _b4(e[0], e[1], e[2], e[3], e[4], e[5], o[0], o[1], o[2], o[3], o[4], o[5], k)
        else:
            _b2(e[0], e[1], e[2], e[3], o[0], o[1], o[2], o[3])
        _join(o[1], o[a - 1], -1, tw, 0, keep)        # column phase 0: the left tile's last
        _join(o[m], o[0], 1, tw, tw - 1, keep)        # column phase m-1: the right tile's first


@parallel_jit
def _grad_output_transform(mm, top, gx, k):
    """The adjoint of ``_split`` + ``_input_transform``: every tile's B M B^T, (m+2) x (m+2),
    added into gx at the tile's place (tiles overlap by two rows and columns). mm: (a*a, C,
    N*P), P = th*tw; gx: (N, C, H, W), any strides, its rows from 2*top on zeroed here first
    (a band's first two rows already hold the band above's tiles: ``winograd_conv_backward``
    need not zero gx); top: as in ``_split`` (tile row 0 starts at gx's row top - 1); k:
    ``_consts``. One channel per thread: no two threads write the same element.

    B M along i, then B along j, for all P tiles at once (one pass each): d[r, s] for every
    tile. Tile tx's column s lands on column m*tx - 1 + s, so column phase q of a tile (column
    m*tx + q) is its own s = q+1, plus s = a-1 of the tile on its left (q = 0) and s = 0 of the
    tile on its right (q = m-1); likewise for rows, a tile row (tw tiles) away. Those sums are
    unit-stride passes over all tiles (``_join``: columns, then rows), after which each of
    gx's rows is one tile row's d[q + 1, 1..m], added in place (``_add_tiles``). Each element
    of gx gets at most two row sums (of at most two column values each), added to zero: the
    same bits whatever the order of the passes and the number of threads."""
    n, c, h, w = gx.shape
    a = 6 if mm.shape[0] == 36 else 4
    m = a - 2
    tw = -(-w // m)
    npt = mm.shape[2] // n
    th = npt // tw
    zero = k[0]
    n_chunks, step = _chunks(n * c)
    for chunk in numba.prange(n_chunks):  # scratch made once per run of channels
        bm = np.empty((a, a, npt), gx.dtype)   # (B M)[r, j]
        d = np.empty((a, a, npt), gx.dtype)    # (B M B^T)[r, s]
        keep = np.empty(th, gx.dtype)
        for p in range(chunk * step, min((chunk + 1) * step, n * c)):
            b, ci = p // c, p % c
            _bmbt(mm[:, ci, b * npt:(b + 1) * npt], bm, d, keep, tw, k)
            for s in range(1, m + 1):
                _join(d[1, s], d[a - 1, s], -tw, tw, -1, keep)  # row phase 0: the tile row above's last
                _join(d[m, s], d[0, s], tw, tw, -1, keep)       # row phase m-1: the tile row below's first
            plane = gx[b, ci]
            for y in range(2 * top, h):
                plane[y] = zero
            for ty in range(th):
                for q in range(m):
                    y = m * ty + q + top
                    if y < h:
                        _add_tiles(d[q + 1, :, ty * tw:(ty + 1) * tw], plane[y])
            if top > 0:                             # the row above tile row 0 (a band's first)
                _add_tiles(d[0, :, :tw], plane[top - 1])
            if m * th + top < h:                    # the row below the last tile row
                _add_tiles(d[a - 1, :, (th - 1) * tw:], plane[m * th + top])



@numba.njit(fastmath={"contract"}, cache=CACHE)
def _join_rows(dst, src, shift, npt):
    """``_join`` for a row shift (+-tw) over the tiles of several channels laid end to end,
    ``npt`` each: dst[t] += src[t + shift] where t and t + shift lie in the same channel."""
    for o in range(0, dst.shape[0], npt):
        if shift >= 0:
            for t in range(o, o + npt - shift):
                dst[t] += src[t + shift]
        else:
            for t in range(o - shift, o + npt):
                dst[t] += src[t + shift]


@parallel_jit
def _grad_output_whole(mm, gx, k):
    """``_grad_output_transform`` for one image whose map is whole tiles in one band (N = 1,
    top = 0, H = m*th, W = m*tw), the channels' tiles laid end to end: mm (a*a, C*P), P =
    th*tw; gx (C, H, W). Each pass runs over a run of channels at once (on a 16 x 16 map a
    channel's pass is 64 tiles long, and the per-channel calls took most of the time); the
    row joins stop at each channel's edges (``_join_rows``); each of gx's elements is then one
    summed value (its tile row's and the neighbours' parts already joined), written as zero
    plus that value: the same bits as the general path."""
    c, h, w = gx.shape
    a = 6 if mm.shape[0] == 36 else 4
    m = a - 2
    th, tw = h // m, w // m
    npt = th * tw
    zero = k[0]
    n_chunks, step = _chunks(c)
    for chunk in numba.prange(n_chunks):
        c0 = chunk * step
        c1 = min(c0 + step, c)
        t0, t1 = c0 * npt, c1 * npt
        bm = np.empty((a, a, t1 - t0), gx.dtype)   # (B M)[r, j]
        d = np.empty((a, a, t1 - t0), gx.dtype)    # (B M B^T)[r, s]
        keep = np.empty((t1 - t0) // tw, gx.dtype)
        _bmbt(mm[:, t0:t1], bm, d, keep, tw, k)
        for s in range(1, m + 1):
            _join_rows(d[1, s], d[a - 1, s], -tw, npt)
            _join_rows(d[m, s], d[0, s], tw, npt)
        for ci in range(c0, c1):
            plane = gx[ci]
            for y in range(h):
                q, src = y % m, (ci - c0) * npt + (y // m) * tw
                out = plane[y]
                if m == 4:
                    d1, d2, d3, d4 = d[q + 1, 1], d[q + 1, 2], d[q + 1, 3], d[q + 1, 4]
                    for tx in range(tw):
                        out[4 * tx] = zero + d1[src + tx]
                        out[4 * tx + 1] = zero + d2[src + tx]
                        out[4 * tx + 2] = zero + d3[src + tx]
                        out[4 * tx + 3] = zero + d4[src + tx]
                else:
                    d1, d2 = d[q + 1, 1], d[q + 1, 2]
                    for tx in range(tw):
                        out[2 * tx] = zero + d1[src + tx]
                        out[2 * tx + 1] = zero + d2[src + tx]

_CONSTS: dict = {}


def _consts(dtype):
    """[0, 2, 4, 5, 8] in the arrays' dtype: the transforms' constants, so that their arithmetic
    stays in that dtype (a literal 4 would make numba compute float32 data in float64)."""
    key = np.dtype(dtype)
    if key not in _CONSTS:
        _CONSTS[key] = np.array([0, 2, 4, 5, 8], key)
    return _CONSTS[key]


# ----------------------------------------------------------------------------- the conv

_local = threading.local()  # scratch buffers per thread: two threads' convs never share them


def _buffers() -> dict:
    if not hasattr(_local, "scratch"):
        _local.scratch = {}
    return _local.scratch


def scratch(tag: str, shape, dtype):
    """A reusable buffer of ``shape``: one flat array per (tag, dtype) and thread, grown when
    needed. The contents are garbage; callers overwrite every element they read."""
    key = (tag, np.dtype(dtype))
    size = int(np.prod(shape))
    bufs = _buffers()
    buf = bufs.get(key)
    if buf is None or buf.size < size:
        buf = bufs[key] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


# ----------------------------------------------------------------------------- bands
# The transformed tiles V and the products M take (m+2)^2 / m^2 times the larger of the two maps
# (2.25x for F(4x4)): at 512 px, conv1_2 would need two 150 MiB buffers, more than all the kept
# activations together. A large map is therefore convolved in horizontal bands of whole tile
# rows whose V and M fit BAND_BYTES each. The bands cut the map where the whole map's tiles
# meet, so each band computes exactly the whole map's tiles for its rows: the forward reads one
# row above and below the band (``_split``'s ``top``), the backward adds each band's tiles into
# the whole gradient (rows at a cut get two bands' tiles, added in band order). The bands depend
# on the shapes alone: the same input gives the same bits on any thread count.
BAND_BYTES = 16 * 2**20


def band_rows(n: int, channels: int, h: int, w: int, m: int, itemsize: int) -> int:
    """Output rows per band (a multiple of m, at least m): the most whose V or M, for the larger
    of the layer's two channel counts ``channels``, fits BAND_BYTES; ``h`` when one band does."""
    per_tile_row = (m + 2) ** 2 * channels * n * (-(-w // m) + 1) * itemsize
    rows = max(1, (FAST_BAND_BYTES if memory_mode() == "fast" else BAND_BYTES) // per_tile_row) * m
    return h if rows >= h else rows


def winograd_conv(x, u, m: int, bias=None, relu: bool = False):
    """A 3x3, stride-1, pad-1 conv by Winograd F(m x m, 3x3), on NumPy arrays.

    x: (N, Cin, H, W); u: (a*a, Cout, Cin) from ``weight_transform``, or the conv weights
    (Cout, Cin, 3, 3) to make U from as it goes (``_made_matmul``); bias: (Cout,) or None;
    relu: rectify the output (fused). Returns a new (N, Cout, H, W) array of x's dtype.
    A large map runs in bands (``band_rows``)."""
    n, cin, h, w = x.shape
    cout = u.shape[0] if u.ndim == 4 else u.shape[1]
    y = np.empty((n, cout, h, w), x.dtype)
    bias = np.zeros(cout, x.dtype) if bias is None else bias.astype(x.dtype)
    rows = band_rows(n, max(cin, cout), h, w, m, x.dtype.itemsize)
    for r0 in range(0, h, rows):
        r1, top = min(r0 + rows, h), int(r0 > 0)
        _conv_rows(x[:, :, r0 - top:min(r1 + 1, h)], top, u, m, bias, relu, y[:, :, r0:r1])
    return y


def _conv_rows(x, top, u, m: int, bias, relu: bool, y):
    """y (N, Cout, rows, W), a view: the conv's output rows whose input rows (and the row above
    when ``top``, and the row below when there is one) are x."""
    n, cin, _, w = x.shape
    cout, dtype, a2 = y.shape[1], x.dtype, (m + 2) ** 2
    th, tw = -(-y.shape[2] // m), -(-w // m)
    npt = th * (tw + 1)  # tiles per image, one junk tile per tile row
    xs = scratch("split", (n, cin, m, m, th + 1, tw + 1), dtype)
    k = _consts(dtype)
    _split(x, top, xs, k)
    v = scratch("v", (a2, cin, n * npt), dtype)
    _input_transform(xs, v, k)
    mm = scratch("m", (a2, cout, n * npt), dtype)
    if u.ndim == 3:  # (a*a, Cout, Cin) @ (a*a, Cin, P)
        matmul(u, v, out=mm)
    else:
        _made_matmul(u, m, v, mm, backward=False)
    whole = y.shape[2] % m == 0 and w % m == 0  # else write whole tiles to scratch, then crop
    yt = y if whole else scratch("y", (n, cout, th * m, tw * m), dtype)
    _output_transform(mm, bias, relu, yt, k)
    if not whole:
        y[...] = yt[:, :, :y.shape[2], :w]


def winograd_conv_backward(gy, u, m: int, mask=None):
    """The input gradient of ``winograd_conv`` with the same U, transposed: gy (N, Cout, H, W)
    (times (mask > 0) when given: a ReLU's backward, fused) -> gx (N, Cin, H, W). The adjoint
    of each step in reverse: A gy A^T per output tile, U[k]^T @ per point, B . B^T per input
    tile added into gx. No second U is made for the backward (``u`` as in ``winograd_conv``).
    A large map runs in bands."""
    n, cout, h, w = gy.shape
    cin, dtype = u.shape[1] if u.ndim == 4 else u.shape[2], gy.dtype
    a2, tw = (m + 2) ** 2, -(-w // m)
    gx = np.empty((n, cin, h, w), dtype)  # zeroed band by band, as the tiles are added
    rows = band_rows(n, max(cout, cin), h, w, m, dtype.itemsize)
    k = _consts(dtype)
    for r0 in range(0, h, rows):
        r1, top = min(r0 + rows, h), int(r0 > 0)
        npt = -(-(r1 - r0) // m) * tw
        v = scratch("v", (a2, cout, n * npt), dtype)
        _grad_input_transform(gy[:, :, r0:r1], _NO_MASK if mask is None else mask[:, :, r0:r1], v, k)
        mm = scratch("m", (a2, cin, n * npt), dtype)
        if u.ndim == 3:  # (a*a, Cin, Cout) @ (a*a, Cout, P) -> (a*a, Cin, P)
            matmul(u.transpose(0, 2, 1), v, out=mm)
        else:
            _made_matmul(u, m, v, mm, backward=True)
        if n == 1 and r1 - r0 == h and h % m == 0 and w % m == 0:  # one band of whole tiles
            _grad_output_whole(mm.reshape(a2, -1), gx[0], k)
        else:
            _grad_output_transform(mm, top, gx[:, :, r0 - top:min(r1 + 1, h)], k)
    return gx


def weight_elements(cin: int, cout: int, m: int) -> int:
    """Elements of a layer's U, the one set of transformed weights kept (forward and backward)."""
    return (m + 2) ** 2 * cout * cin


def u_block_elements(cin: int, cout: int, m: int, backward: bool, itemsize: int = 4,
                     n_threads: int | None = None) -> int:
    """Elements of the scratch a U made per call takes (``_made_matmul``), all threads together
    (``threads()`` unless given): each thread's rows of G g and one point's block."""
    a = m + 2
    outer, inner = (cin, cout) if backward else (cout, cin)
    block = inner * (_point_blocks(outer, inner)[0].stop)
    runs = split(a * a, n_threads or threads())
    return sum((3 * ((k1 - 1) // a + 1 - k0 // a) + 1) * block for k0, k1 in runs)


def scratch_elements(n: int, cin: int, cout: int, h: int, w: int, m: int, backward: bool,
                     itemsize: int = 4) -> dict:
    """{scratch tag: elements} one call uses (``scratch`` keeps the largest of each tag).
    cin/cout: the layer's own channels; backward: ``winograd_conv_backward``'s buffers. A map
    run in bands counts one band's."""
    return _scratch_elements(n, cin, cout, min(h, band_rows(n, max(cin, cout), h, w, m, itemsize)), w, m, backward)


def _scratch_elements(n, cin, cout, h, w, m, backward):
    a2, th, tw = (m + 2) ** 2, -(-h // m), -(-w // m)
    if backward:
        return {"v": a2 * cout * n * th * tw, "m": a2 * cin * n * th * tw}
    npt = th * (tw + 1)
    sizes = {"split": n * cin * m * m * (th + 1) * (tw + 1), "v": a2 * cin * n * npt, "m": a2 * cout * n * npt}
    if h % m or w % m:
        sizes["y"] = n * cout * th * m * tw * m
    return sizes


_NO_MASK = np.zeros((0, 0, 0, 0), np.float32)
_COEFS: dict = {}


def _coefs(table, m, dtype):
    """B^T or A^T in the array's dtype, so the kernels' arithmetic stays in that dtype."""
    key = (id(table), m, np.dtype(dtype))
    if key not in _COEFS:
        _COEFS[key] = table[m].astype(dtype)
    return _COEFS[key]
