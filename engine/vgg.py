"""VGG-19 with fixed weights: random N(0, sigma^2) draws (ranVGG) or a local weights file.

The other VGG depths (Simonyan & Zisserman's configurations A, B, D, E: VGG-11, -13, -16, -19)
are the same class with another block table (``arch=``); VGG-19 is the default, and the module
constants (CONV_SHAPES, LAYER_NAMES, ...) are VGG-19's. Code that must work for any depth asks
the net: ``net.conv_shapes``, ``net.layer_names()``, ``net.check_layers(...)``.

Layer names (SPEC section 1): ``convB_I`` is a conv's pre-activation, ``reluB_I`` its rectified
output, ``poolB`` a pooled output, then ``fc6 relu6 fc7 relu7 fc8``. The paper's "conv5_1"
(Caffe, in-place ReLU) is ``relu5_1`` here.

    net = VGG19.random(seed=0, sigma=0.015, pooling="avg", device="cpu")
    feats = net.features(x, ["relu2_2", "pool5"])     # x: (N, 3, H, W), preprocessed
    net.save("weights.npz"); net = VGG19.load("weights.npz", device="gpu")

Only the layers up to the deepest one asked for are evaluated. Weights live on the host;
each layer's device copy (with its GEMM layouts) is made once, at first use.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from . import backend
from .autograd import Tensor
from .errors import UserError
from .ops.conv3x3 import ConvWeights, conv3x3, conv3x3_relu
from .ops.fc import FCWeights, fc
from .ops.pooling import avgpool2, maxpool2
from .ops.relu import relu

# Output channels of each conv, per block; five 2x2 poolings in every architecture, so the
# names (convB_I, poolB) and the fc input size are shared, only the number of convs differs.
ARCHS = {
    "vgg11": ((64,), (128,), (256,) * 2, (512,) * 2, (512,) * 2),
    "vgg13": ((64,) * 2, (128,) * 2, (256,) * 2, (512,) * 2, (512,) * 2),
    "vgg16": ((64,) * 2, (128,) * 2, (256,) * 3, (512,) * 3, (512,) * 3),
    "vgg19": ((64,) * 2, (128,) * 2, (256,) * 4, (512,) * 4, (512,) * 4),
}
DEFAULT_ARCH = "vgg19"
BLOCKS = ARCHS[DEFAULT_ARCH]
FC_SIZES = (("fc6", 4096), ("fc7", 4096), ("fc8", 1000))
POOLING = ("avg", "max")
DEFAULT_SIGMA = 0.015


def _layer_table(blocks=BLOCKS):
    """[(name, kind, conv/fc name it belongs to)] in forward order, and the conv shapes."""
    table, convs = [], []
    cin = 3
    for b, block in enumerate(blocks, start=1):
        for i, cout in enumerate(block, start=1):
            conv = f"conv{b}_{i}"
            convs.append((conv, (cout, cin, 3, 3)))
            table += [(conv, "conv", conv), (f"relu{b}_{i}", "relu", conv)]
            cin = cout
        table.append((f"pool{b}", "pool", None))
    for i, (name, _) in enumerate(FC_SIZES):
        table.append((name, "fc", name))
        if i < 2:
            table.append((f"relu{6 + i}", "relu", name))
    return table, convs


LAYERS, CONV_SHAPES = _layer_table()
LAYER_NAMES = tuple(name for name, _, _ in LAYERS)
_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}
FC_LAYERS = tuple(name for name, _, owner in LAYERS if owner in ("fc6", "fc7", "fc8"))


def check_arch(arch: str) -> str:
    if arch not in ARCHS:
        raise UserError(f"unknown architecture {arch!r}: use one of {', '.join(ARCHS)}")
    return arch


def check_layers(layers, names=LAYER_NAMES, arch=DEFAULT_ARCH) -> list[str]:
    """Validate layer names (VGG-19's unless ``names`` is given); a UserError lists the valid ones."""
    layers = list(layers)
    if not layers:
        raise UserError("no layer given: name at least one of " + ", ".join(names))
    for name in layers:
        if name not in names:
            hint = f" (the paper's {name} is relu{name[4:]} here)" if name.startswith("conv") and name[4:] in {
                n[4:] for n in names if n.startswith("relu")} else ""
            where = "" if arch == DEFAULT_ARCH else f" in {arch}"
            raise UserError(f"unknown layer {name!r}{where}{hint}; valid layers: {', '.join(names)}")
    return layers


def deepest(layers) -> str:
    """The deepest of ``layers`` (names shared by every architecture keep their order)."""
    return max(layers, key=_INDEX.__getitem__)


class VGG19:
    """The network. Build it with ``VGG19.random`` or ``VGG19.load``."""

    def __init__(self, params: dict, meta: dict, device: str = "auto", dtype=np.float32,
                 pooling: str | None = None, fc_source=None):
        self.arch = check_arch(meta.get("arch", DEFAULT_ARCH))
        self.layers, self.conv_shapes = _layer_table(ARCHS[self.arch])
        self._index = {name: i for i, (name, _, _) in enumerate(self.layers)}
        self.device = backend.resolve_device(device)
        self.xp = backend.xp_for(self.device)
        self.dtype = np.dtype(dtype)
        backend.dtype_suffix(self.dtype)  # float32 / float64 only
        self.meta = dict(meta)
        self.pooling = pooling or self.meta.get("pooling", "avg")
        if self.pooling not in POOLING:
            raise UserError(f"unknown pooling {self.pooling!r}: use avg or max")
        self.meta["pooling"] = self.pooling
        self.preprocessing = self.meta.get("preprocessing", "caffe")
        self.params = params          # name -> (weight, bias), host arrays
        self._fc_source = fc_source    # callable drawing fc weights on first use, or None
        self._device_params = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def random(cls, seed: int = 0, sigma: float = DEFAULT_SIGMA, pooling: str = "avg",
               device: str = "auto", dtype=np.float32, arch: str = DEFAULT_ARCH) -> "VGG19":
        """Every weight ~ N(0, sigma^2), biases zero (SPEC section 1); ``arch``: vgg11|13|16|19.

        Weights are drawn on the host from ``numpy.random.default_rng(seed)`` in layer order,
        so CPU and GPU see identical weights. The fc weights (fc6 alone is 134M values) are
        drawn only when an fc layer is first used, from the generator state the convs left.
        """
        if not (sigma > 0 and np.isfinite(sigma)):
            raise UserError(f"sigma must be a positive number, got {sigma}")
        _, conv_shapes = _layer_table(ARCHS[check_arch(arch)])
        rng = np.random.default_rng(seed)
        params = {}
        for name, shape in conv_shapes:
            w = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)
            params[name] = (w, np.zeros(shape[0], np.float32))
        state = rng.bit_generator.state
        meta = {"kind": "random", "seed": int(seed), "sigma": float(sigma), "pooling": pooling,
                "preprocessing": "caffe",
                "made": "numpy default_rng(seed) standard_normal * sigma, float32, layer order; zero biases",
                "fc_rng_state": state}
        if arch != DEFAULT_ARCH:  # VGG-19's meta stays as it was
            meta["arch"] = arch
        return cls(params, meta, device, dtype, pooling, fc_source=_random_fc(state, sigma))

    @classmethod
    def load(cls, path, device: str = "auto", dtype=np.float32, pooling: str | None = None) -> "VGG19":
        """Read a ``.npz`` weights file (SPEC section 1); every shape is checked."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"weights file {str(path)!r} not found" if not path.exists()
                            else f"weights path {str(path)!r} is not a file")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise UserError(f"{path}: not a readable .npz weights file ({exc.__class__.__name__}: {exc})") from None
        meta = {}
        if "meta" in arrays:
            try:
                meta = json.loads(str(arrays.pop("meta")))
            except json.JSONDecodeError:
                raise UserError(f"{path}: 'meta' is not valid JSON") from None
        arch = check_arch(meta.get("arch", DEFAULT_ARCH))
        params = _params_from_arrays(arrays, str(path), _layer_table(ARCHS[arch])[1])
        fc_source = None
        if "fc6" not in params and meta.get("fc_rng_state") and meta.get("sigma"):
            fc_source = _random_fc(meta["fc_rng_state"], meta["sigma"])
        return cls(params, meta, device, dtype, pooling, fc_source)

    def save(self, path, include_fc: bool | None = None) -> None:
        """Write the weights and ``meta`` to ``path`` (.npz). fc weights are written only if
        drawn or loaded (a random net can redraw them from the saved generator state)."""
        arrays = {}
        for name, (w, b) in self.params.items():
            if include_fc is False and name.startswith("fc"):
                continue
            arrays[f"{name}.weight"], arrays[f"{name}.bias"] = w, b
        arrays["meta"] = np.array(json.dumps(self.meta))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    # ------------------------------------------------------------------ queries

    def layer_names(self) -> tuple[str, ...]:
        """This architecture's layer names in forward order (LAYER_NAMES for VGG-19)."""
        return tuple(name for name, _, _ in self.layers)

    def check_layers(self, layers) -> list[str]:
        """Validate layer names against this architecture; a UserError lists the valid ones."""
        return check_layers(layers, self._index, self.arch)

    def _deepest(self, layers) -> int:
        return max(self._index[name] for name in layers)

    def has_fc(self) -> bool:
        return "fc6" in self.params or self._fc_source is not None

    def fc_input_side(self) -> int:
        """The image side (pixels) that the fc layers need: pool5 must be s x s with
        512*s*s = fc6's inputs; 256 for random nets (pool5 8x8)."""
        if "fc6" in self.params:
            n_in = self.params["fc6"][0].shape[1]
        else:
            n_in = 512 * 8 * 8
        side = int(round((n_in / 512) ** 0.5))
        return side * 32

    def check_input(self, shape, layers) -> None:
        """A UserError if ``layers`` cannot be computed for an input of ``shape`` (N, 3, H, W)."""
        layers = self.check_layers(layers)
        if len(shape) != 4 or shape[1] != 3:
            raise UserError(f"the network takes (N, 3, H, W) input, got shape {tuple(shape)}")
        h, w = shape[2:]
        top = self._deepest(layers)
        pools = sum(1 for name, kind, _ in self.layers[:top + 1] if kind == "pool")
        if min(h, w) >> pools < 1:
            raise UserError(f"a {h}x{w} image is too small for {deepest(layers)} "
                            f"({pools} poolings need at least {2 ** pools} px on each side)")
        if any(name in FC_LAYERS for name in layers):
            if not self.has_fc():
                raise UserError("this weights file has no fc layers; use conv/relu/pool layers")
            side = self.fc_input_side()
            if (h, w) != (side, side):
                raise UserError(f"fc layers need a {side}x{side} input, got {h}x{w}; "
                                f"use --size {side} (the image is resized and centre-cropped)")

    # ------------------------------------------------------------------ forward

    def forward(self, x: Tensor, layers) -> dict:
        """Run the net on ``x`` (a Tensor) up to the deepest of ``layers``.

        Returns {name: Tensor}; the graph is recorded when ``x.requires_grad``.
        """
        layers = self.check_layers(layers)
        self.check_input(x.shape, layers)
        want = set(layers)
        top = self._deepest(layers)
        out, h = {}, x
        i = 0
        table = self.layers
        while i <= top:
            name, kind, owner = table[i]
            if kind == "conv" or kind == "fc":
                p = self._weights(owner)
                has_relu = i + 1 < len(table) and table[i + 1][1] == "relu"
                if kind == "conv" and name not in want and has_relu:
                    h = conv3x3_relu(h, p, table[i + 1][0])  # pre-activation not needed
                    i += 1
                    name = table[i][0]
                else:
                    h = conv3x3(h, p, name) if kind == "conv" else fc(h, p, name)
            elif kind == "relu":
                h = relu(h, name)
            else:
                h = (avgpool2 if self.pooling == "avg" else maxpool2)(h, name)
            if name in want:
                out[name] = h
            i += 1
        return out

    def features(self, x, layers) -> dict:
        """{name: array (N, C, h, w)} on the net's device, no graph kept."""
        x = self.to_device(x)
        return {k: t.data for k, t in self.forward(Tensor(x), layers).items()}

    def to_device(self, x):
        return backend.to_device(x, self.device, self.dtype)

    # ------------------------------------------------------------------ weights

    def _weights(self, name):
        if name not in self._device_params:
            if name not in self.params and name.startswith("fc"):
                self._draw_fc()
            w, b = self.params[name]
            w, b = self.to_device(w), self.to_device(b)
            self._device_params[name] = ConvWeights(w, b) if name.startswith("conv") else FCWeights(w, b)
        return self._device_params[name]

    def _draw_fc(self):
        if self._fc_source is None:
            raise UserError("this network has no fc weights; use conv/relu/pool layers")
        self.params.update(self._fc_source())
        self._fc_source = None

    def set_layer(self, name: str, weight, bias) -> None:
        """Replace one layer's weights (host arrays); used by the stacked ranVGG builder."""
        old_w, old_b = self.params[name]
        if weight.shape != old_w.shape or bias.shape != old_b.shape:
            raise ValueError(f"{name}: expected {old_w.shape}/{old_b.shape}, got {weight.shape}/{bias.shape}")
        self.params[name] = (np.asarray(weight, np.float32), np.asarray(bias, np.float32))
        self._device_params.pop(name, None)

    def memory_estimate(self, shape, layers) -> int:
        """Bytes a forward + backward pass needs for ``shape`` (N, 3, H, W) up to ``layers``:
        the kept activations, the largest im2col buffer, and the weights, with a 25% margin."""
        layers = self.check_layers(layers)
        n, _, h, w = shape
        item = self.dtype.itemsize
        top = self._deepest(layers)
        c, acts, cols, weights = 3, 0, 0, 0
        shapes = dict(self.conv_shapes)
        for name, kind, owner in self.layers[:top + 1]:
            if kind == "conv":
                cols = max(cols, n * c * 9 * h * w)
                c = shapes[name][0]
                acts += n * c * h * w
                weights += 3 * c * shapes[name][1] * 9  # weight + two GEMM layouts
            elif kind == "pool":
                h, w = h // 2, w // 2
                acts += n * c * h * w
            elif kind == "fc":
                size = dict(FC_SIZES)[name]
                weights += size * c * h * w
                c, h, w = size, 1, 1
                acts += n * size
        # activations are kept for backward; the gradient pass holds about two more at a time
        return int(1.25 * item * (acts + 2 * cols + weights))


