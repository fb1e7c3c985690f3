"""Output files of the tasks: where they go, checked before any work, and the JSON log.

Default names never replace an earlier result: the command line claims the first free name of
out/TASK.png, out/TASK-2.png, ... (``claim_default``); the log and the plots follow the image.
An explicit --out replaces that one file, as asked.
"""
from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np

from engine import image
from engine.errors import UserError


def output_paths(a, image_out: bool = True) -> tuple[Path | None, Path | None]:
    """(--out, --log or OUT.json), both checked writable before any work is done; None where
    no file was asked for (the Python API writes files only when given ``out=`` or ``log=``).
    ``image_out``: --out is an image, so its extension must name a format we write."""
    out = Path(a.out) if a.out else None
    log_path = Path(a.log) if a.log else (out.with_suffix(".json") if out else None)
    if out is not None:
        if image_out:
            image.check_format(out)
        check_writable(out, "--out")
    if log_path is not None:
        check_writable(log_path, "--log")
    return out, log_path


def claim_default(pattern) -> Path:
    """The first of PATTERN, STEM-2.EXT, STEM-3.EXT, ... whose file and .json log are both
    free, created empty and exclusively (O_EXCL): two runs started together never get the same
    name. The run replaces the empty file with its result; ``release`` removes it if not."""
    base = Path(pattern)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder {str(base.parent)!r} ({exc.strerror or exc}); "
                        "give --out FILE in a writable folder") from None
    for n in itertools.count(1):
        path = base if n == 1 else base.with_name(f"{base.stem}-{n}{base.suffix}")
        if path.with_suffix(".json").exists():
            continue
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise UserError(f"cannot write {str(path)!r} ({exc.strerror or exc}); "
                            "give --out FILE in a writable folder") from None


def release(path: Path) -> None:
    """Remove a claimed name that the run left empty (it stopped before saving anything)."""
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


def check_writable(path: Path, what: str) -> None:
    """Fail before the run, not after it, when a result could not be saved."""
    if path.is_dir():
        raise UserError(f"{what} {str(path)!r} is a directory; give a file name, e.g. {path / 'result.png'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.writable"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write {what} {str(path)!r} ({exc.strerror or exc}); choose another path") from None


def write_log(path: Path, log: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(log, indent=1, default=_json_default))
    tmp.replace(path)


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v)}")
