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
    elif kind == "100 dimensions":
        tf.write_zip(path, {"w": tf.View(np.ones(1, np.float32), 0, (1,) * 100, (1,) * 100)})
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
    ("100 dimensions", "a tensor of 100 dimensions"),
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


# ----------------------------------------------------------------------------- bounded memory

@pytest.mark.parametrize("fmt", WRITERS)
def test_stride0_view_larger_than_its_storage_refused(tmp_path, fmt):
    """One stored float, viewed as 10^10 with stride 0: refused before 40 GB is made."""
    path = tmp_path / "s.pth"
    WRITERS[fmt](path, {"features.0.weight": tf.View(np.ones(1, np.float32), 0, (10**5, 10**5), (0, 0))})
    with pytest.raises(UserError, match=r"10,000,000,000 elements\) repeats the 1 elements of its storage") as exc:
        torch_pickle.load(path)
    assert "\n" not in str(exc.value)


def _doubling_pickle(levels: int, leaf) -> bytes:
    """{"x": L}, L = [L', L'], L' = [L'', L''], ...: ``levels`` levels, one ``leaf`` at the bottom,
    each level two references to the one below (the pickle memo), so 2**levels leaves as a tree."""
    def put(i):
        return b"r" + struct.pack("<I", 200 + i)        # LONG_BINPUT, above the leaf's own memo slots

    def get(i):
        return b"j" + struct.pack("<I", 200 + i)        # LONG_BINGET

    leaf_ops = tf.dumps(leaf, lambda s: ("storage", tf.Global("torch", s.type_name), s.key, "cpu", s.flat.size))
    out = bytearray(leaf_ops[:-1] + put(0) + b"0")      # the leaf, memoised, popped
    for i in range(1, levels + 1):
        out += b"]" + put(i) + b"(" + get(i - 1) * 2 + b"e0"   # [child, child], memoised, popped
    return bytes(out + b"}X\x01\x00\x00\x00x" + get(levels) + b"s.")


@pytest.mark.parametrize("fmt", WRITERS)
def test_shared_nested_lists_are_built_once(tmp_path, fmt):
    """A few hundred bytes describing 2**20 references to one tensor come back as 20 lists,
    each holding its child twice, and one array: not a tree of a million copies."""
    base = np.arange(6, dtype=np.float32)
    pkl = _doubling_pickle(20, tf.Tensor(tf.Storage("0", base), 0, (2, 3), (3, 1)))
    path = tmp_path / "shared.pth"
    WRITERS[fmt](path, {"keep": base}, pkl=pkl)
    assert len(pkl) < 1000
    got = torch_pickle.load(path)["x"]
    for _ in range(20):
        assert isinstance(got, list) and len(got) == 2 and got[0] is got[1]
        got = got[0]
    np.testing.assert_array_equal(got, base.reshape(2, 3))


@pytest.mark.parametrize("fmt", WRITERS)
def test_many_views_of_one_storage_refused(tmp_path, fmt):
    """Each view fits its storage, but 40 of them would hold 40 times the file's bytes."""
    base = np.zeros(1 << 18, np.float32)                         # 1 MiB stored
    s = tf.Storage("0", base)
    obj = {f"t{i}": tf.Tensor(s, 0, base.shape, (1,)) for i in range(40)}
    extra = (None,) if fmt == "legacy" else ()
    pkl = tf.dumps(obj, lambda st: ("storage", tf.Global("torch", st.type_name), st.key, "cpu", st.flat.size) + extra)
    WRITERS[fmt](tmp_path / "v.pth", {"keep": base}, pkl=pkl)
    with pytest.raises(UserError, match="view the same storages again and again"):
        torch_pickle.load(tmp_path / "v.pth")
    obj = {f"t{i}": tf.Tensor(s, 0, base.shape, (1,)) for i in range(2)}  # tied weights: two views, fine
    pkl = tf.dumps(obj, lambda st: ("storage", tf.Global("torch", st.type_name), st.key, "cpu", st.flat.size) + extra)
    WRITERS[fmt](tmp_path / "v.pth", {"keep": base}, pkl=pkl)
    got = torch_pickle.load(tmp_path / "v.pth")
    assert list(got) == ["t0", "t1"] and got["t0"].shape == base.shape


@pytest.mark.parametrize("fmt", WRITERS)
@pytest.mark.parametrize("pkl, expect", [
    # LONG_BINPUT at slot 25,000,000: the C unpickler would grow its memo to 400 MB
    (b"\x80\x02]r" + struct.pack("<I", 25_000_000) + b".", "numbers a memo slot 25,000,000 in 9 bytes"),
    # BYTEARRAY8 of 400 MB with 3 bytes present: it would be allocated before being found missing
    (b"\x80\x05\x96" + struct.pack("<Q", 400_000_000) + b"abc.", "expected 400000000 bytes in a bytearray8"),
])
def test_declared_sizes_checked_before_the_unpickler_allocates(tmp_path, fmt, pkl, expect):
    import tracemalloc
    WRITERS[fmt](tmp_path / "a.pth", {}, pkl=pkl)
    assert (tmp_path / "a.pth").stat().st_size < 1000
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match=expect):
            torch_pickle.load(tmp_path / "a.pth")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20
