"""The network: features against an independent float64 reference, weights, files, errors."""
import json

import numpy as np
import pytest

from engine import UserError
from engine.io import image
from engine.arch import LAYER_NAMES
from engine.vgg import VGG19


def reference_features(net, x, top):
    """An independent VGG-19: direct shifted-sum convolution in float64 (no im2col, no
    prepared GEMM layouts, no numba), every named layer up to ``top``."""
    out, h = {}, x.astype(np.float64)
    for name in LAYER_NAMES[:LAYER_NAMES.index(top) + 1]:
        if name.startswith("conv"):
            w, b = (a.astype(np.float64) for a in net.params[name])
            n, c, hh, ww = h.shape
            pad = np.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)))
            y = np.zeros((n, w.shape[0], hh, ww))
            for ky in range(3):
                for kx in range(3):
                    # (O, C) x (N, C, H, W) -> (O, N, H, W)
                    y += np.tensordot(w[:, :, ky, kx], pad[:, :, ky:ky + hh, kx:kx + ww], axes=([1], [1])).transpose(1, 0, 2, 3)
            h = y + b[None, :, None, None]
        elif name.startswith("relu"):
            h = np.maximum(h, 0)
        elif name.startswith("pool"):
            n, c, hh, ww = h.shape
            h = h[:, :, :hh // 2 * 2, :ww // 2 * 2].reshape(n, c, hh // 2, 2, ww // 2, 2).mean(axis=(3, 5))
        else:
            w, b = (a.astype(np.float64) for a in net.params[name])
            h = (h.reshape(h.shape[0], -1) @ w.T + b)[:, :, None, None]
        out[name] = h
    return out


@pytest.mark.parametrize("size", [64, 256])
def test_features_match_reference_at_every_layer(size):
    net = VGG19.random(seed=0, device="cpu")
    img = image.load_image(image.sample_path("astronaut"), size=size)
    x = image.preprocess(img)
    layers = list(LAYER_NAMES) if size == 256 else [n for n in LAYER_NAMES if not n.startswith(("fc", "relu6", "relu7"))]
    got = net.features(x, layers)
    ref = reference_features(net, x, layers[-1])
    for name in layers:
        g, r = got[name].astype(np.float64), ref[name]
        assert g.shape == r.shape, name
        err = np.abs(g - r).max() / np.abs(r).max()
        assert err < 2e-5, f"{name}: max error {err:.1e} of the largest value"


def test_same_seed_same_weights_and_sigma():
    a, b = VGG19.random(seed=7, device="cpu"), VGG19.random(seed=7, device="cpu")
    c = VGG19.random(seed=8, device="cpu")
    assert np.array_equal(a.params["conv3_2"][0], b.params["conv3_2"][0])
    assert not np.array_equal(a.params["conv3_2"][0], c.params["conv3_2"][0])
    w = a.params["conv4_1"][0]
    assert abs(w.std() - 0.015) < 1e-4 and abs(w.mean()) < 1e-4
    assert all(not b_.any() for _, b_ in a.params.values())


def test_fc_weights_drawn_only_when_used():
    net = VGG19.random(seed=0, device="cpu")
    net.features(np.zeros((1, 3, 32, 32), np.float32), ["pool5"])
    assert "fc6" not in net.params
    x = np.random.default_rng(0).normal(0, 50, (1, 3, 256, 256)).astype(np.float32)
    f = net.features(x, ["fc8"])["fc8"]
    assert f.shape == (1, 1000, 1, 1) and net.params["fc6"][0].shape == (4096, 32768)


def test_fc_needs_256(tmp_path):
    net = VGG19.random(seed=0, device="cpu")
    with pytest.raises(UserError, match="fc layers need a 256x256 input.*--size 256"):
        net.features(np.zeros((1, 3, 128, 128), np.float32), ["fc6"])


def test_unknown_layer_and_tiny_input():
    net = VGG19.random(seed=0, device="cpu")
    with pytest.raises(UserError, match="unknown layer 'conv5_9'.*valid layers: conv1_1"):
        net.features(np.zeros((1, 3, 32, 32), np.float32), ["conv5_9"])
    with pytest.raises(UserError, match="too small for pool5"):
        net.features(np.zeros((1, 3, 16, 16), np.float32), ["pool5"])


def test_save_load_round_trip(tmp_path):
    net = VGG19.random(seed=3, sigma=0.02, pooling="max", device="cpu")
    path = tmp_path / "w.npz"
    net.save(path)
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        assert data["conv1_1.weight"].shape == (64, 3, 3, 3) and "fc6.weight" not in data.files
    assert meta["seed"] == 3 and meta["sigma"] == 0.02 and meta["pooling"] == "max"
    back = VGG19.load(path, device="cpu")
    assert back.pooling == "max"
    x = np.random.default_rng(1).normal(0, 50, (1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(back.features(x, ["pool5"])["pool5"], net.features(x, ["pool5"])["pool5"])
    # fc weights of a random net are redrawn identically from the saved generator state
    x256 = np.random.default_rng(2).normal(0, 50, (1, 3, 256, 256)).astype(np.float32)
    np.testing.assert_array_equal(back.features(x256, ["fc6"])["fc6"], net.features(x256, ["fc6"])["fc6"])


def test_load_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        VGG19.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip file")
    with pytest.raises(UserError, match="not a readable .npz"):
        VGG19.load(bad)
    net = VGG19.random(seed=0, device="cpu")
    arrays = {f"{k}.weight": w for k, (w, b) in net.params.items()}
    arrays.update({f"{k}.bias": b for k, (w, b) in net.params.items()})
    arrays["conv2_1.weight"] = np.zeros((128, 32, 3, 3), np.float32)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **arrays)
    with pytest.raises(UserError, match=r"conv2_1.weight has shape \(128, 32, 3, 3\), expected \(128, 64, 3, 3\)"):
        VGG19.load(wrong)
    del arrays["conv5_4.bias"]
    arrays["conv2_1.weight"] = net.params["conv2_1"][0]
    missing = tmp_path / "missing_key.npz"
    np.savez(missing, **arrays)
    with pytest.raises(UserError, match="missing 'conv5_4.bias'"):
        VGG19.load(missing)


def test_device_errors():
    with pytest.raises(UserError, match="unknown device"):
        VGG19.random(device="tpu")
    from engine import backend

    if backend.gpu_available():
        pytest.skip("a GPU is present: the no-GPU message cannot be tested here")
    with pytest.raises(UserError, match="--device gpu is not available: .*use --device cpu"):
        VGG19.random(device="gpu")
    assert VGG19.random(device="auto").device == "cpu"


@pytest.mark.parametrize("init", ["he", "orthogonal", "zero-mean-first"])
def test_weight_inits_have_their_statistics(init):
    net = VGG19.random(seed=3, device="cpu", init=init)
    plain = VGG19.random(seed=3, device="cpu")
    assert net.meta["init"] == init and "init" not in plain.meta
    for name, (cout, cin, _, _) in net.conv_shapes:
        w = net.params[name][0].astype(np.float64)
        assert w.shape == (cout, cin, 3, 3) and w.dtype == np.float64 and net.params[name][0].dtype == np.float32
        m = w.reshape(cout, -1)
        if init == "he":
            assert abs(w.std() / np.sqrt(2 / (9 * cin)) - 1) < 0.03 and abs(w.mean()) < 0.03 * w.std(), name
        elif init == "orthogonal":
            gram = m @ m.T if cout <= 9 * cin else m.T @ m          # the smaller side's Gram
            scale = 0.015 ** 2 * max(m.shape)
            np.testing.assert_allclose(gram / scale, np.eye(len(gram)), atol=1e-5, err_msg=name)
            assert np.sqrt((w ** 2).mean()) == pytest.approx(0.015, rel=1e-5)
        else:
            means = m.mean(axis=1)
            if name == "conv1_1":
                assert np.abs(means).max() < 1e-8 and abs(w.std() / 0.015 - 1) < 0.15
            else:  # every other layer is the gaussian draw itself
                assert np.array_equal(net.params[name][0], plain.params[name][0]), name
    with pytest.raises(UserError, match="weight init"):
        VGG19.random(seed=0, device="cpu", init="uniform")


def test_gaussian_is_the_default_draw_and_weight_init_needs_a_plain_random_net():
    from tasks import texture
    a, b = VGG19.random(seed=2, device="cpu"), VGG19.random(seed=2, device="cpu", init="gaussian")
    assert all(np.array_equal(a.params[n][0], b.params[n][0]) for n, _ in a.conv_shapes)
    with pytest.raises(UserError, match="--weight-init he .*--net random"):
        texture.run(image="brick", size=32, iters=1, weight_init="he", device="cpu", print_every=0)
    _, log = texture.run(image="brick", size=32, iters=2, scales="none", net="random", weight_init="orthogonal",
                         device="cpu", print_every=0)
    assert log["network"]["init"] == "orthogonal" and log["network"]["net"] == "random"
