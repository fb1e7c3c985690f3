"""NumPy vs CuPy: every op, forward and backward, float32 and float64, from the same seed.

Each case below is written once against whatever arrays it is given; the test runs it on host
arrays and on device arrays and compares. Skipped, with the reason shown, where CUDA is absent
(the kernels themselves are still checked there: tests/kernels/ compiles them with NVRTC and
runs them on the CPU under a grid emulator).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from engine import autograd, backend
from engine.autograd import Tensor
from engine.ops import conv3x3, fc, gram, losses, pooling, relu, tv

REASON = backend.gpu_unavailable_reason()
# On a GPU machine a broken install must not pass this suite by skipping it: RANVGG_REQUIRE_GPU=1
# turns the skip into a failure that names the reason.
REQUIRED = os.environ.get("RANVGG_REQUIRE_GPU", "") not in ("", "0")
if REASON is not None and REQUIRED:
    pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("gpu_required")]
else:
    pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=f"GPU tests skipped: {REASON} "
                                                      "(RANVGG_REQUIRE_GPU=1 makes this a failure)")]


@pytest.fixture
def gpu_required():
    pytest.fail(f"RANVGG_REQUIRE_GPU is set but the GPU cannot be used: {REASON}", pytrace=False)

DTYPES = (np.float32, np.float64)
RTOL = {np.float32: 1e-4, np.float64: 1e-10}  # BLAS and cuBLAS sum in different orders


def host_inputs(dtype, seed=0):
    """Every array the cases need, on the host; shapes are small, with odd and non-square maps."""
    rng = np.random.default_rng(seed)

    def r(*shape):
        return rng.standard_normal(shape).astype(dtype)

    return {
        "x": r(2, 3, 9, 11), "gy": r(2, 3, 9, 11), "gy_pool": r(2, 3, 4, 5),
        "conv_w": r(5, 3, 3, 3) * 0.3, "conv_b": r(5), "conv_gy": r(2, 5, 9, 11),
        "fc_w": r(7, 3 * 9 * 11) * 0.1, "fc_b": r(7), "fc_gy": r(2, 7, 1, 1),
        "f": r(2, 4, 6, 5), "gg": r(2, 4, 4), "target": r(1, 4, 6, 5), "target_gram": r(1, 4, 4),
    }


def with_grad(loss_fn, f):
    """(loss value, d loss / d f) through engine.autograd."""
    leaf = Tensor(f, requires_grad=True)
    loss = loss_fn(leaf)
    autograd.backward(loss)
    return loss.data, leaf.grad


# ----------------------------------------------------------------------------- the cases
# Each takes the inputs (NumPy or CuPy) and returns a tuple of results.


def case_conv3x3(a):
    p = conv3x3.ConvWeights(a["conv_w"], a["conv_b"])
    return conv3x3.conv3x3_forward(a["x"], p), conv3x3.conv3x3_backward(a["conv_gy"], p)


def case_conv3x3_relu(a):
    """The fused node the network uses when the pre-activation is not asked for: its forward,
    and its backward with the ReLU mask folded into the backward conv's gather."""
    p = conv3x3.ConvWeights(a["conv_w"], a["conv_b"])
    y, gx = with_grad(lambda x: losses.content_loss(conv3x3.conv3x3_relu(x, p), a["conv_gy"]), a["x"])
    y_relu = relu.relu_forward(conv3x3.conv3x3_forward(a["x"], p))
    return y, gx, y_relu, conv3x3.conv3x3_backward(a["conv_gy"], p, relu_out=y_relu)


def case_relu(a):
    y = relu.relu_forward(a["x"])
    return y, relu.relu_backward(y, a["gy"])


def case_avgpool2(a):
    return pooling.avgpool2_forward(a["x"]), pooling.avgpool2_backward(a["gy_pool"], a["x"].shape)


def case_maxpool2(a):
    y, arg = pooling.maxpool2_forward(a["x"])
    return y, arg, pooling.maxpool2_backward(a["gy_pool"], arg, a["x"].shape)


def case_fc(a):
    p = fc.FCWeights(a["fc_w"], a["fc_b"])
    return fc.fc_forward(a["x"], p), fc.fc_backward(a["fc_gy"], p, a["x"].shape)


def case_gram(a):
    return gram.gram_forward(a["f"]), gram.gram_backward(a["gg"], a["f"])


