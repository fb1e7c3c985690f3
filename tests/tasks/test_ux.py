"""One command language and errors before work: every --help speaks of ``ranvgg X``; every
input is checked, naming its option, before the network is built; no output may be an input,
side outputs included; non-regular inputs refused; a closed stdout never loses a run; a net that
cannot carry a gradient is refused."""
from __future__ import annotations

import errno
import io
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import recipes
from engine.io import image
from engine.vgg import VGG19
from tasks import experiments, gradcheck, invert, stack, style, texture, weights
from tasks.cli import ranvgg

TINY = ["--device", "cpu", "--size", "32", "--iters", "2", "--print-every", "0", "--net", "random"]
COMMANDS = {"invert": invert, "texture": texture, "style": style, "stack": stack, "gradcheck": gradcheck,
            "weights": weights, "experiments": experiments}
WORKPLACE = re.compile(r"\bissue \d|\bsession\b|previous default|new default|loaded machine|python -m tasks\.",
                       re.IGNORECASE)


def _one_line(err):
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_speaks_the_ranvgg_command(name, capsys):
    assert ranvgg.main([name, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: ranvgg {name}"), text[:80]
    assert not WORKPLACE.search(text), WORKPLACE.search(text)
    first = [l for l in text.split("\n\n")[1].splitlines() if l.strip()][0]
    assert text.count(first) == 1, f"description shown twice: {first!r}"


def test_top_help_mentions_python_m_tasks_once(capsys):
    ranvgg.main(["--help"])
    text = capsys.readouterr().out
    assert text.count("python -m tasks") == 1 and "ranvgg[" not in text


@pytest.mark.parametrize("module, dest, flags", [
    (invert, "layer", ["--layer", "--layers"]),
    (texture, "layers", ["--layer", "--layers"]),
    (style, "style_layers", ["--layer", "--layers", "--style-layers"]),
])
def test_layer_and_layers_are_one_option(module, dest, flags):
    for flag in flags:
        assert getattr(module.PARSER.parse_args([flag, "relu1_1,pool1"]), dest) == "relu1_1,pool1"


@pytest.fixture
def photo(tmp_path):
    p = tmp_path / "x_loss.png"   # also the loss plot of --out x.png
    shutil.copy(image.sample_path("coffee"), p)
    return p


@pytest.mark.parametrize("main, argv, expect", [
    (invert.main, ["--image", "{d}/x_loss.png", "--out", "{d}/x.png"], r"loss plot .* is the --image file"),
    (invert.main, ["--image", "{d}/x_iter2.png", "--out", "{d}/x.png", "--save-every", "2"], r"--image .* is the frame OUT_iter2 that --save-every writes"),
    (invert.main, ["--image", "{d}/x_frames.png", "--out", "{d}/x.png", "--save-every", "1"], r"contact sheet .* is the --image"),
    (invert.main, ["--out", "{d}/a.png", "--log", "{d}/a_loss.png"], r"--log and the loss plot .* are the same file"),
    (invert.main, ["--net", "{d}/r.json", "--log", "{d}/r.json"], r"--log .* is the --net file"),
    (invert.main, ["--weights", "{d}/w.npz", "--log", "{d}/w.npz"], r"--log .* is the --weights file"),
    (texture.main, ["--judge-weights", "{d}/w.npz", "--log", "{d}/w.npz"], r"--log .* is the --judge-weights file"),
    (style.main, ["--style", "{d}/x_loss.png", "--out", "{d}/x.png"], r"loss plot .* is the --style file"),
])
def test_side_outputs_never_replace_an_input(main, argv, expect, photo, tmp_path, capsys):
    d = tmp_path
    for name in ("x_iter2.png", "x_frames.png"):
        shutil.copy(photo, d / name)
    (d / "r.json").write_text("{}")
    (d / "w.npz").write_bytes(b"PK")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    code = main([*TINY, *[a.format(d=d) for a in argv]])
    captured = capsys.readouterr()
    assert code == 2 and re.search(expect, _one_line(captured.err)), captured.err
    assert "device:" not in captured.out
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_non_regular_inputs_and_fifo_outputs_are_refused(tmp_path, capsys):
    fifo = tmp_path / "f.png"
    os.mkfifo(fifo)
    for argv, expect in ((["--image", str(fifo)], r"--image .* is a FIFO"),
                         (["--weights", "/dev/zero"], r"--weights '/dev/zero' is a device"),
                         (["--net", str(fifo)], r"--net .* is a FIFO")):
        code = invert.main([*TINY[:-2], *argv])
        captured = capsys.readouterr()
        assert code == 2 and re.search(expect, _one_line(captured.err)), (argv, captured.err)
        assert "device:" not in captured.out


def test_a_fifo_output_without_reader_never_hangs(tmp_path, capsys):
    """Nobody reads the FIFO: the save fails at once, in one line, the log is kept, exit 1."""
    fifo = tmp_path / "o.png"
    os.mkfifo(fifo)
    code = invert.main([*TINY, "--layer", "relu1_1", "--out", str(fifo), "--log", str(tmp_path / "l.json")])
    err = capsys.readouterr().err
    assert code == 1 and "no process is reading this FIFO" in _one_line(err)
    assert (tmp_path / "l.json").exists()


def test_dev_null_output_is_accepted(tmp_path, capsys):
    assert invert.main([*TINY, "--layer", "relu1_1", "--out", "/dev/null", "--log", str(tmp_path / "l.json")]) == 0
    assert (tmp_path / "l.json").exists()
    assert invert.main([*TINY, "--layer", "relu1_1", "--out", "/dev/null", "--log", "/dev/null"]) == 0  # nothing kept


def test_a_bad_style_image_is_named_before_the_network(capsys):
    code = style.main(["--device", "cpu", "--content", "chelsea", "--style", "nosuch"])
    captured = capsys.readouterr()
    assert code == 2 and _one_line(captured.err).startswith("error: --style: nosuch")
    assert "device:" not in captured.out


def test_list_layers_follows_the_image_aspect(capsys):
    h, w = image.scaled_size(image.image_size(image.sample_path("chelsea")), 160)
    assert invert.main(["--image", "chelsea", "--size", "160", "--list-layers", "--device", "cpu"]) == 0
    first = capsys.readouterr().out.splitlines()[0].split()
    assert first == ["conv1_1", "64", "x", str(h), "x", str(w)] and h != w


def test_load_image_takes_sample_names():
    np.testing.assert_array_equal(image.load_image("astronaut", size=32),
                                  image.load_image(image.sample_path("astronaut"), size=32))


@pytest.mark.parametrize("argv, expect", [
    (["--sigma", "1e-4", "--layer", "pool3"], r"at most 5\.\de-20.*raise --sigma"),
    (["--sigma", "1e-300", "--layer", "relu1_1"], r"at most 0\.0e\+00.*raise --sigma"),
])
def test_a_net_that_cannot_carry_a_gradient_is_refused(argv, expect, tmp_path, capsys):
    out = tmp_path / "o.png"
    code = invert.main([*TINY, *argv, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and re.search(expect, _one_line(captured.err)), captured.err
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_zero_weight_objectives_and_nan_tolerances_are_refused(capsys):
    assert style.main([*TINY, "--content-weight", "0", "--style-weight", "0", "--tv-weight", "0"]) == 2
    assert "both 0: nothing to match" in _one_line(capsys.readouterr().err)
    assert style.main([*TINY, "--content-level", "-1"]) == 2
    assert "--content-level must be a whole number >= 0" in _one_line(capsys.readouterr().err)
    assert style.main([*TINY, "--content-level", "9"]) == 2
    assert "content level 9 averages the content image down to" in _one_line(capsys.readouterr().err)
    for tol in ("nan", "-1", "0"):
        assert gradcheck.main(["--tolerance", tol]) == 2
        assert "--tolerance must be a positive number" in _one_line(capsys.readouterr().err)


class _Closed(io.StringIO):
    def __init__(self, err):
        super().__init__()
        self.err, self.tried = err, 0

    def write(self, text):
        self.tried += 1
        raise OSError(self.err, os.strerror(self.err))

    def flush(self):
        raise OSError(self.err, os.strerror(self.err))


@pytest.mark.parametrize("err", [errno.EPIPE, errno.ENOSPC])
def test_a_closed_or_full_stdout_keeps_the_run(err, tmp_path, monkeypatch, capsys):
    """| head -c 10 (EPIPE) or > /dev/full (ENOSPC): the progress stops, the run saves."""
    closed = _Closed(err)
    monkeypatch.setattr(sys, "stdout", closed)
    out = tmp_path / "o.png"
    code = invert.main([*TINY[:-4], "--print-every", "1", "--net", "random", "--layer", "relu1_1", "--out", str(out)])
    assert sys.stdout is closed and closed.tried == 1   # one failed write, then nothing more tried
    err_text = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err_text and "standard output is closed" in err_text
    assert Image.open(out).size == (32, 32) and out.with_suffix(".json").exists()


def test_foreign_engine_package_is_named(monkeypatch, capsys):
    import types

    fake = types.ModuleType("engine")
    fake.__path__ = ["/somewhere/site-packages/engine"]
    monkeypatch.setattr(ranvgg, "engine", fake)
    assert ranvgg.main(["--version"]) == 2
    assert "'engine' found at /somewhere/site-packages/engine is not ranvgg's" in _one_line(capsys.readouterr().err)


def test_sigkill_leaves_no_empty_result_and_one_out_is_one_run(tmp_path):
    """The default name is claimed by a hidden .NAME.claim (never an empty NAME): a run killed
    outright leaves no 0-byte image, and its stale claim is taken over by the next run; a live
    run's explicit --out is refused to a second run."""
    import signal
    import subprocess
    import time

    from tasks.cli import outputs

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tasks.invert", *TINY[:-4], "--net", "random", "--iters", "5000",
                             "--layer", "relu1_1", "--print-every", "1"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    claim = tmp_path / "out" / ".invert.png.claim"
    for line in proc.stdout:   # running: the claim is there, the image is not
        if line.startswith("iter"):
            break
    assert claim.read_text() == str(proc.pid) and not (tmp_path / "out" / "invert.png").exists()
    assert outputs.claim_default(tmp_path / "out" / "invert.png").name == "invert-2.png"
    outputs.release(tmp_path / "out" / "invert-2.png")
    with pytest.raises(Exception, match="being written by another run"):
        outputs.claim(tmp_path / "out" / "invert.png")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (tmp_path / "out" / "invert.png").exists()      # no 0-byte result
    assert outputs.claim_default(tmp_path / "out" / "invert.png").name == "invert.png"  # stale claim taken over


@pytest.mark.parametrize("kwargs, expect", [
    ({"image": None}, r"image=None: give a value"),
    ({"image": 3}, r"image= must be a file name .* got int 3"),
    ({"out": b"x.png"}, r"out= must be a file name .* got bytes"),
    ({"layer": None}, r"layer=None: give a value"),
    ({"layer": 5}, r"--layer must be layer names"),
    ({"optimizer": "adam"}, r"optimizer='adam': use one of auto, lbfgs, lbfgs-device"),
    ({"device": "tpu"}, r"device='tpu': use one of"),
    ({"image": np.zeros((4, 4, 3))}, r"image= must be a file name .* got ndarray"),
    ({"weights": 3}, r"weights= must be a file name .* got int 3"),
    ({"tv_weight": "1"}, r"tv_weight='1': give a number \(default: 0.0\)"),
    ({"sigma": "0.02"}, r"sigma='0.02': give a number"),
    ({"size": 32.0}, r"size=32.0: give a whole number \(default: 128\)"),
    ({"seed": 1.5}, r"seed=1.5: give a whole number"),
    ({"history": True}, r"history=True: give a whole number"),
])
def test_python_api_checks_its_arguments(kwargs, expect):
    from engine.errors import UserError

    with pytest.raises(UserError, match=expect) as exc:
        invert.run(**{"device": "cpu", "size": 32, "iters": 1, "net": "random", **kwargs})
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("call, expect", [
    (lambda: style.run(content="chelsea", style="ihc", content_weight="1"), r"content_weight='1': give a number"),
    (lambda: style.run(content="chelsea", style=[3]), r"style= must be a file name .* got int 3"),
    (lambda: style.run(content=b"chelsea", style="ihc"), r"content= must be a file name .* got bytes"),
    (lambda: texture.run(image="gravel", layers=None), r"layers=None: give a value"),
    (lambda: VGG19.load(None), r"VGG19.load: path must be a file name \(str or Path\), got NoneType None"),
    (lambda: VGG19.load(3), r"VGG19.load: path must be a file name .* got int 3"),
    (lambda: VGG19.random(seed=0, device="cpu").save(np.zeros(3)), r"VGG19.save: path must be .* got ndarray"),
    (lambda: recipes.load(None), r"recipe path must be a file name"),
    (lambda: weights.convert(None, "w.npz"), r"convert: src must be a file name"),
    (lambda: weights.info(3), r"info: path must be a file name"),
    (lambda: image.save_image(None, np.zeros((4, 4, 3))), r"save_image: path must be a file name"),
    (lambda: VGG19.random(seed=0, device="cpu").features(np.zeros((1, 3, 32, 32), np.float32), None),
     r"layers must be a layer name or a list of them, got None"),
])
def test_python_api_of_the_engine_and_other_tasks(call, expect):
    from engine.errors import UserError

    with pytest.raises(UserError, match=expect) as exc:
        call()
    assert "\n" not in str(exc.value)


def test_python_api_takes_numpy_numbers():
    img, log = invert.run(device="cpu", size=32, iters=1, net="random", layer="relu1_1",
                          sigma=np.float32(0.02), seed=np.int64(1))
    assert img.shape == (32, 32, 3) and log["status"] == "done" and log["network"]["sigma"] == pytest.approx(0.02)


@pytest.mark.parametrize("argv", [["--image", "nosuch"], ["--sigma", "-1"], ["--layer", "pool9"]])
def test_a_refused_run_leaves_no_default_folder(tmp_path, monkeypatch, capsys, argv):
    """The default out/ is made for a run's files; a run refused before any leaves none behind
    (and an out/ that was there already stays)."""
    monkeypatch.chdir(tmp_path)
    assert invert.main(argv + ["--device", "cpu", "--size", "32", "--net", "random"]) == 2
    assert "error: " in capsys.readouterr().err and not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    assert invert.main(argv + ["--device", "cpu", "--size", "32", "--net", "random"]) == 2
    assert (tmp_path / "out").is_dir()
