"""tasks.experiments: every figure at tiny settings, resume, settings checks, errors, and the
same numbers on a local Dask cluster as in-process."""
import csv
import time
from pathlib import Path

import numpy as np
import pytest

from engine import UserError
from engine.io import image
from engine.vgg import VGG19
from tasks import experiments, style, texture
from tasks.cli import command
from tasks.figures import FIGURES, plots, quality, runs

TINY = {"size": 32, "iters": 2, "seeds": "0-1", "nets": "random", "quiet": True}
# the smallest settings that still exercise each figure's rows, grid and plot (2 seeds where the
# figure is about seeds; one elsewhere, to keep the suite fast)
FIGURE_OPTIONS = {
    "fig1": {"layers": "pool1,pool2", "seeds": "0"},
    "fig3": {"layers": "pool1"},
    "fig4": {"layers": "relu2_1", "seeds": "0"},
    "fig5": {"image": "gravel", "layers": "relu1_1", "seeds": "0", "iters": 1},
    "fig6": {"styles": "ihc", "seeds": "0", "iters": 1},
    "arch": {"layers": "pool1", "seeds": "0", "iters": 1},
    "quality": {"image": "gravel", "pairs": "chelsea:ihc", "content_weights": "10", "seeds": "0", "iters": 1},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A stand-in for the trained VGG-19 (the code path is the same whatever the weights)."""
    path = tmp_path_factory.mktemp("w") / "trained.npz"
    net = VGG19.random(seed=77, device="cpu")
    net.meta["kind"] = "trained"
    net.save(path)
    return str(path)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# arch runs 4 architectures x (inversion + texture): 268 s on the loaded 2-core machine
SLOW_FIGURES = {"arch"}


@pytest.mark.parametrize("figure", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_FIGURES else f
                                    for f in FIGURES])
def test_figure_writes_its_folder(figure, tmp_path, trained):
    opts = {**TINY, **FIGURE_OPTIONS[figure]}
    if figure != "arch":
        opts["trained"] = trained
    results, interrupted = experiments.run(figure=figure, out=str(tmp_path), **opts)
    assert not interrupted
    rows = read_csv(tmp_path / "results.csv")
    assert list(rows[0]) == FIGURES[figure].COLUMNS
    assert len(rows) == len(results.specs) and all(r["status"] == "done" for r in rows)
    for r in rows:
        assert (tmp_path / "runs" / f"{r['key']}.png").exists()
        assert r["net"] and r["seed"] != "" and float(r["seconds"]) >= 0
    nets = {r["net"] for r in rows}
    if figure == "arch":
        assert {r["arch"] for r in rows if r["task"] != "baseline"} == {"vgg11", "vgg13", "vgg16", "vgg19"}
    else:
        assert "trained" in nets and "random" in nets
    measured = {"fig5": "gram_error_trained_judge", "fig6": "style_error_trained_judge",
                "arch": "gram_error_random_judge", "quality": "distance_trained"}.get(figure, "psnr")
    values = [float(r[measured]) for r in rows if r[measured] != ""]
    assert values and all(np.isfinite(values))
    pngs = {p.name for p in tmp_path.glob("*.png")}
    assert pngs, "no figure drawn"
    summary = (tmp_path / "summary.md").read_text()
    assert "| net" in summary or "| arch" in summary or "| image" in summary
    if figure == "fig3":   # one trained row per layer, all seeds of the random net
        assert sorted(r["seed"] for r in rows if r["net"] == "random" and r["layer"] == "pool1") == ["0", "1"]
        assert len(rows) == 3
        assert [r["seed"] for r in rows if r["net"] == "trained" and r["layer"] == "pool1"] == ["0"]
    if figure == "quality":   # held-out judging beside its yardsticks; the style sweep per method
        yard = {(r["image"], r["method"]): r for r in read_csv(tmp_path / "yardsticks.csv")}
        assert float(yard["gravel", "copy"]["copy_score"]) == 1.0
        assert float(yard["gravel", "nature"]["copy_score"]) < 0.9
        assert float(yard["gravel", "white_noise"]["distance_trained"]) > float(yard["gravel", "nature"]["distance_trained"])
        assert float(yard["chelsea", "unstyled"]["content_error_trained"]) == 0.0
        shifted = [float(yard["chelsea", f"recoloured photo t={t}"]["content_error_trained"]) for t in ("0.25", "1")]
        assert 0 < shifted[0] < shifted[1] and "recoloured photo t=0.5 (no network)" in summary
        styles = [r for r in rows if r["task"] == "style"]
        assert sorted((r["net"], float(r["content_weight"])) for r in styles) == [("random", 10.0), ("trained", 10.0)]
        assert all(float(r["content_error_trained"]) > 0 and r["style_error_trained_judge_same_crop"] for r in styles)
        assert {"textures.png", "styles.png"} <= pngs and "held-out distance" in summary
        assert len(list((tmp_path / "exemplars").glob("gravel_held_out*.png"))) == 8
    if figure == "fig4":
        curves = read_csv(tmp_path / "curves.csv")
        assert len(curves) == 2 * len(rows) and all(float(c["feature_error"]) > 0 for c in curves)


def test_quality_styles_alone_with_gatys_on_the_trained_net(tmp_path, trained):
    """--images none: the style pairs alone. The trained rows are Gatys et al.'s transfer (content
    at relu4_2, Gram terms at relu1_1..relu5_1, no total variation); the random nets' rows keep the
    style command's defaults."""
    argv = ["quality", "--images", "none", "--pairs", "chelsea:ihc", "--nets", "ranvgg", "--trained", trained,
            "--content-weights", "3", "--size", "32", "--out", str(tmp_path)]
    o = experiments.resolve(experiments.PARSER.parse_args(argv))
    by_net = {s["net"]: s for s in quality.specs(o)}
    assert sorted(by_net) == ["ranvgg", "trained"] and {s["task"] for s in by_net.values()} == {"style"}
    assert by_net["ranvgg"]["options"] == {"content_weight": 3.0}
    # what the trained run gets once the style command fills in its defaults: Gatys et al.'s
    # configuration, none of the levers the defaults add for the random nets
    run = command.options(style.PARSER, by_net["trained"]["options"])
    assert (run.content_weight, run.content_layer, run.tv_weight) == (3.0, "relu4_2", 0.0)
    assert run.style_layers == "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"
    assert (run.pinned_layers, run.pixel_stats, run.feature_stats, run.scales, run.content_level) == \
        ("keep", "none", "gram", "none", 0)
    assert command.options(style.PARSER, by_net["ranvgg"]["options"]).feature_stats == style.PARSER.get_default("feature_stats")


