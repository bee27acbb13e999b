"""SSIM agrees with scikit-image on real photographs; PSNR and accuracy closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from harness.metrics import (
    METRIC_VALUES,
    accuracy,
    identification,
    identify,
    identity_features,
    metric_chunk,
    metric_dtype,
    psnr,
    ssim,
)


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


@pytest.fixture(scope="module")
def photo_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of real photographs paired with distorted versions (noise, inversion, other photo)."""
    rng = np.random.default_rng(0)
    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    plain, other = [], []
    for i, photo in enumerate(sources):
        crop = photo[:96, :128]
        plain += [crop] * 4
        noisy = np.clip(crop.astype(int) + rng.integers(-40, 41, crop.shape), 0, 255).astype(np.uint8)
        other += [noisy, 255 - crop, sources[(i + 1) % 4][:96, :128], crop]
    return torch.stack([_chw(x) for x in plain]), torch.stack([_chw(x) for x in other])


def test_ssim_matches_scikit_image_per_image(photo_pairs) -> None:
    a, b = photo_pairs
    ours = ssim(a, b)
    assert ours.dtype == torch.float64 and ours.shape == (a.shape[0],)
    for i in range(a.shape[0]):
        reference = structural_similarity(
            a[i].permute(1, 2, 0).numpy(), b[i].permute(1, 2, 0).numpy(), channel_axis=-1, data_range=255
        )
        assert abs(ours[i].item() - reference) < 1e-6
    assert ours[3].item() == pytest.approx(1.0)  # identical images


def test_chunked_ssim_and_the_float32_path_of_accelerators(photo_pairs) -> None:
    a, b = photo_pairs
    whole = ssim(a, b)
    assert torch.equal(ssim(a, b, chunk=3), whole)  # chunks change nothing
    assert metric_dtype("cpu") == torch.float64 and metric_dtype("cuda:0") == torch.float32
    # what accelerators compute: float32, within 1e-4 of scikit-image's float64 on photographs
    assert (ssim(a, b, dtype=torch.float32).double() - whole).abs().max() < 1e-4
    assert metric_chunk(a) == METRIC_VALUES // (3 * 96 * 128) and metric_chunk(a[:0]) == 1


def test_identify_streams_the_features_and_checks_their_shapes(photo_pairs) -> None:
    a, b = photo_pairs
    assert torch.equal(identify(identity_features(b), identity_features(a), chunk=5), identification(b, a))
    with pytest.raises(ValueError, match="one shape"):
        identify(identity_features(b[:3]), identity_features(a))


def test_ssim_on_grayscale_and_small_images() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (2, 1, 7, 9), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 1, 7, 9), dtype=np.uint8)
    ours = ssim(torch.from_numpy(a), torch.from_numpy(b))
    for i in range(2):
        assert abs(ours[i].item() - structural_similarity(a[i, 0], b[i, 0], data_range=255)) < 1e-6


def test_ssim_rejects_bad_input() -> None:
    x = torch.zeros((1, 3, 16, 16), dtype=torch.uint8)
    with pytest.raises(ValueError, match="uint8"):
        ssim(x.float(), x)
    with pytest.raises(ValueError, match="same shape"):
        ssim(x, x[..., :8])
    with pytest.raises(ValueError, match="smaller than win_size"):
        ssim(x[..., :5, :5], x[..., :5, :5])


def test_psnr_matches_scikit_image(photo_pairs) -> None:
    a, b = photo_pairs
    ours = psnr(a[:3], b[:3])
    for i in range(3):
        reference = peak_signal_noise_ratio(a[i].numpy(), b[i].numpy(), data_range=255)
        assert ours[i].item() == pytest.approx(reference, rel=1e-12)
    assert math.isinf(psnr(a[:1], a[:1]).item())


def test_accuracy() -> None:
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0], [0.0, 1.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 0])) == 0.5
    with pytest.raises(ValueError, match="logits"):
        accuracy(logits, torch.tensor([0, 1]))
