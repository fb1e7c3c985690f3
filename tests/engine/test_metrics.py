"""engine.metrics: known values, the skimage reference for SSIM, baselines."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine.io.image import load_image, sample_path
from engine.metrics import (gram_relative_error, histogram_matched, psnr, relative_error,
                            relative_l2, shuffled_pixels, ssim, white_noise_like)

try:  # the reference implementation; a test-only dependency
    from skimage import metrics as skmetrics
except ImportError:
    skmetrics = None
needs_skimage = pytest.mark.skipif(skmetrics is None, reason="scikit-image is not installed")


@pytest.fixture(scope="module")
def photo():
    return load_image(sample_path("chelsea"), size=96).astype(np.float64)  # (64, 96, 3)


def _noisy(img, std, seed=0):
    return np.clip(img + np.random.default_rng(seed).normal(0, std, img.shape), 0, 255)


def _skimage_ssim(x, ref, **kw):
    return skmetrics.structural_similarity(x, ref, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, data_range=255, **kw)


# ----------------------------------------------------------------------------- relative errors

def test_relative_error_known_values():
    b = np.array([3.0, 4.0])                       # ||b||^2 = 25
    assert relative_error(b, b) == 0.0
    assert relative_error(np.zeros(2), b) == 1.0    # x = 0: the whole reference is missing
    assert relative_error(b + [3.0, 4.0], b) == pytest.approx(1.0)
    assert relative_error(b + [1.0, 0.0], b) == pytest.approx(1 / 25)
    assert relative_error(np.zeros(2), np.zeros(2)) == 0.0
    assert relative_error(np.ones(2), np.zeros(2)) == math.inf


def test_relative_error_is_not_symmetric_and_float64():
    a = np.array([1.0, 0.0], np.float32)
    b = np.array([2.0, 0.0], np.float32)
    assert relative_error(a, b) == pytest.approx(0.25)
    assert relative_error(b, a) == pytest.approx(1.0)
    big = np.full(10, 1e20, np.float32)             # float32 squares would overflow
    assert relative_error(big * 2, big) == pytest.approx(1.0)


def test_relative_l2_is_sqrt_of_relative_error(photo):
    noisy = _noisy(photo, 10)
    assert relative_l2(noisy, photo) == pytest.approx(math.sqrt(relative_error(noisy, photo)))
    assert relative_l2(np.zeros(3), np.array([0.0, 3.0, 4.0])) == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        relative_l2(photo[:10], photo)


# ----------------------------------------------------------------------------- PSNR, SSIM

def test_psnr_known_values(photo):
    assert psnr(photo, photo) == math.inf
    ref = np.zeros((4, 4, 3))
    assert psnr(ref + 255.0, ref) == pytest.approx(0.0)       # MSE = peak^2
    assert psnr(ref + 25.5, ref) == pytest.approx(20.0)       # MSE = peak^2 / 100
    assert psnr(ref + 0.5, ref, peak=1.0) == pytest.approx(10 * math.log10(4))


@needs_skimage
def test_psnr_matches_skimage(photo):
    noisy = _noisy(photo, 10)
    assert psnr(noisy, photo) == pytest.approx(
        skmetrics.peak_signal_noise_ratio(photo, noisy, data_range=255), abs=1e-9)


def test_ssim_identical_is_one(photo):
    assert ssim(photo, photo) == pytest.approx(1.0)


@needs_skimage
@pytest.mark.parametrize("std", [5.0, 30.0])
def test_ssim_matches_skimage_colour(photo, std):
    noisy = _noisy(photo, std)
    assert ssim(noisy, photo) == pytest.approx(_skimage_ssim(noisy, photo, channel_axis=-1),
                                               abs=1e-6)


@needs_skimage
def test_ssim_matches_skimage_grey(photo):
    grey = photo.mean(axis=2)
    little = _noisy(grey, 5, seed=1)
    assert ssim(little, grey) == pytest.approx(_skimage_ssim(little, grey), abs=1e-6)


def test_ssim_orders_and_rejects_tiny(photo):
    grey = photo.mean(axis=2)
    little, lots = _noisy(grey, 5, seed=1), _noisy(grey, 40, seed=2)
    assert ssim(lots, grey) < ssim(little, grey) < 1.0
    noise = white_noise_like(photo, seed=3)
    assert abs(ssim(noise, photo)) < 0.1                   # no structure in common
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(photo[:8, :8], photo[:8, :8])


# ----------------------------------------------------------------------------- Gram error

def test_gram_relative_error():
    rng = np.random.default_rng(4)
    ref = {"relu1_1": rng.random((1, 4, 6, 5)), "relu2_1": rng.random((8, 3, 2))}
    same = gram_relative_error(ref, ref)
    assert same == {"relu1_1": 0.0, "relu2_1": 0.0, "total": 0.0}
    other = {k: v + 0.1 * rng.random(v.shape) for k, v in ref.items()}
    err = gram_relative_error(other, ref)
    assert list(err) == ["relu1_1", "relu2_1", "total"]
    assert all(v > 0 for v in err.values())
    assert err["total"] == pytest.approx(err["relu1_1"] + err["relu2_1"])
    # against the definition, for one layer
    f, g = other["relu1_1"][0].reshape(4, -1), ref["relu1_1"][0].reshape(4, -1)
    gx, gr = f @ f.T, g @ g.T
    assert err["relu1_1"] == pytest.approx(((gx - gr) ** 2).sum() / (gr ** 2).sum())


def test_gram_error_ignores_spatial_arrangement():
    f = np.random.default_rng(5).random((3, 4, 4))
    moved = f[:, ::-1, :].copy()                    # same statistics, flipped in space
    assert gram_relative_error({"l": moved}, {"l": f})["l"] == pytest.approx(0.0, abs=1e-12)


def test_gram_error_bad_input():
    f = np.ones((2, 3, 3))
    with pytest.raises(KeyError, match="relu9"):
        gram_relative_error({"a": f}, {"a": f, "relu9": f})
    with pytest.raises(ValueError, match="layer a"):
        gram_relative_error({"a": np.ones((2, 3, 4))}, {"a": f})


# ----------------------------------------------------------------------------- baselines

def test_shuffled_pixels_keeps_colours(photo):
    shuf = shuffled_pixels(photo, seed=0)
    assert shuf.shape == photo.shape and shuf.dtype == photo.dtype
    assert not np.array_equal(shuf, photo)
    # the same multiset of RGB triples
    key = lambda a: np.sort(a.reshape(-1, 3).view([("", a.dtype)] * 3), axis=0)  # noqa: E731
    np.testing.assert_array_equal(key(shuf), key(photo))
    np.testing.assert_array_equal(shuffled_pixels(photo, seed=0), shuf)
    assert not np.array_equal(shuffled_pixels(photo, seed=1), shuf)
    assert ssim(shuf, photo) < 0.2


def test_white_noise_like(photo):
    n = white_noise_like(photo, seed=0)
    assert n.shape == photo.shape and n.dtype == np.float32
    assert n.min() >= 0.0 and n.max() <= 255.0
    assert abs(n.mean() - 127.5) < 3.0
    np.testing.assert_array_equal(white_noise_like(photo, seed=0), n)
    assert psnr(n, photo) < psnr(_noisy(photo, 10), photo)


def test_histogram_matched_takes_the_references_colour_distribution():
    rng = np.random.default_rng(5)
    img = rng.uniform(0, 255, (24, 20, 3)).astype(np.float32)
    # a reference whose channels are correlated and not Gaussian: mean and covariance would not do
    base = rng.exponential(30.0, (600, 1))
    ref = np.clip(np.concatenate([base, 0.5 * base + 40, rng.uniform(100, 140, (600, 1))], 1), 0, 255)
    out = histogram_matched(img, [ref.reshape(20, 30, 3)])
    assert out.shape == img.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 255
    qs = np.linspace(0.05, 0.95, 19)
    for direction in (np.eye(3)[0], np.eye(3)[2], np.array([1.0, -2.0, 0.5]) / np.sqrt(5.25)):
        got = np.quantile(out.reshape(-1, 3) @ direction, qs)
        want = np.quantile(ref @ direction, qs)
        before = np.quantile(img.reshape(-1, 3) @ direction, qs)
        assert np.abs(got - want).max() < 0.1 * np.abs(before - want).max() + 2.0, (direction, got, want)
    # the positions keep their order along each channel mostly: the photo's layout stays
    assert np.corrcoef(out[..., 0].ravel(), img[..., 0].ravel())[0, 1] > 0.5
