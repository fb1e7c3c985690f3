"""Writers of torch.save files for the tests, without torch (and independent of the reader).

    write_zip(path, {"name": array, ...})       torch >= 1.6 zip format
    write_legacy(path, {"name": array, ...})    the legacy format (magic, protocol, sys info, ...)
    evil_pickle(module, name, args)             a pickle calling module.name(*args) on load

Tensors are written the way torch writes them: a persistent id
("storage", <GLOBAL torch.XStorage>, key, "cpu", numel) and a REDUCE of
torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()).
``View(array, offset, shape, strides)`` writes a strided view of a storage. The pure-Python
pickler is used so that a GLOBAL can name a module that is not installed (``Global``).
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                 np.dtype(np.float16): "HalfStorage", np.dtype(np.uint8): "ByteStorage",
                 np.dtype(np.int8): "CharStorage", np.dtype(np.int16): "ShortStorage",
                 np.dtype(np.int32): "IntStorage", np.dtype(np.int64): "LongStorage",
                 np.dtype(np.bool_): "BoolStorage"}


class Global:
    """Pickled as GLOBAL 'module\\nname': the module need not exist here."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # save_reduce wants a callable
        raise RuntimeError("a marker, never called")


class _Pickler(pickle._Pickler):
    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, f, storage_id=None):
        super().__init__(f, protocol=2)
        self.storage_id = storage_id

    def persistent_id(self, obj):
        return self.storage_id(obj) if self.storage_id and isinstance(obj, Storage) else None

    def _save_marker(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[Global] = _save_marker


class Storage:
    def __init__(self, key, flat: np.ndarray, type_name=None):
        self.key, self.flat = key, np.ascontiguousarray(flat).ravel()
        self.type_name = type_name or STORAGE_NAMES[self.flat.dtype]


class Tensor:
    """Reduces like a torch tensor: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, storage, offset, shape, strides):
        self.args = (storage, offset, tuple(shape), tuple(strides), False, collections.OrderedDict())

    def __reduce__(self):
        return Global("torch._utils", "_rebuild_tensor_v2"), self.args


class View:
    """A tensor that is a strided view (in elements) of ``base`` (stored whole)."""

    def __init__(self, base, offset, shape, strides):
        self.base, self.offset, self.shape, self.strides = base, offset, shape, strides


class Call:
    """Reduces to module.name(*args): for pickles that must be refused."""

    def __init__(self, module, name, args=()):
        self.target, self.args = Global(module, name), tuple(args)

    def __reduce__(self):
        return self.target, self.args


def _tensors(arrays: dict):
    """{name: array | View | anything} -> (OrderedDict of Tensor stand-ins, [Storage])."""
    storages, obj = [], collections.OrderedDict()
    for name, a in arrays.items():
        if isinstance(a, View):
            s = Storage(str(len(storages)), a.base)
            storages.append(s)
            obj[name] = Tensor(s, a.offset, a.shape, a.strides)
        elif isinstance(a, np.ndarray):
            s = Storage(str(len(storages)), a)
            storages.append(s)
            c = np.array(a, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
            obj[name] = Tensor(s, 0, c.shape, [st // max(c.itemsize, 1) for st in c.strides])
        else:
            obj[name] = a
    return obj, storages


def dumps(obj, storage_id=None) -> bytes:
    f = io.BytesIO()
    _Pickler(f, storage_id).dump(obj)
    return f.getvalue()


def write_zip(path, arrays: dict, prefix="archive", pkl: bytes | None = None) -> None:
    """A torch >= 1.6 zip file; ``pkl`` replaces the object pickle (for crafted files)."""
    obj, storages = _tensors(arrays)
    data = pkl if pkl is not None else dumps(
        obj, lambda s: ("storage", Global("torch", s.type_name), s.key, "cpu", s.flat.size))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{prefix}/data.pkl", data)
        zf.writestr(f"{prefix}/byteorder", "little")
        for s in storages:
            zf.writestr(f"{prefix}/data/{s.key}", s.flat.astype(s.flat.dtype.newbyteorder("<")).tobytes())
        zf.writestr(f"{prefix}/version", "3\n")


def write_legacy(path, arrays: dict, pkl: bytes | None = None, little_endian=True) -> None:
    """A legacy torch.save file: magic, protocol, sys info, object, storage keys, storages."""
    obj, storages = _tensors(arrays)
    out = io.BytesIO()
    for header in (MAGIC_NUMBER, 1001, {"protocol_version": 1001, "little_endian": little_endian,
                                        "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        out.write(dumps(header))
    out.write(pkl if pkl is not None else dumps(
        obj, lambda s: ("storage", Global("torch", s.type_name), s.key, "cpu", s.flat.size, None)))
    keys = sorted(s.key for s in storages)
    out.write(dumps(keys))
    by_key = {s.key: s for s in storages}
    for k in keys:
        out.write(struct.pack("<q", by_key[k].flat.size))
        out.write(by_key[k].flat.tobytes())
    with open(path, "wb") as f:
        f.write(out.getvalue())


def evil_pickle(module, name, args=()) -> bytes:
    """{"x": module.name(*args)}: any sound loader must refuse it unexecuted."""
    return dumps({"x": Call(module, name, args)})
