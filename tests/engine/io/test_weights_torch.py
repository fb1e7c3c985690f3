"""engine/io/weights/torch_pickle.py: torch.save files read without torch, hostile pickles refused.

The files are written by tests/engine/io/torch_files.py (checked once against real torch: see the README).
"""
import pickle
import struct

import numpy as np
import pytest

from engine.errors import UserError
from engine.io.weights import torch_pickle
from tests.engine.io import torch_files as tf

WRITERS = {"zip": tf.write_zip, "legacy": tf.write_legacy}


def _arrays():
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    arrays = {"f32": a, "f64": np.linspace(-1, 1, 5), "f16": np.array([0.5, -2, 3], np.float16),
              "u8": np.arange(12, dtype=np.uint8).reshape(3, 4), "i64": np.arange(-3, 3),
              "scalar": np.array(2.5, np.float32),
              "transposed": tf.View(a, 0, (6, 4), (1, 6)),           # a.T: strides (1, 6)
              "window": tf.View(a, 7, (2, 3), (6, 1))}               # offset 7 into a's storage
    want = {k: v for k, v in arrays.items() if isinstance(v, np.ndarray)}
    want["transposed"] = a.T
    want["window"] = a.ravel()[7:].reshape(-1)[[0, 1, 2, 6, 7, 8]].reshape(2, 3)
    return arrays, want


@pytest.mark.parametrize("fmt", WRITERS)
def test_round_trip_dtypes_views_offsets(tmp_path, fmt):
    arrays, want = _arrays()
    path = tmp_path / f"t_{fmt}.pth"
    WRITERS[fmt](path, arrays)
    got = torch_pickle.load(path)
    assert list(got) == list(arrays)
    for k, v in want.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_zip_prefix_and_bytes_source(tmp_path):
    path = tmp_path / "t.pth"
    tf.write_zip(path, {"w": np.ones((2, 2), np.float32)}, prefix="vgg19_whatever")
    got = torch_pickle.load(path.read_bytes(), "mem")
    np.testing.assert_array_equal(got["w"], np.ones((2, 2)))


MALICIOUS = [
    ("os", "system", ("touch {flag}",)),
    ("posix", "system", ("touch {flag}",)),
    ("builtins", "eval", ("open({flag!r}, 'w')",)),
    ("builtins", "exec", ("open({flag!r}, 'w')",)),
    ("builtins", "getattr", ("x", "upper")),
    ("subprocess", "call", (["touch", "{flag}"],)),
    ("torch.nn.modules.conv", "Conv2d", (3, 64, 3)),        # a class not on the list
    ("numpy.core.multiarray", "_reconstruct", ()),
    ("torch._utils", "_rebuild_from_type_v2", ()),        # a torch rebuild not needed
]


@pytest.mark.parametrize("fmt", WRITERS)
@pytest.mark.parametrize("module, name, args", MALICIOUS)
def test_malicious_pickles_refused_unexecuted(tmp_path, fmt, module, name, args):
    flag = tmp_path / "PWNED"
    args = tuple(a.format(flag=str(flag)) if isinstance(a, str) else
                 [x.format(flag=str(flag)) for x in a] if isinstance(a, list) else a for a in args)
    path = tmp_path / "evil.pth"
    WRITERS[fmt](path, {}, pkl=tf.evil_pickle(module, name, args))
    with pytest.raises(UserError, match=f"refused to load: the pickle asks for {module}.{name}"):
        torch_pickle.load(path)
    assert not flag.exists()


def test_inst_and_stack_global_opcodes_go_through_the_list(tmp_path):
    """Protocol 0's INST and protocol 4's STACK_GLOBAL name globals too."""
    flag = tmp_path / "PWNED"
    inst = b"(S'touch " + str(flag).encode() + b"'\nios\nsystem\n."
    stack_global = pickle.dumps(print, protocol=4)  # STACK_GLOBAL builtins.print
    for pkl in (inst, stack_global):
        tf.write_zip(tmp_path / "e.pth", {}, pkl=pkl)
        with pytest.raises(UserError, match="refused to load: the pickle asks for (os.system|builtins.print)"):
            torch_pickle.load(tmp_path / "e.pth")
    assert not flag.exists()


def test_build_cannot_alter_a_shared_storage_type(tmp_path):
    """BUILD (setstate) on torch.FloatStorage would change it for every later load."""
    pkl = b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x01\x00\x00\x00Osb."
    tf.write_zip(tmp_path / "b.pth", {}, pkl=pkl)
    with pytest.raises(UserError, match="refused to set state"):
        torch_pickle.load(tmp_path / "b.pth")
    assert torch_pickle._STORAGE_TYPES["FloatStorage"].dtype is np.float32


def test_module_persistent_id_refused(tmp_path):
    """Old torch pickled whole module source code as persistent id ("module", ...)."""
    pkl = tf.dumps({"m": tf.Storage("0", np.zeros(1, np.float32))},
                   lambda s: ("module", "import os; os.system('x')", "src"))
    tf.write_legacy(tmp_path / "m.pth", {}, pkl=pkl)
    with pytest.raises(UserError, match="unknown persistent id"):
        torch_pickle.load(tmp_path / "m.pth")


def _damaged(kind, tmp_path):
    path = tmp_path / "d.pth"
    a = {"w": np.arange(10, dtype=np.float32)}
    if kind == "truncated legacy":
        tf.write_legacy(path, a)
        path.write_bytes(path.read_bytes()[:-8])
    elif kind == "storage too short":
        tf.write_zip(path, a)
        import zipfile
        raw = {i.filename: zipfile.ZipFile(path).read(i) for i in zipfile.ZipFile(path).infolist()}
        raw["archive/data/0"] = raw["archive/data/0"][:12]
        with zipfile.ZipFile(path, "w") as zf:
            for k, v in raw.items():
                zf.writestr(k, v)
    elif kind == "view outside storage":
        tf.write_zip(path, {"w": tf.View(np.zeros(10, np.float32), 8, (5,), (1,))})
    elif kind == "wrong magic":
        tf.write_legacy(path, a)
        path.write_bytes(tf.dumps(12345) + path.read_bytes()[len(tf.dumps(tf.MAGIC_NUMBER)):])
    elif kind == "big endian":
        tf.write_legacy(path, a, little_endian=False)
    elif kind == "text":
        path.write_text("hello")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "count mismatch":
        tf.write_legacy(path, a)
        raw = bytearray(path.read_bytes())
        at = len(raw) - 40 - 8
        raw[at:at + 8] = struct.pack("<q", 1 << 40)
        path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("kind, expect", [
    ("truncated legacy", "truncated"),
    ("storage too short", "holds 12 bytes, its tensor needs 40"),
    ("view outside storage", "does not fit its storage of 10 elements"),
    ("wrong magic", "wrong magic number"),
    ("big endian", "little-endian"),
    ("text", "not a torch.save file"),
    ("empty", "not a torch.save file"),
    ("count mismatch", "declares 1099511627776 elements"),
])
def test_damaged_files_one_line_errors(tmp_path, kind, expect):
    with pytest.raises(UserError, match=expect) as exc:
        torch_pickle.load(_damaged(kind, tmp_path))
    assert "\n" not in str(exc.value)


def test_deeply_nested_object_refused(tmp_path):
    pkl = b"\x80\x02" + b"]" * 10_001 + b"a" * 10_000 + b"."   # [[[...]]] 10001 deep: EMPTY_LIST, APPEND
    tf.write_legacy(tmp_path / "n.pth", {}, pkl=pkl)
    with pytest.raises(UserError, match="nested too deeply"):
        torch_pickle.load(tmp_path / "n.pth")
