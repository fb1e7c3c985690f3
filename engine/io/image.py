"""Images in and out (docs/method.md, section 2): load, resize, preprocess, save, sample images.

Host-side NumPy only: images are (H, W, 3) float32 RGB in [0, 255] ("hwc") until
``preprocess`` turns them into the engine's (1, 3, H, W) layout; ``deprocess`` goes back.

    load_image          any Pillow mode -> RGB float32, EXIF orientation applied, optional --size
    image_size          (H, W) from the file's header alone, before any decoding (memory check)
    center_crop_resize  shorter side to `side`, centre crop to side x side (fc layers: 256x256)
    preprocess          hwc [0, 255] -> (1, 3, H, W), "caffe" or "torchvision"
    deprocess           (1, 3, H, W) -> hwc, clipped to [0, 255]
    pixel_bounds        the preprocessed range of [0, 255]: L-BFGS-B bounds
    save_image          PNG, JPEG or 16-bit TIFF by extension, with the run's parameters, atomically
    save_png            8-bit PNG whatever the extension (run parameters as text chunks)
    luminance_transfer  keep the content's colours (--original-colors)
    sample_path         the public-domain / CC0 images shipped in tasks/data/
"""
from __future__ import annotations

import io
import os
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from . import tiff
from ..errors import UserError, shown
from .files import as_path, atomic_write

# ----------------------------------------------------------------------------- loading

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_UINT16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def load_image(path, size: int | None = None) -> np.ndarray:
    """Read any image Pillow knows as (H, W, 3) float32 RGB in [0, 255].

    Alpha (and a palette's or tRNS colour key's transparency) is composited over white.
    16-bit images are scaled by 255/65535; mode "I" (32-bit int) by the smallest of
    255, 65535, 2**31-1 that holds its maximum; mode "F" by 255 when it lies in [0, 1], else
    clipped to [0, 255]. EXIF orientation is applied. ``size``: scale (Lanczos) so that the
    longer side is ``size`` pixels. ``path`` may also be a shipped sample's name ("astronaut"),
    as on the command line.
    """
    path = _file_or_sample(path)
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer))
                             or size <= 0):
        raise UserError(f"{path}: --size must be a positive whole number of pixels, got {size!r}")
    _check_file(path)
    try:
        with Image.open(path) as im:
            _draft(im, size)
            im.load()  # decode now: a truncated file fails here, not later
            im = ImageOps.exif_transpose(_reduce(im, size))
            img = _to_rgb_float(im)
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image Pillow can read; give a PNG, JPEG, TIFF, ... file")
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise UserError(f"{path}: cannot read the image ({msg}); re-save or replace the file")
    if size is not None:
        h, w = img.shape[:2]
        scale = size / max(h, w)
        img = _resize(img, max(1, round(h * scale)), max(1, round(w * scale)))
    return img


# above this many pixels, an image much larger than --size is shrunk in its own (8/16-bit)
# format while decoding, never held as float: a 144-megapixel PNG would take 3 GB as float32.
# Smaller images are resized in float only, as before (no 8-bit rounding).
LARGE_PIXELS = 2**24


def image_size(path) -> tuple[int, int]:
    """(height, width) of an image file as ``load_image`` will see it (EXIF orientation
    applied), read from the header alone: nothing is decoded."""
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image Pillow can read; give a PNG, JPEG, TIFF, ... file")
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise UserError(f"{path}: cannot read the image ({msg}); re-save or replace the file")
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)  # 90-degree turns swap the sides


def scaled_size(hw, size: int | None) -> tuple[int, int]:
    """(h, w) after ``load_image``'s scaling of the longer side to ``size``."""
    h, w = hw
    if size is None:
        return h, w
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _large(im: Image.Image, size) -> bool:
    return size is not None and im.width * im.height > LARGE_PIXELS and max(im.size) >= 4 * size


def _draft(im: Image.Image, size) -> None:
    """A large JPEG decodes at 1/2, 1/4 or 1/8 scale, still at least twice the target size."""
    if _large(im, size) and im.format == "JPEG":
        w, h = scaled_size((im.height, im.width), 2 * size)[::-1]
        im.draft(im.mode, (w, h))


