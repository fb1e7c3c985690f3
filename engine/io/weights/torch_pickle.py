"""Read ``torch.save`` files WITHOUT torch: tensors come out as NumPy arrays.

    obj = load(path_or_bytes, where)      # e.g. {"features.0.weight": ndarray, ...}

Two container formats exist:
  zip (torch >= 1.6):  <prefix>/data.pkl is the object pickle; tensor storages are the members
                       <prefix>/data/<key>, raw little-endian bytes (<prefix>/byteorder may say so).
  legacy:              five pieces back to back: pickles of the magic number, the protocol
                       version and a sys-info dict; the object pickle; the sorted list of storage
                       keys; then each storage as an 8-byte element count and its raw bytes.
In both, the object pickle names storages by persistent id
``("storage", <torch.XStorage>, key, location, numel[, view])`` and rebuilds tensors with
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``.

A pickle can call any importable function. The unpickler here resolves ONLY the globals in
``_ALLOWED`` (tensor / parameter rebuilds, storage type names, OrderedDict); any other
global (``os.system``, ``builtins.eval``, a model class, ...) is a UserError naming it, raised
before it is called. Storages are checked against the bytes actually present before any array
is made, and every tensor view must lie inside its storage.

Memory follows the file: every length and memo index a pickle declares is checked against its
bytes before the unpickler runs (``_prescan``), an object the pickle shares is rebuilt once,
a tensor may not hold more elements than its storage, and all tensors together at most twice
the bytes of all storages (``_Resolver``).
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
import struct
import zipfile
from pathlib import Path

import numpy as np

from ...errors import UserError
from .safezip import check_members, member_size, read_member

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
MAX_PICKLE_BYTES = 64 << 20    # the object pickle of a state dict is a few kB
MAX_DIMS = 8                   # a conv weight has 4; NumPy allows 64


class _Sealed:
    """Objects the pickle may reach. pickle's BUILD opcode would set attributes on them (and a
    storage type is shared by every load): refused."""

    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"refused to set state on {self!r}")


class StorageType(_Sealed):
    """What a ``torch.XStorage`` global becomes: just the element dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)

    def __setattr__(self, key, value):
        raise AttributeError("a storage type is read-only")

    def __repr__(self):
        return f"torch.{self.name}"


class _Call(_Sealed):
    """An allowed function, as the pickle sees it (sealed, so BUILD cannot touch the function)."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        object.__setattr__(self, "fn", fn)

    def __call__(self, *args):
        return self.fn(*args)

    def __repr__(self):
        return self.fn.__name__


_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "ByteStorage": np.uint8, "CharStorage": np.int8,
    "ShortStorage": np.int16, "IntStorage": np.int32, "LongStorage": np.int64, "BoolStorage": np.bool_,
}
_STORAGE_TYPES = {name: StorageType(name, dt) for name, dt in _STORAGE_DTYPES.items()}
_UNTYPED = StorageType("UntypedStorage", np.uint8)


class StorageRef(_Sealed):
    """A storage named by the pickle; its bytes are attached after unpickling (legacy) or read
    from its zip member when first named (zip)."""

    __slots__ = ("stype", "key", "numel", "array", "view")

    def __init__(self, stype: StorageType, key: str, numel: int):
        self.stype, self.key, self.numel = stype, key, numel
        self.array = None          # 1-D array of stype's dtype, numel long
        self.view = None           # (root StorageRef, element offset) for a legacy storage view


class TensorRef(_Sealed):
    """A tensor named by the pickle: a view (offset, size, stride) of a storage."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, StorageRef):
            raise pickle.UnpicklingError("a tensor rebuild without a storage")
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor(_v2): requires_grad, hooks and metadata are irrelevant here."""
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    """torch._utils._rebuild_parameter(data, requires_grad, hooks): the data is what we want."""
    return data


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor"): _Call(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): _Call(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _Call(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Call(_rebuild_parameter),
    ("collections", "OrderedDict"): _Call(collections.OrderedDict),
    ("torch", "UntypedStorage"): _UNTYPED,
    ("torch.storage", "UntypedStorage"): _UNTYPED,
    **{("torch", name): stype for name, stype in _STORAGE_TYPES.items()},
}


class _Unpickler(pickle.Unpickler):
    """Only ``_ALLOWED`` globals; storages become ``StorageRef``s (``on_storage`` may fill them)."""

    def __init__(self, f, where: str, on_storage=None, allow_storages: bool = True):
        super().__init__(f)
        self.where, self.on_storage, self.allow_storages = where, on_storage, allow_storages
        self.storages = {}

    def find_class(self, module, name):
        obj = _ALLOWED.get((module, name)) if self.allow_storages else None
        if obj is None:
            raise UserError(f"{self.where}: refused to load: the pickle asks for {module}.{name}, which a "
                            "weights file never needs (only tensors, storages and OrderedDict are allowed)")
        return obj

    def persistent_load(self, pid):
        if not self.allow_storages:
            raise UserError(f"{self.where}: refused to load: a persistent id where none belongs")
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise UserError(f"{self.where}: refused to load: unknown persistent id {str(pid)[:60]!r}")
        stype, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(stype, StorageType) or not isinstance(key, str) or not _is_count(numel):
            raise UserError(f"{self.where}: refused to load: malformed storage id {str(pid)[:80]!r}")
        ref = self.storages.get(key)
        if ref is None:
            ref = self.storages[key] = StorageRef(stype, key, numel)
            if self.on_storage is not None:
                self.on_storage(ref)
        elif ref.stype is not stype:
            raise UserError(f"{self.where}: storage {key!r} is named with two types")
        if view is None:
            return ref
        return _legacy_view(ref, view, stype, self.where)


def _is_count(n) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**40


def _legacy_view(root: StorageRef, view, stype, where) -> StorageRef:
    """Old torch's storage views: (view key, element offset, element count) of a root storage."""
    if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
            and _is_count(view[1]) and _is_count(view[2]) and view[1] + view[2] <= root.numel):
        raise UserError(f"{where}: refused to load: malformed storage view {str(view)[:80]!r}")
    ref = StorageRef(stype, view[0], view[2])
    ref.view = (root, view[1])
    return ref


