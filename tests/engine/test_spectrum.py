"""The Fourier-spectrum loss (engine/ops/spectrum.py); its gradient is in the standard checks."""
import numpy as np
import pytest

from engine.autograd import Tensor
from engine.errors import UserError
from engine.objectives import Objective
from engine.ops.spectrum import spectrum_loss, spectrum_target
from engine.vgg import VGG19


def loss(x, target):
    return float(spectrum_loss(Tensor(x), target).data)


def test_zero_at_its_own_target_and_free_in_phase():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 12, 10))
    t = spectrum_target(x, x.shape)
    np.testing.assert_allclose(t, abs(np.fft.fft2(x)), rtol=1e-12)
    assert loss(x, t) < 1e-20
    # a circular shift or a mirror keeps |DFT|: the term does not pin a layout
    assert loss(np.roll(x, (5, 3), axis=(2, 3)), t) < 1e-20
    assert loss(x[:, :, ::-1, ::-1].copy(), t) < 1e-20
    other = rng.standard_normal(x.shape)
    assert loss(other, t) > 0.1


def test_target_is_size_free():
    # a cosine of period 8 px seen at 16 px, asked for at 32 px: the peak stays at 1/8 cycle/px
    # (index 4 of 32, not 2) and the power per pixel sum |T|^2 / M^2 is kept (the mean square, 1/2)
    i = np.arange(16)
    cosine = np.broadcast_to(np.cos(2 * np.pi * i / 8)[None, :], (16, 16))[None, None].repeat(3, 1)
    t = spectrum_target(cosine, (1, 3, 32, 32))
    assert np.argmax(t[0, 0, 0, :17]) == 4
    assert (t[0, 0] ** 2).sum() / 32 ** 4 == pytest.approx(0.5, rel=1e-12)
    # per-pixel: a tiled image has the same loss as its tile against their own-size targets
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8))
    y = np.random.default_rng(2).standard_normal((1, 3, 8, 8))
    tiled = np.tile(x, (1, 1, 2, 2))
    t8 = spectrum_target(y, x.shape)
    t16 = spectrum_target(np.tile(y, (1, 1, 2, 2)), tiled.shape)
    assert loss(tiled, t16) == pytest.approx(loss(x, t8), rel=1e-10)


def test_texture_objective_adds_the_term_only_when_weighted():
    net = VGG19.random(seed=0, device="cpu")
    xs = np.random.default_rng(3).uniform(-100, 100, (1, 3, 32, 32)).astype(np.float32)
    assert "spectrum" not in [t.kind for t in Objective.texture(net, xs, ["relu1_1"]).terms]
    obj = Objective.texture(net, xs, ["relu1_1"], shape=(1, 3, 24, 40), spectrum_weight=2.0)
    spec = [t for t in obj.terms if t.kind == "spectrum"]
    assert len(spec) == 1 and spec[0].weight == 2.0 and spec[0].target.shape == (1, 3, 24, 40)
    with pytest.raises(UserError, match="spectrum weight"):
        Objective.texture(net, xs, ["relu1_1"], spectrum_weight=-1.0)


def test_style_objective_blends_the_style_images_power_spectra():
    net = VGG19.random(seed=0, device="cpu")
    rng = np.random.default_rng(4)
    xc, xs1 = rng.uniform(-100, 100, (2, 1, 3, 32, 32)).astype(np.float32)
    xs2 = rng.uniform(-100, 100, (1, 3, 24, 40)).astype(np.float32)
    kw = dict(content_layer="relu1_2", style_layers=["relu1_1"], colour_first=0.0)
    assert "spectrum" not in [t.kind for t in Objective.style(net, xc, [xs1], **kw).terms]
    obj = Objective.style(net, xc, [xs1, xs2], blend=[3, 1], spectrum_weight=4.0, **kw)
    spec = [t for t in obj.terms if t.kind == "spectrum"]
    assert len(spec) == 1 and spec[0].weight == 4.0 and spec[0].target.shape == (1, 3, 32, 32)
    power = 0.75 * spectrum_target(xs1, xc.shape) ** 2 + 0.25 * spectrum_target(xs2, xc.shape) ** 2
    np.testing.assert_allclose(spec[0].target, np.sqrt(power), rtol=1e-5)
    with pytest.raises(UserError, match="spectrum weight"):
        Objective.style(net, xc, [xs1], spectrum_weight=float("nan"), **kw)
