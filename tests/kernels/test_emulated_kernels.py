"""The raw CUDA kernels, run on the CPU by the grid emulator, against the engine's NumPy path.

Three layers:
  1. each entry point (f32 and f64) launched directly on a deliberately small grid, 3 blocks of
     4 threads, so every grid-stride loop goes round several times (and, for the tiniest inputs,
     most threads find nothing to do); outputs start as NaN so an element nobody wrote shows;
  2. the engine's own GPU branch (engine/ops), with the emulator standing in for CuPy's kernels:
     this checks the launch code too (argument order, integer widths, contiguity);
  3. the harness itself: broken copies of the kernels must fail, so a pass means something.
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np
import pytest

from tests.kernels import emulator
import kernels
from engine import backend
from engine.ops import conv3x3, pooling, relu, tv

GRID, BLOCK = (3,), (4,)  # 12 threads
DTYPES = (np.float32, np.float64)
# (N, C, H, W): 1x1, odd, non-square, a single row / column
IMAGE_SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (1, 2, 4, 4), (1, 1, 1, 6), (1, 2, 6, 1), (1, 1, 3, 2)]
POOL_SHAPES = [(1, 1, 2, 2), (2, 3, 4, 6), (1, 2, 5, 7), (1, 1, 3, 2), (2, 1, 7, 3)]


def rand(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def ties(shape, dtype, seed=0):
    """Small integers: most 2x2 windows hold a repeated maximum."""
    return np.random.default_rng(seed).integers(-2, 3, shape).astype(dtype)


def tol(dtype):
    """For results that differ from NumPy only in the order of a few additions."""
    eps = np.finfo(dtype).eps
    return dict(rtol=8 * eps, atol=8 * eps)


def launch(file, entry, dtype, *args, source=None):
    """Run ``<entry>_<f32|f64>`` of kernels/<file>.cu (or of ``source``) on GRID x BLOCK."""
    mod = emulator.module(file) if source is None else emulator.Module(source, f"{file}-edited")
    mod.get_function(f"{entry}_{backend.dtype_suffix(dtype)}")(GRID, BLOCK, args)


def nans(shape, dtype):
    return np.full(shape, np.nan, dtype=dtype)


def i32(*values):
    return tuple(np.int32(v) for v in values)


# ----------------------------------------------------------------------------- 1. each entry point


def launch_rows(entry, dtype, *args, source=None):
    """``<entry>_<f32|f64>`` of kernels/conv3x3.cu (or of ``source``) on a 2 x 3 grid of
    4-thread blocks: the rows loop (y) and each row's positions loop (x) go round."""
    mod = emulator.module("conv3x3") if source is None else emulator.Module(source, "conv3x3-edited")
    mod.get_function(f"{entry}_{backend.dtype_suffix(dtype)}")((2, 3), (4,), args)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", IMAGE_SHAPES + [(2, 2, 3, 4)])
def test_conv3x3_im2col(shape, dtype):
    n, c, h, w = shape
    x = rand(shape, dtype)
    cols = nans((n, c * 9, h * w), dtype)
    launch_rows("conv3x3_im2col", dtype, x, cols, *i32(n, c, h, w))
    np.testing.assert_array_equal(cols, conv3x3.im2col3x3(x))

    # the ReLU-backward-fused gather: gy masked by a ReLU output y (zeros, NaN kept)
    gy, y = rand(shape, dtype, seed=3), np.maximum(rand(shape, dtype, seed=4), 0)
    gy.flat[::5] = np.nan
    cols = nans((n, c * 9, h * w), dtype)
    launch_rows("conv3x3_im2col_relu_bwd", dtype, gy, y, cols, *i32(n, c, h, w))
    np.testing.assert_array_equal(cols, conv3x3.im2col3x3(gy, relu_out=y))
    np.testing.assert_array_equal(cols, conv3x3.im2col3x3(gy * (y > 0)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 5, 12, 97])
