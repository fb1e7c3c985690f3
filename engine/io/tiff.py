"""A minimal 16-bit RGB TIFF encoder (Pillow writes 16-bit TIFFs only for one channel).

Baseline TIFF 6.0, little-endian, uncompressed, one strip, chunky RGB (PlanarConfiguration 1).
Any TIFF reader opens it (Pillow, tifffile, GIMP, ...); the run's metadata goes into the
ImageDescription tag as text.

File layout: 8-byte header | BitsPerSample values | description | pixels | IFD.
"""
from __future__ import annotations

import struct

import numpy as np

_SHORT, _ASCII, _LONG = 3, 2, 4


def encode_rgb16(img: np.ndarray, description: str = "") -> bytes:
    """(H, W, 3) uint16 -> the bytes of a TIFF file holding it, ``description`` in tag 270."""
    if img.dtype != np.uint16 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint16 image, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    bits = struct.pack("<3H", 16, 16, 16)
    text = description.encode("ascii", "backslashreplace") + b"\0"
    pixels = np.ascontiguousarray(img, dtype="<u2").tobytes()  # (H, W, 3) row by row, RGB
    bits_at = 8
    text_at = bits_at + len(bits)
    pixels_at = text_at + len(text)
    ifd_at = pixels_at + len(pixels)
    ifd_at += ifd_at % 2                                      # the IFD starts on a word boundary
    tags = [  # (tag, type, count, value or offset), in ascending tag order as TIFF requires
        (256, _LONG, 1, w),                                   # ImageWidth
        (257, _LONG, 1, h),                                   # ImageLength
        (258, _SHORT, 3, bits_at),                            # BitsPerSample 16, 16, 16
        (259, _SHORT, 1, 1),                                  # Compression: none
        (262, _SHORT, 1, 2),                                  # PhotometricInterpretation: RGB
        (270, _ASCII, len(text), text_at),                    # ImageDescription
        (273, _LONG, 1, pixels_at),                           # StripOffsets
        (277, _SHORT, 1, 3),                                  # SamplesPerPixel
        (278, _LONG, 1, h),                                   # RowsPerStrip: one strip
        (279, _LONG, 1, len(pixels)),                         # StripByteCounts
        (284, _SHORT, 1, 1),                                  # PlanarConfiguration: chunky
    ]
    ifd = struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        packed = struct.pack("<H2x", value) if kind == _SHORT and count == 1 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)                               # no next IFD
    head = b"II*\0" + struct.pack("<I", ifd_at)
    body = head + bits + text + pixels
    return body + b"\0" * (ifd_at - len(body)) + ifd