def case_content_loss(a):
    return with_grad(lambda f: losses.content_loss(f, a["target"], weight=3.0), a["f"])


def case_gram_loss(a):
    return with_grad(lambda f: losses.gram_loss(f, a["target_gram"], weight=3.0), a["f"])


def case_shifted_gram_loss(a):
    """the long-range term: 1 row down, 2 columns across (a non-symmetric Gram, its own backward)."""
    target = gram.shifted_gram_forward(a["target"], (1, 2))
    return with_grad(lambda f: losses.shifted_gram_loss(f, target, (1, 2), weight=3.0), a["f"])


def case_tv(a):
    value, g = tv.tv_forward_backward(a["x"])
    return (value, g, *with_grad(lambda x: tv.tv_loss(x, weight=0.5), a["x"]))


def case_chain(a):
    """conv -> relu -> max pool, with a content, a Gram and a TV term summed: one backward."""
    p = conv3x3.ConvWeights(a["conv_w"], a["conv_b"])

    def loss(x):
        h = pooling.maxpool2(relu.relu(conv3x3.conv3x3(x, p)))  # (2, 5, 4, 5)
        target = h.data[:1] * 0.5
        target_gram = gram.gram_forward(target)
        return autograd.add(losses.content_loss(h, target), losses.gram_loss(h, target_gram, 2.0), tv.tv_loss(x, 0.1))

    return with_grad(loss, a["x"])


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


# ----------------------------------------------------------------------------- op-level parity


def assert_close(out, ref, dtype, what):
    out = backend.to_host(out)
    ref = np.asarray(ref)
    assert out.shape == ref.shape and out.dtype == ref.dtype, what
    if ref.dtype.kind in "iub":
        np.testing.assert_array_equal(out, ref, err_msg=what)
        return
    rtol = RTOL[dtype]
    atol = rtol * float(np.abs(ref).max(initial=0.0))  # near-zero entries: relative to the scale
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", sorted(CASES))
def test_op_parity(case, dtype):
    cupy = backend.xp_for("gpu")
    host = host_inputs(dtype)
    ref = CASES[case](host)
    out = CASES[case]({k: cupy.asarray(v) for k, v in host.items()})
    assert len(out) == len(ref)
    for i, (o, r) in enumerate(zip(out, ref)):
        assert backend.is_gpu(o), f"{case} result {i} came back on the host"
        assert_close(o, r, dtype, f"{case} result {i} ({np.dtype(dtype).name})")


# ----------------------------------------------------------------------------- task-level parity
# ----------------------------------------------------------------------------- whole tasks

def test_network_features_parity():
    """Same seed, same weights: every named layer agrees to float32 precision."""
    from engine.arch import LAYER_NAMES
    from engine.vgg import VGG19

    x = np.random.default_rng(0).normal(0, 50, (1, 3, 256, 256)).astype(np.float32)
    cpu = VGG19.random(seed=0, device="cpu").features(x, LAYER_NAMES)
    gpu = VGG19.random(seed=0, device="gpu").features(x, LAYER_NAMES)
    for name in LAYER_NAMES:
        g = backend.to_host(gpu[name])
        assert np.abs(g - cpu[name]).max() <= 1e-4 * np.abs(cpu[name]).max(), name


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layer", ["relu3_1", "pool4"])
def test_fused_network_gradient_parity(layer, dtype):
    """Only the deepest layer requested, so every conv below it runs as a fused conv+ReLU node:
    the input gradient of a content loss agrees on both devices."""
    from engine.objectives import Objective
    from engine.vgg import VGG19

    rng = np.random.default_rng(1)
    x0 = rng.normal(0, 50, (1, 3, 40, 36))
    x = rng.normal(0, 50, (1, 3, 40, 36))
    results = {}
    for device in ("cpu", "gpu"):
        net = VGG19.random(seed=0, device=device, dtype=dtype)
        value, grad = Objective.inversion(net, x0, layer).value_and_grad(x)
        results[device] = (value, backend.to_host(grad))
    (v_cpu, g_cpu), (v_gpu, g_gpu) = results["cpu"], results["gpu"]
    assert v_gpu == pytest.approx(v_cpu, rel=10 * RTOL[dtype])
    assert_close(g_gpu, g_cpu, dtype, f"input gradient through the fused convs up to {layer}")


