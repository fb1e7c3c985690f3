"""Output files of the tasks: where they go, checked before any work, saved one by one, the log.

Every output goes through ``engine.io.files.atomic_write`` (unique temporary, fsync, rename), so a
crash, a full disk or a second run saving the same path never leaves a corrupt file. Default
names never replace an earlier result: the command line claims the first free name of
out/TASK.png, out/TASK-2.png, ... (``claim_default``); the log and the plots follow the image.
An explicit --out replaces that one file, as asked.
"""
from __future__ import annotations

import errno
import itertools
import re
import json
import math
import os
import stat
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from engine.io import image
from engine.errors import UserError
from engine.io.files import atomic_write, same_file

from . import signals

# the options that name files a task reads (style's --style may hold several; --net may name a
# recipe or a weights file)
INPUT_OPTIONS = ("image", "content", "style", "init", "weights", "net", "judge_weights")
NOT_FILES = {"init": ("noise", "content"), "net": ("ranvgg", "random"), "image": ("reference",)}


def output_paths(a, image_out: bool = True) -> tuple[Path | None, Path | None]:
    """(--out, --log or OUT.json), checked before any work is done: writable, and neither one
    of the inputs nor another of the run's outputs, side outputs included (the loss plot, the
    frames and their contact sheet): a collision would destroy a file the user did not name
    as an output. None where no file was asked for (the Python API writes files only when
    given ``out=`` or ``log=``). ``image_out``: --out is an image, so its extension must name
    a format we write."""
    out = Path(a.out) if a.out else None
    log_path = Path(a.log) if a.log else (out.with_suffix(".json") if out and not is_device(out) else None)
    if out is not None and is_device(out) and getattr(a, "save_every", 0):
        raise UserError(f"--save-every writes frames beside --out: give --out a file, not the device {a.out}")
    if out is not None and image_out:
        image.check_format(out)
    check_distinct(a, written_files(a, out, log_path))
    if out is not None:
        check_writable(out, "--out")
    if log_path is not None:
        check_writable(log_path, "--log")
    return out, log_path


def written_files(a, out: Path | None, log_path: Path | None) -> list[tuple[str, Path]]:
    """[(what, path)] of every file an image task's run may write."""
    files = []
    if out is not None:
        files.append(("--out", out))
    if log_path is not None:
        files.append(("--log" if a.log else "the log (OUT with .json)", log_path))
    if out is not None and not is_device(out):  # a device (/dev/null) gets the result alone
        from .plots import companion

        files.append(("the loss plot (OUT_loss.png)", companion(out, "loss")))
        if getattr(a, "save_every", 0):
            files.append(("the contact sheet (OUT_frames.png)", companion(out, "frames")))
    return files


def _frame_of(a, out: Path | None, path: Path) -> int | None:
    """The iteration N when ``path`` is one of the frames OUT_iterN the run saves (--save-every),
    from the name alone: a long run's thousands of frames are never listed."""
    every = getattr(a, "save_every", 0) or 0
    if out is None or not every or is_device(out):
        return None
    m = re.fullmatch(re.escape(out.stem) + r"_iter(\d+)" + re.escape(out.suffix), path.name)
    if not m or not (int(m[1]) % every == 0 and 0 < int(m[1]) <= a.iters):
        return None
    return int(m[1]) if os.path.realpath(path.parent) == os.path.realpath(out.parent) else None


def is_device(path: Path) -> bool:
    """A character device such as /dev/null: the result is streamed into it, with no log beside
    it (unless --log says where) and no plots or frames."""
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def input_files(a) -> list[tuple[str, Path]]:
    """[(option, path)] for every input option of ``a`` that names a file (sample names and the
    words noise/content/ranvgg/random name none)."""
    from ..pipeline.inputs import image_path

    found = []
    for name in INPUT_OPTIONS:
        specs = getattr(a, name, None)
        for spec in (specs if isinstance(specs, (list, tuple)) else [specs]):
            if spec is None or not isinstance(spec, (str, os.PathLike)) or spec in NOT_FILES.get(name, ()):
                continue
            try:
                path = Path(spec) if name in ("weights", "net", "judge_weights") else image_path(spec)
            except UserError:  # not a file: reported later, with the input's own message
                continue
            found.append((f"--{name.replace('_', '-')}", path))
    return found


def check_inputs_readable(a) -> None:
    """Every input that exists is a regular file: a FIFO or a device (/dev/zero, a pipe) would
    block or read without end; refused before any work, naming the option."""
    for option, path in input_files(a):
        try:
            st = os.stat(path)
        except OSError:
            continue  # a missing file is reported by its reader, with the option
        if not stat.S_ISREG(st.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else ("a folder" if stat.S_ISDIR(st.st_mode)
                                                              else "a device or other special file")
            raise UserError(f"{option} {str(path)!r} is {kind}, not a regular file; give a file")


def check_distinct(a, files: list[tuple[str, Path]]) -> None:
    """A UserError when two of the run's outputs are one file, or an output is an input file."""
    for i, (what, path) in enumerate(files):
        for other, q in files[:i]:
            if same_file(path, q) and not is_device(path):   # /dev/null twice replaces nothing
                raise UserError(f"{other} and {what} are the same file {str(path)!r}: one would replace the "
                                "other; choose other names")
    inputs = input_files(a)
    out = next((p for w, p in files if w == "--out"), None)
    for what, path in files[1:] + [(option, src) for option, src in inputs]:
        n = _frame_of(a, out, path)
        if n is not None:
            raise UserError(f"{what} {str(path)!r} is the frame OUT_iter{n} that --save-every writes: choose "
                            f"another {'--out' if what.startswith('--') and what != '--log' else what}")
    for what, path in files:
        for option, src in inputs:
            if same_file(path, src):
                fix = what if what.startswith("--") else "--out" if "OUT" in what else "--log"
                raise UserError(f"{what} {str(path)!r} is the {option} file: writing it would destroy the "
                                f"input; choose another {fix}")


def claim_default(pattern) -> Path:
    """The first of PATTERN, STEM-2.EXT, STEM-3.EXT, ... whose file, .json log and claim are all
    free, claimed exclusively (``claim``): two runs started together never get the same name.
    Nothing is created under the name itself, so a run killed before it saves (SIGKILL) leaves
    no empty result behind; ``release`` drops the claim."""
    base = Path(pattern)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder {str(base.parent)!r} ({exc.strerror or exc}); "
                        "give --out FILE in a writable folder") from None
    for n in itertools.count(1):
        path = base if n == 1 else base.with_name(f"{base.stem}-{n}{base.suffix}")
        if path.exists() or path.with_suffix(".json").exists():
            continue
        if claim(path, quiet=True):
            return path