# ----------------------------------------------------------------------------- entry point

def load(source, where: str | None = None):
    """The object saved by ``torch.save`` in ``source`` (a path or the file's bytes), with every
    tensor as a NumPy array (C-contiguous copy). Refusals are one-line UserErrors."""
    if isinstance(source, (bytes, bytearray)):
        data, where = bytes(source), where or "<bytes>"
        if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            return _load_zip(io.BytesIO(data), where, len(data))
    else:
        path = Path(source)
        where = where or str(path)
        try:
            with open(path, "rb") as f:
                if f.read(4) in (b"PK\x03\x04", b"PK\x05\x06"):
                    # members are read one by one, not the whole file
                    return _load_zip(path, where, os.fstat(f.fileno()).st_size)
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"{where}: cannot read the file ({exc.strerror or exc})") from None
    if data[:1] == b"\x80":
        return _load_legacy(data, where)
    if len(data) > 262 and data[257:262] == b"ustar":
        raise UserError(f"{where}: a torch.save file in the pre-2017 tar format; re-save it with a recent "
                        "torch (torch.save(torch.load(f), g))")
    raise UserError(f"{where}: not a torch.save file (neither a zip archive nor a pickle)")


def _unpickle(f, where, **kwargs):
    _prescan(f, where)
    u = _Unpickler(f, where, **kwargs)
    try:
        return u.load(), u.storages
    except UserError:
        raise
    except RecursionError:
        raise UserError(f"{where}: refused to load: the pickle is nested too deeply") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error, MemoryError, OverflowError) as exc:
        raise UserError(f"{where}: not a readable torch.save pickle ({exc.__class__.__name__}: "
                        f"{str(exc)[:100]})") from None


def _prescan(f, where) -> None:
    """Walk the pickle's opcodes (pickletools, which reads but builds nothing) before unpickling.

    The C unpickler allocates what an opcode declares before it reads: a BYTEARRAY8 of 400 MB
    is allocated, then found missing; a memo slot (LONG_BINPUT) at index 25,000,000 grows the
    memo to 50 million entries (400 MB) from five bytes. Here every length must be present in
    the data, and every memo index below the pickle's length in bytes (a real pickle numbers
    its memo 0, 1, 2, ...; each PUT takes at least two bytes), so memory follows the file.
    """
    start, top = f.tell(), -1
    try:
        for op, arg, _ in pickletools.genops(f):
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                top = max(top, arg)
    except (ValueError, EOFError, struct.error, OverflowError, MemoryError) as exc:
        raise UserError(f"{where}: not a readable torch.save pickle ({exc.__class__.__name__}: "
                        f"{str(exc)[:100]})") from None
    if top >= f.tell() - start:
        raise UserError(f"{where}: refused to load: the pickle numbers a memo slot {top:,} in "
                        f"{f.tell() - start:,} bytes; the file is damaged or crafted")
    f.seek(start)


