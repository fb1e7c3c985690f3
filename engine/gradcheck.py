"""One finite-difference gradient checker, used by every op/loss test and by ``tasks.gradcheck``.

For a scalar function f with analytic gradient g, and random directions d:

    fd = (f(x + eps d) - f(x - eps d)) / (2 eps)         an = <g(x), d>
    error = |fd - an| / max(|fd|, |an|)

in float64 (central differences: truncation O(eps^2), round-off O(1e-16 / eps)). An op with an
array output is made scalar with a fixed random projection r: f(x) = <op(x), r>, whose gradient
is the op's backward applied to r, which is exactly what is being tested.

``standard_checks(device)`` lists every op, every loss, the objectives and the whole network
on small shapes; the test suite and ``ranvgg gradcheck`` both run it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import backend
from .autograd import Tensor, add, backward

TOLERANCE = 1e-6


def check(fn, x, n_dirs: int = 3, eps: float = 1e-6, seed: int = 0) -> float:
    """Largest relative error over ``n_dirs`` random directions.

    fn(x) -> (value: float, grad: array of x's shape); x: float64 array (NumPy or CuPy).
    ``eps`` is relative to the root-mean-square of x (so pixel-scale and unit-scale inputs
    are probed alike)."""
    xp = backend.array_module(x)
    if x.dtype != np.float64:
        raise ValueError("gradient checks run in float64")
    rng = np.random.default_rng(seed)
    _, grad = fn(x)
    scale = float(xp.sqrt((x * x).mean())) or 1.0
    h = eps * scale
    worst = 0.0
    for _ in range(n_dirs):
        d = xp.asarray(rng.standard_normal(x.shape))
        fd = (fn(x + h * d)[0] - fn(x - h * d)[0]) / (2 * h)
        an = float((grad * d).sum())
        denom = max(abs(fd), abs(an))
        if denom == 0.0:
            continue  # both exactly zero: nothing to compare, and nothing wrong
        worst = max(worst, abs(fd - an) / denom)
    return worst


def scalarized(op, seed: int = 1):
    """Turn ``op(Tensor) -> Tensor`` into fn(x) -> (<op(x), r>, d<op(x), r>/dx)."""
    cache = {}

    def fn(x):
        xp = backend.array_module(x)
        xt = Tensor(x, requires_grad=True)
        y = op(xt)
        if "r" not in cache:
            cache["r"] = xp.asarray(np.random.default_rng(seed).standard_normal(y.shape))
        r = cache["r"]
        backward(y, r)
        return float((y.data * r).sum()), xt.grad

    return fn


def scalar_fn(loss):
    """Turn ``loss(Tensor) -> 0-d Tensor`` into fn(x) -> (value, gradient)."""

    def fn(x):
        xt = Tensor(x, requires_grad=True)
        out = loss(xt)
        backward(out)
        return float(out.data), xt.grad

    return fn


@dataclass
class Check:
    name: str
    shape: tuple
    make: object           # make(device) -> (fn, x)
    n_dirs: int = 3
    eps: float = 1e-6

    def run(self, device: str = "cpu") -> float:
        fn, x = self.make(device)
        return check(fn, x, self.n_dirs, self.eps)


def _rand(device, shape, seed, scale=1.0):
    return backend.to_device(np.random.default_rng(seed).standard_normal(shape) * scale, device, np.float64)


def _conv_params(device, cin, cout, seed, bias=True):
    from .ops.conv3x3 import ConvWeights

    b = _rand(device, (cout,), seed + 1) if bias else backend.to_device(np.zeros(cout), device, np.float64)
    return ConvWeights(_rand(device, (cout, cin, 3, 3), seed, 0.3), b)


def _op_checks():
    from .ops import border, conv3x3, fc, fftconv, gram, losses, pooling, project, relu, spectrum, stats, tv

    def conv(device):  # 3 channels in: the image layer's algorithm (direct sums on the CPU)
        p = _conv_params(device, 3, 4, 10)
        return scalarized(lambda t: conv3x3.conv3x3(t, p)), _rand(device, (2, 3, 5, 6), 0)

    def conv_relu(device):
        p = _conv_params(device, 3, 4, 11)
        return scalarized(lambda t: conv3x3.conv3x3_relu(t, p)), _rand(device, (2, 3, 6, 5), 1)

    def im2col(device):
        p = _conv_params(device, 3, 4, 12)
        return scalarized(lambda t: conv3x3.conv3x3_relu(t, p, algorithm="im2col")), _rand(device, (2, 3, 6, 5), 3)

    def winograd(m):  # on the GPU this is im2col again: Winograd is CPU only
        def make(device):
            p = _conv_params(device, 3, 4, 24 + m)
            return scalarized(lambda t: conv3x3.conv3x3_relu(t, p, algorithm=f"f{m}")), _rand(device, (2, 3, 7, 9), m)
        return make

    def relu_(device):
        return scalarized(relu.relu), _rand(device, (2, 3, 4, 5), 2)

    def avg(device):
        return scalarized(pooling.avgpool2), _rand(device, (2, 3, 5, 7), 3)

    def mx(device):
        return scalarized(pooling.maxpool2), _rand(device, (2, 3, 6, 7), 4)

    def fc_(device):
        p = fc.FCWeights(_rand(device, (5, 16), 12, 0.3), _rand(device, (5,), 13))
        return scalarized(lambda t: fc.fc(t, p)), _rand(device, (2, 4, 2, 2), 5)

    def gram_(device):
        return scalarized(gram.gram), _rand(device, (2, 4, 3, 5), 6)

    def content(device):
        target = _rand(device, (2, 4, 3, 5), 14)
        return scalar_fn(lambda t: losses.content_loss(t, target, 0.7)), _rand(device, (2, 4, 3, 5), 7)

    def gram_loss(device):
        g0 = gram.gram_forward(_rand(device, (1, 4, 3, 5), 15))
        return scalar_fn(lambda t: losses.gram_loss(t, g0, 0.7)), _rand(device, (2, 4, 3, 5), 8)

    def shifted_gram_loss(device):  # 1 row down, 2 columns across: a non-square overlap, a non-symmetric Gram
        g0 = gram.shifted_gram_forward(_rand(device, (1, 4, 3, 5), 41), (1, 2))
        return scalar_fn(lambda t: losses.shifted_gram_loss(t, g0, (1, 2), 0.7)), _rand(device, (2, 4, 3, 5), 42)

    def fft_conv(device):  # a 5 px filter on a 9 x 11 image: "valid" output, no wrap-around
        w = _rand(device, (4, 3, 5, 5), 34)
        return scalarized(lambda t: fftconv.fftconv(t, w)), _rand(device, (2, 3, 9, 11), 35)

    def moments_loss(device):
        mu0, c0 = stats.moments(_rand(device, (1, 4, 3, 5), 30))
        return scalar_fn(lambda t: stats.moments_loss(t, mu0, c0, 0.7)), _rand(device, (2, 4, 3, 5), 31)

    def balanced_moments_loss(device):  # each part relative to its target
        mu0, c0 = stats.moments(_rand(device, (1, 4, 3, 5), 30))
        ab = stats.balanced_scales(mu0, c0)
        return (scalar_fn(lambda t: stats.moments_loss(t, mu0, c0, 0.7, scales=ab)),
                _rand(device, (2, 4, 3, 5), 31))

    def swd_loss(device):  # a target of another size (15 positions resampled from 20)
        d = stats.directions(4, 6, 0, xp=backend.xp_for(device), dtype=np.float64)
        t = stats.sorted_projections(_rand(device, (1, 4, 4, 5), 32), d, 15)
        return scalar_fn(lambda x: stats.sliced_wasserstein_loss(x, t, d, 0.7)), _rand(device, (2, 4, 3, 5), 33)

    def spectrum_loss(device):  # a target from an exemplar of another size (resampled frequencies)
        t = spectrum.spectrum_target(_rand(device, (1, 3, 7, 10), 36), (2, 3, 5, 6))
        return scalar_fn(lambda x: spectrum.spectrum_loss(x, t, 0.7)), _rand(device, (2, 3, 5, 6), 37)

    def project_(device):  # 3 random projections of 7 channels
        p = project.projection(7, 3, 0, backend.xp_for(device), np.float64)
        return scalarized(lambda t: project.project(t, p)), _rand(device, (2, 7, 3, 4), 40)

    def wrap(device):  # wider than the image on one side: the image repeats more than once
        return scalarized(lambda t: border.wrap_pad(t, 6)), _rand(device, (2, 3, 4, 7), 38)

    def crop_(device):
        return scalarized(lambda t: border.crop(t, 1, 2, 3, 4)), _rand(device, (2, 3, 5, 7), 39)

    def tv_(device):
        return scalar_fn(lambda t: tv.tv_loss(t, 0.3)), _rand(device, (2, 3, 5, 6), 9)

    def chain(device):  # two consumers of one tensor: the autograd must accumulate
        p = _conv_params(device, 3, 4, 16)
        target = _rand(device, (1, 4, 4, 6), 17)
        g0 = gram.gram_forward(_rand(device, (1, 4, 2, 3), 18))

        def loss(t):
            h = conv3x3.conv3x3_relu(t, p)
            return add(losses.content_loss(h, target), losses.gram_loss(pooling.avgpool2(h), g0))

        return scalar_fn(loss), _rand(device, (1, 3, 4, 6), 19)

    return [
        Check("conv3x3 (bias)", (2, 3, 5, 6), conv),
        Check("conv3x3+relu", (2, 3, 6, 5), conv_relu),
        Check("conv3x3+relu im2col", (2, 3, 6, 5), im2col),
        Check("conv3x3+relu Winograd F(2x2)", (2, 3, 7, 9), winograd(2)),
        Check("conv3x3+relu Winograd F(4x4)", (2, 3, 7, 9), winograd(4)),
        Check("relu", (2, 3, 4, 5), relu_),
        Check("avgpool2 (odd)", (2, 3, 5, 7), avg),
        Check("maxpool2 (odd)", (2, 3, 6, 7), mx),
        Check("fc", (2, 4, 2, 2), fc_),
        Check("gram", (2, 4, 3, 5), gram_),
        Check("content loss", (2, 4, 3, 5), content),
        Check("gram loss", (2, 4, 3, 5), gram_loss),
        Check("shifted Gram loss (long-range correlations)", (2, 4, 3, 5), shifted_gram_loss),
        Check("FFT convolution (large filters)", (2, 3, 9, 11), fft_conv),
        Check("moments loss (mean, covariance)", (2, 4, 3, 5), moments_loss),
        Check("moments loss, balanced", (2, 4, 3, 5), balanced_moments_loss),
        Check("sliced Wasserstein loss", (2, 4, 3, 5), swd_loss),
        Check("Fourier spectrum loss", (2, 3, 5, 6), spectrum_loss),
        Check("total variation", (2, 3, 5, 6), tv_),
        Check("random projection of the channels", (2, 7, 3, 4), project_),
        Check("periodic padding (wrap around)", (2, 3, 4, 7), wrap),
        Check("crop", (2, 3, 5, 7), crop_),
        Check("autograd: shared input", (1, 3, 4, 6), chain),
    ]


def _net_checks():
    from .objectives import Ensemble, Objective
    from .vgg import VGG19

    def net_fn(device, pooling, layers):
        net = VGG19.random(seed=3, sigma=0.05, pooling=pooling, device=device, dtype=np.float64)
        x0 = np.random.default_rng(20).uniform(-100, 100, (1, 3, 32, 32))
        obj = Objective.texture(net, x0, layers[1:])
        obj.terms.insert(0, Objective.inversion(net, x0 * 0.5, layers[0]).terms[0])
        obj.layers = sorted({t.layer for t in obj.terms}, key=net.layer_names().index)
        return obj

    def network(pooling):
        def make(device):
            obj = net_fn(device, pooling, ["relu3_1", "relu1_1", "pool2", "pool5"])
            return obj.value_and_grad, _rand(device, (1, 3, 32, 32), 21, 50.0)
        return make

    def network_fc(device):
        # fc layers sized for a 32x32 input (pool5 1x1): the same code path as 256x256 / fc6 32768
        rng = np.random.default_rng(22)
        net = VGG19.random(seed=4, sigma=0.05, device=device, dtype=np.float64)
        n_in = 512
        for name, n_out in (("fc6", 64), ("fc7", 32), ("fc8", 10)):
            net.params[name] = (rng.standard_normal((n_out, n_in)).astype(np.float32) * np.float32(0.1),
                                np.zeros(n_out, np.float32))
            n_in = n_out
        net._fc_source = None
        x0 = rng.uniform(-100, 100, (1, 3, 32, 32))
        obj = Objective.inversion(net, x0, ["relu2_1", "relu7", "fc8"])
        return obj.value_and_grad, _rand(device, (1, 3, 32, 32), 23, 50.0)

    def vgg11(device):
        # another depth from the same block tables (engine/vgg.py ARCHS): one conv in blocks 1-2
        net = VGG19.random(seed=6, sigma=0.05, device=device, dtype=np.float64, arch="vgg11")
        x0 = np.random.default_rng(26).uniform(-100, 100, (1, 3, 32, 32))
        obj = Objective.inversion(net, x0, ["relu2_1", "relu3_2", "pool5"])
        return obj.value_and_grad, _rand(device, (1, 3, 32, 32), 27, 50.0)

    def style(device):
        net = VGG19.random(seed=5, sigma=0.05, device=device, dtype=np.float64)
        rng = np.random.default_rng(24)
        xc, xs1, xs2 = (rng.uniform(-100, 100, (1, 3, s, s)) for s in (16, 16, 24))
        obj = Objective.style(net, xc, [xs1, xs2], blend=[0.7, 0.3], content_layer="relu2_2",
                              style_layers=["relu1_1", "relu2_1", "relu3_1"], tv_weight=10.0)
        obj.calibrate(xc)
        return obj.value_and_grad, _rand(device, (1, 3, 16, 16), 25, 50.0)

    def pyramid(device):  # Gram terms on x 2x2-averaged once and twice: the graph runs through the averaging;
        # and the long-range terms at 4 and 8 px of two style images of two sizes, blended
        net = VGG19.random(seed=7, sigma=0.05, device=device, dtype=np.float64)
        rng = np.random.default_rng(26)
        xc, xs = rng.uniform(-100, 100, (2, 1, 3, 32, 32))
        obj = Objective.style(net, xc, [xs, rng.uniform(-100, 100, (1, 3, 40, 40))], blend=[0.6, 0.4],
                              content_layer="relu1_2", style_layers=["relu1_1", "relu2_1"], tv_weight=1.0, levels=3,
                              shifts=(4, 8))
        obj.calibrate(xc)
        return obj.value_and_grad, _rand(device, (1, 3, 32, 32), 27, 50.0)

    def style_stats(device):  # blended mean-and-covariance terms, the colour term, content on x averaged once,
        # the filter bank's blended Gram terms (3, 5 and 7 px here), the blended Fourier spectra
        net = VGG19.random(seed=11, sigma=0.05, device=device, dtype=np.float64)
        rng = np.random.default_rng(32)
        xc, xs1, xs2 = (rng.uniform(-100, 100, (1, 3, s, s)) for s in (16, 16, 24))
        obj = Objective.style(net, xc, [xs1, xs2], blend=[0.6, 0.4], content_layer="relu1_2",
                              style_layers=["relu1_1", "relu2_1"], tv_weight=1.0, feature_stats="gram+moments",
                              pixel_stats="moments", content_level=1, bank_maps=2, spectrum_weight=0.5)
        obj.calibrate(xc)
        return obj.value_and_grad, _rand(device, (1, 3, 16, 16), 33, 50.0)

    def texture_stats(device):  # colour and per-layer distribution terms, at another output size
        net = VGG19.random(seed=8, sigma=0.05, device=device, dtype=np.float64)
        xs = np.random.default_rng(28).uniform(-100, 100, (1, 3, 24, 32))
        obj = Objective.texture(net, xs, ["relu1_1", "relu2_1"], shape=(1, 3, 16, 16), pixel_stats="swd",
                                feature_stats="gram+moments")
        more = Objective.texture(net, xs, ["relu2_1"], shape=(1, 3, 16, 16), pixel_stats="moments",
                                 feature_stats="swd", bank_maps=3,  # the filter bank: 3 and 5 px here
                                 spectrum_weight=0.5)
        balanced = Objective.texture(net, xs, ["relu1_1"], shape=(1, 3, 16, 16), feature_stats="gram+balanced",
                                     shifts=(2, 4))  # long-range terms at 2 and 4 px, from an exemplar of another size
        obj.terms += more.terms + balanced.terms
        obj.bank = more.bank
        obj.calibrate(_rand(device, (1, 3, 16, 16), 29, 50.0))
        return obj.value_and_grad, _rand(device, (1, 3, 16, 16), 29, 50.0)

    def periodic(device):  # a periodic synthesis (the net sees x wrapped around, each map cut back) from an
        # exemplar's interior statistics, with a pyramid level: the wrap, the cuts and the averaging in one graph
        net = VGG19.random(seed=14, sigma=0.05, device=device, dtype=np.float64)
        xs = np.random.default_rng(36).uniform(-100, 100, (1, 3, 24, 28))
        obj = Objective.texture(net, xs, ["relu1_1", "relu2_1"], shape=(1, 3, 16, 16), levels=2,
                                feature_stats="gram+moments", interior=True, periodic=True, shifts=(2,))
        obj.calibrate(_rand(device, (1, 3, 16, 16), 37, 50.0))
        return obj.value_and_grad, _rand(device, (1, 3, 16, 16), 37, 50.0)

    def projected(device):  # Gram, moments and sliced Wasserstein terms of projected channels (relu2_1: 128 -> 16),
        # a style objective with them beside an unprojected layer (relu1_1: 64 channels, fewer than 80)
        net = VGG19.random(seed=15, sigma=0.05, device=device, dtype=np.float64)
        rng = np.random.default_rng(38)
        xs, xc = rng.uniform(-100, 100, (1, 3, 24, 28)), rng.uniform(-100, 100, (1, 3, 16, 16))
        obj = Objective.texture(net, xs, ["relu2_1"], shape=(1, 3, 16, 16), feature_stats="gram+moments", project=16)
        more = Objective.texture(net, xs, ["relu2_1"], shape=(1, 3, 16, 16), feature_stats="swd", project=16,
                                 shifts=(4,))   # a long-range term of the projected channels (2 positions)
        style = Objective.style(net, xc, [xs], content_layer="relu1_2", style_layers=["relu1_1", "relu2_1"],
                                tv_weight=0.0, pixel_stats="none", project=80)
        obj.terms += more.terms + style.terms
        obj.layers = sorted({t.layer for t in obj.terms}, key=net.layer_names().index)
        obj.calibrate(xc)
        return obj.value_and_grad, _rand(device, (1, 3, 16, 16), 39, 50.0)

    def ensemble(device):  # two independently drawn nets, other weight statistics: their objectives summed
        nets = [VGG19.random(seed=9, sigma=0.05, device=device, dtype=np.float64, init="orthogonal"),
                VGG19.random(seed=10, device=device, dtype=np.float64, init="zero-mean-first")]
        xs = np.random.default_rng(30).uniform(-100, 100, (1, 3, 16, 16))
        obj = Ensemble([Objective.texture(n, xs, ["relu1_1", "relu2_1"], pixel_stats="moments" if k == 0 else "none")
                        for k, n in enumerate(nets)])
        obj.calibrate(_rand(device, (1, 3, 16, 16), 31, 50.0))
        return obj.value_and_grad, _rand(device, (1, 3, 16, 16), 31, 50.0)

    def style_ensemble(device):  # the style command's --ensemble: content, colour and TV in the first net only
        nets = [VGG19.random(seed=s, sigma=0.05, device=device, dtype=np.float64) for s in (12, 13)]
        xc, xs = np.random.default_rng(34).uniform(-100, 100, (2, 1, 3, 16, 16))
        obj = Ensemble([Objective.style(n, xc, [xs], content_layer="relu1_2", style_layers=["relu1_1", "relu2_1"],
                                        content_weight=10.0, tv_weight=1.0 if k == 0 else 0.0, with_content=k == 0,
                                        feature_stats="gram+moments", pixel_stats="moments" if k == 0 else "none")
                        for k, n in enumerate(nets)])
        obj.calibrate(xc)
        return obj.value_and_grad, _rand(device, (1, 3, 16, 16), 35, 50.0)

    # Through 16 ReLUs a +-eps probe can cross a kink, where central differences are wrong
    # by O(eps) (measured at pool5: 6e-3 at eps=1e-6, 5e-8 at 1e-7); a smaller step avoids it.
    return [
        Check("network avg pool (to pool5)", (1, 3, 32, 32), network("avg"), eps=1e-7),
        Check("network max pool (to pool5)", (1, 3, 32, 32), network("max"), eps=1e-7),
        Check("network with fc (to fc8)", (1, 3, 32, 32), network_fc, eps=1e-7),
        Check("vgg11 network (to pool5)", (1, 3, 32, 32), vgg11, eps=1e-7),
        Check("style objective (Eq. 9)", (1, 3, 16, 16), style, eps=1e-5),  # 1e-7: round-off ~1e-6
        Check("style with a 3-level image pyramid and long-range terms", (1, 3, 32, 32), pyramid, eps=1e-7),
        Check("style with centred statistics, colour, coarse content, filter bank", (1, 3, 16, 16), style_stats,
              eps=1e-7),
        Check("texture with colour, distribution and spectrum terms", (1, 3, 16, 16), texture_stats, eps=1e-7),
        Check("texture, periodic, from the exemplar's interior", (1, 3, 16, 16), periodic, eps=1e-7),
        Check("texture and style on projected channels", (1, 3, 16, 16), projected, eps=1e-7),
        Check("texture on an ensemble of two nets", (1, 3, 16, 16), ensemble, eps=1e-7),
        Check("style on an ensemble of two nets", (1, 3, 16, 16), style_ensemble, eps=1e-7),
    ]


def standard_checks() -> list[Check]:
    """Every op, every loss, the autograd, the objectives and the whole network."""
    return _op_checks() + _net_checks()
