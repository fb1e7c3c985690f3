"""Measures of quality (docs/method.md, section 7) and the baselines that cost nothing.

Pure NumPy functions on host arrays, computed in float64 whatever the input dtype.

    relative_error        ||a - b||^2 / ||b||^2       feature space (Mahendran & Vedaldi)
    relative_l2           ||x - ref|| / ||ref||       pixel space
    psnr                  dB, on (H, W, 3) [0, 255] images
    ssim                  Wang et al. 2004, mean over channels
    gram_relative_error   per layer ||G(x) - G(ref)||^2 / ||G(ref)||^2, and their total
    shuffled_pixels       baseline: the reference's pixels, permuted
    white_noise_like      baseline: uniform noise in [0, 255]
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def _ratio(num: float, den: float) -> float:
    """num / den, with 0/0 = 0 (identical and both zero) and x/0 = inf."""
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return float(num / den)


def relative_error(a, b) -> float:
    """||a - b||^2 / ||b||^2 over all elements; ``b`` is the reference. Any equal shapes."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    _same_shape(a, b)
    return _ratio(np.sum((a - b) ** 2), np.sum(b * b))


def relative_l2(x, ref) -> float:
    """||x - ref|| / ||ref|| (not squared); ``ref`` is the reference. Any equal shapes."""
    return float(np.sqrt(relative_error(x, ref)))


def psnr(x, ref, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(peak^2 / MSE); inf when x == ref.

    x, ref: images of equal shape, e.g. (H, W, 3) in [0, peak].
    """
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    _same_shape(x, ref)
    mse = np.mean((x - ref) ** 2)
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(peak * peak / mse))


def ssim(x, ref, data_range: float = 255.0, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004).

    x, ref: (H, W, C) or (H, W) images in [0, data_range], H and W >= 11.

    Local statistics use a Gaussian window (sigma 1.5, truncated at 3.5 sigma: 11x11) with
    reflected borders and population (not sample) variances; the SSIM map is averaged over
    the pixels at least 5 away from the border, then over channels (no luminance
    conversion). This is the convention of ``skimage.metrics.structural_similarity(...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
    channel_axis=-1)``, which the tests compare against.
    """
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    _same_shape(x, ref)
    if x.ndim == 2:
        x, ref = x[:, :, None], ref[:, :, None]
    if x.ndim != 3:
        raise ValueError(f"expected an (H, W, C) or (H, W) image, got shape {x.shape}")
    truncate = 3.5
    pad = int(truncate * sigma + 0.5)  # window radius: 5 for sigma 1.5
    if min(x.shape[:2]) < 2 * pad + 1:
        raise ValueError(f"SSIM needs images of at least {2 * pad + 1}x{2 * pad + 1} pixels, "
                         f"got {x.shape[0]}x{x.shape[1]}")
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2

    def blur(a):  # Gaussian local mean of one channel
        return ndimage.gaussian_filter(a, sigma, mode="reflect", truncate=truncate)

    scores = []
    for c in range(x.shape[2]):
        a, b = x[:, :, c], ref[:, :, c]
        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a * mu_a
        var_b = blur(b * b) - mu_b * mu_b
        cov = blur(a * b) - mu_a * mu_b
        s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
             / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)))
        scores.append(s[pad:-pad, pad:-pad].mean())
    return float(np.mean(scores))


def _gram(f: np.ndarray, layer: str) -> np.ndarray:
    """(1, C, h, w) or (C, h, w) -> (C, C) float64, G = F F^T with F (C, h*w)."""
    f = np.asarray(f, np.float64)
    if f.ndim == 4 and f.shape[0] == 1:
        f = f[0]
    if f.ndim != 3:
        raise ValueError(f"layer {layer}: expected (1, C, h, w) or (C, h, w) features, "
                         f"got shape {f.shape}")
    fm = f.reshape(f.shape[0], -1)  # (C, h, w) -> (C, M)
    return fm @ fm.T


def gram_relative_error(feats_x: dict, feats_ref: dict) -> dict:
    """{layer: ||G(x) - G(ref)||^2 / ||G(ref)||^2 for each layer of feats_ref, "total": sum}.

    feats_*: {layer name: (1, C, h, w) or (C, h, w) array}; every layer of ``feats_ref``
    must be in ``feats_x`` with the same shape. The Gram matrices are unnormalised (the
    ratio does not depend on the 1/M factor).
    """
    missing = [k for k in feats_ref if k not in feats_x]
    if missing:
        raise KeyError(f"features of x lack layer(s) {', '.join(missing)}")
    out = {}
    for layer, f_ref in feats_ref.items():
        _same_shape(np.asarray(feats_x[layer]), np.asarray(f_ref), layer)
        out[layer] = relative_error(_gram(feats_x[layer], layer), _gram(f_ref, layer))
    out["total"] = float(sum(out.values()))
    return out


def shuffled_pixels(img, seed: int = 0) -> np.ndarray:
    """(H, W, C) -> the same pixels (each RGB triple kept whole) at permuted positions.

    Same colour histogram as ``img``, no spatial structure: the baseline any reconstruction
    must beat.
    """
    img = np.asarray(img)
    h, w = img.shape[:2]
    flat = img.reshape(h * w, *img.shape[2:])  # (H, W, C) -> (H*W, C)
    perm = np.random.default_rng(seed).permutation(h * w)
    return flat[perm].reshape(img.shape)


def histogram_matched(img, refs, iters: int = 40, seed: int = 0) -> np.ndarray:
    """(H, W, 3) -> (H, W, 3) float32: img's pixels with the colour distribution of the reference
    images' pixels pooled, the whole distribution, not just its mean and covariance (Pitie,
    Kokaram & Dahyot's iterative distribution transfer: ``iters`` random orthonormal bases, along
    each axis every pixel moved to the reference's value at its rank); clipped to [0, 255].

    A free baseline for style transfer: the photo in the style's colours, no network."""
    x = np.asarray(img, np.float64).reshape(-1, 3).copy()
    ref = np.concatenate([np.asarray(r, np.float64).reshape(-1, 3) for r in refs])
    rng = np.random.default_rng(seed)
    ranks = np.linspace(0.0, 1.0, x.shape[0])
    for _ in range(iters):
        basis, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        px, pr = x @ basis, ref @ basis
        for k in range(3):
            order = np.argsort(px[:, k], kind="stable")
            shift = np.empty(x.shape[0])
            shift[order] = np.quantile(pr[:, k], ranks) - px[order, k]
            x += np.outer(shift, basis[:, k])
    return np.clip(x, 0.0, 255.0).reshape(np.shape(img)).astype(np.float32)


def white_noise_like(img, seed: int = 0) -> np.ndarray:
    """Uniform noise in [0, 255] with ``img``'s shape, float32."""
    shape = np.shape(img)
    return np.random.default_rng(seed).uniform(0.0, 255.0, size=shape).astype(np.float32)


def _same_shape(a: np.ndarray, b: np.ndarray, what: str = "") -> None:
    if a.shape != b.shape:
        where = f"layer {what}: " if what else ""
        raise ValueError(f"{where}shapes differ: {a.shape} vs reference {b.shape}")
