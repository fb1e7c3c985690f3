"""engine/io/weights/safezip.py: a zip's directory must fit the bytes the archive holds."""
import io
import zipfile

import numpy as np
import pytest

from engine.errors import UserError
from engine.io.weights import safezip, torch_pickle
from engine.vgg import VGG19
from tasks import weights as weights_task
from tests.engine.io import torch_files as tf


def _torch_zip(path, method, numel):
    """A torch.save zip whose one storage is ``numel`` zero floats, every member compressed by ``method``."""
    pkl = tf.dumps({"features.0.weight": tf.Tensor(tf.Storage("0", np.zeros(1, np.float32)), 0, (numel,), (1,))},
                   lambda s: ("storage", tf.Global("torch", "FloatStorage"), "0", "cpu", numel))
    with zipfile.ZipFile(path, "w", method) as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/data/0", bytes(4 * numel))
    return path


@pytest.mark.parametrize("method, name", [(zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "lzma")])
def test_bzip2_and_lzma_members_refused_unread(tmp_path, capsys, method, name):
    """bzip2 turns 4 MB of zeros into well under a kilobyte (400 MB into under 900 bytes)."""
    path = _torch_zip(tmp_path / "t.pth", method, 1 << 20)
    for call in (lambda: torch_pickle.load(path), lambda: VGG19.load(path, device="cpu")):
        with pytest.raises(UserError, match=f"compressed with {name}; weights files are stored or deflated"):
            call()
    assert weights_task.main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"compressed with {name}" in err[0]


def test_deflated_members_still_read(tmp_path):
    path = _torch_zip(tmp_path / "t.pth", zipfile.ZIP_DEFLATED, 1000)
    got = torch_pickle.load(path)["features.0.weight"]
    assert got.shape == (1000,) and not got.any()


def _directory(archive: bytes):
    zf = zipfile.ZipFile(io.BytesIO(archive))
    return zf, {i.filename: i for i in zf.infolist()}


@pytest.mark.parametrize("field, value, expect", [
    ("file_size", 1032 * 40 + 1, "declares 41,281 bytes from 40 compressed"),   # past deflate's limit
    ("compress_size", 10**9, "declares 4,000 bytes from 1,000,000,000 compressed"),   # past the archive
])
def test_directory_that_cannot_fit_the_archive_refused(field, value, expect):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.npy", bytes(4000))
    zf, infos = _directory(buf.getvalue())
    info = infos["a.npy"]
    real = info.file_size, info.compress_size
    if field == "file_size":
        info.compress_size = 40
    setattr(info, field, value)
    with pytest.raises(UserError, match=expect) as exc:
        safezip.check_members(zf, "w.npz", len(buf.getvalue()))
    assert "\n" not in str(exc.value)
    info.file_size, info.compress_size = real                        # the true directory: accepted
    safezip.check_members(zf, "w.npz", len(buf.getvalue()))


def test_read_member_into_a_buffer(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("m", bytes(range(256)) * 4000)
    zf, infos = _directory(buf.getvalue())
    into = np.empty(infos["m"].file_size, np.uint8)
    assert safezip.read_member(zf, infos["m"], "w", into=into) is into
    np.testing.assert_array_equal(into, np.tile(np.arange(256, dtype=np.uint8), 4000))
    with pytest.raises(UserError, match="cannot read member 'm'.*holds more than 1,000 bytes"):
        safezip.read_member(zf, infos["m"], "w", into=np.empty(1000, np.uint8))


def test_zip_needing_a_newer_version_is_one_line(tmp_path):
    """The central directory asks for zip version 25.5 (zipfile raises NotImplementedError)."""
    path = _torch_zip(tmp_path / "t.pth", zipfile.ZIP_STORED, 4)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"PK\x01\x02")
    raw[at + 6] = 255                                       # "version needed to extract" of the first entry
    path.write_bytes(bytes(raw))
    for call in (lambda: torch_pickle.load(path), lambda: torch_pickle.load(bytes(raw)),
                 lambda: VGG19.load(path, device="cpu")):
        with pytest.raises(UserError, match="zip file version 25.5"):
            call()


def test_encrypted_member_refused(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, **{"conv1_1.bias": np.zeros(64, np.float32)})
    raw = bytearray(path.read_bytes())
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):      # general purpose flags: bit 0, encrypted
        raw[raw.index(sig) + at] |= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="'conv1_1.bias.npy' is encrypted"):
        VGG19.load(path, device="cpu")
