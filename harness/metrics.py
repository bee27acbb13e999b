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


#: pixel values scored at once: float64 SSIM holds about 12 working copies of a chunk, so a chunk
#: of 2^21 values (682 images of 32 x 32, 13 of 224 x 224) stays near 200 MB (bounded memory)
METRIC_VALUES = 2**21


def metric_chunk(images: torch.Tensor) -> int:
    """Images of this batch's size that fit in one chunk of :data:`METRIC_VALUES` values."""
    return max(1, METRIC_VALUES // max(1, images[0].numel())) if images.shape[0] else 1


def metric_dtype(device: torch.device | str) -> torch.dtype:
    """float64 on the CPU (scikit-image's arithmetic, within 1e-6); float32 on accelerators, whose
    float64 throughput is a small fraction of float32's (docs/performance.md gives the difference)."""
    return torch.float64 if torch.device(device).type == "cpu" else torch.float32


def ssim(a: torch.Tensor, b: torch.Tensor, win_size: int = 7, dtype: torch.dtype | None = None, chunk: int | None = None) -> torch.Tensor:
    """Per-image SSIM ``[B]`` of uint8 batches ``[B, C, H, W]`` (scikit-image defaults), a chunk at a time.

    ``dtype``: None takes :func:`metric_dtype` of the images' device; ``chunk``: images per
    chunk (None: :func:`metric_chunk`).
    """
    _check_pair(a, b)
    if win_size % 2 == 0 or win_size < 3:
        raise ValueError(f"win_size must be odd and >= 3, got {win_size}")
    if min(a.shape[-2:]) < win_size:
        raise ValueError(f"images of {a.shape[-2]}x{a.shape[-1]} are smaller than win_size {win_size}")
    dtype = dtype or metric_dtype(a.device)
    chunk = chunk or metric_chunk(a)
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


def psnr(a: torch.Tensor, b: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """Per-image PSNR in dB ``[B]`` for uint8 batches (``inf`` where identical), a chunk at a time.

    Exact on every device: the squared errors are integers, summed in int64.
    """
    _check_pair(a, b)
    chunk = chunk or metric_chunk(a)
    pixels = a[0].numel() if a.shape[0] else 1
    sse = torch.cat([(x.int() - y.int()).pow(2).flatten(1).sum(1, dtype=torch.int64) for x, y in zip(a.split(chunk), b.split(chunk))])
    mse = sse.double() / pixels
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


def identity_features(images: torch.Tensor, side: int = IDENTIFICATION_SIDE) -> torch.Tensor:
    """Zero-mean, unit-norm grayscale vectors ``[B, <= side*side]`` (float64) of uint8 images
    area-averaged to at most ``side`` pixels a side: what :func:`identification` compares."""
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
    return identify(identity_features(restored, side), identity_features(plain, side), chunk)


def identify(query: torch.Tensor, gallery: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """``[B]`` bool: is query feature i most similar to gallery feature i (features of
    :func:`identity_features`, so a streamed cell computes them a chunk at a time)?"""
    if query.shape != gallery.shape:
        raise ValueError(f"query and gallery features must have one shape, got {tuple(query.shape)} and {tuple(gallery.shape)}")
    hits = []
    for start in range(0, query.shape[0], chunk):
        best = (query[start : start + chunk] @ gallery.T).argmax(1)
        hits.append(best == torch.arange(start, start + best.shape[0], device=best.device))
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)
