"""VGG-19 with fixed weights: random N(0, sigma^2) draws (ranVGG) or a local weights file.

The other VGG depths (Simonyan & Zisserman's configurations A, B, D, E: VGG-11, -13, -16, -19)
are the same class with another block table (``arch=``); VGG-19 is the default, and the module
constants (CONV_SHAPES, LAYER_NAMES, ...) are VGG-19's. Code that must work for any depth asks
the net: ``net.conv_shapes``, ``net.layer_names()``, ``net.check_layers(...)``.

Layer names (docs/method.md, section 1): ``convB_I`` is a conv's pre-activation, ``reluB_I`` its rectified
output, ``poolB`` a pooled output, then ``fc6 relu6 fc7 relu7 fc8``. The paper's "conv5_1"
(Caffe, in-place ReLU) is ``relu5_1`` here.

    net = VGG19.random(seed=0, sigma=0.015, pooling="avg", device="cpu")
    feats = net.features(x, ["relu2_2", "pool5"])     # x: (N, 3, H, W), preprocessed
    net.save("weights.npz"); net = VGG19.load("weights.npz", device="gpu")

Only the layers up to the deepest one asked for are evaluated. Weights live on the host;
each layer's device copy (with its GEMM layouts) is made once, at first use.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .arch import (DEFAULT_ARCH, DEFAULT_INIT, DEFAULT_SIGMA, FC_LAYERS, FC_SIZES, INITS, POOLING, check_arch,
                   check_layers, deepest, layer_table, poolings_before)
from .autograd import Tensor
from .errors import UserError
from .io import files
from .io.weights import npz
from .ops import winograd
from .ops.conv3x3 import ConvWeights, conv3x3, conv3x3_relu
from .ops.fc import FCWeights, fc
from .ops.pooling import avgpool2, maxpool2
from .ops.relu import relu

class VGG19:
    """The network. Build it with ``VGG19.random`` or ``VGG19.load``."""

    def __init__(self, params: dict, meta: dict, device: str = "auto", dtype=np.float32,
                 pooling: str | None = None, fc_source=None):
        self.arch = check_arch(meta.get("arch", DEFAULT_ARCH))
        self.layers, self.conv_shapes = layer_table(self.arch)
        self._index = {name: i for i, (name, _, _) in enumerate(self.layers)}
        self.device = backend.resolve_device(device)
        self.xp = backend.xp_for(self.device)
        self.dtype = np.dtype(dtype)
        backend.dtype_suffix(self.dtype)  # float32 / float64 only
        # which layers keep their Winograd-domain weights (the memory policy in winograd.py)
        self._u_prefix = winograd.u_prefixes(self.conv_shapes, self.dtype.itemsize)
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
               device: str = "auto", dtype=np.float32, arch: str = DEFAULT_ARCH,
               init: str = DEFAULT_INIT) -> "VGG19":
        """Every weight ~ N(0, sigma^2), biases zero (docs/method.md, section 1); ``arch``: vgg11|13|16|19.

        Weights are drawn on the host from ``numpy.random.default_rng(seed)`` in layer order,
        so CPU and GPU see identical weights. The fc weights (fc6 alone is 134M values) are
        drawn only when an fc layer is first used, from the generator state the convs left.
        ``init`` (``INITS``) changes how the conv weights are drawn: ``draw_conv``.
        """
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)) \
                or not (sigma > 0 and np.isfinite(sigma)):
            raise UserError(f"sigma must be a positive number, got {sigma!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise UserError(f"seed must be a whole number >= 0, got {seed!r}")
        if init not in INITS:
            raise UserError(f"unknown weight init {init!r}: use one of {', '.join(INITS)}")
        _, conv_shapes = layer_table(arch)
        rng = np.random.default_rng(seed)
        params = {}
        for i, (name, shape) in enumerate(conv_shapes):
            params[name] = (draw_conv(rng, shape, sigma, init, first=i == 0), np.zeros(shape[0], np.float32))
        state = rng.bit_generator.state
        meta = {"kind": "random", "seed": int(seed), "sigma": float(sigma), "pooling": pooling,
                "preprocessing": "caffe",
                "made": "numpy default_rng(seed) standard_normal * sigma, float32, layer order; zero biases",
                "fc_rng_state": state}
        if arch != DEFAULT_ARCH:  # VGG-19's meta stays as it was
            meta["arch"] = arch
        if init != DEFAULT_INIT:
            meta["init"] = init
            meta["made"] = f"numpy default_rng(seed), conv weights drawn as {init!r} (engine.vgg.draw_conv), " \
                           "fc standard_normal * sigma, float32, layer order; zero biases"
        return cls(params, meta, device, dtype, pooling, fc_source=_random_fc(state, sigma))

    @classmethod
    def load(cls, path, device: str = "auto", dtype=np.float32, pooling: str | None = None) -> "VGG19":
        """Read a ``.npz`` weights file (docs/method.md, section 1); names, dtypes, shapes, sizes
        and the meta are checked before anything is decompressed (engine/io/weights/npz.py)."""
        path = files.as_path(path, "VGG19.load: path")
        params, meta = npz.read(path)  # the conv layers required follow meta's "arch" (default vgg19)
        fc_source = None
        if "fc6" not in params and meta.get("fc_rng_state") and meta.get("sigma"):
            fc_source = _random_fc(meta["fc_rng_state"], meta["sigma"])
        return cls(params, meta, device, dtype, pooling, fc_source)

    def save(self, path, include_fc: bool | None = None) -> None:
        """Write the weights and ``meta`` to ``path`` (.npz), atomically (a unique temporary,
        fsync, rename). fc weights are written only if drawn or loaded (a random net can redraw
        them from the saved generator state)."""
        path = files.as_path(path, "VGG19.save: path")
        params = {name: wb for name, wb in self.params.items()
                  if not (include_fc is False and name.startswith("fc"))}
        npz.write(path, params, self.meta)

    # ------------------------------------------------------------------ queries

    def layer_names(self) -> tuple[str, ...]:
        """This architecture's layer names in forward order (LAYER_NAMES for VGG-19)."""
        return tuple(name for name, _, _ in self.layers)

    def check_layers(self, layers) -> list[str]:
        """Validate layer names against this architecture; a UserError lists the valid ones."""
        return check_layers(layers, self._index, self.arch)

    def _unique(self, layers) -> list[str]:
        """check_layers for internal lists, where one layer may serve two terms (content and style)."""
        if layers is None or not hasattr(layers, "__iter__"):
            return self.check_layers(layers)   # None, a number: the one-line error naming what was given
        return self.check_layers(list(dict.fromkeys([layers] if isinstance(layers, str) else layers)))

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
        layers = self._unique(layers)
        if len(shape) != 4 or shape[1] != 3:
            raise UserError(f"the network takes (N, 3, H, W) input, got shape {tuple(shape)}")
        h, w = shape[2:]
        top = self._deepest(layers)
        pools = poolings_before(self.layers[top][0])
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
        layers = self._unique(layers)
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
            if name.startswith("conv"):
                self._device_params[name] = ConvWeights(w, b, self._u_prefix[name])
            else:
                self._device_params[name] = FCWeights(w, b)
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