def test_device_lbfgs_parity(tmp_path):
    """--optimizer lbfgs-device: the same run on both devices, close; on the GPU its vectors stay
    device arrays (the callback sees a CuPy array)."""
    from tasks import invert

    runs = {}
    for device in ("cpu", "gpu"):
        _, runs[device] = invert.run(image="astronaut", layer="pool3", size=64, iters=5, device=device,
                                     optimizer="lbfgs-device", print_every=0, out=str(tmp_path / f"{device}.png"))
    assert runs["gpu"]["status"] == "done" and runs["gpu"]["iterations"] == 5
    assert runs["gpu"]["losses"][0]["loss"] == pytest.approx(runs["cpu"]["losses"][0]["loss"], rel=1e-3)
    assert runs["gpu"]["final_loss"] == pytest.approx(runs["cpu"]["final_loss"], rel=5e-2)

    from engine.optim.device_lbfgs import lbfgs_device
    from engine.objectives import Objective
    from engine.vgg import VGG19

    seen = []
    net = VGG19.random(seed=0, device="gpu")
    x0 = np.random.default_rng(0).normal(0, 50, (1, 3, 32, 32)).astype(np.float32)
    obj = Objective.inversion(net, x0, "pool2")
    obj.calibrate(x0)
    lbfgs_device(obj, x0[:, :, ::-1].copy(), iters=2, callback=lambda it, x, *rest: seen.append(backend.is_gpu(x)))
    assert seen == [True, True]


def test_tf32_is_opt_in_and_close():
    """--tf32: the features move by TF32's rounding only (well under 1e-2), and switching it off
    gives strict float32 back."""
    from engine.vgg import VGG19

    x = np.random.default_rng(0).normal(0, 50, (1, 3, 64, 64)).astype(np.float32)
    net = VGG19.random(seed=0, device="gpu")
    strict = backend.to_host(net.features(x, ["pool5"])["pool5"])
    try:
        backend.set_tf32(True)
        fast = backend.to_host(net.features(x, ["pool5"])["pool5"])
    finally:
        backend.set_tf32(False)
    again = backend.to_host(net.features(x, ["pool5"])["pool5"])
    scale = np.abs(strict).max()
    assert np.abs(fast - strict).max() <= 1e-2 * scale
    assert np.abs(again - strict).max() <= 1e-6 * scale
    # TF32 must have acted: its 10-bit products move pool5 by ~1e-3 of its scale, far beyond the
    # ~1e-7 of a strict float32 GEMM summed in another order (Ampere, sm_80, and later only)
    major = backend.xp_for("gpu").cuda.Device().compute_capability[0]
    if int(major) >= 8:
        assert np.abs(fast - strict).max() >= 1e-5 * scale, "--tf32 changed nothing: TF32 is not reaching cuBLAS"


@pytest.mark.parametrize("task, kwargs", [
    ("invert", {"image": "astronaut", "layer": "pool3"}),
    ("invert", {"image": "coffee", "layer": "relu1_1,relu3_1", "pooling": "max"}),
    ("texture", {"image": "brick"}),
    ("style", {"content": "chelsea", "style": ["ihc", "brick"], "style_blend": "0.6,0.4"}),
])
def test_task_parity(task, kwargs, tmp_path):
    """The same run on both devices: same weighting factors, same first losses, close results.
    (L-BFGS-B amplifies float32 rounding differences over many steps, so only a few are compared
    tightly.)"""
    import importlib

    mod = importlib.import_module(f"tasks.{task}")
    runs = {}
    for device in ("cpu", "gpu"):
        _, runs[device] = mod.run(size=64, iters=5, device=device, print_every=0,
                                  out=str(tmp_path / f"{device}.png"), **kwargs)
    cpu, gpu = runs["cpu"], runs["gpu"]
    assert gpu["device"] == "gpu" and cpu["device"] == "cpu"
    for name, f in cpu["weighting_factors"].items():
        assert gpu["weighting_factors"][name] == pytest.approx(f, rel=1e-3), name
    assert gpu["losses"][0]["loss"] == pytest.approx(cpu["losses"][0]["loss"], rel=1e-3)
    assert gpu["final_loss"] == pytest.approx(cpu["final_loss"], rel=5e-2)


def test_gradcheck_command_on_gpu(capsys):
    from tasks import gradcheck

    assert gradcheck.main(["--device", "gpu"]) == 0
    assert "0 failed" in capsys.readouterr().out
