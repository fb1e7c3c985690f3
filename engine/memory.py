"""How much memory a run needs, from the shapes and options alone (nothing is allocated).

    est = estimate((1, 3, 128, 128), [("content", "pool3")], history=10)
    est.total, est.parts          # bytes; {"weights": ..., "network pass": ..., ...}

The estimate walks the network the way ``VGG19.forward`` and ``autograd.backward`` do and adds
up every buffer alive at the peak, which is in the backward pass of the first block:

- weights: the host copy of every conv (and fc, if used) layer, and the backward GEMM layout
  (Cin, Cout*9) made for each layer used (the forward layout is a view of the weights);
- the network pass: every kept activation (one per fused conv+ReLU, pool, and requested
  pre-activation), the loss gradients, and at each layer the transient buffers: the forward
  gather Cin*9*HW, and in backward the gather Cout*9*HW of the flipped conv, the ReLU-masked
  gradient it gathers from, the incoming and outgoing gradients;
- targets: the content features and Gram matrices matched, the image(s) kept by the objective;
- L-BFGS-B (host, float64): scipy's work array 2*m*n + 5n + 11m^2 + 8m, and the dozen
  n-vectors around it (x, gradient, bounds, the best iterate, ...);

Checked against tracemalloc's peak at three sizes in tests/engine/test_memory.py (within 20%).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .arch import DEFAULT_ARCH, FC_SIZES, check_layers, deepest, layer_table, map_shape

_FC = dict(FC_SIZES)
_F64 = 8
# n-vectors (float64) the optimiser holds besides scipy's work array: scipy's x, g, bounds
# (2), the flat start, the best and last iterates, the gradient copy, and transients
_LBFGS_VECTORS = 12


@dataclass
class Estimate:
    """Bytes per part; ``host`` names the parts that live in host RAM whatever the device."""

    parts: dict = field(default_factory=dict)
    host: set = field(default_factory=set)

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()))

    def on(self, where: str) -> int:
        """Bytes on the "host" or the "device" (on a CPU run both are RAM)."""
        return int(sum(v for k, v in self.parts.items() if (k in self.host) == (where == "host")))

    def largest(self) -> tuple[str, int]:
        name = max(self.parts, key=self.parts.get)
        return name, int(self.parts[name])


def human(nbytes: int) -> str:
    """1536 -> "1.5 KiB"; bytes in the largest unit that keeps a figure >= 1."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024


def estimate(shape, terms, history: int = 10, dtype=np.float32, pooling: str = "avg",
             fc_inputs: int | None = None, extra_nets: int = 0, device: str = "cpu",
             optimizer: str = "lbfgs", arch: str = DEFAULT_ARCH) -> Estimate:
    """Memory of a run on an input of ``shape`` (N, 3, H, W).

    terms: [(kind, layer)] with kind "content", "gram" or "tv" (layer None); a bare layer
    name counts as a content term. history: the L-BFGS memory m. fc_inputs: fc6's input size
    (512*s*s) when fc layers are used. extra_nets: further random nets held at the same time
    (the texture task's check net). device: "cpu" or "gpu", whose conv algorithms
    (``conv3x3.choose``) and buffers are counted; optimizer "lbfgs-device" keeps the L-BFGS
    history where the network computes (on the GPU: in GPU memory), "lbfgs" on the host. arch:
    vgg11|vgg13|vgg16|vgg19, whose layer table is walked.
    """
    terms = [("content", t) if isinstance(t, str) else tuple(t) for t in terms]
    layers = [l for _, l in terms if l]
    item = np.dtype(dtype).itemsize
    n, _, h, w = (int(v) for v in shape)
    on_device = device == "gpu" and optimizer == "lbfgs-device"
    est = Estimate(host=set() if on_device else {"L-BFGS history", "L-BFGS vectors"})
    t = _Table(arch)
    top = t.index[deepest(check_layers(list(dict.fromkeys(layers)), t.index, arch))] if layers else -1
    est.parts["weights"] = (1 + extra_nets) * _weights_bytes(t, top, fc_inputs) + _layouts_bytes(t, top, fc_inputs)
    est.parts["network pass"] = _pass_peak(t, n, h, w, terms, top, item, pooling, device)
    est.parts["targets"] = _targets_bytes(t, n, h, w, terms, item)
    est.parts["Winograd"] = _winograd_bytes(t, n, h, w, top, item, device)
    m, nx = int(history), n * 3 * h * w
    if optimizer == "lbfgs-device":   # engine/optim/device_lbfgs.py: W = [S; Y] and its vectors, float64
        from .optim.device_lbfgs import history_bytes

        est.parts["L-BFGS history"] = _F64 * (2 * m * nx + 7 * m * m)
        est.parts["L-BFGS vectors"] = history_bytes(nx, m) - est.parts["L-BFGS history"]
        return est
    est.parts["L-BFGS history"] = _F64 * (2 * m * nx + 11 * m * m + 8 * m)
    est.parts["L-BFGS vectors"] = _F64 * (5 + _LBFGS_VECTORS) * nx
    return est