def draw_conv(rng, shape, sigma: float, init: str = DEFAULT_INIT, first: bool = False) -> np.ndarray:
    """One conv's weights (Cout, Cin, 3, 3), float32, from ``rng`` (one standard normal draw of
    ``shape`` whatever ``init``, so the layers after it see the same generator state):

    - gaussian: N(0, sigma^2) (the paper's, sigma = 0.015);
    - he: N(0, 2 / (9 Cin)) (He et al. 2015: keeps the activations' scale through ReLUs; sigma unused);
    - orthogonal: the Cout x 9 Cin matrix made semi-orthogonal (QR of the draw, signs fixed so it is
      uniformly distributed): orthonormal rows (Cout <= 9 Cin) or columns, scaled so that its
      entries' root mean square is sigma;
    - zero-mean-first: gaussian, with each filter of the first conv made zero-mean over its
      Cin x 3 x 3 weights (no response to a flat change of brightness); the other convs gaussian.
    """
    w = rng.standard_normal(shape, dtype=np.float32)
    if init == "he":
        return w * np.float32(np.sqrt(2.0 / (9 * shape[1])))
    if init == "orthogonal":
        m = w.reshape(shape[0], -1).astype(np.float64)           # (Cout, Cin*9)
        tall = m.shape[0] > m.shape[1]
        q, r = np.linalg.qr(m if tall else m.T)                   # q: orthonormal columns
        q = q * np.sign(np.diag(r))
        q = q if tall else q.T
        return (q * (sigma * np.sqrt(max(m.shape)))).reshape(shape).astype(np.float32)
    w = w * np.float32(sigma)
    if init == "zero-mean-first" and first:
        w -= w.mean(axis=(1, 2, 3), keepdims=True)
    return w


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

