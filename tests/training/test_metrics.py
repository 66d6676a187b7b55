"""PSNR/SSIM agree with scikit-image (within 0.01 dB and 1e-4) on uint8 RGB after rounding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from training.metrics import psnr, ssim, to_uint8


def pairs():
    rng = np.random.default_rng(0)
    yield rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for photo in (data.astronaut()[:121, :97], data.coffee()[:64, :80], data.chelsea()):
        noisy = np.clip(photo.astype(int) + rng.integers(-25, 26, photo.shape), 0, 255).astype(np.uint8)
        yield photo, noisy


@pytest.mark.parametrize(("a", "b"), list(pairs()))
def test_agree_with_scikit_image(a, b):
    assert abs(psnr(a, b) - peak_signal_noise_ratio(a, b, data_range=255)) < 0.01
    want = structural_similarity(
        a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert abs(ssim(a, b) - want) < 1e-4


def test_identical_and_rounding():
    a = data.astronaut()[:32, :32]
    assert psnr(a, a) == math.inf and ssim(a, a) == pytest.approx(1.0)
    x = torch.tensor([-0.2, 0.0, 0.4 / 255, 0.6 / 255, 254.4 / 255, 1.7])
    assert to_uint8(x).tolist() == [0, 0, 0, 1, 254, 255]  # clipped, then rounded to nearest