def _random_fc(state, sigma):
    """A function drawing fc6-fc8 from the generator state the conv draws left behind."""

    def draw():
        rng = np.random.default_rng()
        rng.bit_generator.state = state
        out, n_in = {}, 512 * 8 * 8
        for name, n_out in FC_SIZES:
            out[name] = (rng.standard_normal((n_out, n_in), dtype=np.float32) * np.float32(sigma),
                         np.zeros(n_out, np.float32))
            n_in = n_out
        return out

    return draw


def _params_from_arrays(arrays: dict, where: str, conv_shapes=CONV_SHAPES) -> dict:
    """Check names and shapes of a weights file's arrays; {layer: (weight, bias)}."""
    params = {}
    for name, shape in conv_shapes:
        for part, want in (("weight", shape), ("bias", shape[:1])):
            key = f"{name}.{part}"
            if key not in arrays:
                raise UserError(f"{where}: missing {key!r}; a weights file of this architecture needs all "
                                f"{len(conv_shapes)} conv layers")
            if arrays[key].shape != want:
                raise UserError(f"{where}: {key} has shape {arrays[key].shape}, expected {want}")
        params[name] = (arrays[f"{name}.weight"].astype(np.float32), arrays[f"{name}.bias"].astype(np.float32))
    present = [name for name, _ in FC_SIZES if f"{name}.weight" in arrays]
    if present:
        if len(present) != 3:
            raise UserError(f"{where}: has {', '.join(present)} but not all of fc6, fc7, fc8")
        n_in = arrays["fc6.weight"].shape[1] if arrays["fc6.weight"].ndim == 2 else -1
        side2 = n_in / 512
        if n_in <= 0 or side2 != int(round(side2 ** 0.5)) ** 2:
            raise UserError(f"{where}: fc6.weight has shape {arrays['fc6.weight'].shape}; "
                            "expected (4096, 512*s*s), e.g. (4096, 32768)")
        for name, n_out in FC_SIZES:
            w, b = arrays[f"{name}.weight"], arrays.get(f"{name}.bias")
            if w.shape != (n_out, n_in) or b is None or b.shape != (n_out,):
                raise UserError(f"{where}: {name} has shape {w.shape}/{None if b is None else b.shape}, "
                                f"expected ({n_out}, {n_in})/({n_out},)")
            params[name] = (w.astype(np.float32), b.astype(np.float32))
            n_in = n_out
    for key, a in arrays.items():
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise UserError(f"{where}: {key} contains NaN or inf")
    return params