def test_quality_textures_by_gatys_use_the_gram_terms_alone(tmp_path, trained):
    """The trained texture rows: Gram terms at every layer, no colour or centred statistics, no
    colour transfer, whatever the texture command's defaults add for the random nets."""
    argv = ["quality", "--images", "gravel", "--pairs", "none", "--nets", "ranvgg", "--trained", trained,
            "--seeds", "0", "--size", "32", "--out", str(tmp_path)]
    o = experiments.resolve(experiments.PARSER.parse_args(argv))
    by_net = {s["net"]: s for s in quality.specs(o)}
    run = command.options(texture.PARSER, by_net["trained"].get("options", {}))
    assert (run.pinned_layers, run.pixel_stats, run.feature_stats, run.colour_transfer) == ("keep", "none", "gram", False)
    assert "options" not in by_net["ranvgg"]


def test_gatys_options_leave_only_gram_terms_whatever_the_defaults_add(tmp_path):
    """Run with the Gatys options (on a random net: the terms do not depend on the weights), the
    texture command matches a Gram matrix per layer and nothing else, and the style command adds
    only the content term: a lever made a default for the random nets (the long-range terms, the
    centred or colour statistics) must not reach the Gatys baseline."""
    five = {f"style:{l}" for l in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")}
    _, log = texture.run(image="gravel", size=64, iters=1, scale_iters=1, device="cpu", **quality.GATYS_TEXTURE)
    assert set(log["weighting_factors"]) == five
    _, log = style.run(content="chelsea", style=["ihc"], size=64, iters=1, device="cpu", content_weight=3,
                       **quality.GATYS_STYLE)
    assert set(log["weighting_factors"]) == five | {"content:relu4_2"}


def test_interrupted_figure_resumes_without_redoing(tmp_path, monkeypatch):
    opts = {**TINY, "layers": "pool1", "seeds": "0-2", "iters": 1, "out": str(tmp_path)}
    calls = []
    real = runs.execute

    def flaky(spec):
        calls.append(spec["key"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(spec)

    monkeypatch.setattr(runs, "execute", flaky)
    results, interrupted = experiments.run(figure="fig1", **opts)
    assert interrupted and len(read_csv(tmp_path / "results.csv")) == 2
    first = read_csv(tmp_path / "results.csv")
    calls.clear()
    results, interrupted = experiments.run(figure="fig1", **opts)
    assert not interrupted and len(calls) == 1          # only the run not done yet
    rows = read_csv(tmp_path / "results.csv")
    assert [r["key"] for r in rows] == [s["key"] for s in results.specs]   # spec order, not finish order
    assert rows[:2] == first
    calls.clear()
    experiments.run(figure="fig1", **opts)
    assert calls == []
    with pytest.raises(UserError, match="other settings"):
        experiments.run(figure="fig1", **{**opts, "iters": 2})
    experiments.run(figure="fig1", fresh=True, **{**opts, "iters": 2, "seeds": "0"})
    assert len(read_csv(tmp_path / "results.csv")) == 1


def test_without_matplotlib_the_csv_and_summary_are_written(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: "matplotlib is not installed (test)")
    experiments.run(figure="fig3", out=str(tmp_path), **{**TINY, "layers": "pool1", "seeds": "0", "iters": 1})
    assert not (tmp_path / "fig3.png").exists() and (tmp_path / "results.csv").exists()
    assert "matplotlib is not installed (test)" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["fig3", "--seeds", "a-b"], "--seeds must look like"),
    (["fig3", "--nets", "resnet"], "unknown net 'resnet'"),
    (["fig1", "--trained", "/nonexistent.npz", "--nets", "random"], "no such file"),
    (["fig1", "--layers", "pool9", "--nets", "random"], "unknown layer 'pool9'"),
    (["fig1", "--image", "nope", "--nets", "random"], "not a sample image name"),
    (["arch", "--layers", "relu3_4"], "unknown layer 'relu3_4' in vgg11"),
    (["fig1", "--size", "16", "--nets", "random"], "too small"),
])
def test_bad_options_are_one_line_errors(argv, message, tmp_path, capsys):
    assert experiments.main(argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_dask_cluster_gives_the_same_csv(tmp_path):
    """Two worker processes on loopback: the same rows, in the same order, as in-process, and
    the same numbers to 1e-5 (the workers run one numba thread each, the test process more:
    float32 sums in another order differ in the last bits)."""
    pytest.importorskip("dask.distributed", reason="dask.distributed is not installed (the test extra has it)")
    opts = {**TINY, "layers": "pool1", "iters": 3}
    t0 = time.perf_counter()
    experiments.run(figure="fig1", out=str(tmp_path / "local"), **opts)
    experiments.run(figure="fig1", out=str(tmp_path / "dask"), workers=2, **opts)
    local, dask = read_csv(tmp_path / "local" / "results.csv"), read_csv(tmp_path / "dask" / "results.csv")
    assert len(local) == 2 and [r["key"] for r in local] == [r["key"] for r in dask]
    for a, b in zip(local, dask):
        for k, v in a.items():
            if k == "seconds":
                continue
            try:
                assert float(v) == pytest.approx(float(b[k]), rel=1e-5), (a["key"], k)
            except ValueError:
                assert v == b[k], (a["key"], k)
    print(f"in-process + Dask: {time.perf_counter() - t0:.1f} s")


def test_stacked_net_of_another_depth(monkeypatch):
    """The 'stacked' kind runs the greedy builder on any --arch, over the convs of STACK's blocks."""
    from tasks.figures import nets

    monkeypatch.setitem(nets.STACK, "size", 32)
    monkeypatch.setitem(nets.STACK, "iters", 1)
    monkeypatch.setitem(nets.STACK, "candidates", 2)
    monkeypatch.setitem(nets.STACK, "blocks", 2)
    nets._cached.cache_clear()
    net = nets.get_net("stacked", 4, "vgg11", device="cpu")
    nets._cached.cache_clear()
    assert net.arch == "vgg11" and net.meta["kind"] == "stacked"
    assert list(net.meta["stacked"]["layers"]) == ["conv1_1", "conv2_1"]
    assert all(len(r["scores"]) == 2 for r in net.meta["stacked"]["layers"].values())
    plain = VGG19.random(seed=4, device="cpu", arch="vgg11")
    assert np.array_equal(net.params["conv3_1"][0], plain.params["conv3_1"][0])   # past block 2: the plain draw


QUICK = ["fig1", "--device", "cpu", "--size", "32", "--iters", "2", "--seeds", "0", "--layers", "pool1",
         "--nets", "random", "--quiet"]


def _error(argv, capsys):
    assert experiments.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_folder_of_foreign_files_is_never_written_or_cleared(tmp_path, capsys):
    d = tmp_path / "mine"
    (d / "runs").mkdir(parents=True)
    (d / "runs" / "precious.txt").write_text("keep")
    (d / "summary.md").write_text("my notes")
    err = _error(QUICK + ["--out", str(d), "--fresh"], capsys)
    assert "did not write (no settings.json there)" in err
    assert (d / "runs" / "precious.txt").read_text() == "keep" and (d / "summary.md").read_text() == "my notes"


def test_fresh_removes_only_what_ranvgg_wrote(tmp_path, capsys):
    d = tmp_path / "f"
    experiments.main(QUICK + ["--out", str(d)])
    (d / "runs" / "precious.txt").write_text("keep")
    (d / "notes.txt").write_text("keep")
    assert experiments.main(QUICK + ["--out", str(d), "--fresh"]) == 0
    assert (d / "runs" / "precious.txt").read_text() == "keep" and (d / "notes.txt").exists()
    assert (d / "results.csv").exists()


@pytest.mark.parametrize("name, content, expect", [
    ("settings.json", "{not json", "settings.json: cannot be read back"),
    ("settings.json", "", "settings.json: cannot be read back"),
    ("results.csv", b"\xff\xfe\x00bad", "results.csv: cannot be read back"),
    ("results.csv", "a,b\n1,2\n", "no 'key' column"),
    # a finished run's row without its numbers would be drawn and counted as done
    ("results.csv", "key,status\nrandom_s0_coffee_pool1,done\n", "its columns are key,status, this figure writes"),
    ("curves.csv", "key,iteration,loss,feature_error\nrandom_s0_coffee_pool1,1,b,\n", "loss is 'b', not a number"),
])
def test_damaged_resume_files_are_one_line_errors(name, content, expect, tmp_path, capsys):
    d = tmp_path / "r"
    assert experiments.main(QUICK + ["--out", str(d)]) == 0
    capsys.readouterr()
    p = d / name
    p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    err = _error(QUICK + ["--out", str(d)], capsys)
    assert expect in err and "--fresh" in err


def test_a_corrupt_number_in_results_is_an_error_not_a_dropped_row(tmp_path, capsys):
    d = tmp_path / "c"
    assert experiments.main(QUICK + ["--out", str(d)]) == 0
    capsys.readouterr()
    text = (d / "results.csv").read_text().splitlines()
    header = text[0].split(",")
    cells = text[1].split(",")
    cells[header.index("psnr")] = "12.x"
    (d / "results.csv").write_text("\n".join([text[0], ",".join(cells), *text[2:]]) + "\n")
    assert "not a number" in _error(QUICK + ["--out", str(d)], capsys)


@pytest.mark.parametrize("extra, expect", [
    (["--scheduler", "notanaddress"], "--scheduler 'notanaddress' is not a Dask address (missing port number"),
    (["--scheduler", "foo://x"], "--scheduler 'foo://x' is not a Dask address (unknown scheme foo://"),
    (["--scheduler", "tcp://host:port"], "is not a Dask address"),
    (["--scheduler", "tcp://host:0"], "port 0 is not between 1 and 65535"),
    (["--scheduler", " "], "--scheduler needs an address"),
    (["--scheduler", "tcp://host:8786", "--workers", "2"], "give one of the two"),
    (["--size", "100000"], "use --size"),
    (["--seeds", "0-100000000"], "at most 10000"),
    (["--workers", "100000"], "--workers must be between"),
])
def test_sweep_bounds_are_one_line_errors(extra, expect, tmp_path, capsys):
    """Refused before --out is made (a bad address costs nothing, not a 20 s dial and a folder)."""
    if "--scheduler" in extra:
        pytest.importorskip("dask.distributed")
    assert expect in _error(QUICK + ["--out", str(tmp_path / "o"), *extra], capsys)
    assert not (tmp_path / "o").exists()


def test_out_a_file_runs_a_file_and_duplicate_keys(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert "is a file; give a folder" in _error(QUICK + ["--out", str(f)], capsys)
    d = tmp_path / "d"
    d.mkdir()
    (d / "settings.json").write_text("{}")
    (d / "runs").write_text("x")
    assert "is a file, not the runs folder" in _error(QUICK + ["--out", str(d)], capsys)
    (d / "runs").unlink()
    (d / "runs").symlink_to(tmp_path / "nowhere")
    assert "runs is a link to nowhere, not the runs folder" in _error(QUICK + ["--out", str(d)], capsys)


@pytest.mark.parametrize("figure, option, names, expect", [
    ("fig5", "--image", "gravel,gravel", "--image: gravel and gravel would give their runs the same name"),
    ("fig5", "--image", "{tmp}/a_b.png,{tmp}/a-b.png", "a_b.png and {tmp}/a-b.png would give their runs the "
                                                       "same name ('a-b')"),
    ("fig5", "--image", "{tmp}/d1/x.png,{tmp}/d2/x.png", "same name ('x')"),
    ("fig6", "--styles", "ihc,ihc", "--styles: ihc and ihc would"),
    ("arch", "--textures", "gravel,gravel", "--textures: gravel and gravel would"),
    ("quality", "--pairs", "chelsea:ihc,chelsea:ihc", "--pairs: chelsea:ihc and chelsea:ihc would"),
])
def test_duplicate_run_names_refused_before_the_folder(tmp_path, capsys, figure, option, names, expect):
    photo = Path(image.sample_path("coffee")).read_bytes()
    for rel in ("a_b.png", "a-b.png", "d1/x.png", "d2/x.png"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(photo)
    out = tmp_path / "dup"
    argv = [figure, option, names.format(tmp=tmp_path), "--device", "cpu", "--size", "32", "--seeds", "0",
            "--nets", "random", "--out", str(out)]
    if figure == "quality":
        argv += ["--image", "gravel"]
    assert expect.format(tmp=tmp_path) in _error(argv, capsys)
    assert not out.exists()


def test_ctrl_c_held_during_an_in_process_save_stops_the_sweep(tmp_path, monkeypatch, capsys):
    """A Ctrl-C that arrives while a run's files are written is held (the save finishes) and
    then stops the sweep after that run, instead of being swallowed."""
    import signal

    from tasks.cli import signals

    real = runs.execute

    def execute_then_ctrl_c(spec):
        result = real(spec)
        signals._received.append(signal.SIGINT)   # what deferred() records for a held Ctrl-C
        return result

    monkeypatch.setattr(runs, "execute", execute_then_ctrl_c)
    code = experiments.main(QUICK[:7] + ["--seeds", "0-1", "--layers", "pool1", "--nets", "random", "--quiet",
                                          "--out", str(tmp_path / "s")])
    assert code == 130
    rows = read_csv(tmp_path / "s" / "results.csv")
    assert len(rows) == 1


def test_ctrl_c_while_the_summary_is_written_waits_for_it(tmp_path, monkeypatch, capsys):
    """A Ctrl-C (the second one, after a first stopped the sweep) while summary.md is written:
    the summary is finished, no traceback, exit 130."""
    import os
    import signal

    real_execute, real_report = runs.execute, FIGURES["fig1"].report
    calls = []

    def execute(spec):
        calls.append(spec)
        if len(calls) == 2:
            raise KeyboardInterrupt           # the first Ctrl-C, during the second run
        return real_execute(spec)

    def report(*args):
        os.kill(os.getpid(), signal.SIGINT)   # the second, while the summary is being made
        return real_report(*args)

    def main(argv):
        try:
            return experiments.main(argv)
        except KeyboardInterrupt:
            pytest.fail("KeyboardInterrupt escaped experiments.main: a traceback for the user")

    monkeypatch.setattr(runs, "execute", execute)
    monkeypatch.setattr(FIGURES["fig1"], "report", report)
    d = tmp_path / "s"
    argv = QUICK[:7] + ["--seeds", "0-1", "--layers", "pool1", "--nets", "random", "--quiet", "--out", str(d)]
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "writing the summary: please wait" in err
    assert "1 of 2 runs done" in (d / "summary.md").read_text() and len(read_csv(d / "results.csv")) == 1
    calls.clear()                             # the same again: the last run, then a Ctrl-C in the summary
    assert main(argv) == 130
    assert "2 of 2 runs done" in (d / "summary.md").read_text()
    assert signal.getsignal(signal.SIGINT) is before      # the handler it found is back


def test_exemplar_too_big_for_memory_is_refused_before_the_folder(tmp_path, monkeypatch, capsys):
    """quality reads the texture at --exemplar-size: 4000 px takes about 1 GiB, refused with
    600 MiB free (the runs themselves, at 32 px, fit)."""
    from engine import backend

    monkeypatch.setattr(backend, "memory_available", lambda device: 600 * 2**20)
    out = tmp_path / "q"
    err = _error(["quality", "--image", "gravel", "--pairs", "none", "--exemplar-size", "4000", "--size", "32",
                  "--seeds", "0", "--nets", "random", "--device", "cpu", "--out", str(out)], capsys)
    assert "--exemplar-size 4000: reading gravel at 4000x4000 px takes about" in err
    assert "use --exemplar-size" in err and not out.exists()


def test_out_of_memory_in_a_sweep_is_one_line(tmp_path, monkeypatch, capsys):
    def execute(spec):
        raise MemoryError

    monkeypatch.setattr(runs, "execute", execute)
    err = _error(QUICK + ["--out", str(tmp_path / "m")], capsys)
    assert "out of memory; use a smaller --size" in err


def test_sigterm_stops_the_sweep_like_ctrl_c(tmp_path, monkeypatch, capsys):
    """SIGTERM (a batch system's stop) keeps the finished runs, writes the summary, says SIGTERM
    and exits 143; the same command resumes."""
    import os
    import signal

    real, calls = runs.execute, []

    def execute(spec):
        calls.append(spec)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(spec)

    monkeypatch.setattr(runs, "execute", execute)
    d = tmp_path / "t"
    argv = QUICK[:7] + ["--seeds", "0-2", "--layers", "pool1", "--nets", "random", "--quiet", "--out", str(d)]
    assert experiments.main(argv) == 143
    err = capsys.readouterr().err
    assert "SIGTERM: 1 of 3 runs kept" in err and "Traceback" not in err
    assert len(read_csv(d / "results.csv")) == 1 and "1 of 3 runs done" in (d / "summary.md").read_text()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    calls.clear()
    monkeypatch.setattr(runs, "execute", real)
    assert experiments.main(argv) == 0 and len(read_csv(d / "results.csv")) == 3
