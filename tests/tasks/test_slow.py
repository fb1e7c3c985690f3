"""Long runs, behind the ``slow`` marker: ``python -m pytest -m slow``."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_readme_first_command_finishes_in_minutes_and_is_recognisable(tmp_path):
    """The README's main job with its defaults (128 px, 200 iterations) on the CPU."""
    out = tmp_path / "invert.png"
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "tasks.invert", "--image", "astronaut", "--layer", "pool3",
                        "--device", "cpu", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    seconds = time.time() - t0
    assert r.returncode == 0, r.stderr
    log = json.loads(out.with_suffix(".json").read_text())
    assert seconds < 300, f"took {seconds:.0f} s"
    # measured: 20.96 dB, SSIM 0.70 (white noise: 7.4 dB)
    assert log["psnr"] > 18 and log["ssim"] > 0.6
    assert log["feature_error"]["pool3"] < log["start_feature_error"]["pool3"] / 1000


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["pool4", "pool5"])
def test_deep_inversions_at_128(layer, tmp_path):
    from tasks import invert

    _, log = invert.run(image="astronaut", layer=layer, size=128, iters=200, device="cpu", print_every=0,
                        out=str(tmp_path / "x.png"))
    assert log["feature_error"][layer] < log["start_feature_error"][layer] / 100
    if layer == "pool4":  # measured 14.1 dB; pool5 at 128 px (4x4 maps) is barely above noise: 8.7 dB
        assert log["psnr"] > log["baselines"]["white_noise"]["psnr"] + 5
