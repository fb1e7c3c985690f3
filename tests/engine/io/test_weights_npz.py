"""engine/io/weights/npz.py and meta.py: the .npz weights format, hostile files, atomic saves."""
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.errors import UserError
from engine.arch import CONV_SHAPES
from engine.vgg import VGG19
from engine.io.weights import meta as meta_schema

ROOT = Path(__file__).resolve().parents[3]


def conv_arrays(fill=0.0, dtype=np.float32):
    """Every conv layer at its real shape, constant."""
    out = {}
    for name, shape in CONV_SHAPES:
        out[f"{name}.weight"] = np.full(shape, fill, dtype)
        out[f"{name}.bias"] = np.zeros(shape[0], dtype)
    return out


def write(path, arrays, meta=None, compressed=False):
    if meta is not None:
        arrays = dict(arrays, meta=np.array(meta if isinstance(meta, str) else json.dumps(meta)))
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


@pytest.fixture(scope="module")
def net0():
    return VGG19.random(seed=0, device="cpu")


def test_save_load_round_trip(tmp_path):
    net = VGG19.random(seed=3, sigma=0.02, pooling="max", device="cpu")
    net.save(tmp_path / "sub" / "w.npz")
    back = VGG19.load(tmp_path / "sub" / "w.npz", device="cpu")
    assert back.meta == net.meta and back.pooling == "max"
    for name, (w, b) in net.params.items():
        np.testing.assert_array_equal(back.params[name][0], w)
        np.testing.assert_array_equal(back.params[name][1], b)
    assert back.has_fc()  # the fc draws come back from the saved generator state
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["w.npz"]  # no temporary left


# ----------------------------------------------------------------------------- meta