def _reduce(im: Image.Image, size) -> Image.Image:
    """A large image, shrunk by a whole factor (box average, in its own format) to at least
    twice the target size; the final Lanczos resize is done in float as for any image."""
    if not _large(im, size):
        return im
    factor = max(im.size) // (2 * size)
    try:
        return im.reduce(factor) if factor > 1 else im
    except (ValueError, NotImplementedError):  # a mode reduce() does not handle: decode in full
        return im


def _check_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise UserError(f"{path}: is a directory; give the path of an image file inside it")


def _to_rgb_float(im: Image.Image) -> np.ndarray:
    """A decoded Pillow image of any mode -> (H, W, 3) float32 in [0, 255]."""
    mode = im.mode
    if mode in _UINT16_MODES or mode in ("I", "F"):
        a = np.asarray(im).astype(np.float64)  # (H, W)
        if mode in _UINT16_MODES:
            a *= 255.0 / 65535.0
        elif mode == "I":
            peak = next(p for p in (255, 65535, 2**31 - 1) if a.max(initial=0) <= p)
            a *= 255.0 / peak
        elif not np.isfinite(a).all():
            raise ValueError(f"{np.count_nonzero(np.isnan(a))} NaN and {np.count_nonzero(np.isinf(a))} "
                             "infinite pixel value(s)")
        elif a.size and a.min() >= 0.0 and a.max() <= 1.0:
            a *= 255.0
        a = np.clip(a, 0.0, 255.0).astype(np.float32)
        return np.repeat(a[:, :, None], 3, axis=2)
    has_alpha = mode in _ALPHA_MODES or "transparency" in im.info
    # a mode Pillow cannot convert raises ValueError: load_image reports it with the path
    rgba = np.asarray(im.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32)
    if not has_alpha:
        return rgba
    alpha = rgba[:, :, 3:] / 255.0
    return rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)  # over a white background


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H, W, C) float -> (h, w, C) float32, Lanczos per channel, in float (no 8-bit rounding)."""
    if img.shape[:2] == (h, w):
        return img.astype(np.float32, copy=False)
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[:, :, c], dtype=np.float32))
                        .resize((w, h), Image.Resampling.LANCZOS))
             for c in range(img.shape[2])]
    # Lanczos rings: keep the [0, 255] promise
    return np.clip(np.stack(chans, axis=2), 0.0, 255.0).astype(np.float32)


def resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H, W, 3) -> (h, w, 3), Lanczos, clipped to [0, 255] (e.g. a --init image to the output size)."""
    return _resize(img, h, w)


def center_crop_resize(img: np.ndarray, side: int) -> tuple[np.ndarray, str]:
    """(H, W, 3) -> ((side, side, 3), note): shorter side scaled to ``side``, centre crop.

    The note says what was done, for the log (fc layers need exactly 256x256).
    """
    if side <= 0:
        raise UserError(f"crop side must be a positive number of pixels, got {side}")
    h, w = img.shape[:2]
    if (h, w) == (side, side):
        return img, f"image is already {side}x{side}"
    scale = side / min(h, w)
    rh, rw = max(side, round(h * scale)), max(side, round(w * scale))
    out = _resize(img, rh, rw)
    top, left = (rh - side) // 2, (rw - side) // 2
    out = out[top:top + side, left:left + side]
    note = f"resized {w}x{h} to {rw}x{rh} (shorter side {side})"
    if (rh, rw) != (side, side):
        note += f", centre-cropped to {side}x{side}"
    return out, note


# ----------------------------------------------------------------------------- preprocessing

class Preprocessing(NamedTuple):
    """x_pre = (x * scale - mean) / std, per RGB channel, for x in [0, 255]."""
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


