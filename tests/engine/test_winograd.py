"""Winograd F(2x2) / F(4x4) conv (engine/ops/winograd.py) and the shifted-sum conv
(engine/ops/direct.py) against the direct float64 conv, and conv3x3's choice between them and
im2col. Gradients: tests/engine/test_gradients.py (gradcheck entries
"conv3x3+relu Winograd F(2x2)/F(4x4)")."""
import numpy as np
import pytest

from engine import UserError
from engine.ops import conv3x3, winograd
from tests.engine.test_ops_forward import direct_conv

ALGOS = ["f2", "f4"]


def _case(shape, cout, seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    w = (rng.standard_normal((cout, shape[1], 3, 3)) * np.sqrt(2 / (9 * shape[1]))).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    return rng, x, w, b


def _backward_reference(gy, w, mask=None):
    """The input gradient, directly: the conv with the flipped, channel-swapped kernel."""
    if mask is not None:
        gy = gy * (mask > 0)
    w_bwd = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).astype(np.float64)
    return direct_conv(gy.astype(np.float64), w_bwd, np.zeros(w_bwd.shape[0]))


@pytest.mark.parametrize("algorithm", ALGOS + ["direct"])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 5, 7, 9), (1, 4, 1, 1), (2, 2, 3, 13), (1, 6, 12, 5),
                                   (1, 3, 37, 21), (1, 5, 16, 8)])
