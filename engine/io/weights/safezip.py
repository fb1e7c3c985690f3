"""Opening zip containers (.npz, torch .pth, wheels) without trusting them.

Everything here is decided from the zip's central directory, before a byte of any member is
decompressed: which members exist, and how large each says it is. ``zipfile`` then stops
reading a member at its declared size (and checks its CRC), so a member that lies about its
size cannot make us inflate more than the directory promised. And what the directory promises
must fit the bytes the archive has: members are stored or deflated (what numpy, torch and
wheels write; deflate inflates at most 1032-fold), never bzip2 or lzma, which can turn a few
hundred bytes into gigabytes.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

from ...errors import UserError

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")   # a local file header, or an empty archive
NPY_MAGIC = b"\x93NUMPY"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_DEFLATE_RATIO = 1032      # deflate's limit: 258 bytes per 2-bit code, once warmed up


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
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise UserError(f"{path}: not a readable {what} ({exc.__class__.__name__}: {exc})") from None
    try:
        check_members(zf, str(path), os.path.getsize(path))
    except BaseException:
        zf.close()
        raise
    return zf


def check_members(zf: zipfile.ZipFile, where: str, archive_bytes: int) -> None:
    """Every member named once, unencrypted, stored or deflated, and no larger than its
    compressed bytes (themselves inside the archive) can hold; a UserError otherwise, before
    anything is read."""
    names = zf.namelist()
    if len(names) != len(set(names)):
        raise UserError(f"{where}: the zip lists a member twice; the file is damaged or crafted, re-create it")
    for info in zf.infolist():
        if info.flag_bits & 0x1:
            raise UserError(f"{where}: member {info.filename!r} is encrypted; weights files never are, "
                            "re-create it without a password")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            method = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}.get(info.compress_type,
                                                                                f"method {info.compress_type}")
            raise UserError(f"{where}: member {info.filename!r} is compressed with {method}; weights files "
                            "are stored or deflated (numpy.savez, torch.save), re-create it with one of those")
        most = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else MAX_DEFLATE_RATIO)
        if info.compress_size > archive_bytes or info.file_size > most:
            raise UserError(f"{where}: member {info.filename!r} declares {info.file_size:,} bytes from "
                            f"{info.compress_size:,} compressed in a {archive_bytes:,}-byte archive, which "
                            "cannot hold them; the file is damaged or crafted, re-create it")


def member_size(zf: zipfile.ZipFile, name: str, limit: int, where: str) -> zipfile.ZipInfo:
    """The ``ZipInfo`` of ``name``; a UserError if its declared size exceeds ``limit`` bytes."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise UserError(f"{where}: member {name!r} declares {info.file_size:,} bytes, more than the "
                        f"{limit:,} it can need; the file is damaged or not what it claims")
    return info


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, into=None) -> bytes:
    """All of a member's bytes (already size-checked); damage is a UserError. With ``into`` (a
    writable buffer of exactly ``info.file_size`` bytes) they are read straight into it, in
    chunks, and ``into`` is returned: no second copy of a large member."""
    try:
        if into is None:
            return zf.read(info)
        view = memoryview(into).cast("B")
        with zf.open(info) as f:
            at = 0
            while at < len(view):
                chunk = f.read(min(1 << 20, len(view) - at))
                if not chunk:
                    raise EOFError(f"ends after {at:,} of {len(view):,} bytes")
                view[at:at + len(chunk)] = chunk
                at += len(chunk)
            if f.read(1):
                raise ValueError(f"holds more than {len(view):,} bytes")
        return into
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError,
            RuntimeError) as exc:
        raise UserError(f"{where}: cannot read member {info.filename!r} ({exc.__class__.__name__}: {exc}); "
                        "the file is damaged, re-create it") from None