PREPROCESSING = {
    # Caffe VGG (Simonyan & Zisserman): mean subtraction on the 0-255 scale, RGB order here
    "caffe": Preprocessing(1.0, (123.68, 116.779, 103.939), (1.0, 1.0, 1.0)),
    # torchvision.models: /255, then ImageNet mean/std
    "torchvision": Preprocessing(1.0 / 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def _preprocessing(mode: str) -> Preprocessing:
    try:
        return PREPROCESSING[mode]
    except (KeyError, TypeError):
        raise UserError(f"unknown preprocessing {mode!r}: use one of {', '.join(PREPROCESSING)}")


def _per_channel(values, dtype=np.float64) -> np.ndarray:
    return np.asarray(values, dtype=dtype).reshape(3, 1, 1)  # broadcasts over (.., 3, H, W)


def preprocess(img_hwc: np.ndarray, mode: str = "caffe", dtype=np.float32) -> np.ndarray:
    """(H, W, 3) RGB in [0, 255] -> (1, 3, H, W) network input."""
    p = _preprocessing(mode)
    if img_hwc.ndim != 3 or img_hwc.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img_hwc.shape}")
    x = np.asarray(img_hwc, dtype=np.float64).transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    x = (x * p.scale - _per_channel(p.mean)) / _per_channel(p.std)
    return np.ascontiguousarray(x[None], dtype=dtype)


def deprocess(x_nchw: np.ndarray, mode: str = "caffe") -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) network input -> (H, W, 3) float32, clipped to [0, 255]."""
    p = _preprocessing(mode)
    x = np.asarray(x_nchw, dtype=np.float64)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a (1, 3, H, W) or (3, H, W) array, got shape {x.shape}")
    x = (x * _per_channel(p.std) + _per_channel(p.mean)) / p.scale
    return np.clip(x.transpose(1, 2, 0), 0.0, 255.0).astype(np.float32)  # (3, H, W) -> (H, W, 3)


def pixel_bounds(mode: str = "caffe", shape=None) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper): what pixel values 0 and 255 become after ``preprocess``.

    ``shape`` None: per-channel (3,) float64 arrays. Otherwise full float64 arrays of that
    shape, whose third-from-last axis is the channel axis ((1, 3, H, W) or (3, H, W)), ready
    to flatten into L-BFGS-B bounds.
    """
    p = _preprocessing(mode)
    mean, std = np.asarray(p.mean), np.asarray(p.std)
    lower, upper = (0.0 - mean) / std, (255.0 * p.scale - mean) / std
    if shape is None:
        return lower, upper
    shape = tuple(shape)
    if len(shape) < 3 or shape[-3] != 3:
        raise ValueError(f"expected a (1, 3, H, W) or (3, H, W) shape, got {shape}")
    return (np.broadcast_to(lower.reshape(3, 1, 1), shape).copy(),
            np.broadcast_to(upper.reshape(3, 1, 1), shape).copy())


# ----------------------------------------------------------------------------- saving

def _json_default(value):
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
JPEG_QUALITY = 95


