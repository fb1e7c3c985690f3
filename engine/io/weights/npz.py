"""ranvgg's own weights format (docs/method.md, section 1): a ``.npz`` of the VGG-19 layers and a JSON meta.

    conv1_1.weight (64, 3, 3, 3) ... conv5_4.bias (512,)       all 16 conv layers, required
    fc6.weight (4096, 512*s*s), fc6.bias, ... fc8.bias (1000,)   optional, all three or none
    meta                                                          0-d unicode array, a JSON object

    params, meta = read(path)            # {layer: (weight, bias)} float32 host arrays, dict
    write(path, params, meta)            # atomic: unique temporary, fsync, rename

Reading trusts nothing: from the zip directory and each member's .npy header (a few hundred
bytes decompressed per member), every member name, dtype, shape and size is checked BEFORE any
array is decompressed, so an unexpected or oversized member costs nothing. Arrays must be real
floating point (no strings, objects, complex numbers, integers); finiteness is checked after
the cast to float32, where 1e300 becomes inf.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ...arch import CONV_SHAPES, DEFAULT_ARCH, FC_SIZES, conv_shapes_of
from ...errors import UserError
from ..files import atomic_write
from . import meta as meta_schema
from .safezip import open_zip

MAX_FC_SIDE = 8          # fc6 takes pool5 flattened: 512*s*s inputs, s = 8 for a 256 px input
_HEADER_LIMIT = 4096     # bytes of .npy header we are willing to parse


def expected_shapes():
    """{array name: shape or None}: None for fc6.weight, whose input width is checked separately."""
    shapes = {}
    for name, shape in CONV_SHAPES:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = shape, shape[:1]
    n_in = None
    for name, n_out in FC_SIZES:
        shapes[f"{name}.weight"] = None if n_in is None else (n_out, n_in)
        shapes[f"{name}.bias"] = (n_out,)
        n_in = n_out
    return shapes


# ----------------------------------------------------------------------------- reading

def read(path, dtype=np.float32) -> tuple[dict, dict]:
    """({layer: (weight, bias)} as ``dtype`` host arrays, meta dict) from a .npz weights file."""
    path = Path(path)
    where = str(path)
    with open_zip(path, ".npz weights file") as zf:
        headers = read_headers(zf, where)
        meta = {}
        if "meta" in headers:
            meta = meta_schema.parse(str(_read_array(zf, "meta", where)), where)
        _check_layers(headers, where, meta.get("arch"))
        arrays = {}
        for name in headers:
            if name != "meta":
                arrays[name] = as_finite(_read_array(zf, name, where), dtype, name, where)
    layers = dict.fromkeys(k.rsplit(".", 1)[0] for k in arrays)
    return {layer: (arrays[f"{layer}.weight"], arrays[f"{layer}.bias"]) for layer in layers}, meta


def read_headers(zf: zipfile.ZipFile, where: str) -> dict:
    """{name: (shape, dtype)} of every member, from the directory and the .npy headers only.

    A UserError for any unexpected member, wrong dtype or shape, or a size that does not match
    its header (a member larger than its declared array is refused unread).
    """
    headers = {}
    for info in zf.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else None
        if name is None or (name not in expected_shapes() and name != "meta"):
            raise UserError(f"{where}: unexpected member {info.filename!r}; a VGG-19 weights file holds only "
                            "conv1_1.weight ... fc8.bias and meta (.npy arrays)")
        shape, dtype, header_len = _npy_header(zf, info, where)
        check_array(name, shape, dtype, where)
        nbytes = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if info.file_size != nbytes:
            raise UserError(f"{where}: member {info.filename!r} is {info.file_size:,} bytes but its header "
                            f"describes {nbytes:,}; the file is damaged or crafted, re-create it")
        headers[name] = (shape, dtype)
    return headers


def check_array(name: str, shape: tuple, dtype, where: str) -> None:
    """One array of a weights file: a known name, a float dtype (meta: a unicode string), its shape."""
    allowed = expected_shapes()
    if name not in allowed and name != "meta":
        raise UserError(f"{where}: unexpected array {name!r}; a VGG-19 weights file holds only "
                        "conv1_1.weight ... fc8.bias and meta")
    _check_dtype(name, tuple(shape), np.dtype(dtype), where)
    want = _fc6_shape(tuple(shape), where) if name == "fc6.weight" else allowed.get(name)
    if want is not None and tuple(shape) != want:
        raise UserError(f"{where}: {name} has shape {tuple(shape)}, expected {want}")


def check_params(params: dict, where: str, arch=None) -> None:
    """{layer: (weight, bias)} arrays: every name, dtype and shape, before anything is written."""
    headers = {}
    for layer, (w, b) in params.items():
        for part, a in (("weight", w), ("bias", b)):
            check_array(f"{layer}.{part}", np.shape(a), np.asarray(a).dtype, where)
            headers[f"{layer}.{part}"] = (np.shape(a), np.asarray(a).dtype)
    _check_layers(headers, where, arch)


def _npy_header(zf, info, where):
    """(shape, dtype, header length in bytes) of one .npy member, reading only its header."""
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0), (3, 0)):
                raise ValueError(f"unknown .npy version {version}")
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(f, max_header_size=_HEADER_LIMIT)
            header_len = f.tell()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, SyntaxError, TypeError,
            NotImplementedError) as exc:
        raise UserError(f"{where}: member {info.filename!r} is not a readable .npy array "
                        f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    return tuple(int(n) for n in shape), np.dtype(dtype), header_len


def _check_dtype(name, shape, dtype, where):
    if name == "meta":
        if dtype.kind != "U" or shape != ():
            raise UserError(f"{where}: 'meta' must be a 0-d unicode string array (JSON text), "
                            f"got dtype {dtype} shape {shape}")
        if dtype.itemsize > 4 * meta_schema.MAX_CHARS:
            raise UserError(f"{where}: 'meta' is longer than {meta_schema.MAX_CHARS} characters; re-save the weights")
        return
    if dtype.kind != "f" or dtype.itemsize > 8 or dtype.hasobject:
        kinds = {"c": "complex", "U": "string", "S": "bytes", "O": "Python objects", "V": "records",
                 "i": "integer", "u": "unsigned integer", "b": "boolean"}
        what = kinds.get(dtype.kind, "extended precision" if dtype.kind == "f" else str(dtype))
        raise UserError(f"{where}: {name} holds {what} values (dtype {dtype}); "
                        "weights must be float16, float32 or float64")


def _fc6_shape(shape, where):
    """fc6.weight is (4096, 512*s*s) for a pool5 of s x s; anything else is refused."""
    n_in = shape[1] if len(shape) == 2 else 0
    side = int(round((n_in / 512) ** 0.5)) if n_in > 0 else 0
    if len(shape) != 2 or shape[0] != 4096 or not 1 <= side <= MAX_FC_SIDE or 512 * side * side != n_in:
        raise UserError(f"{where}: fc6.weight has shape {shape}; expected (4096, 512*s*s) with s from 1 to "
                        f"{MAX_FC_SIDE}, e.g. (4096, 32768) or torchvision's (4096, 25088)")
    return shape


def _check_layers(headers: dict, where: str, arch=None) -> None:
    """Every conv layer of the architecture (meta's "arch": VGG-11/13/16 use a subset of
    VGG-19's names and shapes; default vgg19), and fc6-fc8 all or none."""
    arch = arch or DEFAULT_ARCH
    convs = conv_shapes_of(arch)
    for name, _ in convs:
        for part in ("weight", "bias"):
            if f"{name}.{part}" not in headers:
                raise UserError(f"{where}: missing '{name}.{part}'; a {arch.upper()} weights file needs all "
                                f"{len(convs)} conv layers")
    extra = sorted({k.rsplit(".", 1)[0] for k in headers if k.startswith("conv")} - {n for n, _ in convs})
    if extra:
        raise UserError(f"{where}: {', '.join(extra)} do not belong to {arch}; check the meta's 'arch'")
    fc = [f"{name}.{part}" for name, _ in FC_SIZES for part in ("weight", "bias")]
    present = [k for k in fc if k in headers]
    if present and len(present) != len(fc):
        missing = [k for k in fc if k not in headers]
        raise UserError(f"{where}: has {', '.join(present)} but not {', '.join(missing)}; "
                        "the fc layers come all together or not at all")


def _read_array(zf, name, where):
    try:
        with zf.open(f"{name}.npy") as f:
            return np.lib.format.read_array(f, allow_pickle=False, max_header_size=_HEADER_LIMIT)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise UserError(f"{where}: cannot read {name} ({exc.__class__.__name__}: {exc}); "
                        "the file is damaged, re-create it") from None


def as_finite(a, dtype, name, where):
    """``a`` cast to ``dtype``; NaN or inf (also from overflow in the cast) is a UserError."""
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(a, dtype=dtype)
    if not np.all(np.isfinite(out)):
        bad = "overflows " + str(np.dtype(dtype)) if np.all(np.isfinite(a)) else "contains NaN or inf"
        raise UserError(f"{where}: {name} {bad}; the weights are unusable, re-create the file")
    return out


# ----------------------------------------------------------------------------- writing

def write(path, params: dict, meta: dict) -> Path:
    """Write ``params`` {layer: (weight, bias)} and ``meta`` to ``path`` atomically; returns the path.

    The file is written to a uniquely named temporary in the target folder, flushed to disk
    (fsync) and renamed over ``path``, so a crash, Ctrl-C or a second writer never leaves a
    partial file at ``path``; the temporary is removed on any failure. A symlink is written
    through to its target; a non-regular target (a device, a fifo, a folder) is refused.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if target.exists() and not target.is_file():
        raise UserError(f"{path}: exists and is not a regular file; choose another path for the weights")
    text = meta_schema.dumps(meta)
    meta_schema.parse(text, str(path))  # never write a file that would not load
    check_params(params, str(path), meta.get("arch"))
    arrays = {}
    for layer, (w, b) in params.items():
        arrays[f"{layer}.weight"], arrays[f"{layer}.bias"] = np.asarray(w), np.asarray(b)
    arrays["meta"] = np.array(text)
    return atomic_write(path, lambda f: np.savez(f, **arrays), "weights")