@pytest.mark.parametrize("meta, expect", [
    ("null", "must be a JSON object, got null"),
    ("[1, 2]", "must be a JSON object, got a list"),
    ("3", "must be a JSON object, got a number"),
    ('"caffe"', "must be a JSON object, got a string"),
    ("{not json", "not valid JSON"),
    ('{"sigma": NaN}', "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "nested 100000 levels deep"),
    ('{"a": ' + "{" * 40 + "}" * 40 + "}", "nested 41 levels deep"),
    ('{"sigma": "0.01"}', "meta 'sigma' must be a positive number"),
    ('{"sigma": -1}', "meta 'sigma' must be a positive number"),
    ('{"seed": 1.5}', "meta 'seed' must be a whole number"),
    ('{"seed": true}', "meta 'seed' must be a whole number"),
    ('{"pooling": "median"}', "meta 'pooling' must be 'avg' or 'max'"),
    ('{"preprocessing": "bgr"}', "meta 'preprocessing' must be one of caffe, torchvision"),
    ('{"fc_rng_state": 5}', "meta 'fc_rng_state' must be a NumPy PCG64"),
    ('{"fc_rng_state": {"bit_generator": "PCG64", "state": {"state": "x", "inc": 1}, '
     '"has_uint32": 0, "uinteger": 0}}', "meta 'fc_rng_state' must be"),
])
def test_bad_meta_one_line(tmp_path, meta, expect):
    path = write(tmp_path / "m.npz", {}, meta)
    with pytest.raises(UserError, match=expect) as exc:
        VGG19.load(path, device="cpu")
    assert "\n" not in str(exc.value)


def test_nesting_depth_skips_strings():
    assert meta_schema.nesting_depth('{"a": "[[[[{{", "b": [1, {"c": "\\"]"}]}') == 3


def test_good_meta_with_extra_keys_loads(tmp_path):
    net = VGG19.random(seed=1, device="cpu")
    meta = dict(net.meta, stacked={"layers": {"conv1_1": {"scores": [0.1, 0.2]}}}, note="anything")
    path = write(tmp_path / "ok.npz", {f"{k}.{p}": a for k, (w, b) in net.params.items()
                                       for p, a in (("weight", w), ("bias", b))}, meta)
    assert VGG19.load(path, device="cpu").meta["note"] == "anything"


# ----------------------------------------------------------------------------- members, dtypes

@pytest.mark.parametrize("name, array, expect", [
    ("conv1_1.weight", np.full((64, 3, 3, 3), "x"), "conv1_1.weight holds string values"),
    ("conv1_1.weight", np.zeros((64, 3, 3, 3), np.complex64), "holds complex values"),
    ("conv1_1.weight", np.zeros((64, 3, 3, 3), np.int32), "holds integer values"),
    ("conv1_1.bias", np.array([object()] * 64, dtype=object), "holds Python objects"),
    ("conv1_1.weight", np.zeros((64, 3, 3), np.float32), r"shape \(64, 3, 3\), expected \(64, 3, 3, 3\)"),
    ("conv6_1.weight", np.zeros(3, np.float32), "unexpected member 'conv6_1.weight.npy'"),
    ("fc6.weight", np.zeros((4096, 1000), np.float32), r"expected \(4096, 512\*s\*s\)"),
    ("meta", np.array([1, 2]), "'meta' must be a 0-d unicode string"),
])
def test_bad_members_refused_from_headers(tmp_path, name, array, expect):
    path = tmp_path / "bad.npz"
    np.savez(path, **{name: array})  # the object array is pickled by savez: it must never be unpickled
    with pytest.raises(UserError, match=expect):
        VGG19.load(path, device="cpu")


def test_member_that_is_not_npy(tmp_path):
    path = write(tmp_path / "w.npz", {"conv1_1.bias": np.zeros(64, np.float32)})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(UserError, match="unexpected member 'readme.txt'"):
        VGG19.load(path, device="cpu")


def _zip_with_zeros(path, name, header: bytes, n_bytes):
    """A member ``name`` = header + n_bytes zeros, deflated (tiny on disk, huge inflated)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(name, "w", force_zip64=True) as f:
            f.write(header)
            chunk = bytes(1 << 20)
            for _ in range(n_bytes >> 20):
                f.write(chunk)


def _npy_header(shape, dtype="<f4"):
    import io
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
    return f.getvalue()


def test_huge_members_refused_before_decompressing(tmp_path):
    """An extra member of 256 MiB, or a real name whose data outgrows its header, costs nothing."""
    extra = tmp_path / "extra.npz"
    _zip_with_zeros(extra, "junk.npy", _npy_header((1 << 26,)), 256 << 20)
    padded = tmp_path / "padded.npz"
    _zip_with_zeros(padded, "conv1_1.bias.npy", _npy_header((64,)), 256 << 20)
    for path, expect in ((extra, "unexpected member 'junk.npy'"),
                         (padded, "is 268,435,584 bytes but its header describes 384")):
        t0 = time.perf_counter()
        with pytest.raises(UserError, match=expect):
            VGG19.load(path, device="cpu")
        assert time.perf_counter() - t0 < 1.0


def test_bare_npy_renamed_npz(tmp_path):
    np.save(tmp_path / "w.npy", np.zeros(3))
    os.rename(tmp_path / "w.npy", tmp_path / "w.npz")
    with pytest.raises(UserError, match="is a single .npy array, not a .npz"):
        VGG19.load(tmp_path / "w.npz", device="cpu")


@pytest.mark.parametrize("content, expect", [(b"hello", "not a zip archive"), (b"PK\x03\x04garbage", "not a readable")])
def test_not_a_zip(tmp_path, content, expect):
    (tmp_path / "w.npz").write_bytes(content)
    with pytest.raises(UserError, match=expect):
        VGG19.load(tmp_path / "w.npz", device="cpu")


@pytest.mark.parametrize("fill, dtype, expect", [
    (1e300, np.float64, "conv1_1.weight overflows float32"),
    (np.nan, np.float32, "conv1_1.weight contains NaN or inf"),
])
def test_finiteness_after_the_cast(tmp_path, fill, dtype, expect):
    path = write(tmp_path / "w.npz", conv_arrays(fill, dtype))
    with pytest.raises(UserError, match=expect):
        VGG19.load(path, device="cpu")


def test_missing_layer_and_partial_fc(tmp_path):
    arrays = conv_arrays()
    del arrays["conv5_4.bias"]
    with pytest.raises(UserError, match="missing 'conv5_4.bias'"):
        VGG19.load(write(tmp_path / "a.npz", arrays), device="cpu")
    arrays = dict(conv_arrays(), **{"fc8.bias": np.zeros(1000, np.float32)})
    with pytest.raises(UserError, match="has fc8.bias but not fc6.weight"):
        VGG19.load(write(tmp_path / "b.npz", arrays), device="cpu")


# ----------------------------------------------------------------------------- saving

def test_save_failure_leaves_old_file_and_no_temporary(net0, tmp_path, monkeypatch):
    net = net0
    path = tmp_path / "w.npz"
    net.save(path)
    before = path.read_bytes()
    for exc in (OSError(28, "No space left on device"), KeyboardInterrupt()):
        def boom(f, **arrays):
            f.write(b"partial")
            raise exc
        monkeypatch.setattr(np, "savez", boom)
        with pytest.raises(UserError if isinstance(exc, OSError) else KeyboardInterrupt):
            net.save(path)
        assert [p.name for p in tmp_path.iterdir()] == ["w.npz"] and path.read_bytes() == before


def test_save_through_symlink_and_refuse_non_regular(net0, tmp_path):
    net = net0
    real = tmp_path / "real.npz"
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    net.save(link)
    assert link.is_symlink() and real.is_file()
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(UserError, match="exists and is not a regular file"):
        net.save(tmp_path / "dir.npz")


def test_save_refuses_meta_that_would_not_load(net0, tmp_path):
    net = VGG19(net0.params, dict(net0.meta, sigma="0.1"), device="cpu")
    with pytest.raises(UserError, match="meta 'sigma' must be a positive number"):
        net.save(tmp_path / "w.npz")
    assert not any(tmp_path.iterdir())


_SAVER = """
import sys
from engine.vgg import VGG19
net = VGG19.random(seed=int(sys.argv[2]), device="cpu")
for _ in range(2):
    net.save(sys.argv[1])
"""


def test_two_processes_saving_one_path(tmp_path):
    """Two concurrent writers: the file is always one whole net, never a mix or a corrupt zip."""
    path = tmp_path / "w.npz"
    procs = [subprocess.Popen([sys.executable, "-c", _SAVER, str(path), str(seed)], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    net = VGG19.load(path, device="cpu")
    assert net.meta["seed"] in (1, 2)
    ref = VGG19.random(seed=net.meta["seed"], device="cpu")
    for name, (w, _) in ref.params.items():
        np.testing.assert_array_equal(net.params[name][0], w)
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]


def test_corrupt_compressed_data(tmp_path):
    path = tmp_path / "w.npz"
    np.savez_compressed(path, **{"conv1_1.bias": np.arange(64, dtype=np.float32)})
    raw = bytearray(path.read_bytes())
    for at in range(60, 160):  # inside the deflated data of the one member
        raw[at] ^= 0x5A
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="w.npz: "):
        VGG19.load(path, device="cpu")


@pytest.mark.parametrize("make, expect", [
    (lambda p: write(p, {}, "null"), "'meta' must be a JSON object, got null"),
    (lambda p: (np.save(p.with_suffix(".npy"), np.zeros(3)), os.rename(p.with_suffix(".npy"), p)),
     "is a single .npy array"),
    (lambda p: write(p, conv_arrays(1e300, np.float64)), "conv1_1.weight overflows float32"),
    (lambda p: np.savez(p, **{"conv1_1.weight": np.full((64, 3, 3, 3), "x")}), "holds string values"),
])
def test_through_the_cli_one_line_exit_2(tmp_path, capsys, make, expect):
    from tasks import invert

    path = tmp_path / "w.npz"
    make(path)
    code = invert.main(["--device", "cpu", "--size", "32", "--iters", "1", "--print-every", "0",
                        "--weights", str(path), "--out", str(tmp_path / "o.png")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], lines
    assert not (tmp_path / "o.png").exists()


def test_meta_with_numpy_and_nan_scores_saves_and_loads(net0, tmp_path):
    """A diverged candidate's score (NaN, inf) must not stop a stacked net from being saved."""
    meta = dict(net0.meta, stacked={"scores": [np.float32(0.5), float("nan"), np.inf], "k": np.int64(3)})
    VGG19(net0.params, meta, device="cpu").save(tmp_path / "w.npz")
    assert VGG19.load(tmp_path / "w.npz", device="cpu").meta["stacked"] == {"scores": [0.5, None, None], "k": 3}