# ----------------------------------------------------------------------------- zip format

def _load_zip(source, where: str, archive_bytes: int):
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, NotImplementedError) as exc:
        raise UserError(f"{where}: not a readable zip archive ({exc})") from None
    with zf:
        check_members(zf, where, archive_bytes)
        pkl = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise UserError(f"{where}: a zip archive but not a torch.save file (no <name>/data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in zf.namelist():
            order = read_member(zf, member_size(zf, f"{prefix}byteorder", 16, where), where)
            if order.strip() != b"little":
                raise UserError(f"{where}: saved on a {order.strip().decode(errors='replace')}-endian "
                                "machine; re-save it on a little-endian one")
        raw = read_member(zf, member_size(zf, pkl[0], MAX_PICKLE_BYTES, where), where)

        def attach(ref: StorageRef):
            name = f"{prefix}data/{ref.key}"
            if name not in zf.namelist():
                raise UserError(f"{where}: storage {ref.key!r} has no member {name!r}; the file is damaged")
            nbytes = ref.numel * _itemsize(ref.stype)
            info = member_size(zf, name, nbytes, where)
            if info.file_size != nbytes:
                raise UserError(f"{where}: storage {ref.key!r} holds {info.file_size:,} bytes, "
                                f"its tensor needs {nbytes:,}; the file is damaged")
            ref.array = _as_array(read_member(zf, info, where, into=np.empty(nbytes, np.uint8)), ref.stype)

        obj, storages = _unpickle(io.BytesIO(raw), where, on_storage=attach)
    return _resolve(obj, where, storages.values())


# ----------------------------------------------------------------------------- legacy format

def _load_legacy(data: bytes, where: str):
    f = io.BytesIO(data)
    magic, _ = _unpickle(f, where, allow_storages=False)
    if magic != MAGIC_NUMBER:
        raise UserError(f"{where}: a pickle, but not a torch.save file (wrong magic number)")
    version, _ = _unpickle(f, where, allow_storages=False)
    if version != PROTOCOL_VERSION:
        raise UserError(f"{where}: torch.save protocol {version!r}, expected {PROTOCOL_VERSION}")
    info, _ = _unpickle(f, where, allow_storages=False)
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise UserError(f"{where}: not saved on a little-endian machine; re-save it on one")
    obj, storages = _unpickle(f, where)
    keys, _ = _unpickle(f, where, allow_storages=False)
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise UserError(f"{where}: the storage key list is malformed")
    roots = {k: r for k, r in storages.items() if r.view is None}
    for key in keys:
        ref = roots.get(key)
        if ref is None:
            raise UserError(f"{where}: storage {key!r} is listed but no tensor uses it")
        head = f.read(8)
        if len(head) != 8:
            raise UserError(f"{where}: the file ends before storage {key!r}; it is truncated")
        (numel,) = struct.unpack("<q", head)
        nbytes = numel * _itemsize(ref.stype)
        if numel != ref.numel or nbytes > len(data) - f.tell():
            raise UserError(f"{where}: storage {key!r} declares {numel} elements (expected {ref.numel}, "
                            f"{len(data) - f.tell():,} bytes left); the file is truncated or damaged")
        ref.array = _as_array(f.read(nbytes), ref.stype)
    missing = [k for k, r in roots.items() if r.array is None]
    if missing:
        raise UserError(f"{where}: storages {missing[:3]} have no data; the file is truncated or damaged")
    return _resolve(obj, where, storages.values())


# ----------------------------------------------------------------------------- storages -> arrays

def _itemsize(stype: StorageType) -> int:
    return 2 if stype.dtype == "bfloat16" else np.dtype(stype.dtype).itemsize


def _as_array(raw: bytes, stype: StorageType) -> np.ndarray:
    """Raw little-endian bytes -> 1-D array; bfloat16 becomes float32 (its top 16 bits)."""
    if stype.dtype == "bfloat16":
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, np.dtype(stype.dtype).newbyteorder("<"))


