"""bench.layers times each Winograd conv inside one evaluation, per memory mode."""
import os

import pytest

from bench import layers
from engine.ops import winograd


def test_layers_prints_a_row_per_conv_shape_and_pass(capsys, monkeypatch):
    monkeypatch.delenv("RANVGG_MEMORY", raising=False)
    layers.main(["--size", "32", "--layer", "pool2", "--repeat", "1"])
    out = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in out[2:-1]]
    assert {r[0] for r in rows} == {"forward", "backward"}
    assert all(float(r[-1]) > 0 and float(r[-2]) > 0 for r in rows)   # lean and fast columns
    assert out[-1].split()[0] == "total"
    # the timing wrappers are gone and the mode restored
    assert winograd.winograd_conv.__name__ == "winograd_conv"
    assert "RANVGG_MEMORY" not in os.environ


def test_layers_refuses_an_unknown_mode():
    with pytest.raises(SystemExit):
        layers.main(["--modes", "lean,turbo"])