def check_format(path, what: str = "--out") -> str:
    """The format an output ``path`` asks for by its extension (PNG, JPEG, TIFF); an unknown
    one is a UserError, raised before any work is done."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS and _is_device(path):
        return "PNG"  # /dev/null, /dev/stdout: a PNG stream
    if suffix not in FORMATS:
        raise UserError(f"{what} {str(path)!r}: unknown image extension {suffix or '(none)'!r}; "
                        f"use one of {', '.join(FORMATS)}")
    return FORMATS[suffix]


def _is_device(path) -> bool:
    """A character device (``/dev/null``, a terminal): written into as a stream."""
    import stat

    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except (OSError, ValueError, TypeError):
        return False


def save_image(path, img_hwc: np.ndarray, metadata: dict | None = None) -> Path:
    """Write (H, W, 3) or (H, W) [0, 255] in the format of ``path``'s extension; returns the path.

    .png: 8-bit, each metadata item a text chunk (strings as they are, anything else JSON).
    .jpg/.jpeg: 8-bit JPEG, quality 95, the metadata as JSON in the comment.
    .tif/.tiff: 16-bit RGB TIFF (no 8-bit rounding), the metadata as JSON in ImageDescription.
    Parent folders are created. Written through ``files.atomic_write``: a crash, a full disk or a
    second run saving the same path never leaves half a file.
    """
    path = as_path(path, "save_image: path")
    encode = {"PNG": _encode_png, "JPEG": _encode_jpeg, "TIFF": _encode_tiff16}[check_format(path, "image")]
    return write_atomically(path, encode(_as_rgb_or_grey(img_hwc), metadata or {}))


def save_png(path, img_hwc: np.ndarray, metadata: dict | None = None) -> Path:
    """Write an 8-bit PNG whatever the extension (metadata as text chunks); returns the path."""
    return write_atomically(Path(path), _encode_png(_as_rgb_or_grey(img_hwc), metadata or {}))


def _as_rgb_or_grey(img_hwc) -> np.ndarray:
    """(H, W, 3), (H, W, 1) or (H, W) -> float64 (H, W, 3) or (H, W), NaN as 0."""
    a = np.asarray(img_hwc, dtype=np.float64)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"expected an (H, W, 3) or (H, W) image, got shape {a.shape}")
    return np.nan_to_num(a)


def _to_uint8(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))


def _metadata_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=_json_default)


def _encode_png(a: np.ndarray, metadata: dict) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        text = _metadata_text(value)
        info.add_text(str(key), text, zip=len(text) > 1024)
    buf = io.BytesIO()
    _to_uint8(a).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _encode_jpeg(a: np.ndarray, metadata: dict) -> bytes:
    buf = io.BytesIO()
    comment = json.dumps(metadata, default=_json_default).encode() if metadata else b""
    _to_uint8(a).save(buf, format="JPEG", quality=JPEG_QUALITY, comment=comment[:65000])
    return buf.getvalue()


def _encode_tiff16(a: np.ndarray, metadata: dict) -> bytes:
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    # [0, 255] float -> [0, 65535]: keeps the fractional levels an 8-bit file rounds away
    u16 = np.clip(np.rint(a * (65535.0 / 255.0)), 0, 65535).astype(np.uint16)
    return tiff.encode_rgb16(u16, json.dumps(metadata, default=_json_default) if metadata else "")


def write_atomically(path: Path, data: bytes) -> Path:
    """Write encoded image bytes through ``files.atomic_write`` (unique temporary, fsync, rename)."""
    return atomic_write(path, lambda f: f.write(data), "image")


def read_png_metadata(path, decode: bool = False) -> dict:
    """The text chunks of a PNG as {key: str}.

    ``decode=True`` JSON-decodes each value that parses (the inverse of ``save_png`` for
    non-string values; a string that happens to be valid JSON, such as "3", decodes too).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; check the path")
    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                raise UserError(f"{path}: is a {im.format} file, not a PNG; metadata is read "
                                "from PNGs written by ranvgg")
            im.load()  # text chunks after the image data are read only on load
            text = dict(getattr(im, "text", {}))
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image Pillow can read; give a PNG file")
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the PNG ({exc}); re-save or replace the file")
    if not decode:
        return text
    out = {}
    for key, value in text.items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


# ----------------------------------------------------------------------------- colour

# RGB -> YIQ (NTSC 1953). Gatys et al. 2016, "Preserving color in neural artistic style
# transfer", use exactly this split: luminance from the stylised image, I and Q from the content.
_RGB2YIQ = np.array([[0.299, 0.587, 0.114],
                     [0.595716, -0.274453, -0.321263],
                     [0.211456, -0.522591, 0.311135]])
_YIQ2RGB = np.linalg.inv(_RGB2YIQ)


def luminance_transfer(stylised_hwc: np.ndarray, content_hwc: np.ndarray) -> np.ndarray:
    """(H, W, 3) x2 -> (H, W, 3) float32 in [0, 255]: Y of the stylised image, IQ of the content.

    A content image of another size is resized (Lanczos) to the stylised image's size first.
    """
    s = np.asarray(stylised_hwc, dtype=np.float64)
    c = np.asarray(content_hwc, dtype=np.float64)
    if c.shape[:2] != s.shape[:2]:
        c = _resize(c, *s.shape[:2]).astype(np.float64)
    yiq = c @ _RGB2YIQ.T                    # (H, W, 3) content in YIQ
    yiq[:, :, 0] = s @ _RGB2YIQ[0]          # luminance from the stylised image
    return np.clip(yiq @ _YIQ2RGB.T, 0.0, 255.0).astype(np.float32)


