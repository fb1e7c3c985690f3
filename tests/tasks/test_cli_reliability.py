"""Nothing lost, no traceback: colliding paths refused before any work, each output saved on its
own, SIGTERM saves like Ctrl-C, a second Ctrl-C never cuts a save, strict JSON logs, and the
Python API's checks (issue 8)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.io import image
from engine.errors import UserError
from engine.objectives import Objective
from engine.optim import lbfgs
from engine.vgg import VGG19
from tasks.cli import outputs
from tasks import invert, stack, style, texture

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--device", "cpu", "--size", "32", "--iters", "2", "--print-every", "0", "--layer", "relu1_1"]


def _one_line(err):
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _strict_json(path):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


@pytest.fixture
def photo(tmp_path):
    p = tmp_path / "photo.png"
    shutil.copy(image.sample_path("coffee"), p)
    return p


# ----------------------------------------------------------------------------- path collisions

@pytest.mark.parametrize("main, argv, expect", [
    (invert.main, ["--image", "{photo}", "--out", "{photo}"], "--out .* is the --image file"),
    (invert.main, ["--image", "{photo}", "--log", "{photo}"], "--log .* is the --image file"),
    (invert.main, ["--image", "{photo}", "--out", "{dir}/r.png", "--log", "{dir}/r.png"], "--out and --log are the same"),
    # --out r.json would make the log replace the result: refused by its extension before anything
    (invert.main, ["--out", "{dir}/r.json"], r"unknown image extension .\.json."),
    (invert.main, ["--init", "{photo}", "--out", "{photo}"], "is the --init file"),
    (invert.main, ["--weights", "{photo}", "--out", "{photo}"], "is the --weights file"),
    (invert.main, ["--image", "{photo}", "--out", "{dir}/hard.png"], "is the --image file"),   # a hard link
    (invert.main, ["--image", "{photo}", "--log", "{dir}/soft.png"], "is the --image file"),   # a symlink
    (invert.main, ["--image", "{dir}/./sub/../photo.png", "--out", "{photo}"], "is the --image file"),
    (style.main, ["--style", "ihc", "--style", "{photo}", "--out", "{photo}"], "is the --style file"),
    (style.main, ["--content", "{photo}", "--log", "{photo}"], "is the --content file"),
    (stack.main, ["--image", "{photo}", "--log", "{photo}"], "is the reference image"),
    (stack.main, ["--out", "{dir}/w.json", "--log", "{dir}/w.json"], "--out and --log are the same"),
    (stack.main, ["--out", "{dir}/w.json", "--save-weights", "{photo}.npz", "--log", "{photo}.npz"],
     "--log and --save-weights are the same"),
])
def test_colliding_paths_are_refused_before_any_work(main, argv, expect, photo, tmp_path, capsys):
    import re

    os.link(photo, tmp_path / "hard.png")
    (tmp_path / "soft.png").symlink_to(photo)
    (tmp_path / "sub").mkdir()
    before = photo.read_bytes()
    argv = [a.format(photo=photo, dir=tmp_path) for a in argv]
    code = main(["--device", "cpu", "--size", "32", "--iters", "1", "--print-every", "0", *argv])
    captured = capsys.readouterr()
    assert code == 2 and re.search(expect, _one_line(captured.err)), captured.err
    assert photo.read_bytes() == before and "device:" not in captured.out  # nothing was built
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "w.npz").exists()


# ----------------------------------------------------------------------------- saving

def test_symlinked_output_is_written_through(tmp_path, capsys):
    real = tmp_path / "real.png"
    real.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(real)
    assert invert.main(TINY + ["--out", str(link), "--log", str(tmp_path / "l.json")]) == 0
    assert link.is_symlink() and Image.open(real).size == (32, 32)


def test_log_to_a_fifo_is_written_into_not_replaced(tmp_path, capsys, fifo_reader):
    import stat

    fifo = tmp_path / "log.pipe"
    os.mkfifo(fifo)
    reader, got = fifo_reader(fifo, text=True)
    assert invert.main(TINY + ["--out", str(tmp_path / "o.png"), "--log", str(fifo)]) == 0
    reader.join(30)
    assert json.loads(got[0])["status"] == "done" and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_image_save_failure_keeps_the_log(monkeypatch, tmp_path, capsys):
    """The disk fills while the image is written: one line, exit 1, the log still saved."""
    def full_disk(path, *a, **k):
        raise UserError(f"{path}: cannot write the image (No space left on device); free some space")

    monkeypatch.setattr(image, "save_image", full_disk)
    out = tmp_path / "o.png"
    code = invert.main(TINY + ["--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and _one_line(err).endswith("free some space") and not out.exists()
    log = _strict_json(out.with_suffix(".json"))
    assert log["status"] == "done" and "No space left" in log["save_errors"][0]


def test_log_save_failure_keeps_the_image(monkeypatch, tmp_path, capsys):
    """The log's folder stops being a folder during the run (checked writable before it): the
    real write fails, in one line, exit 1, and the image is kept."""
    real = outputs.write_log

    def folder_gone(path, log):
        shutil.rmtree(tmp_path / "logs")
        (tmp_path / "logs").write_text("now a file")
        real(path, log)

    monkeypatch.setattr(outputs, "write_log", folder_gone)
    (tmp_path / "logs").mkdir()
    out = tmp_path / "o.png"
    code = invert.main(TINY + ["--out", str(out), "--log", str(tmp_path / "logs" / "l.json")])
    err = capsys.readouterr().err
    assert code == 1 and "l.json: cannot write the log" in _one_line(err) and Image.open(out).size == (32, 32)


def test_log_in_an_uncreatable_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code = invert.main(TINY + ["--out", str(tmp_path / "o.png"), "--log", str(tmp_path / "file" / "l.json")])
    assert code == 2 and "cannot write --log" in _one_line(capsys.readouterr().err)


def test_json_log_never_holds_infinity(tmp_path):
    path = tmp_path / "l.json"
    outputs.write_log(path, {"a": float("inf"), "b": [np.float32("nan"), 1.5], "c": {"d": -np.inf}})
    assert _strict_json(path) == {"a": "inf", "b": ["nan", 1.5], "c": {"d": "-inf"}}


# ----------------------------------------------------------------------------- signals

def _start(args, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    for line in proc.stdout:  # wait until the optimisation is running
        if line.startswith("iter") or time.time() > deadline:
            break
    return proc


@pytest.mark.parametrize("sig, code, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")])
def test_sigterm_and_sighup_save_like_ctrl_c(sig, code, name, tmp_path):
    """SIGTERM (a scheduler) and SIGHUP (the terminal closed) stop the run, save it, and are
    named in the log and the message (not "Ctrl-C")."""
    out = tmp_path / "t.png"
    proc = _start(["tasks.invert", "--device", "cpu", "--size", "48", "--iters", "5000", "--print-every", "1",
                   "--layer", "relu2_1", "--out", str(out)], tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "saving what there is" in err and name in err and "Ctrl-C" not in err
    log = _strict_json(out.with_suffix(".json"))
    assert Image.open(out).size == (48, 48) and log["status"] == "interrupted"
    assert log["stop_reason"] == f"interrupted ({name})"


def test_second_ctrl_c_during_the_stack_save(monkeypatch, tmp_path, capsys):
    """Ctrl-C stops the stack build; a second Ctrl-C (a real SIGINT) arrives half-way through
    writing the weights: the save finishes, no temporary is left, the message is true."""
    from engine import stacked

    def interrupted_build(*a, **k):
        os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C
        time.sleep(5)
        raise AssertionError("SIGINT did not interrupt")

    real_save = VGG19.save

    def save_hit_by_ctrl_c(self, path, *a, **k):
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, while saving
        time.sleep(0.05)
        return real_save(self, path, *a, **k)

    monkeypatch.setattr(stacked, "build", interrupted_build)
    monkeypatch.setattr(VGG19, "save", save_hit_by_ctrl_c)
    out = tmp_path / "s.npz"
    code = stack.main(["--device", "cpu", "--size", "32", "--iters", "1", "--out", str(tmp_path / "s.json"),
                       "--save-weights", str(out)])
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err
    assert "interrupted: writing the layers chosen so far" in err and "please wait" in err
    assert "nothing" not in err  # never the false "nothing to save"
    written = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith("_scores.png"))  # plot: matplotlib
    assert written == ["s.json", "s.npz", "s_log.json"]
    assert VGG19.load(out, device="cpu").params["conv5_4"][0].shape == (512, 512, 3, 3)
    assert _strict_json(tmp_path / "s_log.json")["status"] == "interrupted"


# ----------------------------------------------------------------------------- one-line errors

@pytest.mark.parametrize("main, argv, expect", [
    (invert.main, ["--seed", "-1"], "--seed must be a whole number >= 0, got -1"),
    (invert.main, ["--seed", "-1", "--list-layers"], "--seed must be a whole number >= 0"),
    (texture.main, ["--seed", "-5", "--list-layers"], "--seed must be a whole number >= 0"),
    (invert.main, ["--layer", "pool1,pool1"], "layer pool1 given more than once"),
    (texture.main, ["--layers", "relu1_1,relu2_1,relu1_1"], "layer relu1_1 given more than once"),
    (style.main, ["--style-layers", "relu1_1,relu1_1"], "layer relu1_1 given more than once"),
    (style.main, ["--style-blend", "inf"], "style image weights must be non-negative numbers"),
    (style.main, ["--layer-weights", "4,2"], "--layer-weights has 2 weight(s) for 5 layer(s)"),
    (texture.main, ["--layer-weights", "1,2"], "--layer-weights has 2 weight(s) for 5 layer(s)"),
    (texture.main, ["--layer-weights", "1,1,nan,1,1"], "--layer-weights must be numbers >= 0, not all 0"),
    (style.main, ["--layer-weights", "1,1,inf,1,1"], "--layer-weights must be numbers >= 0, not all 0"),
    (style.main, ["--layers", "relu1_1", "--layer-weights", "0"], "--layer-weights must be numbers >= 0, not all 0"),
    (stack.main, ["--top", "pool3"], "--top must be a conv layer"),
])
def test_bad_input_is_one_line(main, argv, expect, tmp_path, capsys):
    code = main(["--device", "cpu", "--size", "32", "--iters", "1", "--out", str(tmp_path / "o.png"), *argv])
    assert code == 2 and expect in _one_line(capsys.readouterr().err)


def test_float_image_with_nan_pixels(tmp_path, capsys):
    a = np.full((40, 40), 0.5, np.float32)
    a[3, 4] = np.nan
    Image.fromarray(a, mode="F").save(tmp_path / "nan.tif")
    code = invert.main(TINY + ["--image", str(tmp_path / "nan.tif"), "--out", str(tmp_path / "o.png")])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and "nan.tif" in line and "1 NaN" in line


def test_style_blend_overflowing_to_zero_weights_is_balanced(tmp_path, capsys):
    """1e308 + 1e308 overflows: normalised naively every weight would be 0 and the run 'done'
    with an infinite error. The weights are scaled first: 0.5 each, finite figures."""
    out = tmp_path / "s.png"
    code = style.main(["--device", "cpu", "--size", "32", "--iters", "2", "--print-every", "0", "--out", str(out),
                       "--style", "ihc", "--style", "brick", "--style-blend", "1e308,1e308"])
    log = _strict_json(out.with_suffix(".json"))
    assert code == 0 and np.isfinite(log["final_loss"]) and np.isfinite(log["style_error"]["total"])
    xc = np.zeros((1, 3, 32, 32), np.float32)
    net = VGG19.random(seed=0, device="cpu")
    obj = Objective.style(net, xc, [xc, xc + 1], [1e308, 1e308], style_layers=["relu1_1"])
    assert np.all(np.isfinite(backend_host(obj.terms[1].target)))


def backend_host(a):
    from engine import backend

    return backend.to_host(a)


# ----------------------------------------------------------------------------- Python API

def test_api_boundary_checks():
    net = VGG19.random(seed=0, device="cpu")
    x = np.zeros((1, 3, 32, 32), np.float32)
    with pytest.raises(UserError, match="seed must be a whole number >= 0, got -1"):
        VGG19.random(seed=-1)
    with pytest.raises(UserError, match="sigma must be a positive number, got '0.01'"):
        VGG19.random(sigma="0.01")
    with pytest.raises(UserError, match="needs at least one style image"):
        Objective.style(net, x, [])
    assert list(net.features(x, "pool1")) == ["pool1"]  # a bare string is one layer
    with pytest.raises(UserError, match="given more than once"):
        Objective.inversion(net, x, ["pool1", "pool1"])
    obj = Objective.inversion(net, x, "relu1_1")
    for kw, msg in (({"history": 0}, "history must be a whole number >= 1, got 0"),
                    ({"iters": 0}, "iters must be a whole number >= 1, got 0")):
        with pytest.raises(UserError, match=msg):
            lbfgs(obj, x, **kw)


def test_list_layers_at_any_size_computes_nothing(capsys):
    """Shapes come from the sizes alone: --size 100000 would need terabytes if a pass ran."""
    assert invert.main(["--list-layers", "--size", "100000", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "relu1_1  64 x 100000 x 100000" in out and "pool5    512 x 3125 x 3125" in out


def _gpu_out_of_memory_errors():
    """The errors the GPU raises when memory runs out, none a MemoryError (CuPy's own classes
    when it is installed, else look-alikes with the same names and messages)."""
    try:
        from cupy.cuda.memory import OutOfMemoryError
        from cupy_backends.cuda.libs.cublas import CUBLASError
        from cupy_backends.cuda.api.runtime import CUDARuntimeError
        return [OutOfMemoryError(2**33, 2**30, 2**34), CUBLASError(3), CUDARuntimeError(2)]
    except ImportError:
        OutOfMemoryError = type("OutOfMemoryError", (Exception,), {})
        return [OutOfMemoryError("out of memory allocating 8589934592 bytes"),
                RuntimeError("CUBLAS_STATUS_ALLOC_FAILED"), RuntimeError("cudaErrorMemoryAllocation: out of memory")]


@pytest.mark.parametrize("exc", _gpu_out_of_memory_errors(), ids=lambda e: type(e).__name__)
def test_gpu_out_of_memory_is_one_line(exc, capsys):
    from engine import backend
    from tasks import invert
    from tasks.cli import command

    assert backend.is_out_of_memory(exc) and not backend.is_out_of_memory(RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED"))

    def run(**kwargs):
        raise exc

    assert command.main("invert", invert.PARSER, run, ["--device", "cpu", "--size", "32"]) == command.EXIT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: out of memory; try a smaller --size"] or err == ["error: out of GPU memory; try a smaller --size"]


def test_other_errors_still_raise():
    from tasks import invert
    from tasks.cli import command

    def run(**kwargs):
        raise RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED")

    with pytest.raises(RuntimeError):
        command.main("invert", invert.PARSER, run, ["--device", "cpu", "--size", "32"])