class _Table:
    """An architecture's layer table (engine/arch.py), indexed the ways the estimate walks it."""

    def __init__(self, arch: str):
        self.arch = arch
        self.layers, convs = layer_table(arch)
        self.index = {name: i for i, (name, _, _) in enumerate(self.layers)}
        self.conv = dict(convs)


def _choose(cin, cout, h, w, device="cpu") -> str:
    """The conv algorithm ``conv3x3.choose`` picks on ``device`` (RANVGG_CONV included)."""
    from .ops.conv3x3 import choose

    return choose(cin, cout, h, w) if device == "cpu" else choose(cin, cout, h, w, xp=_ON_GPU)


_ON_GPU = object()   # any array module but NumPy: choose's GPU branch


def _weights_bytes(t: _Table, top: int, fc_inputs) -> int:
    """Host float32 copies: every conv of the architecture always, the fc layers when used."""
    total = sum(int(np.prod(s)) + s[0] for s in t.conv.values())
    if top >= t.index["fc6"]:
        n_in = fc_inputs or 512 * 8 * 8
        for _, n_out in FC_SIZES:
            total += n_out * n_in + n_out
            n_in = n_out
    return 4 * total


def _layouts_bytes(t: _Table, top: int, fc_inputs) -> int:
    """The backward GEMM layout (Cin, Cout*9) of the convs used: kept when small, the largest
    one is made per call, in the backward pass (``ConvWeights.w_bwd``, ``_pass_peak``)."""
    from .ops import winograd

    sizes = [4 * int(np.prod(s)) for name, s in t.conv.items() if t.index[name] <= top]
    return sum(b for b in sizes if b <= winograd.u_cache_bytes())  # a larger one: in the pass


def _winograd_bytes(t: _Table, n, h, w, top, item, device="cpu") -> int:
    """The Winograd convs. CPU (engine/ops/winograd.py, its own byte counts): every conv that
    uses F(2x2)/F(4x4) keeps one U, shared by its forward and backward, and all of them share
    scratch buffers (per tag, grown to the largest call). GPU (engine/ops/winograd_gpu.py): the
    U both ways (F(2x2), or F(4x4) where chosen); its V and M are counted per call in the pass (_pass_peak)."""
    from .ops import winograd

    weights, scratch = 0, {}
    prefixes = winograd.u_prefixes(t.conv.items(), item)
    for name, kind, _ in t.layers[:top + 1]:
        if kind == "pool":
            h, w = h // 2, w // 2
        if kind != "conv":
            continue
        cout, cin = t.conv[name][:2]
        if device != "cpu":
            algo = _choose(cin, cout, h, w, device)
            if algo != "im2col":
                weights += 2 * (int(algo[1]) + 2) ** 2 * cout * cin
            continue
        for backward, algo in ((False, _choose(cin, cout, h, w)), (True, _choose(cout, cin, h, w))):
            if algo in ("im2col", "direct"):  # direct: its output, and a row or band per thread
                continue
            m = int(algo[1])
            if not winograd.keeps_u(cin, cout, m, item, prefixes[name], min(h, w)):  # made at each call
                scratch["u"] = max(scratch.get("u", 0), winograd.u_block_elements(cin, cout, m, backward, item))
            elif not backward or _choose(cin, cout, h, w) != algo:
                weights += winograd.weight_elements(cin, cout, m)
            for tag, size in winograd.scratch_elements(n, cin, cout, h, w, m, backward, item).items():
                scratch[tag] = max(scratch.get(tag, 0), size)
    return item * (weights + sum(scratch.values()))


def _targets_bytes(t: _Table, n, h, w, terms, item) -> int:
    total = 2 * n * 3 * h * w * item  # the input image and the starting image
    for kind, layer in terms:
        if kind == "tv" or layer is None:
            total += n * 3 * h * w * item
            continue
        c, hh, ww = map_shape(layer, h, w, t.arch)
        total += (c * c if kind == "gram" else n * c * hh * ww) * item
    return total


def _im2col(cin, cout, h, w, device="cpu") -> bool:
    """Whether a conv of these sizes gathers an im2col buffer (else Winograd) on ``device``."""
    return _choose(cin, cout, h, w, device) == "im2col"


