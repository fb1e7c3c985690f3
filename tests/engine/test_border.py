"""The image's border: interior windows, the periodic padding and the periodic objective."""
import numpy as np
import pytest

from engine.arch import interior, map_shape, periodic_pad, receptive_field
from engine.autograd import Tensor
from engine.errors import UserError
from engine.objectives import Objective, pinned_layers
from engine.ops.border import crop, wrap_pad
from engine.vgg import VGG19

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "pool3", "relu4_1"]


@pytest.fixture(scope="module")
def net():
    return VGG19.random(seed=3, sigma=0.05, dtype=np.float64)


def test_receptive_fields_follow_the_table():
    # conv: one step more on each side; pool: the jump doubles, one step more on the far side
    assert receptive_field("relu1_1") == (1, 1, 1)
    assert receptive_field("relu2_1") == (2, 4, 5)      # VGG's 10 px window at relu2_1
    assert receptive_field("relu3_1") == (4, 10, 13)    # 24 px
    assert receptive_field("relu1_1", pools_before=1) == (2, 2, 3)
    with pytest.raises(UserError, match="whole image"):
        receptive_field("fc6")


def test_interior_positions_see_only_the_image(net):
    """The image placed inside a larger one of other pixels: the interior positions' features do
    not change, and the ring just outside the window does (the window is the largest such)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-100, 100, (1, 3, 40, 48))
    big = rng.uniform(-100, 100, (1, 3, 72, 80))
    big[:, :, 16:56, 16:64] = x
    fx, fb = net.features(x, LAYERS[:3]), net.features(big, LAYERS[:3])
    for layer in LAYERS[:3]:
        top, left, rows, cols = interior(layer, 40, 48)
        o = 16 // receptive_field(layer)[0]
        inside = fx[layer][:, :, top:top + rows, left:left + cols]
        np.testing.assert_allclose(inside, fb[layer][:, :, o + top:o + top + rows, o + left:o + left + cols],
                                   rtol=0, atol=1e-9 * np.abs(inside).max())
        ring = fx[layer][:, :, top - 1:top + rows, left - 1:left + cols]
        assert np.abs(ring - fb[layer][:, :, o + top - 1:o + top + rows, o + left - 1:o + left + cols]).max() > 1e-3
    assert interior("pool3", 40, 48)[2] <= 0 and interior("relu3_1", 128, 128) == (3, 3, 26, 26)


def test_wrapped_image_gives_the_features_of_the_tiled_image(net):
    x = np.random.default_rng(1).uniform(-100, 100, (1, 3, 40, 48))
    p = periodic_pad(LAYERS)
    assert p % 8 == 0 and p >= receptive_field("relu4_1")[1]
    fw = net.features(wrap_pad(Tensor(x), p).data, LAYERS)
    ft = net.features(np.tile(x, (1, 1, 5, 5)), LAYERS)   # the periodic image, far from its border
    for layer in LAYERS:
        j = receptive_field(layer)[0]
        _, rows, cols = map_shape(layer, 40, 48)
        a = fw[layer][:, :, p // j:p // j + rows, p // j:p // j + cols]
        b = ft[layer][:, :, 80 // j:80 // j + rows, 96 // j:96 // j + cols]
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * np.abs(b).max())


def test_wrap_pad_wider_than_the_image_repeats_it():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    y = wrap_pad(Tensor(x), 7).data
    rows, cols = (np.arange(4 + 14) - 7) % 4, (np.arange(5 + 14) - 7) % 5
    np.testing.assert_array_equal(y, x[:, :, rows][:, :, :, cols])
    assert wrap_pad(Tensor(x), 0).data is x
    with pytest.raises(UserError, match="whole number"):
        wrap_pad(Tensor(x), -1)
    with pytest.raises(UserError, match="does not fit"):
        crop(Tensor(x), 2, 0, 3, 5)


def test_periodic_objective_has_no_border(net):
    """A periodic synthesis' loss and gradient do not change when x is rolled: no position is
    special. The plain objective's do (its border is)."""
    rng = np.random.default_rng(2)
    xs = rng.uniform(-100, 100, (1, 3, 32, 32))
    x = rng.uniform(-100, 100, (1, 3, 32, 32))
    rolled = np.roll(x, (8, 12), axis=(2, 3))
    for periodic in (True, False):
        obj = Objective.texture(net, xs, ["relu1_1", "relu2_1", "relu3_1"], feature_stats="gram+moments",
                                interior=True, periodic=periodic)
        obj.calibrate(x)
        v, g = obj.value_and_grad(x)
        vr, gr = obj.value_and_grad(rolled)
        same = abs(v - vr) <= 1e-9 * v and np.allclose(np.roll(g, (8, 12), axis=(2, 3)), gr, rtol=1e-7, atol=0)
        assert same == periodic, (periodic, v, vr)
    assert obj.pad == 0 and Objective.texture(net, xs, ["relu1_1", "relu2_1"], periodic=True).pad == 4


def test_interior_statistics_leave_the_exemplars_border_out(net):
    """The interior Gram target is the Gram over the interior window, scaled to the output's
    positions (per position, as the whole map's)."""
    rng = np.random.default_rng(3)
    xs = rng.uniform(-100, 100, (1, 3, 32, 32))
    t = {tm.layer: tm.target for tm in Objective.texture(net, xs, ["relu2_1"], interior=True).terms}
    f = net.features(xs, ["relu2_1"])["relu2_1"]
    top, left, rows, cols = interior("relu2_1", 32, 32)
    w = f[0, :, top:top + rows, left:left + cols].reshape(f.shape[1], -1)
    np.testing.assert_allclose(t["relu2_1"][0], w @ w.T * (f.shape[2] * f.shape[3] / (rows * cols)), rtol=1e-10)


def test_pinned_rule_counts_interior_positions():
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    assert pinned_layers(layers, [(128, 128)]) == {0: ["relu4_1"]}
    # relu3_1 at 64 px: 16 x 16 = 256 positions for 256 channels, 10 x 10 inside
    assert pinned_layers(layers, [(64, 64)]) == {0: ["relu4_1"]}
    assert pinned_layers(layers, [(64, 64)], inside=[(64, 64)]) == {0: ["relu3_1", "relu4_1"]}