class _Resolver:
    """Replaces every TensorRef in dicts / lists / tuples by its array, each object once.

    A pickle can share one object many times (its memo), so a few hundred bytes can describe
    a list of two references to a list of two references ... 30 levels deep: a billion leaves
    if rebuilt as a tree. Here an object met twice is the same result twice, so the work and
    memory are those of the distinct objects in the file. Tensors may not repeat storage
    elements beyond their storage's size (a stride-0 view of 10^10 elements over one float),
    and all tensors together may hold at most twice the bytes of all storages (tied weights
    share a storage; thousands of views of one storage do not fit).
    """

    MAX_DEPTH = 32

    def __init__(self, where: str, storages):
        self.where, self.memo = where, {}
        self.budget = 2 * sum(r.numel * _itemsize(r.stype) for r in storages if r.view is None) + (1 << 20)

    def __call__(self, obj, depth: int = 0):
        if depth > self.MAX_DEPTH:
            raise UserError(f"{self.where}: the saved object is nested too deeply")
        if not isinstance(obj, (TensorRef, StorageRef, dict, list, tuple)):
            return obj
        done = self.memo.get(id(obj))
        if done is not None:
            return done[1]
        if isinstance(obj, TensorRef):
            out = self._tensor(obj)
        elif isinstance(obj, StorageRef):
            out = _storage_array(obj, self.where)
        elif isinstance(obj, dict):
            out = type(obj)((k, self(v, depth + 1)) for k, v in obj.items())
        else:
            out = type(obj)(self(v, depth + 1) for v in obj)
        self.memo[id(obj)] = (obj, out)   # obj kept alive, so its id is never reused meanwhile
        return out

    def _tensor(self, t: TensorRef) -> np.ndarray:
        numel = int(np.prod(t.size, dtype=object)) if all(_is_count(n) for n in t.size) else 0
        storage_numel = t.storage.numel
        if numel > storage_numel:
            raise UserError(f"{self.where}: a tensor of size {t.size} ({numel:,} elements) repeats the "
                            f"{storage_numel:,} elements of its storage (stride {t.stride}); a weights file "
                            "never does, refused")
        self.budget -= numel * _itemsize(t.storage.stype)
        if self.budget < 0:
            raise UserError(f"{self.where}: its tensors view the same storages again and again (more than "
                            "twice the bytes the file stores); refused")
        return _tensor(t, self.where)


def _resolve(obj, where, storages=()):
    """``obj`` with every TensorRef replaced by its array (see _Resolver)."""
    return _Resolver(where, storages)(obj)


def _storage_array(ref: StorageRef, where) -> np.ndarray:
    if ref.view is not None:
        root, offset = ref.view
        return _storage_array(root, where)[offset:offset + ref.numel]
    if ref.array is None or ref.array.size != ref.numel:
        raise UserError(f"{where}: storage {ref.key!r} has no data; the file is truncated or damaged")
    return ref.array


def _tensor(t: TensorRef, where) -> np.ndarray:
    """The view (offset, size, stride), in elements, of its storage, checked to lie inside it."""
    storage = _storage_array(t.storage, where)
    if len(t.size) > MAX_DIMS:
        raise UserError(f"{where}: a tensor of {len(t.size)} dimensions (weights have at most {MAX_DIMS}); "
                        "the file is damaged or not a weights file")
    ok = (_is_count(t.offset) and all(_is_count(n) for n in t.size) and len(t.size) == len(t.stride)
          and all(_is_count(s) for s in t.stride))
    if ok:
        extent = 0 if 0 in t.size else t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride)) + 1
        ok = extent <= storage.size
    if not ok:
        raise UserError(f"{where}: a tensor view (offset {t.offset}, size {t.size}, stride {t.stride}) "
                        f"does not fit its storage of {storage.size} elements; the file is damaged")
    if 0 in t.size:
        return np.zeros(t.size, storage.dtype)
    if not t.size:  # a 0-d tensor (as_strided would keep the storage's shape)
        return storage[t.offset:t.offset + 1].reshape(()).copy()
    view = np.lib.stride_tricks.as_strided(storage[t.offset:], t.size,
                                           [s * storage.itemsize for s in t.stride], writeable=False)
    return np.ascontiguousarray(view).astype(storage.dtype.newbyteorder("="), copy=False)
