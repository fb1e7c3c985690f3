"""Input images of the tasks: files or shipped samples, the fc crop, the starting image."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.io import image
from engine.errors import UserError
from engine.vgg import VGG19

from ..cli.console import say


def image_path(spec) -> Path:
    """A file path, or the name of a shipped sample image (astronaut, coffee, brick, ...)."""
    p = Path(spec)
    if p.suffix and p.stem in image.SAMPLES and p.parent == Path(".") and not p.exists():
        raise UserError(f"{spec}: no such file; for the shipped sample give its name "
                        f"without the extension: {p.stem}")
    if p.exists() or p.suffix or os.sep in str(spec):
        return p
    if str(spec) in image.SAMPLES:
        return image.sample_path(str(spec))
    raise UserError(f"{spec}: no such file, and not a sample image name "
                    f"({', '.join(image.SAMPLES)}); check the path")


def planned_shape(spec, size: int, layers=()) -> tuple[int, int, int, int]:
    """(1, 3, H, W) the image ``spec`` will have in the run, from its header alone (the memory
    check comes before any decoding). fc layers take a --size x --size crop."""
    if any(l.startswith(("fc", "relu6", "relu7")) for l in layers):
        return 1, 3, size, size
    h, w = image.scaled_size(image.image_size(image_path(spec)), size)
    return 1, 3, h, w


def read(spec, size: int) -> np.ndarray:
    """(H, W, 3) float32 in [0, 255], longer side ``size``."""
    return image.load_image(image_path(spec), size=size)


def fit_for_fc(img: np.ndarray, layers, net: VGG19, size: int, log: dict) -> np.ndarray:
    """fc layers need exactly the fc input size: resize + centre-crop, said in the log, if
    ``--size`` asks for that side; otherwise a clear error."""
    if not any(l.startswith(("fc", "relu6", "relu7")) for l in layers):
        return img
    side = net.fc_input_side()
    if img.shape[:2] == (side, side):
        return img
    if size != side:
        raise UserError(f"fc layers need a {side}x{side} input, but --size {size} gives "
                        f"{img.shape[1]}x{img.shape[0]}; use --size {side} (the image is resized and centre-cropped)")
    img, note = image.center_crop_resize(img, side)
    log.setdefault("notes", []).append(note)
    say(note)
    return img


def start_image(a, shape, content=None, mode="caffe") -> np.ndarray:
    """The starting point (1, 3, H, W), preprocessed: white noise, the content image, or a file."""
    h, w = shape[2:]
    if a.init == "noise":
        noise = np.random.default_rng(a.seed).uniform(0, 255, (h, w, 3)).astype(np.float32)
        return image.preprocess(noise, mode)
    if a.init == "content":
        if content is None:
            raise UserError("--init content needs a content image")
        return content.copy()
    img = image.load_image(image_path(a.init))
    if img.shape[:2] != (h, w):
        img = image.resize(img, h, w)
    return image.preprocess(img, mode)
