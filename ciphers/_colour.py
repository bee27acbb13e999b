"""Full-range (JPEG/JFIF, ITU-T T.871) RGB <-> YCbCr on uint8 tensors, exact on every device.

The coefficients have six decimals, so scaling by 10^6 makes every product an integer: the
conversion runs in int32 arithmetic, rounds half up and clips to 0..255, and gives the same
bytes on CPU and GPU.  The round trip RGB -> YCbCr -> RGB changes a component by at most 1.
"""

from __future__ import annotations

import torch

_SCALE = 1_000_000
#: per output plane: integer weights of the three input planes (x 10^6) and the offset (x 10^6)
_TO_YCBCR = (
    ((299_000, 587_000, 114_000), 0),  # Y = 0.299 R + 0.587 G + 0.114 B
    ((-168_736, -331_264, 500_000), 128 * _SCALE),  # Cb = 128 - 0.168736 R - 0.331264 G + 0.5 B
    ((500_000, -418_688, -81_312), 128 * _SCALE),  # Cr = 128 + 0.5 R - 0.418688 G - 0.081312 B
)
_TO_RGB = (
    ((_SCALE, 0, 1_402_000), -128 * 1_402_000),  # R = Y + 1.402 (Cr - 128)
    # G = Y - 0.344136 (Cb - 128) - 0.714136 (Cr - 128)
    ((_SCALE, -344_136, -714_136), 128 * (344_136 + 714_136)),
    ((_SCALE, 1_772_000, 0), -128 * 1_772_000),  # B = Y + 1.772 (Cb - 128)
)


def _mix(images: torch.Tensor, rows: tuple, out: torch.Tensor | None) -> torch.Tensor:
    """``round_half_up((w . planes + offset) / 10^6)`` clipped to uint8, for each ``(w, offset)`` row.

    One int32 plane at a time and in place: fewer and smaller temporaries than whole-batch int32.
    ``out`` (any strides, e.g. a view of another layout) receives the result when given.
    """
    planes = [images[:, k].to(torch.int32) for k in range(3)]
    out = torch.empty_like(images) if out is None else out
    for k, (weights, offset) in enumerate(rows):
        acc = planes[0] * weights[0]
        acc.add_(planes[1], alpha=weights[1]).add_(planes[2], alpha=weights[2]).add_(offset + _SCALE // 2)
        out[:, k] = acc.div_(_SCALE, rounding_mode="floor").clamp_(0, 255)
    return out


def rgb_to_ycbcr(images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]`` RGB to uint8 full-range YCbCr."""
    return _mix(images, _TO_YCBCR, out)


def ycbcr_to_rgb(images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 full-range YCbCr ``[B, 3, H, W]`` back to uint8 RGB."""
    return _mix(images, _TO_RGB, out)
