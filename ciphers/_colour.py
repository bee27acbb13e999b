"""Full-range (JPEG/JFIF, ITU-T T.871) RGB <-> YCbCr on uint8 tensors, exact on every device.

Every output component is ``floor(v)`` clipped to 0..255, where ``v = sum_i c_i x_i + c_0`` is an exact
rational (six-decimal coefficients, ``+ 1/2`` for rounding half up) of the three input components.
It runs in int32 fixed point without a division (integer division is the slowest elementwise op on
a CPU): the fractional part of ``v`` is a multiple of ``1/D`` (D divides 10^6), so with
``a_i = round(c_i 2^k)`` and an offset ``e`` that keeps the fixed-point error in ``[0, 2^k / D)``,
``(sum_i a_i x_i + e) >> k`` is exactly ``floor(v)`` (:class:`FixedPoint`).  Terms with an integer
coefficient are added after the shift.  The constants are derived below from the exact coefficients,
not typed in; the bytes are the same on CPU and GPU.  The round trip RGB -> YCbCr -> RGB changes a
component by at most 1.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

import torch

_INT32_LIMIT = 2**31
_MAX = 255


class FixedPoint(NamedTuple):
    """One output component: ``clamp(((sum_i weights[i] x_i + offset) >> shift) + sum_i whole[i] x_i, 0, 255)``."""

    weights: tuple[int, ...]
    offset: int
    shift: int
    whole: tuple[int, ...]
    clamp_low: bool
    clamp_high: bool


def fixed_point(coefficients: tuple[str, str, str], constant: Fraction) -> FixedPoint:
    """The smallest-shift exact int32 :class:`FixedPoint` of ``floor(sum_i c_i x_i + constant)``, x_i in 0..255.

    With ``a_i = round(c_i 2^k)``, the error ``sum_i (a_i - c_i 2^k) x_i`` lies in ``[low, high]``
    (interval arithmetic over the input box); ``e = ceil(constant 2^k - low)`` moves it into
    ``[0, high - low + 1)``.  When that is below ``2^k / D`` and no partial sum can leave int32,
    ``floor`` of the fixed-point value equals ``floor(v)`` for every input.
    """
    exact = [Fraction(c) for c in coefficients]
    whole = tuple(int(c) if c.denominator == 1 else 0 for c in exact)
    fractional = [Fraction(0) if w else c for c, w in zip(exact, whole)]
    denominator = math.lcm(constant.denominator, *(c.denominator for c in fractional))
    for shift in range(1, 31):
        scale = 2**shift
        weights = [round(c * scale) for c in fractional]
        errors = [w - c * scale for w, c in zip(weights, fractional)]
        low = sum(min(0, _MAX * d) for d in errors)
        high = sum(max(0, _MAX * d) for d in errors)
        offset = math.ceil(constant * scale - low)
        slack = offset - constant * scale
        if low + slack >= 0 and high + slack < Fraction(scale, denominator) and _fits_int32(weights, offset):
            v_low = sum(min(0, _MAX * c) for c in exact) + constant
            v_high = sum(max(0, _MAX * c) for c in exact) + constant
            return FixedPoint(tuple(weights), offset, shift, whole, v_low < 0, v_high >= _MAX + 1)
    raise ValueError(f"no exact int32 fixed point for coefficients {coefficients}")  # pragma: no cover


def _fits_int32(weights: list[int], offset: int) -> bool:
    """Whether every partial sum in :func:`_mix`'s order (first term, + offset, + each other term) stays in int32."""
    first, *others = [w for w in weights if w]
    low, high = min(0, _MAX * first), max(0, _MAX * first)
    bounds = [(low, high), (low := low + offset, high := high + offset)]
    for weight in others:
        low, high = low + min(0, _MAX * weight), high + max(0, _MAX * weight)
        bounds.append((low, high))
    return all(-_INT32_LIMIT <= lo and hi < _INT32_LIMIT for lo, hi in bounds)


_HALF = Fraction(1, 2)
#: Y, Cb, Cr from R, G, B (T.871: Y = 0.299 R + 0.587 G + 0.114 B, Cb = 128 - 0.168736 R - ..., rounded half up)
_TO_YCBCR = (
    fixed_point(("0.299", "0.587", "0.114"), _HALF),
    fixed_point(("-0.168736", "-0.331264", "0.5"), 128 + _HALF),
    fixed_point(("0.5", "-0.418688", "-0.081312"), 128 + _HALF),
)
#: R, G, B from Y, Cb, Cr: R = Y + 1.402 (Cr - 128), G = Y - 0.344136 (Cb - 128) - 0.714136 (Cr - 128),
#: B = Y + 1.772 (Cb - 128), each rounded half up
_TO_RGB = (
    fixed_point(("1", "0", "1.402"), -128 * Fraction("1.402") + _HALF),
    fixed_point(("1", "-0.344136", "-0.714136"), 128 * (Fraction("0.344136") + Fraction("0.714136")) + _HALF),
    fixed_point(("1", "1.772", "0"), -128 * Fraction("1.772") + _HALF),
)


def _mix(images: torch.Tensor, rows: tuple[FixedPoint, ...], out: torch.Tensor | None) -> torch.Tensor:
    """Each :class:`FixedPoint` row over the three channel planes, one int32 plane at a time and in place.

    ``out`` (any strides, e.g. a view of another layout) receives the result when given.
    """
    planes = [images[:, k].to(torch.int32) for k in range(3)]
    out = torch.empty_like(images) if out is None else out
    acc = torch.empty_like(planes[0])  # one int32 buffer for all three rows: fewer fresh pages to fault in
    for k, row in enumerate(rows):
        (first, weight), *others = [(plane, w) for plane, w in zip(planes, row.weights) if w]
        torch.mul(first, weight, out=acc).add_(row.offset)  # the order :func:`_fits_int32` checks
        for plane, weight in others:
            acc.add_(plane, alpha=weight)
        acc.bitwise_right_shift_(row.shift)
        for plane, whole in zip(planes, row.whole):
            if whole:
                acc.add_(plane, alpha=whole)
        if row.clamp_low or row.clamp_high:
            acc.clamp_(0 if row.clamp_low else None, _MAX if row.clamp_high else None)
        out[:, k] = acc
    return out


def rgb_to_ycbcr(images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]`` RGB to uint8 full-range YCbCr."""
    return _mix(images, _TO_YCBCR, out)


def ycbcr_to_rgb(images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 full-range YCbCr ``[B, 3, H, W]`` back to uint8 RGB."""
    return _mix(images, _TO_RGB, out)
