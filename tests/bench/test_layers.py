"""bench.layers times each Winograd (and direct) conv inside one evaluation, per memory mode."""
import os

import pytest

from bench import layers
from engine.ops import direct, winograd


def test_layers_prints_a_row_per_conv_shape_and_pass(capsys, monkeypatch):
    monkeypatch.delenv("RANVGG_MEMORY", raising=False)
    layers.main(["--size", "32", "--layer", "pool2", "--repeat", "1"])
    out = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in out[2:-1]]
    assert {r[0] for r in rows} == {"forward", "backward"}
    assert {r[-3] for r in rows} >= {"direct", "F4"}   # the image layer's direct sums have rows too
    assert all(float(r[-1]) > 0 and float(r[-2]) > 0 for r in rows)   # lean and fast columns
    assert out[-1].split()[0] == "total"
    # the timing wrappers are gone and the mode restored
    assert winograd.winograd_conv.__name__ == "winograd_conv"
    assert direct.conv_forward.__name__ == "conv_forward"
    assert "RANVGG_MEMORY" not in os.environ


def test_layers_refuses_an_unknown_mode():
    with pytest.raises(SystemExit):
        layers.main(["--modes", "lean,turbo"])


def test_steps_prints_each_winograd_step_and_the_rest_summing_to_the_total(capsys, monkeypatch):
    monkeypatch.delenv("RANVGG_MEMORY", raising=False)
    monkeypatch.setattr(winograd, "U_CACHE_BYTES", 600_000)  # conv1_2 keeps U (590 KB), conv2_x make it
    monkeypatch.setattr(winograd, "U_PREFIX_BYTES", 0)
    layers.main(["--size", "32", "--layer", "pool2", "--repeat", "1", "--modes", "lean", "--steps"])
    out = capsys.readouterr().out.splitlines()
    cells = {line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1] for line in out[2:]}
    assert set(cells) == set(layers.STEPS.values()) | {"rest", "total"}
    assert all(float(v) > 0 for v in cells.values())         # every step ran, the kept and the made GEMMs too
    parts = sum(float(v) for k, v in cells.items() if k != "total")
    assert abs(parts - float(cells["total"])) < 0.5           # each cell rounded to 0.1 ms
    assert winograd.matmul.__name__ == "matmul" and winograd._split.__name__ == "_split"
