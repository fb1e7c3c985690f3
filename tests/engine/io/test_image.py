"""engine.io.image: loading any Pillow mode, resizing, preprocessing, PNG output, samples."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from engine.errors import UserError
from engine.io import image as im_mod
from engine.io.image import (PREPROCESSING, SAMPLES, center_crop_resize, deprocess, load_image,
                          luminance_transfer, pixel_bounds, preprocess, read_png_metadata,
                          sample_path, save_png)


def _ramp(h=12, w=20):
    """(h, w) uint8 horizontal ramp 0..255."""
    return np.tile(np.linspace(0, 255, w).round().astype(np.uint8), (h, 1))


def _check_rgb(img, h, w):
    assert img.dtype == np.float32
    assert img.shape == (h, w, 3)
    assert img.min() >= 0.0 and img.max() <= 255.0


# ----------------------------------------------------------------------------- modes

def test_mode_L_becomes_grey_rgb(tmp_path):
    g = _ramp()
    Image.fromarray(g).save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    _check_rgb(img, 12, 20)
    for c in range(3):
        np.testing.assert_array_equal(img[:, :, c], g)


def test_mode_1_is_black_and_white(tmp_path):
    bw = Image.fromarray(_ramp() > 127)
    assert bw.mode == "1"
    bw.save(tmp_path / "bw.png")
    img = load_image(tmp_path / "bw.png")
    _check_rgb(img, 12, 20)
    assert set(np.unique(img)) == {0.0, 255.0}
    assert img[0, 0, 0] == 0.0 and img[0, -1, 0] == 255.0


def test_mode_RGB_is_unchanged(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    img = load_image(tmp_path / "c.png")
    np.testing.assert_array_equal(img, rgb.astype(np.float32))


def test_mode_RGBA_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200                # red channel
    rgba[0, :, 3] = 255               # row 0 opaque
    rgba[1, :, 3] = 0                 # row 1 transparent: white
    rgba[2, :, 3] = 51                # row 2: 20 % opaque
    Image.fromarray(rgba).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    _check_rgb(img, 4, 4)
    np.testing.assert_allclose(img[0, 0], [200, 0, 0])
    np.testing.assert_allclose(img[1, 0], [255, 255, 255])
    np.testing.assert_allclose(img[2, 0], [0.2 * 200 + 0.8 * 255, 0.8 * 255, 0.8 * 255],
                               atol=1e-3)


def test_mode_LA_composited_over_white(tmp_path):
    la = np.zeros((3, 5, 2), np.uint8)
    la[..., 0] = 100
    la[:, :2, 1] = 255
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    img = load_image(tmp_path / "la.png")
    np.testing.assert_allclose(img[0, 0], [100] * 3)
    np.testing.assert_allclose(img[0, 4], [255] * 3)


def test_mode_P_palette_and_transparency(tmp_path):
    p = Image.new("P", (6, 4))
    p.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    p.paste(1, (3, 0, 6, 4))          # right half: palette entry 1
    p.save(tmp_path / "p.png")
    img = load_image(tmp_path / "p.png")
    np.testing.assert_allclose(img[0, 0], [10, 20, 30])
    np.testing.assert_allclose(img[0, 5], [200, 100, 50])
    p.save(tmp_path / "pt.png", transparency=0)  # entry 0 transparent: white
    img = load_image(tmp_path / "pt.png")
    np.testing.assert_allclose(img[0, 0], [255, 255, 255])
    np.testing.assert_allclose(img[0, 5], [200, 100, 50])


def test_mode_PA_composited(tmp_path):
    pa = Image.new("PA", (4, 2))
    pa.putpalette([0, 0, 255] + [0] * 765)
    pa.putalpha(Image.fromarray(np.array([[255] * 4, [0] * 4], np.uint8)))
    assert pa.mode == "PA"
    pa.save(tmp_path / "pa.tif")
    img = load_image(tmp_path / "pa.tif")
    np.testing.assert_allclose(img[0, 0], [0, 0, 255])
    np.testing.assert_allclose(img[1, 0], [255, 255, 255])


def test_mode_I16_scaled_not_clipped(tmp_path):
    a = np.linspace(0, 65535, 40).round().astype(np.uint16).reshape(5, 8)
    src = Image.fromarray(a)
    assert src.mode == "I;16"
    src.save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as check:
        assert check.mode.startswith("I")  # Pillow keeps it 16-bit
    img = load_image(tmp_path / "g16.png")
    _check_rgb(img, 5, 8)
    assert img.max() == pytest.approx(255.0)
    np.testing.assert_allclose(img[:, :, 1], a * (255.0 / 65535.0), atol=1e-3)
    assert len(np.unique(img)) > 30  # a ramp, not 0 and 255 only


def test_mode_I32_scaled(tmp_path):
    a = np.linspace(0, 60000, 24).astype(np.int32).reshape(4, 6)
    src = Image.fromarray(a)
    assert src.mode == "I"
    src.save(tmp_path / "i.tif")
    img = load_image(tmp_path / "i.tif")
    np.testing.assert_allclose(img[:, :, 0], a * (255.0 / 65535.0), atol=1e-3)


def test_mode_F_unit_range_scaled(tmp_path):
    a = np.linspace(0.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
    Image.fromarray(a).save(tmp_path / "f.tif")
    img = load_image(tmp_path / "f.tif")
    np.testing.assert_allclose(img[:, :, 2], a * 255.0, atol=1e-3)


def test_mode_CMYK(tmp_path):
    cmyk = Image.new("CMYK", (5, 3), (0, 255, 255, 0))  # pure red
    cmyk.save(tmp_path / "k.tif")
    img = load_image(tmp_path / "k.tif")
    _check_rgb(img, 3, 5)
    np.testing.assert_allclose(img[1, 1], [255, 0, 0])


# ----------------------------------------------------------------------------- EXIF, size

def test_exif_orientation_applied(tmp_path):
    # 40 wide, 20 tall; orientation 6 = "rotate 90 CW to view": the viewer sees 20 wide, 40 tall
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = 255                   # left half white
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(a).save(tmp_path / "o.jpg", exif=exif, quality=95)
    img = load_image(tmp_path / "o.jpg")
    assert img.shape == (40, 20, 3)
    assert img[2, 10].mean() > 200 and img[-3, 10].mean() < 50  # left half is now on top


@pytest.mark.parametrize("shape,size,expect", [((100, 50), 40, (40, 20)),
                                               ((30, 90), 45, (15, 45)),
                                               ((10, 16), 32, (20, 32))])
def test_size_scales_longer_side(tmp_path, shape, size, expect):
    Image.fromarray(np.full(shape + (3,), 128, np.uint8)).save(tmp_path / "s.png")
    img = load_image(tmp_path / "s.png", size=size)
    _check_rgb(img, *expect)
    np.testing.assert_allclose(img, 128.0, atol=0.5)


def test_center_crop_resize():
    img = np.random.default_rng(1).uniform(0, 255, (300, 450, 3)).astype(np.float32)
    out, note = center_crop_resize(img, 256)
    _check_rgb(out, 256, 256)
    assert "256x256" in note and "crop" in note
    same, note = center_crop_resize(out, 256)
    assert same is out and "already" in note
    tall, _ = center_crop_resize(img.transpose(1, 0, 2), 64)
    assert tall.shape == (64, 64, 3)


# ----------------------------------------------------------------------------- preprocessing

@pytest.mark.parametrize("mode", sorted(PREPROCESSING))
def test_preprocess_round_trip(mode):
    img = np.random.default_rng(2).uniform(0, 255, (7, 9, 3)).astype(np.float32)
    x = preprocess(img, mode)
    assert x.shape == (1, 3, 7, 9) and x.dtype == np.float32
    np.testing.assert_allclose(deprocess(x, mode), img, atol=1e-3)
    np.testing.assert_allclose(deprocess(x[0], mode), img, atol=1e-3)


def test_preprocess_values():
    img = np.zeros((1, 1, 3), np.float32)
    np.testing.assert_allclose(preprocess(img, "caffe")[0, :, 0, 0],
                               [-123.68, -116.779, -103.939], rtol=1e-6)
    img[:] = 255
    np.testing.assert_allclose(preprocess(img, "torchvision")[0, :, 0, 0],
                               [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225],
                               rtol=1e-6)


def test_deprocess_clips():
    x = np.full((1, 3, 2, 2), 1e4, np.float32)
    assert deprocess(x).max() == 255.0
    assert deprocess(-x).min() == 0.0


@pytest.mark.parametrize("mode", sorted(PREPROCESSING))
def test_pixel_bounds_match_preprocess(mode):
    shape = (1, 3, 4, 5)
    lo, hi = pixel_bounds(mode, shape)
    assert lo.shape == hi.shape == shape
    np.testing.assert_allclose(lo, preprocess(np.zeros((4, 5, 3)), mode), rtol=1e-6)
    np.testing.assert_allclose(hi, preprocess(np.full((4, 5, 3), 255.0), mode), rtol=1e-6)
    lo3, hi3 = pixel_bounds(mode)
    assert lo3.shape == (3,) and np.all(lo3 < hi3)
    np.testing.assert_allclose(lo3, lo[0, :, 0, 0])


def test_unknown_preprocessing_lists_modes():
    with pytest.raises(UserError, match="caffe.*torchvision"):
        preprocess(np.zeros((2, 2, 3)), "imagenet")
    with pytest.raises(UserError):
        pixel_bounds("bgr")


# ----------------------------------------------------------------------------- saving

def test_save_png_metadata_round_trip(tmp_path):
    img = np.random.default_rng(3).uniform(-20, 280, (6, 8, 3))
    meta = {"task": "invert", "seed": 7, "sigma": 0.015, "layers": ["relu1_1", "relu5_1"],
            "weights": {"alpha": 100, "beta": 1}, "np": np.float32(0.5), "note": "é ü"}
    path = save_png(tmp_path / "deep" / "er" / "out.png", img, meta)
    assert path.is_file()
    with Image.open(path) as back:
        assert back.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(back), np.clip(np.rint(img), 0, 255))
    raw = read_png_metadata(path)
    assert raw["task"] == "invert" and raw["seed"] == "7" and raw["note"] == "é ü"
    dec = read_png_metadata(path, decode=True)
    assert dec["layers"] == ["relu1_1", "relu5_1"] and dec["weights"] == {"alpha": 100, "beta": 1}
    assert dec["sigma"] == 0.015 and dec["np"] == 0.5
    assert [p.name for p in path.parent.iterdir()] == ["out.png"]  # no temp file left


def test_save_png_grey_and_overwrite(tmp_path):
    path = tmp_path / "g.png"
    save_png(path, np.full((3, 3, 3), 10.0))
    save_png(path, np.full((3, 3), 200.4))
    assert load_image(path)[0, 0, 0] == 200.0
    assert read_png_metadata(path) == {}


def test_save_png_failure_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", boom)  # the temporary file is written, the rename fails
    with pytest.raises(UserError, match="out.png"):
        save_png(tmp_path / "out.png", np.zeros((2, 2, 3)))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- errors

def test_error_missing_file(tmp_path):
    with pytest.raises(UserError, match="nope.png.*no such file"):
        load_image(tmp_path / "nope.png")


def test_error_directory(tmp_path):
    with pytest.raises(UserError, match=f"{tmp_path.name}.*directory"):
        load_image(tmp_path)


def test_error_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(UserError, match="notes.png.*not an image"):
        load_image(tmp_path / "notes.png")


def test_error_truncated(tmp_path):
    rgb = np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.png.*cannot read") as err:
        load_image(tmp_path / "cut.png")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("size", [0, -5, 2.5])
def test_error_bad_size(tmp_path, size):
    Image.fromarray(_ramp()).save(tmp_path / "r.png")
    with pytest.raises(UserError, match="r.png.*size"):
        load_image(tmp_path / "r.png", size=size)


def test_error_metadata_of_missing_or_non_png(tmp_path):
    with pytest.raises(UserError, match="gone.png"):
        read_png_metadata(tmp_path / "gone.png")
    Image.fromarray(_ramp()).save(tmp_path / "x.jpg")
    with pytest.raises(UserError, match="x.jpg.*not a PNG"):
        read_png_metadata(tmp_path / "x.jpg")


def test_error_unwritable(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="out.png.*cannot write"):
        save_png(tmp_path / "file" / "out.png", np.zeros((2, 2, 3)))  # parent is a file


# ----------------------------------------------------------------------------- colour, samples

def test_luminance_transfer_keeps_content_colour():
    rng = np.random.default_rng(5)
    content = rng.uniform(100, 155, (8, 8, 3))  # mild colours: nothing clips
    grey = np.repeat(rng.uniform(90, 165, (8, 8, 1)), 3, axis=2)
    out = luminance_transfer(grey, content)
    assert out.shape == (8, 8, 3) and out.dtype == np.float32
    y = lambda a: a @ np.array([0.299, 0.587, 0.114])  # noqa: E731
    np.testing.assert_allclose(y(out), y(grey), atol=0.05)         # luminance: stylised
    np.testing.assert_allclose(out - y(out)[..., None], content - y(content)[..., None],
                               atol=0.05)                            # chroma: content
    np.testing.assert_allclose(luminance_transfer(content, content), content, atol=1e-3)


def test_samples_all_load():
    assert {"astronaut", "coffee", "chelsea", "brick", "grass", "gravel"} <= set(SAMPLES)
    for name, sample in SAMPLES.items():
        path = sample_path(name)
        assert path.is_file(), path
        assert path.stat().st_size < 128 * 1024
        img = load_image(path)
        assert max(img.shape[:2]) <= 256 and img.shape[2] == 3
        assert img.std() > 10  # real content, not a flat image
        assert sample.kind in ("content", "style")
    assert Image.open(sample_path("brick")).mode == "L"
    assert load_image(sample_path("astronaut"), size=64).shape == (64, 64, 3)


def test_unknown_sample_lists_names():
    with pytest.raises(UserError, match="astronaut"):
        sample_path("lena")


def test_importing_image_and_metrics_leaves_cupy_alone():
    code = ("import sys, engine.io.image, engine.metrics; "
            "sys.exit('cupy' in sys.modules or 'skimage' in sys.modules)")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(im_mod.__file__))))  # engine/io/image.py
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0


# ----------------------------------------------------------------------------- formats by extension

def _gradient_image(h=6, w=7):
    """(h, w, 3) float with fractional levels, so 8- and 16-bit files differ."""
    return np.linspace(0.0, 255.0, h * w * 3).reshape(h, w, 3)


@pytest.mark.parametrize("name, fmt", [("a.png", "PNG"), ("a.jpg", "JPEG"), ("a.JPEG", "JPEG"),
                                       ("a.tif", "TIFF"), ("a.tiff", "TIFF")])
def test_save_image_format_follows_extension(tmp_path, name, fmt):
    path = im_mod.save_image(tmp_path / name, _gradient_image(), {"task": "invert", "iters": 3})
    with Image.open(path) as im:
        assert im.format == fmt and im.size == (7, 6)


def test_jpeg_is_quality_95_and_keeps_metadata(tmp_path):
    img = load_image(sample_path("astronaut"), size=32)
    path = im_mod.save_image(tmp_path / "x.jpg", img, {"seed": 4})
    with Image.open(path) as im:
        assert im.format == "JPEG" and b'"seed": 4' in im.info["comment"]
        tables = im.quantization
    for quality, same in ((95, True), (75, False)):  # 75: Pillow's default
        ref = tmp_path / f"q{quality}.jpg"
        Image.fromarray(np.rint(img).astype(np.uint8)).save(ref, quality=quality)
        with Image.open(ref) as im:
            assert (im.quantization == tables) == same


def test_tiff_is_16_bit_and_exact(tmp_path):
    tifffile = pytest.importorskip("tifffile", reason="tifffile (a scikit-image dependency) reads the TIFF back")
    img = _gradient_image()
    path = im_mod.save_image(tmp_path / "x.tif", img, {"task": "style"})
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        data = page.asarray()
        assert data.dtype == np.uint16 and data.shape == (6, 7, 3)
        assert '"task": "style"' in page.description
    np.testing.assert_allclose(data / 65535.0 * 255.0, img, atol=255.0 / 65535.0)
    assert abs(data[0, 0, 1] / 65535.0 * 255.0 - 2.04) < 0.01   # 8 bits would give 2.0
    assert load_image(path).shape == (6, 7, 3)                   # and ranvgg reads it back


def test_grey_tiff_becomes_rgb(tmp_path):
    path = im_mod.save_image(tmp_path / "g.tiff", np.full((3, 4), 128.0))
    assert load_image(path)[1, 2].tolist() == pytest.approx([128.0] * 3, abs=1.0)


@pytest.mark.parametrize("name", ["a.gif", "a.webp", "noext", "a.png.bak"])
def test_unknown_extension_refused(tmp_path, name):
    with pytest.raises(UserError, match="unknown image extension.*use one of .png"):
        im_mod.save_image(tmp_path / name, np.zeros((2, 2, 3)))
    assert list(tmp_path.iterdir()) == []