def test_float64_exact_to_rounding(algorithm, shape):
    """Forward (bias, fused ReLU) and backward (fused ReLU mask) equal the direct conv in
    float64, for sides that are and are not multiples of the tile, batch 1 and 2."""
    rng, x, w, b = _case(shape, 4, 0, np.float64)
    p = conv3x3.ConvWeights(w, b)
    ref = direct_conv(x, w, b)
    np.testing.assert_allclose(conv3x3.conv3x3_forward(x, p, algorithm=algorithm), ref, rtol=0, atol=1e-12)
    y = conv3x3.conv3x3_forward(x, p, relu=True, algorithm=algorithm)
    np.testing.assert_allclose(y, np.maximum(ref, 0), rtol=0, atol=1e-12)
    gy = rng.standard_normal(ref.shape)
    np.testing.assert_allclose(conv3x3.conv3x3_backward(gy, p, algorithm=algorithm),
                               _backward_reference(gy, w), rtol=0, atol=1e-12)
    np.testing.assert_allclose(conv3x3.conv3x3_backward(gy, p, relu_out=y, algorithm=algorithm),
                               _backward_reference(gy, w, y), rtol=0, atol=1e-12)


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("shape", [(1, 6, 29, 11), (2, 5, 16, 8)])
def test_bands_give_the_whole_maps_conv(algorithm, shape, monkeypatch):
    """A map too large for one band's scratch runs in bands of whole tile rows, cut where the
    whole map's tiles meet: forward (bias, fused ReLU) and backward (ReLU mask) still equal the
    direct conv in float64, with a band that is the last, shorter one and sides that are not
    tile multiples; the scratch is one band's (one tile row here)."""
    rng, x, w, b = _case(shape, 4, 3, np.float64)
    m = int(algorithm[1])
    per_tile_row = (m + 2) ** 2 * 6 * shape[0] * (-(-shape[3] // m) + 1) * 8
    monkeypatch.setattr(winograd, "BAND_BYTES", per_tile_row)  # one tile row (m rows) per band
    assert winograd.band_rows(shape[0], 6, shape[2], shape[3], m, 8) == m < shape[2]
    p = conv3x3.ConvWeights(w, b)
    ref = direct_conv(x, w, b)
    y = conv3x3.conv3x3_forward(x, p, relu=True, algorithm=algorithm)
    np.testing.assert_allclose(y, np.maximum(ref, 0), rtol=0, atol=1e-12)
    gy = rng.standard_normal(ref.shape)
    np.testing.assert_allclose(conv3x3.conv3x3_backward(gy, p, relu_out=y, algorithm=algorithm),
                               _backward_reference(gy, w, y), rtol=0, atol=1e-12)
    sizes = winograd.scratch_elements(shape[0], 6, 4, shape[2], shape[3], m, backward=False, itemsize=8)
    assert sizes["v"] == (m + 2) ** 2 * 6 * shape[0] * (-(-shape[3] // m) + 1)  # one tile row's V


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("shape", [(2, 3, 9, 11), (1, 2, 8, 8), (1, 2, 1, 3)])
def test_gradient_scatter_writes_every_element(m, shape):
    """winograd_conv_backward leaves gx unzeroed (np.empty): the scatter writes each of gx's
    rows first, whatever they held, except a band's first two rows (top = 1), which hold the
    band above's tiles and are added to; float64 to the same bits as scattering into zeros."""
    n, c, h, w = shape
    a, tw = m + 2, -(-w // m)
    th = -(-(h - 1) // m)  # a band with the row above (top = 1) and no row below
    mm = np.random.default_rng(5).standard_normal((a * a, c, n * th * tw))
    k = winograd._consts(np.float64)
    for top in (0, 1):
        zeros, junk = np.zeros(shape), np.full(shape, np.nan)
        junk[:, :, :2 * top] = 0
        winograd._grad_output_transform(mm, top, zeros, k)
        winograd._grad_output_transform(mm, top, junk, k)
        assert np.array_equal(junk, zeros)
        above = np.ones(shape)
        winograd._grad_output_transform(mm, top, above, k)
        np.testing.assert_array_equal(above[:, :, :2 * top], zeros[:, :, :2 * top] + 1)


# float32 error of the largest value at a VGG-like layer (64 -> 48 channels, 32x32, ReLU'd
# input, He-scaled weights); measured: im2col 3e-7, F(2x2) 3e-7, F(4x4) 5e-6 (forward and back)
F32_BOUND = {"im2col": 2e-6, "f2": 2e-6, "f4": 5e-5, "direct": 2e-6}


@pytest.mark.parametrize("algorithm", ["im2col", "direct"] + ALGOS)
def test_float32_error_bounds(algorithm):
    rng, x, w, b = _case((1, 64, 32, 32), 48, 1, np.float32)
    x = np.maximum(x, 0)
    p = conv3x3.ConvWeights(w, np.zeros_like(b))
    ref = direct_conv(x.astype(np.float64), w.astype(np.float64), np.zeros(48))
    y = conv3x3.conv3x3_forward(x, p, algorithm=algorithm)
    assert y.dtype == np.float32
    assert np.abs(y - ref).max() / np.abs(ref).max() < F32_BOUND[algorithm]
    gy = rng.standard_normal(ref.shape).astype(np.float32)
    gref = _backward_reference(gy, w)
    gx = conv3x3.conv3x3_backward(gy, p, algorithm=algorithm)
    assert gx.dtype == np.float32
    assert np.abs(gx - gref).max() / np.abs(gref).max() < F32_BOUND[algorithm]


def test_nan_passes_through_the_fused_relu():
    _, x, w, b = _case((1, 16, 8, 8), 16, 2, np.float32)
    x[0, 3, 4, 4] = np.nan
    y = conv3x3.conv3x3_forward(x, conv3x3.ConvWeights(w, b), relu=True, algorithm="f4")
    assert np.isnan(y[0, :, 3:6, 3:6]).all() and not np.isnan(y[0, :, 0, 0]).any()


def test_weight_transforms_made_once_per_layer_and_shared_by_the_backward():
    _, x, w, b = _case((1, 16, 8, 8), 8, 3, np.float32)
    p = conv3x3.ConvWeights(w, b)
    u = p.winograd_u(4)
    assert u.shape == (36, 8, 16) and u.dtype == np.float32
    assert p.winograd_u(4) is u
    y = conv3x3.conv3x3_forward(x, p, relu=True, algorithm="f4")
    conv3x3.conv3x3_backward(np.ones_like(y), p, relu_out=y, algorithm="f4")
    assert p.winograd_u(4) is u and list(p._winograd) == [4]  # no second U for the backward


@pytest.mark.parametrize("algorithm", ALGOS)
def test_a_large_u_is_made_at_each_call_in_blocks_not_kept(algorithm, monkeypatch):
    """Above U_CACHE_BYTES the layer keeps no U: the conv makes it at each call, point by point
    beside its GEMMs, in blocks of output channels (input channels in the backward) of at most
    U_POINT_ELEMENTS per point. In float64 forward and backward still equal the direct conv; the
    made points equal ``weight_transform``'s U; in float32 the conv is the kept-U conv to
    rounding."""
    m = int(algorithm[1])
    rng, x, w, b = _case((1, 16, 12, 12), 8, 4, np.float64)
    a = m + 2
    monkeypatch.setattr(winograd, "U_CACHE_BYTES", a * a * 8 * 16 * 8 - 1)  # one element too small
    monkeypatch.setattr(winograd, "U_POINT_ELEMENTS", 3 * 16)                # 3 of 8 channels a block
    p = conv3x3.ConvWeights(w, b)
    assert p.winograd_u(m) is p.weight
    assert [(s.start, s.stop) for s in winograd._point_blocks(8, 16)] == [(0, 3), (3, 6), (6, 8)]
    u = winograd.weight_transform(w, m, np.float64)
    g = winograd._coefs(winograd._G, m, np.float64)
    t = np.empty((3 * a, 3, 16))
    winograd._g_rows(w[3:6], g, 0, a, t)
    made = np.empty(3 * 16)
    for k in range(a * a):
        i, j = divmod(k, a)
        winograd._u_point(t.reshape(3 * a, -1), 3 * i, g[j], made)
        np.testing.assert_allclose(made.reshape(3, 16), u[k, 3:6], rtol=0, atol=1e-14)
    # scratch, all threads together: each thread's rows of G g (3 per row) and one point's block
    assert winograd.u_block_elements(16, 8, m, False, 8, n_threads=1) == (3 * a + 1) * 3 * 16
    rows = [len({k // a for k in range(k0, k1)}) for k0, k1 in winograd.split(a * a, 2)]
    assert winograd.u_block_elements(16, 8, m, False, 8, n_threads=2) == sum(3 * r + 1 for r in rows) * 3 * 16
    ref = direct_conv(x, w, b)
    y = conv3x3.conv3x3_forward(x, p, relu=True, algorithm=algorithm)
    np.testing.assert_allclose(y, np.maximum(ref, 0), rtol=0, atol=1e-12)
    gy = rng.standard_normal(ref.shape)
    np.testing.assert_allclose(conv3x3.conv3x3_backward(gy, p, relu_out=y, algorithm=algorithm),
                               _backward_reference(gy, w, y), rtol=0, atol=1e-12)
    assert p._winograd == {}
    x32, p32 = x.astype(np.float32), conv3x3.ConvWeights(w.astype(np.float32), b.astype(np.float32))
    y1 = conv3x3.conv3x3_forward(x32, p32, relu=True, algorithm=algorithm)
    monkeypatch.setattr(winograd, "U_CACHE_BYTES", 2**40)                 # now kept
    kept = conv3x3.ConvWeights(w.astype(np.float32), b.astype(np.float32))
    y0 = conv3x3.conv3x3_forward(x32, kept, relu=True, algorithm=algorithm)
    assert list(kept._winograd) == [m]
    np.testing.assert_allclose(y1, y0, rtol=0, atol=2e-6 * np.abs(y0).max())


def test_outputs_never_share_the_scratch_buffers():
    """Scratch is reused between calls; what a conv returns must not be overwritten later."""
    _, x, w, b = _case((1, 16, 8, 8), 16, 4, np.float32)
    p = conv3x3.ConvWeights(w, b)
    y1 = conv3x3.conv3x3_forward(x, p, algorithm="f2")
    keep = y1.copy()
    conv3x3.conv3x3_forward(x[:, :, ::-1].copy(), p, algorithm="f2")
    np.testing.assert_array_equal(y1, keep)
    tiles = winograd.scratch("m", (1,), np.float32)
    assert not np.shares_memory(y1, tiles)


def test_choice_by_map_size_and_override(monkeypatch):
    monkeypatch.delenv("RANVGG_CONV", raising=False)
    assert conv3x3.choose(64, 64, 256, 256) == "f4"
    assert conv3x3.choose(512, 512, 16, 16) == "f2"
    assert conv3x3.choose(512, 512, 8, 8) == "im2col"
    assert conv3x3.choose(3, 64, 256, 256) == "direct"  # the image layer: K = 3 per tile GEMM
    assert conv3x3.choose(64, 3, 256, 256) == "direct"  # ... and M = 3 in its backward
    assert conv3x3.choose(3, 64, 8, 8) == "direct"
    monkeypatch.setenv("RANVGG_CONV", "im2col")
    assert conv3x3.choose(64, 64, 256, 256) == "im2col"
    monkeypatch.setenv("RANVGG_CONV", "direct")
    assert conv3x3.choose(64, 64, 256, 256) == "direct"
    assert conv3x3.choose(64, 64, 256, 256, xp=object()) == "f2"  # a CPU algorithm: the GPU's own
    monkeypatch.setenv("RANVGG_CONV", "f5")
    with pytest.raises(UserError, match="RANVGG_CONV"):
        conv3x3.choose(64, 64, 256, 256)


def test_memory_mode_fast_keeps_every_u_and_lean_is_the_default(monkeypatch):
    from engine import memory
    from engine.errors import UserError

    _, x, w, b = _case((1, 16, 12, 12), 8, 4, np.float32)
    monkeypatch.setattr(winograd, "U_CACHE_BYTES", 16)  # lean keeps nothing this size
    monkeypatch.delenv("RANVGG_MEMORY", raising=False)
    lean = conv3x3.ConvWeights(w, b)
    y0 = conv3x3.conv3x3_forward(x, lean, algorithm="f4")
    assert lean._winograd == {}
    est_lean = memory.estimate((1, 3, 256, 256), [("content", "pool5")]).total
    monkeypatch.setenv("RANVGG_MEMORY", "fast")
    fast = conv3x3.ConvWeights(w, b)
    y1 = conv3x3.conv3x3_forward(x, fast, algorithm="f4")
    assert list(fast._winograd) == [4]
    # a kept U is rounded once from float64, one made per call is computed in float32: both
    # within F(4x4)'s float32 error (5e-6 to 1e-5 of the largest value, docs/performance.md)
    np.testing.assert_allclose(y1, y0, rtol=0, atol=1e-5 * np.abs(y0).max())
    assert memory.estimate((1, 3, 256, 256), [("content", "pool5")]).total > est_lean + 100 * 2**20
    monkeypatch.setenv("RANVGG_MEMORY", "huge")
    with pytest.raises(UserError, match="RANVGG_MEMORY='huge'.*lean.*fast"):
        conv3x3.conv3x3_forward(x, conv3x3.ConvWeights(w, b), algorithm="f4")


def test_a_first_layer_keeps_its_u_on_small_maps_and_lets_it_go_on_large_ones(monkeypatch):
    """Among the first layers (``u_prefix`` between U_PREFIX_BYTES_LARGE and U_PREFIX_BYTES), U is
    kept while the maps are small and made at each call on larger ones, a kept U let go then
    (a coarse stage, then the full size); the results are the same conv either way."""
    monkeypatch.delenv("RANVGG_MEMORY", raising=False)
    monkeypatch.setattr(winograd, "U_CACHE_BYTES", 16)
    _, x, w, b = _case((1, 16, 64, 64), 8, 5, np.float32)
    p = conv3x3.ConvWeights(w, b, u_prefix=(winograd.U_PREFIX_BYTES + winograd.U_PREFIX_BYTES_LARGE) // 2)
    small = x[:, :, :winograd.SMALL_SIDE, :winograd.SMALL_SIDE].copy()
    y_small = conv3x3.conv3x3_forward(small, p, algorithm="f4")
    assert list(p._winograd) == [4]                                   # kept
    y_large = conv3x3.conv3x3_forward(x, p, algorithm="f4")
    assert p._winograd == {}                                          # let go on the 64 px map
    for y, xi in ((y_small, small), (y_large, x)):
        ref = direct_conv(xi.astype(np.float64), w.astype(np.float64), b.astype(np.float64))
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    assert winograd.keeps_u(16, 8, 4, 4, winograd.U_PREFIX_BYTES_LARGE, side=64)
    assert not winograd.keeps_u(16, 8, 4, 4, winograd.U_PREFIX_BYTES_LARGE + 1, side=64)
    assert winograd.keeps_u(16, 8, 4, 4, winograd.U_PREFIX_BYTES, side=winograd.SMALL_SIDE)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_written_out_transforms_equal_their_tables(m, dtype):
    """B^T, B, A^T and A as written out in the transform kernels equal the tables BT and AT
    (and their transposes) applied to each column of a random block."""
    a, w = m + 2, winograd
    k = w._consts(dtype)
    kernels = {  # name: (kernel, the matrix it applies)
        "BT": (w._bt4 if m == 4 else w._bt2, w.BT[m]),
        "B": (w._b4 if m == 4 else w._b2, w.BT[m].T),
        "AT": (w._at4 if m == 4 else w._at2, w.AT[m]),
        "A": (w._a4 if m == 4 else w._a2, w.AT[m].T),
    }
    rng = np.random.default_rng(m)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    for name, (kernel, mat) in kernels.items():
        s = rng.standard_normal((mat.shape[1], 37)).astype(dtype)
        d = np.full((mat.shape[0], 37), np.nan, dtype)
        kernel(*s, *d, *((k,) if m == 4 else ()))
        np.testing.assert_allclose(d, mat @ s.astype(np.float64), rtol=0, atol=tol * np.abs(s).max() * 10,
                                   err_msg=f"{name} for F({m}x{m})")
        assert d.dtype == dtype


@pytest.mark.parametrize("m,side", [(2, 16), (4, 32), (4, 24), (2, 6)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_scatter_over_runs_of_channels_gives_the_per_channel_bits(m, side, dtype):
    """On one image of whole tiles in one band, the backward's scatter runs over runs of
    channels at once (``_grad_output_whole``): bit for bit what the per-channel scatter gives,
    the sign of a zero included; 70 channels make runs of two and a shorter last one."""
    a, t = m + 2, side // m
    rng = np.random.default_rng(side)
    mm = rng.standard_normal((a * a, 70, t * t)).astype(dtype)
    mm[:, 3] = -0.0
    k = winograd._consts(dtype)
    one = np.full((1, 70, side, side), np.nan, dtype)
    winograd._grad_output_transform(mm, 0, one, k)
    whole = np.full((70, side, side), np.nan, dtype)
    winograd._grad_output_whole(mm.reshape(a * a, -1), whole, k)
    assert whole.tobytes() == one[0].tobytes()


def test_one_image_of_whole_tiles_takes_the_runs_of_channels(monkeypatch):
    """The conv's backward sends one image of whole tiles to ``_grad_output_whole`` and
    anything else (a batch, a side that is not whole tiles) to the per-channel scatter."""
    calls = []
    real = winograd._grad_output_whole
    monkeypatch.setattr(winograd, "_grad_output_whole", lambda *a: calls.append(1) or real(*a))
    _, x, w, b = _case((1, 8, 16, 16), 8, 2, np.float32)
    p = conv3x3.ConvWeights(w, b)
    for shape, expect in (((1, 8, 16, 16), 1), ((2, 8, 16, 16), 0), ((1, 8, 16, 15), 0)):
        calls.clear()
        conv3x3.conv3x3_backward(np.ones(shape, np.float32), p, algorithm="f4")
        assert len(calls) == expect, shape
