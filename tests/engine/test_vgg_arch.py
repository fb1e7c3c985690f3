"""--arch: the VGG-11/13/16/19 block tables, their shapes, files, errors, and the tasks."""
import json

import numpy as np
import pytest

from engine import UserError, gradcheck
from engine.arch import ARCHS, CONV_SHAPES, LAYER_NAMES
from engine.vgg import VGG19

CONVS = {"vgg11": 8, "vgg13": 10, "vgg16": 13, "vgg19": 16}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_forward_shapes_of_each_architecture(arch):
    net = VGG19.random(seed=0, device="cpu", arch=arch)
    assert len(net.conv_shapes) == CONVS[arch] and net.arch == arch
    names = [n for n in net.layer_names() if not n.startswith(("fc", "relu6", "relu7"))]
    feats = net.features(np.zeros((1, 3, 32, 48), np.float32), names)
    channels = dict(net.conv_shapes)
    for name in names:
        b = int(name[4]) if name.startswith(("conv", "relu", "pool")) else None
        side = 32 >> (b if name.startswith("pool") else b - 1), 48 >> (b if name.startswith("pool") else b - 1)
        c = channels[f"conv{b}_1"][0]
        assert feats[name].shape == (1, c, *side), name
    # every block ends on its last conv: e.g. vgg16's block 3 is conv3_1..conv3_3
    last3 = [n for n, _ in net.conv_shapes if n.startswith("conv3_")][-1]
    assert last3 == {"vgg11": "conv3_2", "vgg13": "conv3_2", "vgg16": "conv3_3", "vgg19": "conv3_4"}[arch]


def test_vgg19_draws_unchanged():
    """VGG-19 weights for a seed are bit-identical to the documented rule (one generator,
    layer order), and its meta carries no arch key (files written before stay equal)."""
    net = VGG19.random(seed=5, device="cpu")
    rng = np.random.default_rng(5)
    for name, shape in CONV_SHAPES:
        assert np.array_equal(net.params[name][0], rng.standard_normal(shape, dtype=np.float32) * np.float32(0.015))
    assert "arch" not in net.meta and net.layer_names() == LAYER_NAMES


def test_other_depths_share_the_stream_start():
    """conv1_1 is the first draw in every architecture; later layers differ in shape."""
    a, b = VGG19.random(seed=2, device="cpu", arch="vgg11"), VGG19.random(seed=2, device="cpu")
    assert np.array_equal(a.params["conv1_1"][0], b.params["conv1_1"][0])
    assert "conv1_2" not in a.params and a.params["conv2_1"][0].shape == (128, 64, 3, 3)


def test_save_load_keeps_the_architecture(tmp_path):
    net = VGG19.random(seed=1, device="cpu", arch="vgg13")
    net.save(tmp_path / "n.npz")
    back = VGG19.load(tmp_path / "n.npz", device="cpu")
    assert back.arch == "vgg13" and json.loads(json.dumps(back.meta))["arch"] == "vgg13"
    assert np.array_equal(back.params["conv4_2"][0], net.params["conv4_2"][0])


def test_layers_missing_from_an_architecture_are_a_clear_error():
    net = VGG19.random(seed=0, device="cpu", arch="vgg11")
    with pytest.raises(UserError, match="unknown layer 'conv3_3' in vgg11.*relu3_2"):
        net.features(np.zeros((1, 3, 32, 32), np.float32), ["conv3_3"])
    with pytest.raises(UserError, match="unknown architecture"):
        VGG19.random(arch="vgg12")


def test_vgg11_gradient():
    chk = next(c for c in gradcheck.standard_checks() if c.name.startswith("vgg11"))
    assert chk.run("cpu") < gradcheck.TOLERANCE


def test_arch_option_in_a_task(tmp_path, capsys):
    from tasks import invert

    _, log = invert.run(image="coffee", layer="relu3_2", size=32, iters=2, device="cpu", arch="vgg16",
                        out=str(tmp_path / "i.png"), print_every=0)
    assert log["network"]["arch"] == "vgg16" and log["status"] == "done"
    with pytest.raises(UserError, match="unknown layer 'relu3_4' in vgg16"):
        invert.run(image="coffee", layer="relu3_4", size=32, iters=2, device="cpu", arch="vgg16",
                   out=str(tmp_path / "i.png"))
    VGG19.random(seed=0, device="cpu", arch="vgg11").save(tmp_path / "w.npz")
    with pytest.raises(UserError, match="holds a vgg11"):
        invert.run(weights=str(tmp_path / "w.npz"), arch="vgg19", size=32, iters=2, device="cpu",
                   out=str(tmp_path / "i.png"))


def test_arch_on_the_command_line(capsys):
    from tasks import invert

    assert invert.main(["--arch", "vgg11", "--list-layers", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "conv3_2" in out and "conv3_3" not in out and "pool5    512 x 1 x 1" in out
    assert invert.main(["--arch", "vgg10"]) == 2
    assert "invalid choice" in capsys.readouterr().err
