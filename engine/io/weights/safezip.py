"""Opening zip containers (.npz, torch .pth, wheels) without trusting them.

Everything here is decided from the zip's central directory, before a byte of any member is
decompressed: which members exist, and how large each says it is. ``zipfile`` then stops
reading a member at its declared size (and checks its CRC), so a member that lies about its
size cannot make us inflate more than the directory promised.
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from ...errors import UserError

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")   # a local file header, or an empty archive
NPY_MAGIC = b"\x93NUMPY"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def head(path: Path, n: int = 8) -> bytes:
    """The first ``n`` bytes of a file (to tell formats apart); a UserError if unreadable."""
    check_file(path)
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the file ({exc.strerror or exc}); check its permissions") from None


def check_file(path: Path, what: str = "weights file") -> None:
    if not path.exists():
        raise UserError(f"{what} {str(path)!r} not found; check the path")
    if not path.is_file():
        raise UserError(f"{what} path {str(path)!r} is not a file")


def open_zip(path: Path, what: str) -> zipfile.ZipFile:
    """A ``ZipFile`` on ``path``; one-line UserErrors for a non-zip (naming a bare .npy)."""
    magic = head(path)
    if magic.startswith(NPY_MAGIC):
        raise UserError(f"{path}: is a single .npy array, not a .npz weights file; "
                        "a weights file holds every layer (write it with numpy.savez or VGG19.save)")
    if not magic.startswith(ZIP_MAGIC):
        raise UserError(f"{path}: not a readable {what} (not a zip archive)")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise UserError(f"{path}: not a readable {what} ({exc.__class__.__name__}: {exc})") from None
    names = zf.namelist()
    if len(names) != len(set(names)):
        zf.close()
        raise UserError(f"{path}: the zip lists a member twice; the file is damaged or crafted, re-create it")
    return zf


def member_size(zf: zipfile.ZipFile, name: str, limit: int, where: str) -> zipfile.ZipInfo:
    """The ``ZipInfo`` of ``name``; a UserError if its declared size exceeds ``limit`` bytes."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise UserError(f"{where}: member {name!r} declares {info.file_size:,} bytes, more than the "
                        f"{limit:,} it can need; the file is damaged or not what it claims")
    return info


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """All of a member's bytes (already size-checked); damage is a UserError."""
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError,
            RuntimeError) as exc:
        raise UserError(f"{where}: cannot read member {info.filename!r} ({exc.__class__.__name__}: {exc}); "
                        "the file is damaged, re-create it") from None
