"""Installs that do not break each other: ``pip install .`` -> ``pip install -e .`` -> ``pip
install .`` in a temporary virtual environment, each followed by ``ranvgg --version`` and a tiny
run. Nothing is downloaded: --no-deps --no-build-isolation --no-index, and the dependencies
come from the running interpreter's site-packages through a .pth file."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("engine", "kernels", "tasks", "setup.cfg", "pyproject.toml", "README.md")


def _copy_sources(dest: Path) -> Path:
    """The package's own files, without build leftovers (pip builds in the source tree)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc", "*.egg-info", "build")
    for name in SOURCES:
        src = ROOT / name
        (shutil.copytree(src, dest / name, ignore=ignore) if src.is_dir() else shutil.copy2(src, dest / name))
    return dest


def _build_backend_dirs() -> list[str]:
    """Where setuptools and wheel come from (pip builds without network: --no-build-isolation);
    a visible skip when this environment cannot build a wheel offline."""
    try:
        import setuptools
    except ImportError:
        pytest.skip("setuptools is not installed: pip cannot build ranvgg offline here")
    dirs = {str(Path(setuptools.__file__).parents[1])}
    if tuple(int(v) for v in setuptools.__version__.split(".")[:2]) < (70, 1):  # no bdist_wheel of its own
        try:
            import wheel
        except ImportError:
            pytest.skip("the 'wheel' package is not installed (setuptools < 70.1 needs it to build "
                        "offline): pip install wheel, or the test extra")
        dirs.add(str(Path(wheel.__file__).parents[1]))
    return sorted(dirs)


def _without_ranvgg(site: Path, dest: Path) -> Path:
    """A folder of links to everything in ``site`` but ranvgg's own files (its packages, its
    dist-info, an editable install's finder): the test venv borrows the dependencies, never an
    installed ranvgg, which would shadow the one the test installs (CI installs ranvgg there)."""
    own = ("engine", "tasks", "kernels", "ranvgg")
    dest.mkdir()
    for entry in site.iterdir():
        if entry.name.split("-")[0].split(".")[0] in own or entry.name.startswith("__editable__"):
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


@pytest.mark.slow
def test_install_switching_keeps_a_working_command(tmp_path):
    """Each install runs a tiny inversion (numba compiles and caches its loops afresh)."""
    _switch_installs(tmp_path, run=True)


def test_install_switching_keeps_a_working_command_quick(tmp_path):
    """The default suite's (and so CI's) version: the same three installs, each followed by
    ``ranvgg --version``, ``ranvgg invert --help`` and a check of where ``engine`` comes from,
    without the run that compiles numba's loops."""
    _switch_installs(tmp_path, run=False)


def _switch_installs(tmp_path, run: bool):
    backend = _build_backend_dirs()
    src = _copy_sources(tmp_path / "src")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    # numpy, numba, pip, setuptools, wheel: from this interpreter, without a ranvgg installed here
    purelib = Path(sysconfig.get_paths()["purelib"])
    deps = [str(_without_ranvgg(purelib, tmp_path / "deps"))]
    deps += [d for d in backend if Path(d) != purelib]
    (site / "zz_deps.pth").write_text("".join(f"{d}\n" for d in dict.fromkeys(deps)))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(RANVGG_CACHE=str(tmp_path / "cache"), NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    work = tmp_path / "work"   # runs start outside the checkout: the installed package is used
    work.mkdir()

    def sh(*cmd):
        r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{cmd}: {r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        return r.stdout

    pip = [py, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    for step, editable in enumerate((False, True, False)):
        sh(*pip, *(["-e"] if editable else []), str(src))
        assert sh(env_dir / "bin" / "ranvgg", "--version").strip().startswith("ranvgg ")
        if run:
            out = work / f"inv{step}.png"
            sh(env_dir / "bin" / "ranvgg", "invert", "--net", "random", "--size", "16", "--iters", "1",
               "--device", "cpu", "--print-every", "0", "--out", str(out))
            assert out.stat().st_size > 0
        else:
            assert "usage: ranvgg invert" in sh(env_dir / "bin" / "ranvgg", "invert", "--help")
        where = sh(py, "-c", "import engine, os; print(os.path.dirname(engine.__file__))").strip()
        assert Path(where).parent == (src if editable else site), where
        left = [p for p in (site / "engine").rglob("*") if p.suffix in (".nbi", ".nbc")] \
            if (site / "engine").exists() else []
        assert not left, f"numba cache files written into site-packages: {left[:3]}"
    if run:
        assert list((tmp_path / "cache" / "numba").rglob("*.nbi"))
