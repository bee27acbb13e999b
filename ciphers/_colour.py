"""Full-range (JPEG/JFIF, ITU-T T.871) RGB <-> YCbCr on uint8 tensors, exact on every device.

The coefficients have six decimals, so scaling by 10^6 makes every product an integer: the
conversion runs in int32 arithmetic, rounds half up and clips to 0..255, and gives the same
bytes on CPU and GPU.  The round trip RGB -> YCbCr -> RGB changes a component by at most 1.
"""

from __future__ import annotations

import torch

_SCALE = 1_000_000
_HALF = _SCALE // 2
_OFFSET = 128 * _SCALE


def _round(scaled: torch.Tensor) -> torch.Tensor:
    """``round_half_up(scaled / 10^6)`` clipped to uint8."""
    return torch.div(scaled + _HALF, _SCALE, rounding_mode="floor").clamp_(0, 255).to(torch.uint8)


def rgb_to_ycbcr(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]`` RGB to uint8 full-range YCbCr (Y = 0.299 R + 0.587 G + 0.114 B, ...)."""
    r, g, b = images.to(torch.int32).unbind(1)
    y = 299_000 * r + 587_000 * g + 114_000 * b
    cb = _OFFSET - 168_736 * r - 331_264 * g + 500_000 * b
    cr = _OFFSET + 500_000 * r - 418_688 * g - 81_312 * b
    return torch.stack([_round(y), _round(cb), _round(cr)], dim=1)


def ycbcr_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """uint8 full-range YCbCr ``[B, 3, H, W]`` back to uint8 RGB (R = Y + 1.402 (Cr - 128), ...)."""
    y, cb, cr = images.to(torch.int32).unbind(1)
    y, cb, cr = y * _SCALE, cb - 128, cr - 128
    r = y + 1_402_000 * cr
    g = y - 344_136 * cb - 714_136 * cr
    b = y + 1_772_000 * cb
    return torch.stack([_round(r), _round(g), _round(b)], dim=1)
