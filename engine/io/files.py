"""Writing files so that nothing is ever half-written, replaced by accident, or left behind.

    atomic_write(path, lambda f: f.write(data))      every output ranvgg writes goes through here
    same_file(a, b)                                  do two paths name one file (links, symlinks)?
    cache_dir()                                      the user's cache folder (recipes, numba's cache)

``atomic_write`` writes to a uniquely named temporary file in the target's folder, flushes and
fsyncs it, then renames it over the target: a reader (or a second run saving the same path at
the same time) sees the old file or the new one, never a mix. The temporary is removed on any
failure, Ctrl-C included, so a full disk leaves no 0-byte file behind.

A symlink is written through (its target is replaced, the link stays). A target that is not a
regular file (``/dev/null``, ``/dev/stdout``, a FIFO) is written directly, never renamed over:
renaming would turn a device node into a plain file.
"""
from __future__ import annotations

import errno
import os
import secrets
import time
import stat
import sys
from pathlib import Path

from ..errors import UserError, shown


def atomic_write(path, write_fn, what: str = "file") -> Path:
    """Call ``write_fn(f)`` on a binary file object, then put the result at ``path``.

    Parent folders are created. Returns the path written. Any OSError becomes one UserError
    naming the path and ``what`` (e.g. "out/x.json: cannot write the log (No space left on
    device); ..."); any other exception (KeyboardInterrupt too) is re-raised after the cleanup.
    """
    path = Path(path)
    target = Path(os.path.realpath(path))  # through symlinks, so the link itself stays a link
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise _error(what, path, exc) from None
    if mode is not None and stat.S_ISDIR(mode):
        raise UserError(f"{path}: cannot write the {what}: it is a directory; give a file name")
    if mode is not None and not stat.S_ISREG(mode):
        return _write_direct(target, path, write_fn, what)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:  # "x": never reuse another writer's temporary
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        _remove_quietly(tmp)
        raise _error(what, path, exc) from None
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(target.parent)
    return path


def _write_direct(target: Path, shown: Path, write_fn, what: str) -> Path:
    """A device node or FIFO: write into it as it is (no temporary, no rename). A FIFO is opened
    without blocking, tried again for up to FIFO_WAIT seconds (a reader starting at the same
    time), then with no reader that is an error (ENXIO), never a hang that holds Ctrl-C and
    SIGTERM while the outputs are saved."""
    try:
        fd = _open_nonblocking(target)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # the reader is there: plain writes from now on
        with open(fd, "wb") as f:
            write_fn(f)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise UserError(f"{shown}: cannot write the {what}: no process is reading this FIFO; "
                            "start its reader first") from None
        raise _error(what, shown, exc) from None
    return shown


FIFO_WAIT = 2.0   # seconds a FIFO output waits for its reader


def _open_nonblocking(target: Path) -> int:
    deadline = time.monotonic() + FIFO_WAIT
    while True:
        try:
            return os.open(target, os.O_WRONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _error(what: str, path: Path, exc: OSError) -> UserError:
    reason = exc.strerror or str(exc)
    hint = ("free some space or choose another folder" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
            else "check that the folder exists and is writable, or choose another path")
    return UserError(f"{path}: cannot write the {what} ({reason}); {hint}")


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:  # never created, or already gone
        pass


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; not every file system lets a folder be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def as_path(value, what: str) -> Path:
    """``value`` (str, bytes or os.PathLike) as a Path; anything else (None, a number, an array)
    is a UserError naming ``what``, the argument the caller was given."""
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise UserError(f"{what} must be a file name (str or Path), got {type(value).__name__} {shown(value)}")
    return Path(value)


def same_file(a, b) -> bool:
    """True when paths ``a`` and ``b`` name one file: equal after resolving symlinks and
    ``..``, or two hard links to one inode."""
    a, b = Path(a), Path(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet: only the resolved names can collide
        return False


def cache_dir() -> Path:
    """The user's cache folder for ranvgg: $RANVGG_CACHE, else the platform's: $XDG_CACHE_HOME/ranvgg
    or ~/.cache/ranvgg (Linux), ~/Library/Caches/ranvgg (macOS), %LOCALAPPDATA%\\ranvgg (Windows).
    Never inside the installed package. It may not exist or be writable (a read-only home, a
    service account): its users then work without a cache."""
    if os.environ.get("RANVGG_CACHE"):
        return Path(os.environ["RANVGG_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "ranvgg"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "ranvgg"
    try:
        home = Path.home()
    except (RuntimeError, KeyError):  # no HOME and no password entry
        home = Path(os.path.expanduser("~"))
    return home / ("Library/Caches" if sys.platform == "darwin" else ".cache") / "ranvgg"


def writable_dir(path: Path) -> bool:
    """Create ``path`` if needed and say whether files can be written in it (a real probe)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except (OSError, RuntimeError):
        return False
