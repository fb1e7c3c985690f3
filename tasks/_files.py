"""Output files of the tasks: where they go, checked before any work, and the JSON log."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.errors import UserError


def output_paths(a) -> tuple[Path, Path]:
    """(--out, --log or OUT.json), both checked writable before any work is done."""
    out = Path(a.out)
    log_path = Path(a.log) if a.log else out.with_suffix(".json")
    check_writable(out, "--out")
    check_writable(log_path, "--log")
    return out, log_path


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
