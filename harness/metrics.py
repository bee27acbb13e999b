"""Metrics: accuracy, SSIM (scikit-image's defaults, batched in torch) and PSNR.

``ssim`` reproduces ``skimage.metrics.structural_similarity(a, b, channel_axis=-1,
data_range=255)`` on uint8 HWC images: 7x7 uniform window, sample covariance, K1 = 0.01,
K2 = 0.03, mean over the valid region (scikit-image crops (7-1)//2 pixels on every side) and
over channels.  It is the protocol of the field's evaluation code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DATA_RANGE = 255.0


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.ndim != 4:
            raise ValueError(f"{name} must be a uint8 tensor [B, C, H, W]")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


#: images scored at once: float64 SSIM needs about 12 working copies of a chunk (bounded memory)
METRIC_CHUNK = 64


def ssim(a: torch.Tensor, b: torch.Tensor, win_size: int = 7, dtype: torch.dtype = torch.float64, chunk: int = METRIC_CHUNK) -> torch.Tensor:
    """Per-image SSIM ``[B]`` of uint8 batches ``[B, C, H, W]`` (scikit-image defaults), ``chunk`` images at a time."""
    _check_pair(a, b)
    if win_size % 2 == 0 or win_size < 3:
        raise ValueError(f"win_size must be odd and >= 3, got {win_size}")
    if min(a.shape[-2:]) < win_size:
        raise ValueError(f"images of {a.shape[-2]}x{a.shape[-1]} are smaller than win_size {win_size}")
    return torch.cat([_ssim(x, y, win_size, dtype) for x, y in zip(a.split(chunk), b.split(chunk))])


def _ssim(a: torch.Tensor, b: torch.Tensor, win_size: int, dtype: torch.dtype) -> torch.Tensor:
    x, y = a.to(dtype), b.to(dtype)
    n_pixels = win_size * win_size
    cov_norm = n_pixels / (n_pixels - 1)  # sample covariance, as scikit-image does by default
    c1, c2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2

    def local_mean(t: torch.Tensor) -> torch.Tensor:
        # a window with no padding is exactly scikit-image's filtered image with its border cropped
        return F.avg_pool2d(t, win_size, stride=1)

    ux, uy = local_mean(x), local_mean(y)
    vx = cov_norm * (local_mean(x * x) - ux * ux)
    vy = cov_norm * (local_mean(y * y) - uy * uy)
    vxy = cov_norm * (local_mean(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def psnr(a: torch.Tensor, b: torch.Tensor, chunk: int = METRIC_CHUNK) -> torch.Tensor:
    """Per-image PSNR in dB ``[B]`` for uint8 batches (``inf`` where identical), ``chunk`` images at a time."""
    _check_pair(a, b)
    mse = torch.cat([(x.double() - y.double()).pow(2).mean(dim=(1, 2, 3)) for x, y in zip(a.split(chunk), b.split(chunk))])
    return 10 * torch.log10(DATA_RANGE**2 / mse)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]."""
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"logits must be [B, classes] and labels [B], got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    if labels.numel() == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return (logits.argmax(dim=1) == labels).double().mean().item()


#: identification compares images at most this many pixels on a side (area-averaged down)
IDENTIFICATION_SIDE = 32


def _identity_features(images: torch.Tensor, side: int) -> torch.Tensor:
    """Zero-mean, unit-norm grayscale vectors of images area-averaged to at most ``side`` pixels a side."""
    gray = images.double().mean(1, keepdim=True)
    height, width = gray.shape[-2:]
    if max(height, width) > side:
        gray = F.adaptive_avg_pool2d(gray, (min(height, side), min(width, side)))
    flat = gray.flatten(1)
    flat = flat - flat.mean(1, keepdim=True)
    norm = flat.norm(dim=1, keepdim=True)
    return torch.where(norm > 1e-9, flat / norm.clamp_min(1e-12), torch.zeros_like(flat))


def identification(restored: torch.Tensor, plain: torch.Tensor, side: int = IDENTIFICATION_SIDE, chunk: int = 1024) -> torch.Tensor:
    """Top-1 identification ``[B]`` (bool): is restored image i most similar to plain image i among all B?

    Similarity is the Pearson correlation of the grayscale images (area-averaged to at most
    ``side`` x ``side``), so brightness and contrast do not matter, an inverted image is
    dissimilar, and a flat image matches nothing (its ties go to the first image: chance level,
    1/B).  It asks the seed's question directly: does the restoration single out the person or
    scene it came from among the N candidates?
    """
    _check_pair(restored, plain)
    gallery = _identity_features(plain, side)
    hits = []
    for start in range(0, restored.shape[0], chunk):
        query = _identity_features(restored[start : start + chunk], side)
        best = (query @ gallery.T).argmax(1)
        hits.append(best == torch.arange(start, start + query.shape[0], device=best.device))
    return torch.cat(hits)