def _pass_peak(t: _Table, n, h, w, terms, top, item, pooling, device="cpu") -> int:
    """Peak bytes of one forward + backward pass (value_and_grad), beyond weights/targets.

    Replays the allocations: ``live`` is what is held, ``peak`` the most ever held."""
    from .ops import winograd

    want = {l for _, l in terms if l}
    h0, w0 = h, w
    x = n * 3 * h * w * item
    live = 2 * x  # the float32 device copy of x, and the gradient w.r.t. x it ends with
    peak, steps, c, i = live, [], 3, 0
    while i <= top:
        name, kind, owner = t.layers[i]
        if kind == "conv":
            cout, hw = t.conv[name][0], h * w
            fused = name not in want and i + 1 <= len(t.layers) - 1 and t.layers[i + 1][1] == "relu"
            out = n * cout * hw * item
            if _im2col(c, cout, h, w, device):
                peak = max(peak, live + n * c * 9 * hw * item + out)   # gather + GEMM output
                peak = max(peak, live + 2 * out)                       # ReLU: pre-activation and output
            elif device != "cpu":  # the GPU's Winograd: V and M per call (winograd_gpu.winograd_bytes)
                from .ops.winograd_gpu import winograd_bytes

                m = int(_choose(c, cout, h, w, device)[1])
                peak = max(peak, live + winograd_bytes(n, c, cout, h, w, item, m) + (1 if fused else 2) * out)
            elif _choose(c, cout, h, w, device) == "direct":  # a zero-padded copy of the input
                peak = max(peak, live + n * c * (h + 2) * (w + 2) * item + (1 if fused else 2) * out)
            else:  # Winograd: in the shared scratch buffers, the ReLU fused into the output transform
                peak = max(peak, live + (1 if fused else 2) * out)
            live += out if fused else 2 * out
            steps.append(("conv_relu" if fused else "conv", c, cout, hw, _choose(cout, c, h, w, device), out))
            if fused:
                i += 1
            c = cout
        elif kind == "relu":
            live += n * c * h * w * item
            steps.append(("relu", c, c, h * w, None, n * c * h * w * item))
        elif kind == "pool":
            hw_in = h * w
            h, w = h // 2, w // 2
            live += n * c * h * w * (item + (1 if pooling == "max" else 0))
            steps.append(("pool", c, c, hw_in, None, n * c * h * w * (item + (1 if pooling == "max" else 0))))
        else:  # fc
            n_out = _FC[name]
            peak = max(peak, live + n * n_out * item)
            live += n * n_out * item
            steps.append(("fc", c * h * w, n_out, 1, None, n * n_out * item))
            c, h, w = n_out, 1, 1
        i += 1
    # the losses: a content term keeps F - F0; all their gradients exist before the walk down
    for kind, layer in terms:
        if kind == "tv" or layer is None:
            live += 2 * x  # the TV gradient, kept by its graph node, and its sum's temporary
            continue
        c_l, hh, ww = map_shape(layer, h0, w0, t.arch)
        f = n * c_l * hh * ww * item
        live += f if kind == "content" else 2 * c_l * c_l * item
        peak = max(peak, live + f)
        live += f  # its gradient
    peak = max(peak, live)
    # backward: at each step, the incoming gradient gy, the gather, and the outgoing gradient;
    # once a step's backward has run, the tape lets go of the output it kept (autograd.backward)
    for kind, cin, cout, hw, algo, kept in reversed(steps):   # algo: a conv's backward algorithm
        gathers = algo == "im2col"
        gy = n * cout * hw * item if kind != "pool" else n * cout * (hw // 4) * item
        if kind in ("conv", "conv_relu") and not gathers and device != "cpu":   # GPU Winograd: V and M
            m = int(algo[1])
            vm = (m + 2) ** 2 * (cin + cout) * n * -(-hw // (m * m)) * item   # V and M, H*W/m^2 tiles
            peak = max(peak, live + gy + vm + n * cin * hw * item)
        elif kind in ("conv", "conv_relu") and not gathers:  # Winograd: the mask fused, scratch shared
            peak = max(peak, live + gy + n * cin * hw * item)
        elif kind in ("conv", "conv_relu"):
            cols = n * cout * 9 * hw * item
            gx = n * cin * hw * item
            masked = n * cout * hw * (item + 1) if kind == "conv_relu" else 0  # gy * (y > 0), its mask
            layout = cin * cout * 9 * item   # the backward layout, made for this call when large
            layout = layout if layout > winograd.u_cache_bytes() else 0
            peak = max(peak, live + gy + cols + layout + max(masked, gx))
        elif kind == "pool":
            peak = max(peak, live + gy + n * cin * hw * item)
        else:
            peak = max(peak, live + 2 * gy)
        live -= kept
    return int(peak)
