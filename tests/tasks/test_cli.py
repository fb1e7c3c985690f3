"""Bad input: one line naming the problem and the fix, a non-zero exit, never a traceback.
Also Ctrl-C and NaN: the run keeps what it has."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine import backend
from engine.objectives import Objective
from tasks import invert, style, texture

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--device", "cpu", "--size", "32", "--iters", "2", "--print-every", "0"]


def call(main, argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def one_line_error(err):
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def weights_wrong_shapes(tmp_path):
    from engine.vgg import VGG19

    net = VGG19.random(seed=0, device="cpu")
    arrays = {f"{k}.{p}": a for k, (w, b) in net.params.items() for p, a in (("weight", w), ("bias", b))}
    arrays["conv3_1.weight"] = np.zeros((256, 64, 3, 3), np.float32)
    path = tmp_path / "bad_weights.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("argv, expect", [
    (["--image", "/no/such/file.png"], "no such file"),
    (["--image", "nosuchsample"], "not a sample image name"),
    (["--layer", "conv9_9"], "unknown layer 'conv9_9'; valid layers: conv1_1"),
    (["--layer", "fc6", "--size", "128"], "fc layers need a 256x256 input.*use --size 256"),
    (["--iters", "-1"], "--iters must be a whole number >= 1"),
    (["--size", "0"], "--size must be a whole number >= 1"),
    (["--history", "0"], "--history must be a whole number >= 1"),
    (["--sigma", "-0.1"], "--sigma must be a positive number"),
    (["--save-every", "-3"], "--save-every must be a whole number >= 0"),
    (["--iters", "abc"], "argument --iters: invalid int value"),
    (["--device", "tpu"], "argument --device: invalid choice"),
    (["--init", "/no/such/start.png"], "no such file"),
    (["--tv-weight", "-1"], "--tv-weight must be a number >= 0"),
])
def test_invert_bad_input(argv, expect, capsys):
    import re

    code, err = call(invert.main, SMALL + argv, capsys)
    assert code != 0
    assert re.search(expect, one_line_error(err)), err


def test_not_an_image(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("hello, I am text")
    code, err = call(invert.main, SMALL + ["--image", str(bad)], capsys)
    assert code == 2 and "notes.png" in one_line_error(err) and "not an image" in err


def test_weights_with_wrong_shapes(weights_wrong_shapes, capsys):
    code, err = call(texture.main, SMALL + ["--weights", str(weights_wrong_shapes)], capsys)
    assert code == 2
    assert "conv3_1.weight has shape (256, 64, 3, 3), expected (256, 128, 3, 3)" in one_line_error(err)


def test_gpu_without_cuda(capsys):
    if backend.gpu_available():
        pytest.skip("a GPU is present here")
    code, err = call(invert.main, ["--device", "gpu", "--size", "32", "--iters", "1"], capsys)
    assert code == 2 and "--device gpu is not available" in one_line_error(err) and "use --device cpu" in err


@pytest.mark.parametrize("argv, expect", [
    (["--style", "ihc", "--style", "brick", "--style-blend", "1"], "1 weight\\(s\\) for 2 --style image"),
    (["--style-blend", "a,b"], "comma-separated numbers"),
    (["--content-weight", "-1"], "--content-weight must be a number >= 0"),
    (["--style-layers", "relu1_1,pool9"], "unknown layer 'pool9'"),
    (["--content-layer", "conv2_2x"], "unknown layer"),
    (["--content-weight", "0", "--style-weight", "0"], "--content-weight and --style-weight are both 0: nothing "
                                                       "to match"),   # with the default --tv-weight 0.1
])
def test_style_bad_input(argv, expect, capsys):
    import re

    code, err = call(style.main, SMALL + argv, capsys)
    assert code == 2 and re.search(expect, one_line_error(err)), err


def test_memory_check_says_what_fits(monkeypatch, capsys):
    monkeypatch.setattr(backend, "memory_available", lambda device: 300 * 2**20)
    code, err = call(invert.main, ["--device", "cpu", "--size", "512", "--iters", "1"], capsys)
    line = one_line_error(err)
    assert code == 2 and "needs about" in line and "use --size" in line


def test_list_layers(capsys):
    assert invert.main(["--list-layers", "--size", "64", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "relu5_1" in out and "512 x 4 x 4" in out and "fc6" in out


def test_help_explains(capsys):
    assert style.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--style-blend" in out and "Eq. 9" in out and "(default: relu1_2)" in out


def _poison_after(monkeypatch, n, exc=None):
    """Make the objective return NaN (or raise ``exc``) from evaluation ``n`` on."""
    real = Objective.value_and_grad

    def fake(self, x):
        value, grad = real(self, x)
        if self.evaluations > n:
            if exc is not None:
                raise exc
            return float("nan"), grad
        return value, grad

    monkeypatch.setattr(Objective, "value_and_grad", fake)


@pytest.mark.parametrize("optimizer", ["lbfgs", "lbfgs-device"])
def test_nan_stops_and_keeps_last_good_image(monkeypatch, tmp_path, capsys, optimizer):
    _poison_after(monkeypatch, 25)   # the device L-BFGS's first step may take several evaluations
    out = tmp_path / "n.png"
    code = invert.main(SMALL[:4] + ["--iters", "50", "--layer", "relu2_1", "--out", str(out), "--optimizer", optimizer])
    err = capsys.readouterr().err
    assert code == 1 and "NaN" in err and "keeping the last good image" in err and "Traceback" not in err
    log = json.loads(out.with_suffix(".json").read_text())
    assert log["status"] == "failed" and 1 <= log["iterations"] < 50 and np.isfinite(log["final_loss"])
    assert out.exists()


@pytest.mark.parametrize("optimizer", ["lbfgs", "lbfgs-device"])
def test_interrupt_saves_image_and_log(monkeypatch, tmp_path, capsys, optimizer):
    _poison_after(monkeypatch, 25, KeyboardInterrupt())
    out = tmp_path / "i.png"
    code = invert.main(SMALL[:4] + ["--iters", "50", "--layer", "relu2_1", "--out", str(out), "--optimizer", optimizer])
    assert code == 130
    log = json.loads(out.with_suffix(".json").read_text())
    assert log["status"] == "interrupted" and out.exists() and log["iterations"] >= 1


def test_real_sigint_in_a_subprocess(tmp_path):
    """The real thing: Ctrl-C (SIGINT) to a running `python -m tasks.invert`."""
    out = tmp_path / "sig.png"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tasks.invert", "--device", "cpu", "--size", "64",
                             "--iters", "5000", "--print-every", "1", "--layer", "relu3_1", "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    for line in proc.stdout:  # wait until the optimisation is running
        if line.startswith("iter") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "saving what there is" in err
    assert out.exists() and json.loads(out.with_suffix(".json").read_text())["status"] == "interrupted"


def test_bad_input_in_a_subprocess_exit_code():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "tasks.texture", "--image", "missing.png", "--device", "cpu"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "error: --image: missing.png: no such file; check the path"


def test_unwritable_output_fails_before_the_run(tmp_path, capsys):
    code, err = call(invert.main, SMALL + ["--out", str(tmp_path)], capsys)
    assert code == 2 and "is a directory" in one_line_error(err)
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, err = call(invert.main, SMALL + ["--out", str(blocker / "sub" / "x.png")], capsys)
    line = one_line_error(err)
    assert code == 2 and "cannot write --out" in line
    assert "iterations" not in capsys.readouterr().out  # nothing was optimised
