"""engine/io/files.py: atomic writes that never leave half a file, a stray temporary, or a device
node turned into a plain file; concurrent writers never corrupt one another."""
import errno
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.errors import UserError
from engine.io.files import atomic_write, same_file

ROOT = Path(__file__).resolve().parents[3]


def _leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp"))


def test_writes_and_replaces(tmp_path):
    path = tmp_path / "sub" / "a.bin"
    atomic_write(path, lambda f: f.write(b"one"))
    atomic_write(path, lambda f: f.write(b"two"))
    assert path.read_bytes() == b"two" and _leftovers(path.parent) == []


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_failure_keeps_the_old_file_and_no_temporary(tmp_path, exc):
    """A full disk (a writer raising ENOSPC half-way) or Ctrl-C: the old file intact, no 0-byte
    or partial temporary left; a full disk is one UserError line naming the file."""
    path = tmp_path / "a.png"
    path.write_bytes(b"precious")

    def writer(f):
        f.write(b"half")
        raise exc

    with pytest.raises(UserError if isinstance(exc, OSError) else KeyboardInterrupt) as info:
        atomic_write(path, writer, "image")
    assert path.read_bytes() == b"precious" and _leftovers(tmp_path) == []
    if isinstance(exc, OSError):
        msg = str(info.value)
        assert "a.png: cannot write the image (No space left on device); free some space" in msg
        assert "\n" not in msg


def test_symlink_is_written_through(tmp_path):
    target = tmp_path / "real.png"
    target.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    atomic_write(link, lambda f: f.write(b"new"))
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_fifo_is_written_directly_not_replaced(tmp_path, fifo_reader):
    """A non-regular target (here a FIFO; /dev/stdout, /dev/null alike) is written into, never
    renamed over: it stays what it was."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader, got = fifo_reader(fifo)
    atomic_write(fifo, lambda f: f.write(b"through the pipe"))
    reader.join(10)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_directory_target_is_refused(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        atomic_write(tmp_path, lambda f: f.write(b"x"))


def test_same_file(tmp_path):
    a = tmp_path / "a.png"
    a.write_bytes(b"x")
    os.link(a, tmp_path / "hard.png")
    (tmp_path / "soft.png").symlink_to(a)
    (tmp_path / "d").mkdir()
    assert same_file(a, tmp_path / "hard.png") and same_file(a, tmp_path / "soft.png")
    assert same_file(a, tmp_path / "d" / ".." / "a.png")
    assert same_file(tmp_path / "new.png", tmp_path / "d" / ".." / "new.png")  # neither exists yet
    assert not same_file(a, tmp_path / "b.png")


_WRITER = """
import sys
from engine.io.files import atomic_write
path, tag, n = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
for i in range(n):
    atomic_write(path, lambda f: [f.write(tag * 4096) for _ in range(64)])  # 256 KiB of one byte
"""


def test_two_processes_saving_one_path_never_corrupt_it(tmp_path):
    path = tmp_path / "shared.bin"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), tag, "40"], cwd=ROOT, env=env,
                              stderr=subprocess.PIPE, text=True) for tag in "AB"]
    seen = set()
    while any(p.poll() is None for p in procs):
        if path.exists():
            data = path.read_bytes()
            assert len(data) == 256 * 1024 and len(set(data)) == 1, "a reader saw a mixed or short file"
            seen.add(data[:1])
    for p in procs:
        assert p.wait() == 0, p.stderr.read()
    data = path.read_bytes()
    assert len(data) == 256 * 1024 and len(set(data)) == 1 and _leftovers(tmp_path) == []


def test_png_saves_from_threads_never_corrupt(tmp_path):
    from engine.io.image import load_image, save_png

    path = tmp_path / "t.png"
    imgs = [np.full((64, 64, 3), v, np.float32) for v in (10, 200)]
    threads = [threading.Thread(target=lambda im=im: [save_png(path, im) for _ in range(15)]) for im in imgs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = load_image(path)
    assert got.shape == (64, 64, 3) and np.unique(got).size == 1 and _leftovers(tmp_path) == []
