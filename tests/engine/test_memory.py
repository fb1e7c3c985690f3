"""engine/memory.py against measured peak memory (tracemalloc sees every NumPy buffer), and the
memory check of the tasks: before any work, in under a second, blaming what is too big."""
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from engine import backend, memory
from engine.io import image
from engine.objectives import Objective
from engine.optim import lbfgs
from engine.optim.device_lbfgs import lbfgs_device
from engine.vgg import VGG19
from tasks import invert, texture
from tasks.pipeline.runner import AUTO


def _noise(size, seed):
    rng = np.random.default_rng(seed)
    return image.preprocess(rng.uniform(0, 255, (size, size, 3)).astype(np.float32))


def _measured_pass(obj, x) -> int:
    """Peak bytes of one value_and_grad, after a first one made the net's device layouts."""
    obj.value_and_grad(x)
    tracemalloc.start()
    try:
        obj.value_and_grad(x)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def weights():
    return VGG19.random(seed=0, device="cpu").params


def _measured_run(params, size, layer, history, method=lbfgs):
    """Peak bytes of a short run past the host weights: the net's device layouts, objective,
    Eq. 4 calibration, L-BFGS-B (a new net on the same host arrays: layouts made afresh; the
    Winograd scratch, kept per thread, dropped: an earlier larger run's would hide this one's)."""
    from engine.ops import winograd

    winograd._buffers().clear()
    tracemalloc.start()
    try:
        net = VGG19(params, {"kind": "random"}, device="cpu")
        obj = Objective.inversion(net, _noise(size, 1), layer)
        x = _noise(size, 2)
        obj.calibrate(x)
        lo, hi = image.pixel_bounds("caffe")
        method(obj, x, (lo.reshape(1, 3, 1, 1), hi.reshape(1, 3, 1, 1)), iters=1, history=history)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("optimizer", ["lbfgs", "lbfgs-device"])
def test_estimate_of_a_run_within_20_percent_at_three_sizes(weights, optimizer):
    method = {"lbfgs": lbfgs, "lbfgs-device": lbfgs_device}[optimizer]
    host_weights = sum(w.nbytes + b.nbytes for w, b in weights.values())
    _measured_run(weights, 32, "pool3", 10, method)  # warm-up: first calls allocate once-only caches
    for size in (48, 96, 160):
        peak = _measured_run(weights, size, "pool3", 30, method) + host_weights
        est = memory.estimate((1, 3, size, size), [("content", "pool3")], history=30, optimizer=optimizer).total
        print(f"run, {optimizer}, pool3, {size} px: estimate / measured peak = {est / peak:.3f}")  # shown with -s
        assert 0.8 < est / peak < 1.2, (size, est, peak)


@pytest.mark.parametrize("size, kind, layers", [(64, "content", ["relu5_1"]), (128, "content", ["relu5_1"]),
                                                (192, "content", ["relu5_1"]),
                                                (128, "gram", ["relu1_1", "relu2_1", "relu3_1"])])
def test_estimate_of_the_network_pass_within_20_percent(weights, size, kind, layers):
    """The part that grows with the image: one forward + backward pass, alone (weights and
    targets already held), where the first block's backward gathers Cout*9*HW."""
    net = VGG19(weights, {"kind": "random"}, device="cpu")
    x0 = _noise(size, 1)
    obj = Objective.inversion(net, x0, layers) if kind == "content" else Objective.texture(net, x0, layers)
    peak = _measured_pass(obj, _noise(size, 2).astype(np.float64))
    est = memory.estimate((1, 3, size, size), [(kind, l) for l in layers]).parts["network pass"]
    print(f"pass, {kind} {layers[-1]}, {size} px: estimate / measured peak = {est / peak:.3f}")  # shown with -s
    assert 0.8 < est / peak < 1.2, (size, est, peak)


@pytest.mark.parametrize("size", [64, 128])
def test_estimate_follows_the_architecture(size):
    """VGG-11 walks its own table (one conv in blocks 1-2, two in 3-5): its pass is measured
    like VGG-19's, and it needs less than VGG-19 does for the same layer."""
    net = VGG19.random(seed=0, device="cpu", arch="vgg11", dtype=np.float64)
    obj = Objective.inversion(net, _noise(size, 1), "relu5_1")
    peak = _measured_pass(obj, _noise(size, 2).astype(np.float64))
    est = memory.estimate((1, 3, size, size), [("content", "relu5_1")], dtype=np.float64, arch="vgg11")
    print(f"pass, vgg11 relu5_1, {size} px: estimate / measured peak = {est.parts['network pass'] / peak:.3f}")
    assert 0.8 < est.parts["network pass"] / peak < 1.2, (size, est.parts["network pass"], peak)
    vgg19 = memory.estimate((1, 3, size, size), [("content", "relu5_1")], dtype=np.float64)
    assert est.parts["weights"] < vgg19.parts["weights"] and est.parts["network pass"] < vgg19.parts["network pass"]


