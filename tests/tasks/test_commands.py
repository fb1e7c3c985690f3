"""The ranvgg console script (tasks/ranvgg.py): subcommands from a table, --help, --version."""
import configparser
import subprocess
import sys
from pathlib import Path

from tasks.cli import ranvgg

ROOT = Path(__file__).resolve().parents[2]


def test_console_script_is_declared():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["options.entry_points"]["console_scripts"].strip() == "ranvgg = tasks.cli.ranvgg:main"
    assert cfg["metadata"]["version"] == "attr: engine.__version__"


def test_version(capsys):
    assert ranvgg.main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"ranvgg {ranvgg.version()}" and out.split()[1].count(".") >= 1


def test_help_lists_every_subcommand_in_one_line(capsys):
    assert ranvgg.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("invert", "texture", "style", "stack", "gradcheck", "weights", "experiments"):
        (line,) = [l for l in out.splitlines() if l.split()[:1] == [name]]
        assert len(line) <= 80
    assert ranvgg.main([]) == 2  # no command: the same help, and a non-zero status


def test_subcommand_runs_with_the_same_options(tmp_path, capsys):
    out = tmp_path / "r.jpg"
    assert ranvgg.main(["invert", "--device", "cpu", "--size", "32", "--iters", "2", "--layer", "relu1_1",
                           "--print-every", "0", "--out", str(out)]) == 0
    assert out.exists() and f"saved {out}" in capsys.readouterr().out
    assert ranvgg.main(["texture", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: ranvgg texture")


def test_missing_module_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(ranvgg.COMMANDS, "later", ("tasks.not_written_yet", "a command to come"))
    assert ranvgg.main(["later", "--x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: 'ranvgg later' is not available in this version (tasks.not_written_yet is "
                   "not installed); update ranvgg")


def test_unknown_command(capsys):
    assert ranvgg.main(["inverse"]) == 2
    assert "unknown command 'inverse'; use one of invert, texture" in capsys.readouterr().err


def test_python_dash_m_tasks():
    r = subprocess.run([sys.executable, "-m", "tasks", "--version"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"ranvgg {ranvgg.version()}"
