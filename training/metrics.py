"""PSNR and SSIM as video-deblurring papers report them: on RGB uint8 frames after rounding.

SSIM follows scikit-image's ``structural_similarity(a, b, channel_axis=-1, gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255)``: a Gaussian window (sigma 1.5, truncated at 3.5
sigma), population statistics, the mean over the frame after cropping the window's half-width from each
border, then the mean over channels. Implemented here with scipy; scikit-image is only used by the tests.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

K1, K2 = 0.01, 0.03
SIGMA, TRUNCATE = 1.5, 3.5


def to_uint8(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float image(s) in [0, 1] (any layout) -> uint8, clipped then rounded half to even (numpy's rint)."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.rint(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (peak 255); ``math.inf`` when identical."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two uint8 images [H, W, 3] (or [H, W]) with Gaussian weights, as scikit-image computes it."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    c1, c2 = (K1 * 255.0) ** 2, (K2 * 255.0) ** 2
    pad = int(TRUNCATE * SIGMA + 0.5)  # the window's half-width, cropped from the borders
    values = []
    for ch in range(x.shape[-1]):
        u, v = x[..., ch], y[..., ch]

        def blur(img: np.ndarray) -> np.ndarray:
            return gaussian_filter(img, sigma=SIGMA, truncate=TRUNCATE)

        ux, uy = blur(u), blur(v)
        vx = blur(u * u) - ux * ux
        vy = blur(v * v) - uy * uy
        vxy = blur(u * v) - ux * uy
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        values.append(s[pad:-pad, pad:-pad].mean(dtype=np.float64))
    return float(np.mean(values))