def test_first_conv_backward_gather_is_counted(monkeypatch):
    """At 256 px the backward gather of conv1_2 alone is 64*9*256*256 float32 = 144 MiB (the
    im2col path, forced: by default the CPU runs that conv with Winograd, which gathers nothing)."""
    monkeypatch.setenv("RANVGG_CONV", "im2col")
    est = memory.estimate((1, 3, 256, 256), [("content", "relu1_2")])
    assert est.parts["network pass"] > 64 * 9 * 256 * 256 * 4


def test_refuses_a_huge_size_in_under_a_second_and_says_what_fits(capsys):
    t0 = time.perf_counter()
    code = invert.main(["--device", "cpu", "--size", "100000", "--iters", "1"])
    seconds = time.perf_counter() - t0
    err = capsys.readouterr().err.strip()
    print(f"refused in {seconds:.3f} s: {err}")  # shown with -s
    assert code == 2 and len(err.splitlines()) == 1 and seconds < 1.0, (seconds, err)
    assert "this run needs about" in err and "TiB" in err and "use --size" in err
    fits = int(err.rsplit("--size ", 1)[1].split()[0])
    free = backend.memory_available("cpu")
    est = memory.estimate((1, 3, fits, fits), [("content", "pool3")], optimizer=AUTO["cpu"])   # the default's
    assert est.total <= free * 1.05 and 16 <= fits < 100000  # the size it names does fit


def test_the_check_comes_before_decoding(monkeypatch, capsys):
    """The refusal reads only the header: the image is never decoded."""
    def no_decoding(*a, **k):
        raise AssertionError("the image was decoded before the memory check")

    monkeypatch.setattr(image, "load_image", no_decoding)
    assert invert.main(["--device", "cpu", "--size", "100000", "--iters", "1"]) == 2
    assert "use --size" in capsys.readouterr().err


def test_history_is_blamed_not_size(capsys):
    assert invert.main(["--device", "cpu", "--size", "32", "--iters", "1", "--history", "1000000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--history 1000000 alone takes" in err and "use --history" in err and "--size" not in err


def test_a_weights_file_declaring_a_huge_array_is_blamed(tmp_path, monkeypatch, capsys):
    """The declared (unpacked) sizes come from the zip directory: nothing is decompressed."""
    import zipfile

    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("junk.npy", "w", force_zip64=True) as f:
            zeros = bytes(2**20)
            for _ in range(160):  # 160 MiB of zeros: a few hundred KiB on disk
                f.write(zeros)
    monkeypatch.setattr(backend, "memory_available", lambda device: 150 * 2**20)
    code = texture.main(["--device", "cpu", "--size", "32", "--iters", "1", "--weights", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"the weights file {path} declares 160.0 MiB of arrays" in err, err


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_huge_image_is_shrunk_while_decoding(tmp_path, fmt):
    """A 17.6-megapixel image for a 64 px run is never held as float (212 MB): JPEG decodes at
    1/8 scale (draft), others are box-reduced in 8-bit first; the result matches a plain
    float resize of the same smooth picture to within a grey level."""
    side = 4200
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    rgb = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (side, 1)), np.tile(ramp[:, None], (1, side))], 2)
    path = tmp_path / f"big.{fmt.lower()}"
    Image.fromarray(rgb.astype(np.uint8)).save(path, format=fmt, quality=95)
    assert side * side > image.LARGE_PIXELS
    tracemalloc.start()
    try:
        got = image.load_image(path, size=64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got.shape == (64, 64, 3) and peak < 20 * 2**20, peak
    small = image.resize(rgb[::10, ::10], 64, 64)  # the same picture, resized in float
    assert np.abs(got - small).mean() < 1.5


def test_header_size_matches_the_decoded_size_with_exif_rotation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: width and height swap on load
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(tmp_path / "r.jpg", exif=exif)
    assert image.image_size(tmp_path / "r.jpg") == (40, 20) == image.load_image(tmp_path / "r.jpg").shape[:2]
    assert image.scaled_size((40, 20), 64) == (64, 32) == image.load_image(tmp_path / "r.jpg", size=64).shape[:2]


def test_gpu_estimate_counts_the_gpus_algorithms_and_the_device_history():
    """On the GPU the convs are F(2x2) (V and M per call) or im2col, and --optimizer
    lbfgs-device keeps the L-BFGS history on the device (engine/optim/device_lbfgs.py)."""
    from engine.memory import estimate
    from engine.ops.winograd_gpu import winograd_bytes

    shape, terms = (1, 3, 512, 512), [("content", "pool5")]
    cpu = estimate(shape, terms)
    gpu = estimate(shape, terms, device="gpu")
    dev = estimate(shape, terms, device="gpu", optimizer="lbfgs-device")
    # conv1_2 at 512 px: V and M of one F(2x2) call alone
    assert gpu.parts["network pass"] >= winograd_bytes(1, 64, 64, 512, 512) > 0
    assert gpu.parts["network pass"] != cpu.parts["network pass"]
    assert gpu.on("host") == cpu.on("host") and "L-BFGS history" not in dev.host
    assert dev.on("device") > gpu.on("device")
    assert dev.parts["L-BFGS history"] == 8 * (2 * 10 * 3 * 512 * 512 + 7 * 10 * 10)
