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
"""
from __future__ import annotations

import threading

import numpy as np

from ..parallel import CACHE, matmul, numba, parallel_jit

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


# Layout. Tile (ty, tx) reads padded rows m*ty .. m*ty + m+1 and columns m*tx .. m*tx + m+1.
# ``_split`` stores the padded input phase by phase in both directions,
#     xs[b, c, qy, qx, ty, tx] = xpad[b, c, m*ty + qy, m*tx + qx],   (N, C, m, m, th+1, tw+1)
# so that "row m*ty + r of every tile" is the contiguous run xs[b, c, r % m, qx, r // m:][:th],
# and likewise for columns. Each tile row carries one junk tile (tx = tw) made of padding: the
# shift by one column then runs on into it instead of wrapping, and every transform step is one
# long unit-stride axpy per nonzero coefficient of B^T or A^T (SIMD, no per-tile overhead). The
# GEMMs carry the junk tiles too (P = th*(tw+1) columns); the output transform drops them.


@numba.njit(fastmath={"contract"}, cache=CACHE)
def _axpy(y, a, x):
    """y += a * x over 1-D views of one length."""
    for i in range(y.shape[0]):
        y[i] += a * x[i]


@parallel_jit
def _split(x, xs):
    """xs[b, c, qy, qx, ty, tx] = x[b, c, m*ty + qy - 1, m*tx + qx - 1], zero outside x.
    x: (N, C, H, W); xs: (N, C, m, m, th+1, tw+1)."""
    n, c, h, w = x.shape
    m, ty_n, tx_n = xs.shape[2], xs.shape[4], xs.shape[5]
    for p in numba.prange(n * c):
        b, ci = p // c, p % c
        for qy in range(m):
            for ty in range(ty_n):
                y = m * ty + qy - 1
                for qx in range(m):
                    dst = xs[b, ci, qy, qx, ty]
                    if y < 0 or y >= h:
                        dst[:] = 0
                        continue
                    for tx in range(tx_n):
                        xx = m * tx + qx - 1
                        dst[tx] = x[b, ci, y, xx] if 0 <= xx < w else 0


@parallel_jit
def _input_transform(xs, bt, v):
    """v[i*a + j, c, b*P + t] = (B^T d B)[i, j] for tile t of image b, P = th*(tw+1) tiles
    (junk tiles included). xs: from ``_split``; v: (a*a, C, N*P)."""
    n, c, m, _, ty1, tw1 = xs.shape
    a = bt.shape[0]
    npt = (ty1 - 1) * tw1
    for p in numba.prange(n * c):
        b, ci = p // c, p % c
        col = np.empty((a, m, npt + 1), xs.dtype)  # B^T d: along y, still phase-split in x
        for i in range(a):
            for qx in range(m):
                dst = col[i, qx, :npt]
                dst[:] = 0
                for r in range(a):
                    if bt[i, r] != 0:
                        _axpy(dst, bt[i, r], xs[b, ci, r % m, qx].reshape(ty1 * tw1)[(r // m) * tw1:][:npt])
                col[i, qx, npt] = 0  # read only by the last junk tile
        for i in range(a):  # along x: column q of every tile is col[i, q % m] shifted by q // m
            for j in range(a):
                dst = v[i * a + j, ci, b * npt:(b + 1) * npt]
                dst[:] = 0
                for q in range(a):
                    if bt[j, q] != 0:
                        _axpy(dst, bt[j, q], col[i, q % m, q // m:q // m + npt])


@parallel_jit
def _output_transform(mm, at, bias, relu, y):
    """y[b, co, m*ty + r, m*tx + q] = (A^T M A)[r, q] + bias[co], ReLU'd if ``relu``, for every
    real tile. mm: (a*a, Cout, N*P), P = th*(tw+1); y: (N, Cout, m*th, m*tw)."""
    n, cout = y.shape[0], y.shape[1]
    m, a = at.shape
    th, tw = y.shape[2] // m, y.shape[3] // m
    npt = th * (tw + 1)
    for p in numba.prange(n * cout):
        b, co = p // cout, p % cout
        tiles = slice(b * npt, (b + 1) * npt)
        rows = np.empty((m, a, npt), mm.dtype)   # A^T M along i
        out = np.empty((m, m, npt), mm.dtype)    # ... then along j
        for r in range(m):
            for j in range(a):
                rows[r, j] = 0
                for i in range(a):
                    if at[r, i] != 0:
                        _axpy(rows[r, j], at[r, i], mm[i * a + j, co, tiles])
            for q in range(m):
                out[r, q] = bias[co]
                for j in range(a):
                    if at[q, j] != 0:
                        _axpy(out[r, q], at[q, j], rows[r, j])
        for ty in range(th):
            for r in range(m):
                yrow = y[b, co, m * ty + r]
                for q in range(m):
                    src = out[r, q, ty * (tw + 1):]
                    for tx in range(tw):
                        v = src[tx]
                        if relu and v < 0:  # NaN stays NaN, as in relu.py
                            v = 0
                        yrow[m * tx + q] = v


@parallel_jit
def _grad_input_transform(gy, mask, at, v):
    """The adjoint of ``_output_transform``: v[i*a + j, c, b*P + t] = (A gy_t A^T)[i, j] for
    the m x m tile t of gy (zero past the edge, times (mask > 0) when mask has gy's shape),
    P = th*tw tiles, t = ty*tw + tx. gy: (N, C, H, W); v: (a*a, C, N*P). Tiles do not overlap
    here: gy is split by phase, gs[qy, qx, t] = gy[m*ty + qy, m*tx + qx], and every step is
    an axpy over all P tiles (unit stride), as in ``_input_transform``."""
    n, c, h, w = gy.shape
    m, a = at.shape
    th, tw = -(-h // m), -(-w // m)
    npt = th * tw
    masked = mask.shape[0] == n
    for p in numba.prange(n * c):
        b, ci = p // c, p % c
        gs = np.zeros((m, m, npt), gy.dtype)
        for y in range(h):
            ty, qy = y // m, y % m
            for xx in range(w):
                val = gy[b, ci, y, xx]
                if masked and not mask[b, ci, y, xx] > 0:
                    val = 0
                gs[qy, xx % m, ty * tw + xx // m] = val
        left = np.empty((m, npt), gy.dtype)     # (A gs)[i] along qy, for each qx
        for i in range(a):
            for qx in range(m):
                dst = left[qx]
                dst[:] = 0
                for qy in range(m):
                    if at[qy, i] != 0:
                        _axpy(dst, at[qy, i], gs[qy, qx])
            for j in range(a):
                dst = v[i * a + j, ci, b * npt:(b + 1) * npt]
                dst[:] = 0
                for qx in range(m):
                    if at[qx, j] != 0:
                        _axpy(dst, at[qx, j], left[qx])


@parallel_jit
def _grad_output_transform(mm, bt, gx):
    """The adjoint of ``_split`` + ``_input_transform``: every tile's B M B^T, (m+2) x (m+2),
    added into gx at the tile's place (tiles overlap by two rows and columns; added in a fixed
    order, one channel per thread). mm: (a*a, C, N*P), P = th*tw; gx: (N, C, H, W), zeroed.
    Row r of every tile at once: d[s] = sum_j (sum_i B[r, i] M[i, j]) B[s, j], axpys over all
    P tiles, then added into gx."""
    n, c, h, w = gx.shape
    a = bt.shape[0]
    m = a - 2
    th, tw = -(-h // m), -(-w // m)
    npt = th * tw
    for p in numba.prange(n * c):
        b, ci = p // c, p % c
        tiles = slice(b * npt, (b + 1) * npt)
        rowm = np.empty((a, npt), gx.dtype)    # row r of B M, for each j
        d = np.empty((a, npt), gx.dtype)       # row r of B M B^T, for each s
        for r in range(a):
            for j in range(a):
                dst = rowm[j]
                dst[:] = 0
                for i in range(a):
                    if bt[i, r] != 0:
                        _axpy(dst, bt[i, r], mm[i * a + j, ci, tiles])
            for s_ in range(a):
                dst = d[s_]
                dst[:] = 0
                for j in range(a):
                    if bt[j, s_] != 0:
                        _axpy(dst, bt[j, s_], rowm[j])
            for ty in range(th):                # tiles in a fixed order: the same sums always
                y = m * ty - 1 + r
                if y < 0 or y >= h:
                    continue
                out = gx[b, ci, y]
                for tx in range(tw):
                    t = ty * tw + tx
                    for s_ in range(a):
                        xx = m * tx - 1 + s_
                        if 0 <= xx < w:
                            out[xx] += d[s_, t]


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


def winograd_conv(x, u, m: int, bias=None, relu: bool = False):
    """A 3x3, stride-1, pad-1 conv by Winograd F(m x m, 3x3), on NumPy arrays.

    x: (N, Cin, H, W); u: (a*a, Cout, Cin) from ``weight_transform``; bias: (Cout,) or None;
    relu: rectify the output (fused). Returns a new (N, Cout, H, W) array of x's dtype."""
    n, cin, h, w = x.shape
    cout, dtype = u.shape[1], x.dtype
    th, tw = -(-h // m), -(-w // m)
    npt = th * (tw + 1)  # tiles per image, one junk tile per tile row
    xs = scratch("split", (n, cin, m, m, th + 1, tw + 1), dtype)
    _split(np.ascontiguousarray(x), xs)
    v = scratch("v", (u.shape[0], cin, n * npt), dtype)
    _input_transform(xs, _coefs(BT, m, dtype), v)
    mm = scratch("m", (u.shape[0], cout, n * npt), dtype)
    matmul(u, v, out=mm)  # (a*a, Cout, Cin) @ (a*a, Cin, P) -> (a*a, Cout, P)
    whole = h % m == 0 and w % m == 0  # else write whole tiles to scratch, then crop
    y = np.empty((n, cout, h, w), dtype)
    yt = y if whole else scratch("y", (n, cout, th * m, tw * m), dtype)
    _output_transform(mm, _coefs(AT, m, dtype), np.zeros(cout, dtype) if bias is None else bias.astype(dtype),
                      relu, yt)
    if not whole:
        y[...] = yt[:, :, :h, :w]
    return y


def winograd_conv_backward(gy, u, m: int, mask=None):
    """The input gradient of ``winograd_conv`` with the same U, transposed: gy (N, Cout, H, W)
    (times (mask > 0) when given: a ReLU's backward, fused) -> gx (N, Cin, H, W). The adjoint
    of each step in reverse: A gy A^T per output tile, U[k]^T @ per point, B . B^T per input
    tile added into gx. No second U is made for the backward."""
    n, cout, h, w = gy.shape
    cin, dtype = u.shape[2], gy.dtype
    npt = -(-h // m) * -(-w // m)
    a2 = u.shape[0]
    v = scratch("v", (a2, cout, n * npt), dtype)
    _grad_input_transform(np.ascontiguousarray(gy), _NO_MASK if mask is None else np.ascontiguousarray(mask),
                          _coefs(AT, m, dtype), v)
    mm = scratch("m", (a2, cin, n * npt), dtype)
    matmul(u.transpose(0, 2, 1), v, out=mm)  # (a*a, Cin, Cout) @ (a*a, Cout, P) -> (a*a, Cin, P)
    gx = np.zeros((n, cin, h, w), dtype)
    _grad_output_transform(mm, _coefs(BT, m, dtype), gx)
    return gx


def weight_elements(cin: int, cout: int, m: int) -> int:
    """Elements of a layer's U, the one set of transformed weights kept (forward and backward)."""
    return (m + 2) ** 2 * cout * cin


def scratch_elements(n: int, cin: int, cout: int, h: int, w: int, m: int, backward: bool) -> dict:
    """{scratch tag: elements} one call uses (``scratch`` keeps the largest of each tag).
    cin/cout: the layer's own channels; backward: ``winograd_conv_backward``'s buffers."""
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
