"""tasks/outputs.py and the outputs of a run: default names never replace an earlier result,
an explicit --out replaces only that file, formats follow the extension, the API writes
nothing unless asked."""
import hashlib
import json
import threading

import numpy as np
import pytest
from PIL import Image

from tasks.cli import outputs
from tasks import invert, style

SMALL = ["--device", "cpu", "--size", "32", "--iters", "2", "--print-every", "0", "--layer", "relu1_1"]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_default_runs_leave_two_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert invert.main(SMALL) == 0
    first = digest(tmp_path / "out" / "invert.png")
    assert invert.main(SMALL + ["--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "out/invert-2.png" in out
    assert digest(tmp_path / "out" / "invert.png") == first          # untouched
    assert json.loads((tmp_path / "out" / "invert.json").read_text())["seed"] == 0
    assert json.loads((tmp_path / "out" / "invert-2.json").read_text())["seed"] == 1  # the log follows
    assert Image.open(tmp_path / "out" / "invert-2.png").format == "PNG"


def test_explicit_out_replaces_only_that_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invert.main(SMALL) == 0                                   # out/invert.png
    before = digest(tmp_path / "out" / "invert.png")
    target = tmp_path / "mine.png"
    target.write_bytes(b"old")
    assert invert.main(SMALL + ["--out", str(target)]) == 0
    assert target.read_bytes() != b"old" and Image.open(target).format == "PNG"
    assert digest(tmp_path / "out" / "invert.png") == before
    assert not (tmp_path / "out" / "invert-2.png").exists()


def test_claim_is_race_free(tmp_path):
    """Eight runs starting at once get eight different names."""
    pattern = tmp_path / "out" / "invert.png"
    barrier, names = threading.Barrier(8), []

    def claim():
        barrier.wait()
        names.append(outputs.claim_default(pattern))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 8
    assert sorted(p.name for p in names) == sorted(["invert.png"] + [f"invert-{n}.png" for n in range(2, 9)])


def test_claim_skips_a_name_whose_log_exists(tmp_path):
    (tmp_path / "texture.json").write_text("{}")  # the image was deleted, the log kept
    assert outputs.claim_default(tmp_path / "texture.png").name == "texture-2.png"


def test_failed_run_leaves_no_empty_claim(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert invert.main(SMALL + ["--layer", "conv9_9"]) == 2
    assert "unknown layer" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()       # the default folder made for the run is gone again
    (tmp_path / "out").mkdir()
    assert invert.main(SMALL + ["--layer", "conv9_9"]) == 2
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("name, fmt", [("x.jpg", "JPEG"), ("x.jpeg", "JPEG"), ("x.tif", "TIFF"), ("x.png", "PNG")])
def test_out_extension_picks_the_format(tmp_path, name, fmt):
    out = tmp_path / name
    assert invert.main(SMALL + ["--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.format == fmt and im.size == (32, 32)
    assert out.with_suffix(".json").exists()


def test_tif_out_is_16_bit(tmp_path):
    tifffile = pytest.importorskip("tifffile", reason="tifffile (a scikit-image dependency) reads 16-bit RGB")
    out = tmp_path / "x.tiff"
    assert invert.main(SMALL + ["--out", str(out)]) == 0
    assert tifffile.imread(out).dtype == np.uint16


def test_unknown_extension_refused_before_any_work(tmp_path, capsys):
    code = style.main(["--device", "cpu", "--size", "32", "--iters", "1", "--out", str(tmp_path / "x.gif")])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip().startswith("error: --out") and "unknown image extension '.gif'" in captured.err
    assert captured.out == ""                      # not even the network was built
    assert list(tmp_path.iterdir()) == []


def test_api_is_quiet_and_writes_nothing_unless_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    img, log = invert.run(image="astronaut", layer="relu1_1", size=32, iters=2, device="cpu")
    assert img.shape == (32, 32, 3) and log["status"] == "done" and "files" not in log
    assert capsys.readouterr() == ("", "") and list(tmp_path.iterdir()) == []
    img, log = invert.run(image="astronaut", layer="relu1_1", size=32, iters=2, device="cpu",
                          out="r.jpg", verbose=True)
    assert "saved r.jpg" in capsys.readouterr().out
    assert Image.open(tmp_path / "r.jpg").format == "JPEG" and (tmp_path / "r.json").exists()
    _, log = invert.run(layer="relu1_1", size=32, iters=2, device="cpu", log="only.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["only.json", "r.jpg", "r.json"] + (
        ["r_loss.png"] if (tmp_path / "r_loss.png").exists() else [])


def test_api_save_every_needs_out(tmp_path, monkeypatch):
    from engine.errors import UserError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="save_every needs out="):
        invert.run(layer="relu1_1", size=32, iters=2, device="cpu", save_every=1)


def test_sample_name_with_an_extension_is_pointed_to_the_sample(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert invert.main(SMALL + ["--image", "astronaut.png"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --image: astronaut.png: no such file; for the shipped sample give its name without the extension: astronaut"