def colour_transfer(img_hwc: np.ndarray, ref_hwc: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W, 3) float32 in [0, 255]: img's pixels mapped linearly so that their
    mean and covariance are the reference's (any size): y = A (x - mu_x) + mu_ref with
    A = C_ref^(1/2) C_x^(-1/2) (symmetric square roots). A grey reference (covariance of rank one,
    along the grey axis) gives an exactly grey image; the map keeps the image's own structure."""
    x = np.asarray(img_hwc, np.float64).reshape(-1, 3)
    r = np.asarray(ref_hwc, np.float64).reshape(-1, 3)
    mx, mr = x.mean(0), r.mean(0)
    cx, cr = np.cov(x.T, bias=True), np.cov(r.T, bias=True)

    def power(c, p):
        w, v = np.linalg.eigh(c)
        w = np.clip(w, 0, None)
        keep = w > w.max() * 1e-8 if p < 0 else np.ones_like(w, bool)
        return (v[:, keep] * w[keep] ** p) @ v[:, keep].T

    a = power(cr, 0.5) @ power(cx + np.eye(3) * 1e-6 * (np.trace(cx) + 1e-12), -0.5)
    y = (x - mx) @ a.T + mr
    return np.clip(y, 0.0, 255.0).reshape(np.shape(img_hwc)).astype(np.float32)


def recolour(img_hwc: np.ndarray, refs, t: float) -> np.ndarray:
    """(H, W, 3) -> (H, W, 3) float32: img's colours moved a fraction ``t`` of the way to those of
    the reference images' pixels pooled (``colour_transfer``: their mean and covariance at t = 1);
    t = 0 returns img itself."""
    if not t:
        return img_hwc
    pooled = np.concatenate([np.asarray(r, np.float32).reshape(-1, 3) for r in refs])[:, None, :]
    img = np.asarray(img_hwc, np.float32)
    return ((1.0 - t) * img + t * colour_transfer(img, pooled)).astype(np.float32)


# ----------------------------------------------------------------------------- samples

class Sample(NamedTuple):
    file: str
    kind: str          # "content" (photo) or "style" (texture / colourful pattern)
    description: str


SAMPLES = {
    "astronaut": Sample("astronaut.png", "content", "Eileen Collins, NASA photo (public domain)"),
    "coffee": Sample("coffee.png", "content", "coffee cup, Rachel Michetti (CC0)"),
    "chelsea": Sample("chelsea.png", "content", "Chelsea the cat, Stefan van der Walt (CC0)"),
    "brick": Sample("brick.png", "style", "grey brick wall texture, CC0Textures (CC0)"),
    "grass": Sample("grass.png", "style", "grey grass texture, DeviantArt linolafett (CC0)"),
    "gravel": Sample("gravel.png", "style", "grey gravel texture, CC0Textures (CC0)"),
    "ihc": Sample("ihc.png", "style", "colour immunohistochemistry micrograph, CMMI "
                                      "(no known copyright restrictions)"),
}

_DATA_DIR = Path(__file__).resolve().parents[2] / "tasks" / "data"


def _file_or_sample(spec) -> Path:
    """``spec`` as a path; a bare sample name ("astronaut") that names no file is the sample."""
    if isinstance(spec, bytes):
        spec = os.fsdecode(spec)
    if not isinstance(spec, (str, os.PathLike)):
        raise UserError(f"an image path must be a file name or a sample name, got {type(spec).__name__} {shown(spec)}")
    path = Path(spec)
    if isinstance(spec, str) and spec in SAMPLES and not path.exists():
        return sample_path(spec)
    return path


def sample_path(name: str) -> Path:
    """Path of a sample image shipped in tasks/data/ (names: ``SAMPLES``)."""
    if name not in SAMPLES:
        raise UserError(f"unknown sample image {name!r}: use one of {', '.join(SAMPLES)}")
    return _DATA_DIR / SAMPLES[name].file
