"""numba's cache: in the user's cache folder, never beside the sources; no writable cache folder
costs the cache, never the run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import numpy as np
from engine import parallel
from engine.ops import pooling
x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
y = pooling.avgpool2_forward(x)
assert np.allclose(y[0, 0, 0, 0], x[0, 0, :2, :2].mean())
print(parallel.CACHE, parallel.CACHE_DIR)
"""


def _run(env_extra: dict, drop=("RANVGG_CACHE", "XDG_CACHE_HOME", "NUMBA_CACHE_DIR")):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra, PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)


def _in_tree_cache_files():
    return sorted(p for p in (ROOT / "engine").rglob("*") if p.suffix in (".nbi", ".nbc"))


def test_numba_cache_goes_to_the_user_cache_folder(tmp_path):
    before = _in_tree_cache_files()
    r = _run({"RANVGG_CACHE": str(tmp_path / "c")})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", str(tmp_path / "c" / "numba")]
    assert list((tmp_path / "c" / "numba").rglob("*.nbi")), "nothing cached in RANVGG_CACHE/numba"
    assert _in_tree_cache_files() == before  # nothing written beside the sources


def test_no_writable_cache_folder_still_runs(tmp_path):
    # a home that cannot hold folders (under a plain file: refused even to root), and a
    # read-only cache folder (root writes through it, so only checked for other users)
    blocker = tmp_path / "file"
    blocker.write_text("")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    cases = [{"HOME": str(blocker / "home")}, {"RANVGG_CACHE": str(blocker / "cache")}]
    if os.geteuid() != 0:
        cases.append({"RANVGG_CACHE": str(ro / "cache")})
    try:
        for env in cases:
            r = _run(env)
            assert r.returncode == 0, (env, r.stderr)
            assert r.stdout.split() == ["False", "None"], (env, r.stdout)
    finally:
        ro.chmod(0o700)