def _claim_file(path: Path) -> Path:
    return path.with_name(f".{path.name}.claim")


def claim(path: Path, quiet: bool = False) -> bool:
    """Mark ``path`` as being written by this process: a hidden ``.NAME.claim`` holding our pid,
    created exclusively. A claim whose process is gone is stale and taken over. Another live
    run holding it: False when ``quiet``, else a UserError (two runs writing one --out would
    leave one's image beside the other's log). A folder where no claim can be made: True (the
    write itself will report the problem)."""
    lock = _claim_file(path)
    for _ in range(3):
        tmp = lock.with_name(f"{lock.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            tmp.write_text(str(os.getpid()))
            os.link(tmp, lock)   # atomic, and the claim is never seen without its pid
            return True
        except FileExistsError:
            try:
                pid = int(lock.read_text() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid == os.getpid() or (pid and _alive(pid)):
                if quiet:
                    return False
                raise UserError(f"--out {str(path)!r} is being written by another run (process {pid}); "
                                "wait for it or give another --out") from None
            try:
                lock.unlink()   # stale: its run was killed
            except OSError:
                pass
        except OSError as exc:
            if quiet:  # the default name's folder: nothing could be written there
                raise UserError(f"cannot write {str(path)!r} ({exc.strerror or exc}); "
                                "give --out FILE in a writable folder") from None
            return False  # --out's own check reports it, naming the option
        finally:
            try:
                tmp.unlink()
            except OSError:
                pass
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def release(path: Path) -> None:
    """Drop this process's claim on ``path`` (the run saved, or stopped before saving)."""
    lock = _claim_file(path)
    try:
        if lock.read_text() == str(os.getpid()):
            lock.unlink()
    except OSError:
        pass


def check_writable(path: Path, what: str) -> None:
    """Fail before the run, not after it, when a result could not be saved."""
    if path.is_dir():
        raise UserError(f"{what} {str(path)!r} is a directory; give a file name, e.g. {path / 'result.png'}")
    target = Path(os.path.realpath(path))  # a symlink is written through to its target
    try:
        if target.exists() and not target.is_file():  # /dev/null, a device: written directly
            if not os.access(target, os.W_OK):
                raise PermissionError(errno.EACCES, "Permission denied")
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".writable"):
            pass  # a unique probe: two runs checking one folder never trip over each other
    except OSError as exc:
        raise UserError(f"cannot write {what} {str(path)!r} ({exc.strerror or exc}); choose another path") from None


def save_each(savers) -> dict:
    """Run every ``(what, path, save_fn)`` even when one fails; returns {path: message} of the
    failures, each also printed as one line, so that one unwritable file never costs the others."""
    failed = {}
    for what, path, save in savers:
        try:
            save()
        except UserError as exc:
            failed[str(path)] = str(exc)
            print(f"error: {exc}", file=sys.stderr)
    return failed


def save_outputs(log: dict, savers, log_path: Path | None) -> None:
    """Save each output, then the log (which lists what could not be saved), each on its own.
    Ctrl-C and SIGTERM wait until the files are written (a second Ctrl-C during a save must
    not lose the run or leave half a file). ``log["save_errors"]``: the failures, one line each.
    ``log_path`` None: no log file (the Python API without ``log=``/``out=``)."""
    from .console import say

    logs = [] if log_path is None else [("log", log_path, lambda: write_log(log_path, log))]
    with signals.deferred():
        failed = save_each(savers)
        log["save_errors"] = list(failed.values())
        failed.update(save_each(logs))
    extra = [str(p) for p in log.get("files", {}).values()]  # a result's companions (plots)
    saved = [str(p) for _, p, _ in [*savers, *logs] if str(p) not in failed]
    saved = list(dict.fromkeys(saved[:len(savers)] + extra + saved[len(savers):]))
    if saved:
        say(f"saved {', '.join(saved)}")
    log["save_errors"] = list(failed.values())


def write_log(path: Path, log: dict) -> None:
    """The log as strict JSON: a NaN or infinite figure is written as a string ("inf", "nan"),
    never as a bare Infinity/NaN token that JSON parsers reject."""
    text = json.dumps(_finite(log), indent=1, default=_json_default, allow_nan=False)
    atomic_write(path, lambda f: f.write(text.encode()), "log")


def _finite(v):
    """A copy of ``v`` with every non-finite float replaced by its name."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, np.ndarray):
        return _finite(v.tolist())
    if isinstance(v, (float, np.floating)) and not math.isfinite(v):
        return str(float(v))  # "inf", "-inf", "nan"
    return v


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v)}")