def test_relu(size, dtype):
    x = rand(size, dtype)
    x[::7] = 0.0  # the boundary: y = 0 and no gradient
    x[3::11] = np.nan  # NaN passes through, as in NumPy, so a broken run is seen as one
    y = nans(size, dtype)
    launch("relu", "relu_fwd", dtype, x, y, np.int64(size))
    np.testing.assert_array_equal(y, relu.relu_forward(x))

    gy = rand(size, dtype, seed=1)
    gy[5::13] = np.nan
    gx = nans(size, dtype)
    launch("relu", "relu_bwd", dtype, y, gy, gx, np.int64(size))
    np.testing.assert_array_equal(gx, relu.relu_backward(y, gy))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", POOL_SHAPES)
def test_avgpool2(shape, dtype):
    n, c, h, w = shape
    x = rand(shape, dtype)
    y = nans((n, c, h // 2, w // 2), dtype)
    launch("pool", "avgpool2_fwd", dtype, x, y, *i32(n * c, h, w))
    np.testing.assert_allclose(y, pooling.avgpool2_forward(x), **tol(dtype))

    gy = rand(y.shape, dtype, seed=1)
    gx = nans(shape, dtype)
    launch("pool", "avgpool2_bwd", dtype, gy, gx, *i32(n * c, h, w))
    np.testing.assert_array_equal(gx, pooling.avgpool2_backward(gy, shape))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", POOL_SHAPES)
def test_maxpool2(shape, dtype):
    n, c, h, w = shape
    x = ties(shape, dtype)
    y = nans((n, c, h // 2, w // 2), dtype)
    arg = np.full(y.shape, 255, dtype=np.uint8)
    launch("pool", "maxpool2_fwd", dtype, x, y, arg, *i32(n * c, h, w))
    y_ref, arg_ref = pooling.maxpool2_forward(x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)

    gy = rand(y.shape, dtype, seed=1)
    gx = nans(shape, dtype)
    launch("pool", "maxpool2_bwd", dtype, gy, arg, gx, *i32(n * c, h, w))
    np.testing.assert_array_equal(gx, pooling.maxpool2_backward(gy, arg_ref, shape))


def test_maxpool2_ties_go_to_the_first_maximum():
    x = np.array([[[[1, 3, 3, 3], [3, 2, 3, 3]]]], dtype=np.float32)  # windows: k=1, k=0
    y, arg = nans((1, 1, 1, 2), np.float32), np.full((1, 1, 1, 2), 255, np.uint8)
    launch("pool", "maxpool2_fwd", np.float32, x, y, arg, *i32(1, 2, 4))
    assert arg.tolist() == [[[[1, 0]]]] == pooling.maxpool2_forward(x)[1].tolist()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_tv_fwd_bwd(shape, dtype):
    n, c, h, w = shape
    x = rand(shape, dtype)
    terms, g = nans(shape, dtype), nans(shape, dtype)
    launch("tv", "tv_fwd_bwd", dtype, x, terms, g, *i32(n * c, h, w))
    value, g_ref = tv.tv_forward_backward(x)
    np.testing.assert_allclose(terms.sum(), value, rtol=1e-5 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(g, g_ref, **tol(dtype))


# ----------------------------------------------------------------------------- 2. the engine's GPU branch


class _NumpyInDisguise:
    """NumPy under another name: ``xp is not np``, so engine/ops takes its GPU branch."""

    def __getattr__(self, name):
        return getattr(np, name)


def _host(x, tag=None):
    backend.count_sync(tag)   # still counted, as on the device
    return np.asarray(x)


@contextlib.contextmanager
def engine_gpu_branch():
    """engine/ops on NumPy arrays, but through its GPU code with emulated kernels."""
    def emulated_kernel(name, entry, dtype):
        return emulator.module(name).get_function(f"{entry}_{backend.dtype_suffix(dtype)}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backend, "array_module", lambda x: _NumpyInDisguise())
        mp.setattr(backend, "kernel", emulated_kernel)
        mp.setattr(backend, "make_fused", emulator.fused)   # kernels/fused.py, built by g++
        mp.setattr(backend, "to_host", _host)  # a disguised array has no .get()
        yield


@contextlib.contextmanager
def recorded_launches():
    """Inside engine_gpu_branch: a list that gets every raw launch as (entry, grid, block, args)."""
    launches = []
    emulated = backend.kernel

    def recording(name, entry, dtype):
        kern = emulated(name, entry, dtype)
        return lambda grid, block, args: (launches.append((entry, grid, block, args)), kern(grid, block, args))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backend, "kernel", recording)
        yield launches


def both_branches(fn, *args):
    """(fn on the NumPy path, fn on the emulated GPU path)."""
    ref = fn(*args)
    with engine_gpu_branch():
        return ref, fn(*args)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 2, 1, 1), (2, 3, 5, 7), (1, 3, 2, 6)])
def test_engine_conv3x3(shape, dtype):
    x = rand(shape, dtype)
    p = conv3x3.ConvWeights(rand((4, shape[1], 3, 3), dtype, seed=1), rand(4, dtype, seed=2))
    # im2col on both (the CPU's own choice for so few channels is the direct sums): the same
    # GEMM runs in both branches, so only the gather differs: exact equality
    fwd = functools.partial(conv3x3.conv3x3_forward, algorithm="im2col")
    bwd = functools.partial(conv3x3.conv3x3_backward, algorithm="im2col")
    for ref, out in [both_branches(fwd, x, p), both_branches(bwd, rand((shape[0], 4, *shape[2:]), dtype), p)]:
        np.testing.assert_array_equal(out, ref)


def test_the_direct_algorithm_asked_of_the_gpu_gathers_with_im2col():
    """"direct" is a CPU algorithm: asked on the GPU branch (RANVGG_CONV=direct, or by name) the
    conv launches the im2col kernels, forward and backward, with the same results."""
    x = rand((1, 3, 5, 7), np.float32)
    p = conv3x3.ConvWeights(rand((4, 3, 3, 3), np.float32, seed=1), rand(4, np.float32, seed=2))
    gy = rand((1, 4, 5, 7), np.float32, seed=3)
    with engine_gpu_branch(), recorded_launches() as launches:
        y = conv3x3.conv3x3_forward(x, p, relu=True, algorithm="direct")
        gx = conv3x3.conv3x3_backward(gy, p, relu_out=y, algorithm="direct")
        y_ref = conv3x3.conv3x3_forward(x, p, relu=True, algorithm="im2col")
        gx_ref = conv3x3.conv3x3_backward(gy, p, relu_out=y_ref, algorithm="im2col")
    names = [e for e, *_ in launches if e.startswith("conv3x3")]
    assert names == ["conv3x3_im2col", "conv3x3_im2col_relu_bwd"] * 2
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(gx, gx_ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_engine_relu(dtype):
    x = rand((2, 3, 5, 7), dtype)
    y_ref, y = both_branches(relu.relu_forward, x)
    np.testing.assert_array_equal(y, y_ref)
    gy = rand(x.shape, dtype, seed=1)
    np.testing.assert_array_equal(*both_branches(relu.relu_backward, y, gy))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", POOL_SHAPES[1:3])
def test_engine_pooling(shape, dtype):
    x, gy = ties(shape, dtype), rand((shape[0], shape[1], shape[2] // 2, shape[3] // 2), dtype, seed=1)
    ref, out = both_branches(pooling.avgpool2_forward, x)
    np.testing.assert_allclose(out, ref, **tol(dtype))
    np.testing.assert_array_equal(*both_branches(pooling.avgpool2_backward, gy, shape))
    (y_ref, arg_ref), (y, arg) = both_branches(pooling.maxpool2_forward, x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    np.testing.assert_array_equal(*both_branches(pooling.maxpool2_backward, gy, arg_ref, shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_engine_tv(dtype):
    (v_ref, g_ref), (v, g) = both_branches(tv.tv_forward_backward, rand((2, 3, 5, 7), dtype))
    np.testing.assert_allclose(v, v_ref, rtol=1e-5 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(g, g_ref, **tol(dtype))


def test_engine_accepts_non_contiguous_inputs():
    # every GPU branch must hand the kernels contiguous memory, whatever view it was given
    x = rand((2, 3, 7, 5), np.float64).transpose(0, 1, 3, 2)  # (2, 3, 5, 7), not contiguous
    gy = rand((2, 3, 7, 5), np.float64, seed=1).transpose(0, 1, 3, 2)
    gy_pool = rand((2, 3, 3, 2), np.float64, seed=2).transpose(0, 1, 3, 2)  # (2, 3, 2, 3)
    y = relu.relu_forward(x)
    arg = np.ascontiguousarray(pooling.maxpool2_forward(x)[1].transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    cases = [
        (conv3x3.im2col3x3, x),
        (relu.relu_forward, x),
        (relu.relu_backward, y.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2), gy),
        (pooling.avgpool2_forward, x),
        (pooling.avgpool2_backward, gy_pool, x.shape),
        (pooling.maxpool2_forward, x),
        (pooling.maxpool2_backward, gy_pool, arg, x.shape),
        (tv.tv_forward_backward, x),
    ]
    for fn, *args in cases:
        ref, out = both_branches(fn, *args)
        for r, o in zip(ref if isinstance(ref, tuple) else (ref,), out if isinstance(out, tuple) else (out,)):
            np.testing.assert_allclose(o, r, rtol=1e-13, atol=1e-13, err_msg=fn.__qualname__)


# ----------------------------------------------------------------------------- 3. the harness is not vacuous


def test_catches_a_wrong_tie_break():
    source = kernels.source("pool").replace("if (v > best)", "if (v >= best)")  # last maximum wins
    x = ties((1, 2, 6, 6), np.float32)
    y, arg = nans((1, 2, 3, 3), np.float32), np.zeros((1, 2, 3, 3), np.uint8)
    launch("pool", "maxpool2_fwd", np.float32, x, y, arg, *i32(2, 6, 6), source=source)
    np.testing.assert_array_equal(y, pooling.maxpool2_forward(x)[0])  # the values still agree...
    assert not np.array_equal(arg, pooling.maxpool2_forward(x)[1])  # ...the argmax does not


def test_catches_a_loop_that_does_not_stride():
    # without the grid stride, 12 threads write only the first 12 elements; the rest stay NaN
    source = kernels.source("relu").replace("i += (long long)blockDim.x * gridDim.x", "i += n")
    x, y = rand(50, np.float64), nans(50, np.float64)
    launch("relu", "relu_fwd", np.float64, x, y, np.int64(50), source=source)
    assert np.isnan(y[12:]).all() and not np.isnan(y[:12]).any()


def test_catches_a_write_out_of_bounds():
    source = kernels.source("tv").replace("i < total;", "i <= total;")
    x = rand((1, 1, 3, 4), np.float32)
    with pytest.raises(AssertionError, match="wrote outside"):
        launch("tv", "tv_fwd_bwd", np.float32, x, nans(x.shape, np.float32), nans(x.shape, np.float32),
               *i32(1, 3, 4), source=source)


def test_catches_a_wrong_gather_offset():
    source = kernels.source("conv3x3").replace("dx = k % 3 - 1", "dx = k % 3")  # kernel shifted by one column
    assert source != kernels.source("conv3x3")
    x, cols = rand((1, 2, 4, 5), np.float64), nans((1, 18, 20), np.float64)
    launch_rows("conv3x3_im2col", np.float64, x, cols, *i32(1, 2, 4, 5), source=source)
    assert not np.array_equal(cols, conv3x3.im2col3x3(x))


@pytest.mark.parametrize("edit, written", [
    (("row += gridDim.y", "row += rows"), np.s_[:, :3, :]),                # rows: the grid's 3 block rows only
    (("p += blockDim.x * gridDim.x", "p += hw"), np.s_[:, :, :8]),         # positions: 2 blocks x 4 threads
])
def test_catches_an_im2col_loop_that_does_not_stride(edit, written):
    # without one of the two grid strides, only what the grid covers at once is written
    source = kernels.source("conv3x3").replace(*edit)
    assert source != kernels.source("conv3x3")
    x, cols = rand((1, 2, 4, 5), np.float64), nans((1, 18, 20), np.float64)
    launch_rows("conv3x3_im2col", np.float64, x, cols, *i32(1, 2, 4, 5), source=source)
    assert not np.isnan(cols[written]).any() and np.isnan(cols).sum() == cols.size - cols[written].size


def test_catches_wrong_argument_types():
    x = rand(8, np.float32)
    with pytest.raises(TypeError, match="int64"):  # CuPy would pass 4 bytes to a long long
        launch("relu", "relu_fwd", np.float32, x, nans(8, np.float32), np.int32(8))
    with pytest.raises(TypeError, match="float32"):
        launch("relu", "relu_fwd", np.float32, x.astype(np.float64), nans(8, np.float32), np.int64(8))
    with pytest.raises(TypeError, match="contiguous"):
        launch("relu", "relu_fwd", np.float32, rand(16, np.float32)[::2], nans(8, np.float32), np.int64(8))


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_engine_network_objective_through_emulated_kernels(pooling):
    """A whole objective (forward through conv/relu/pool, content + Gram + TV losses, backward)
    on the GPU code path with emulated kernels agrees with the CPU path."""
    from engine.objectives import Objective
    from engine.vgg import VGG19

    rng = np.random.default_rng(0)
    net = VGG19.random(seed=1, sigma=0.05, pooling=pooling, device="cpu", dtype=np.float64)
    xc, xs, x = (rng.uniform(-100, 100, (1, 3, 6, 8)) for _ in range(3))
    # conv1_2 is asked for as a pre-activation: its ReLU runs on its own (relu_bwd), while
    # conv1_1 + relu1_1 run fused (the mask in the backward's input transform). conv1_1's forward
    # (3 input channels) is im2col; every other conv is Winograd F(2x2), forward and backward
    obj = Objective.style(net, xc, [xs], content_layer="conv1_2", style_layers=["relu1_1", "pool1"], tv_weight=0.5,
                          feature_stats="gram", pixel_stats="none", drop_pinned=False)
    obj.calibrate(xc)
    ref_value, ref_grad = obj.value_and_grad(x)
    with engine_gpu_branch(), recorded_launches() as launches:
        value, grad = obj.value_and_grad(x)
    used = {entry for entry, *_ in launches}
    pool = "avgpool2" if pooling == "avg" else "maxpool2"
    assert used == {"conv3x3_im2col", "winograd2_input", "winograd2_input_relu_bwd", "winograd2_output",
                    "relu_fwd", "relu_bwd", f"{pool}_fwd", f"{pool}_bwd", "tv_fwd_bwd"}
    assert value == pytest.approx(ref_value, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-12 * np.abs(ref_grad).max())


# ----------------------------------------------------------------------------- Winograd F(2x2) on the GPU

from engine import gradcheck                        # noqa: E402
from engine.ops import winograd, winograd_gpu       # noqa: E402

WINO_SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (1, 2, 4, 4), (1, 1, 3, 2), (1, 2, 6, 1)]


def launch2d(entry, dtype, *args):
    """``<entry>_<f32|f64>`` of kernels/winograd.cu on a 2 x 2 grid of 3-thread blocks: both
    grid-stride loops (planes and tiles) go round."""
    emulator.module("winograd").get_function(f"{entry}_{backend.dtype_suffix(dtype)}")((2, 2), (3,), args)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", WINO_SHAPES + [(1, 2, 9, 10), (2, 1, 8, 5)])
@pytest.mark.parametrize("tile", [2, 4])
def test_winograd_kernels(tile, shape, dtype):
    """F(tile x tile): input transform, GEMM (NumPy), output transform with bias and ReLU against
    the NumPy im2col conv; the masked input transform against the conv of gy * (y > 0)."""
    n, c, h, w = shape
    cout, a2 = 3, (tile + 2) ** 2
    x = rand(shape, dtype)
    p = conv3x3.ConvWeights(rand((cout, c, 3, 3), dtype, seed=1), rand(cout, dtype, seed=2))
    u = winograd.weight_transform(p.weight, tile, dtype)
    tiles = n * winograd_gpu.tiles(h, w, tile)
    v = nans((a2, c, tiles), dtype)
    launch2d(f"winograd{tile}_input", dtype, x, v, *i32(n, c, h, w))
    m = np.matmul(u, v)
    eps = np.finfo(dtype).eps * (64 if tile == 2 else 512)   # F(4x4)'s larger coefficients
    close = dict(rtol=eps, atol=eps * 10)
    for relu_flag in (0, 1):
        y = nans((n, cout, h, w), dtype)
        launch2d(f"winograd{tile}_output", dtype, m, p.bias, y, *i32(n, cout, h, w, relu_flag))
        ref = conv3x3.conv3x3_forward(x, p, relu=bool(relu_flag), algorithm="im2col")
        np.testing.assert_allclose(y, ref, **close)

    mask = np.maximum(rand(shape, dtype, seed=5), 0)
    v = nans((a2, c, tiles), dtype)
    launch2d(f"winograd{tile}_input_relu_bwd", dtype, x, mask, v, *i32(n, c, h, w))
    ref_v = nans((a2, c, tiles), dtype)
    launch2d(f"winograd{tile}_input", dtype, x * (mask > 0), ref_v, *i32(n, c, h, w))
    np.testing.assert_array_equal(v, ref_v)


@pytest.mark.parametrize("dtype", DTYPES)
def test_engine_chooses_and_runs_winograd_on_the_gpu_branch(dtype):
    """conv3x3 with 16 input channels takes F(2x2) on the GPU branch (im2col below 16, as conv1_1),
    and agrees with the NumPy conv forward (bias, ReLU) and backward (the ReLU mask fused)."""
    assert conv3x3.choose(16, 8, 9, 9, xp=_NumpyInDisguise()) == "f2"
    assert conv3x3.choose(3, 64, 9, 9, xp=_NumpyInDisguise()) == "im2col"
    x = rand((2, 16, 5, 6), dtype)
    p = conv3x3.ConvWeights(rand((16, 16, 3, 3), dtype, seed=1) * 0.3, rand(16, dtype, seed=2))
    gy = rand((2, 16, 5, 6), dtype, seed=3)
    ref_y = conv3x3.conv3x3_forward(x, p, relu=True, algorithm="im2col")
    ref_gx = conv3x3.conv3x3_backward(gy, p, relu_out=ref_y, algorithm="im2col")
    with engine_gpu_branch(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(backend, "MAX_BLOCKS", 2)
        mp.setattr(backend, "MAX_PLANE_BLOCKS", 3)
        mp.setattr(backend, "THREADS", 4)
        with backend.counting() as c:
            y = conv3x3.conv3x3_forward(x, p, relu=True)
            gx = conv3x3.conv3x3_backward(gy, p, relu_out=y)
    assert c["launches"] == 4                          # input + output transform, each way
    tol_ = dict(rtol=1e-4, atol=1e-4 * np.abs(ref_gx).max()) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, ref_y, **tol_)
    np.testing.assert_allclose(gx, ref_gx, **tol_)


@pytest.mark.parametrize("dtype", DTYPES)
def test_forced_f4_runs_winograd4_on_the_gpu_branch(dtype, monkeypatch):
    """RANVGG_CONV=f4 on the GPU branch: F(4x4) forward (bias, ReLU) and backward (mask fused)
    agree with the NumPy conv, through the engine's own dispatch."""
    monkeypatch.setenv("RANVGG_CONV", "f4")
    assert conv3x3.choose(16, 8, 9, 9, xp=_NumpyInDisguise()) == "f4"
    assert conv3x3.choose(3, 64, 9, 9, xp=_NumpyInDisguise()) == "im2col"
    x = rand((2, 16, 9, 7), dtype)
    p = conv3x3.ConvWeights(rand((16, 16, 3, 3), dtype, seed=1) * 0.3, rand(16, dtype, seed=2))
    gy = rand((2, 16, 9, 7), dtype, seed=3)
    ref_y = conv3x3.conv3x3_forward(x, p, relu=True, algorithm="im2col")
    ref_gx = conv3x3.conv3x3_backward(gy, p, relu_out=ref_y, algorithm="im2col")
    with engine_gpu_branch(), small_grid(), recorded_launches() as launches:
        y = conv3x3.conv3x3_forward(x, p, relu=True)
        gx = conv3x3.conv3x3_backward(gy, p, relu_out=y)
    used = {entry for entry, *_ in launches}
    assert used == {"winograd4_input", "winograd4_input_relu_bwd", "winograd4_output"}
    tol_ = dict(rtol=1e-4, atol=1e-4 * np.abs(ref_gx).max()) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(y, ref_y, **tol_)
    np.testing.assert_allclose(gx, ref_gx, **tol_)


def test_winograd4_gradcheck_through_the_emulated_kernels(monkeypatch):
    """Finite differences, float64, through the GPU branch with F(4x4) forced."""
    monkeypatch.setenv("RANVGG_CONV", "f4")
    x = rand((1, 16, 6, 5), np.float64)
    p = conv3x3.ConvWeights(rand((16, 16, 3, 3), np.float64, seed=1) * 0.3, rand(16, np.float64, seed=2))
    with engine_gpu_branch(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(backend, "THREADS", 8)
        err = gradcheck.check(gradcheck.scalarized(lambda t: conv3x3.conv3x3_relu(t, p)), x)
        used = conv3x3.choose(16, 16, 6, 5, xp=backend.array_module(x))
    assert used == "f4" and err < 1e-6, err


def test_winograd_gradcheck_through_the_emulated_kernels():
    """Finite differences, float64, through the GPU branch: the fused conv+ReLU node's input
    gradient (F(2x2) forward with ReLU, masked F(2x2) backward)."""
    x = rand((1, 16, 5, 4), np.float64)
    p = conv3x3.ConvWeights(rand((16, 16, 3, 3), np.float64, seed=1) * 0.3, rand(16, np.float64, seed=2))
    with engine_gpu_branch(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(backend, "THREADS", 8)
        err = gradcheck.check(gradcheck.scalarized(lambda t: conv3x3.conv3x3_relu(t, p)), x)
        used = conv3x3.choose(16, 16, 5, 4, xp=backend.array_module(x))
    assert used == "f2" and err < 1e-6, err


# ----------------------------------------------------------------------------- im2col's 2-D grid in the engine


@contextlib.contextmanager
def small_grid():
    """backend's launch limits cut down to 2 x 3 blocks of 4 threads, so that every grid-stride
    loop the engine launches goes round on small inputs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backend, "MAX_BLOCKS", 2)
        mp.setattr(backend, "MAX_PLANE_BLOCKS", 3)
        mp.setattr(backend, "THREADS", 4)
        yield


@pytest.mark.parametrize("dtype", DTYPES)
def test_engine_im2col_on_a_grid_that_wraps(dtype):
    """conv1_1's algorithm on the GPU (3 input channels: im2col) through the engine's launch on a
    cut-down grid: rows (2*3*9 = 54 > 3) and positions (5*7 = 35 > 8) both wrap, forward and
    backward (the ReLU mask fused into the gather); against the CPU's im2col (its own choice
    there is the direct sums), the GEMM is the same, so the results are equal."""
    x = rand((2, 3, 5, 7), dtype)
    p = conv3x3.ConvWeights(rand((4, 3, 3, 3), dtype, seed=1), rand(4, dtype, seed=2))
    gy = rand((2, 4, 5, 7), dtype, seed=3)
    ref_y = conv3x3.conv3x3_forward(x, p, relu=True, algorithm="im2col")
    ref_gx = conv3x3.conv3x3_backward(gy, p, relu_out=ref_y, algorithm="im2col")
    with engine_gpu_branch(), small_grid(), recorded_launches() as launches:
        y = conv3x3.conv3x3_forward(x, p, relu=True)
        gx = conv3x3.conv3x3_backward(gy, p, relu_out=y)
    assert [(e, g, b) for e, g, b, _ in launches if e.startswith("conv3x3")] == [
        ("conv3x3_im2col", (2, 3), (4,)), ("conv3x3_im2col_relu_bwd", (2, 3), (4,))]
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(gx, ref_gx)


def test_im2col_gradcheck_through_the_emulated_kernels():
    """Finite differences, float64, through the GPU branch's im2col: the fused conv+ReLU node
    (im2col forward, masked im2col backward) on a grid where both loops wrap."""
    x = rand((1, 3, 5, 4), np.float64)
    p = conv3x3.ConvWeights(rand((4, 3, 3, 3), np.float64, seed=1) * 0.3, rand(4, np.float64, seed=2))
    with engine_gpu_branch(), small_grid():
        err = gradcheck.check(gradcheck.scalarized(lambda t: conv3x3.conv3x3_relu(t, p)), x)
        used = conv3x3.choose(3, 4, 5, 4, xp=backend.array_module(x))
    assert used == "im2col" and err < 1e-6, err


def test_im2col_refuses_a_plane_of_2_to_the_31_positions():
    # the kernel's index math within a row is 32-bit; the check runs before any allocation
    big = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(1, 1, 2**16, 2**15), strides=(0, 0, 0, 0))
    with engine_gpu_branch(), pytest.raises(ValueError, match="2\\^31"):
        conv3x3.im2col3x3(big)


def _run_wrap_step(conv3x3_source=None):
    """bench/gpu_proof.py's wrap step on the emulated GPU branch with the cut-down grid; its exit
    status and every raw launch as (entry, grid, block, args)."""
    from bench import gpu_proof

    launches = []
    with engine_gpu_branch(), small_grid(), pytest.MonkeyPatch.context() as mp:
        emulated = backend.kernel

        def recording(name, entry, dt):
            if name == "conv3x3" and conv3x3_source is not None:
                kern = emulator.Module(conv3x3_source, "conv3x3-edited").get_function(
                    f"{entry}_{backend.dtype_suffix(dt)}")
            else:
                kern = emulated(name, entry, dt)
            return lambda grid, block, args: (launches.append((entry, grid, block, args)), kern(grid, block, args))

        mp.setattr(backend, "kernel", recording)
        mp.setattr(backend, "xp_for", lambda device: _NumpyInDisguise())
        rc = gpu_proof.step_wrap("gpu")
    return rc, launches


def test_the_proof_commands_wrap_step_wraps_every_loop(capsys):
    """The wrap step, scaled down by the grid's limits (cover 2 x 4 threads, gridDim.y 3), passes,
    and its launches do make each grid-stride loop go round: ReLU's 1-D loop, im2col's positions
    (x) and rows (y), plain and masked, and Winograd's planes (y)."""
    rc, launches = _run_wrap_step()
    assert rc == 0, capsys.readouterr().out

    def wrapped(entry, axis):
        for e, grid, block, args in launches:
            if e != entry:
                continue
            if e.startswith("relu"):
                work, cover = int(args[-1]), grid[0] * block[0]
            else:
                n, c, h, w = (int(a) for a in args[-4:])
                work, cover = ((h * w, grid[0] * block[0]) if axis == "x" else
                               (n * c * (9 if e.startswith("conv3x3") else 1), grid[1]))
            if work > cover:
                return True
        return False

    assert wrapped("relu_fwd", "x") and wrapped("winograd2_input", "y")
    for entry in ("conv3x3_im2col", "conv3x3_im2col_relu_bwd"):
        assert wrapped(entry, "x") and wrapped(entry, "y"), entry


@pytest.mark.parametrize("edit", [("row += gridDim.y", "row += rows"), ("p += blockDim.x * gridDim.x", "p += hw")])
def test_the_wrap_step_fails_when_an_im2col_loop_does_not_stride(edit, capsys):
    source = kernels.source("conv3x3").replace(*edit)
    assert source != kernels.source("conv3x3")
    rc, _ = _run_wrap_step(source)
    assert rc == 1 and "DIFFERENT" in capsys.readouterr().out
