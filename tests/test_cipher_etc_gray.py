"""Grayscale-based EtC: the exact YCbCr conversion, its tight round-trip bound, the H x 3W layout and
the block transforms on it, and the key-space closed form."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ciphers._colour import rgb_to_ycbcr, ycbcr_to_rgb
from ciphers.etc import EtCGrayCipher
from harness import create_cipher
from tests.test_cipher_etc import reference_encrypt

FORWARD = [
    (0, [Fraction("0.299"), Fraction("0.587"), Fraction("0.114")]),
    (128, [Fraction("-0.168736"), Fraction("-0.331264"), Fraction("0.5")]),
    (128, [Fraction("0.5"), Fraction("-0.418688"), Fraction("-0.081312")]),
]


def reference_ycbcr(rgb: tuple[int, int, int]) -> list[int]:
    """T.871 full-range YCbCr in exact rational arithmetic, rounded half up and clipped."""
    out = []
    for offset, weights in FORWARD:
        value = offset + sum(w * c for w, c in zip(weights, rgb))
        out.append(min(255, max(0, math.floor(value + Fraction(1, 2)))))
    return out


def colours(values: list[tuple[int, int, int]]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.uint8).T.reshape(1, 3, 1, -1)


def test_primaries_and_greys() -> None:
    ycc = rgb_to_ycbcr(colours([(255, 255, 255), (0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)]))
    assert ycc[0, :, 0].T.tolist() == [[255, 128, 128], [0, 128, 128], [76, 85, 255], [150, 44, 21], [29, 255, 107]]


def test_conversion_is_the_exact_rational_formula() -> None:
    sample = [tuple(int(v) for v in c) for c in np.random.default_rng(0).integers(0, 256, (400, 3))]
    ycc = rgb_to_ycbcr(colours(sample))[0, :, 0].T.tolist()
    assert ycc == [reference_ycbcr(c) for c in sample]


def test_round_trip_loses_at_most_one_and_that_bound_is_reached() -> None:
    grid = torch.arange(0, 256, 3, dtype=torch.uint8)
    r, g, b = torch.meshgrid(grid, grid, grid, indexing="ij")
    image = torch.stack([r, g, b]).reshape(1, 3, 1, -1)
    error = (ycbcr_to_rgb(rgb_to_ycbcr(image)).int() - image.int()).abs()
    assert error.max() == 1 == EtCGrayCipher.roundtrip_max_error
    # (0, 0, 1) -> YCbCr (0, 129, 128) -> (0, 0, 2): the smallest colour that loses 1
    assert ycbcr_to_rgb(rgb_to_ycbcr(colours([(0, 0, 1)])))[0, :, 0, 0].tolist() == [0, 0, 2]


@pytest.mark.slow
def test_round_trip_bound_over_all_colours() -> None:
    v = torch.arange(2**24, dtype=torch.int32)
    image = torch.stack([v >> 16, (v >> 8) & 255, v & 255]).to(torch.uint8).view(1, 3, 4096, 4096)
    assert (ycbcr_to_rgb(rgb_to_ycbcr(image)).int() - image.int()).abs().max() == 1


#: the conversion as integer numerators x 10^6 (weights of the three inputs, offset incl. the + 1/2 of rounding)
MICRO_FORWARD = [((299_000, 587_000, 114_000), 500_000), ((-168_736, -331_264, 500_000), 128_500_000),
                 ((500_000, -418_688, -81_312), 128_500_000)]
MICRO_INVERSE = [((10**6, 0, 1_402_000), 500_000 - 128 * 1_402_000),
                 ((10**6, -344_136, -714_136), 500_000 + 128 * 1_058_272),
                 ((10**6, 1_772_000, 0), 500_000 - 128 * 1_772_000)]


def triples(count: int) -> torch.Tensor:
    """``count`` byte triples as a ``[1, 3, 1, count]`` image: every triple once for 2^24, else a seeded sample."""
    if count == 2**24:
        v = torch.arange(2**24, dtype=torch.int32)
    else:
        v = torch.from_numpy(np.random.default_rng(count).integers(0, 2**24, count, dtype=np.int32))
    return torch.stack([v >> 16, (v >> 8) & 255, v & 255]).to(torch.uint8).view(1, 3, 1, -1)


def micro_reference(image: torch.Tensor, rows: list) -> torch.Tensor:
    """floor(numerator / 10^6) in int64, clipped: the exact formula without fixed point."""
    planes = image[0].to(torch.int64)
    out = [sum(w * p for w, p in zip(weights, planes)) + offset for weights, offset in rows]
    return torch.stack([o.div(10**6, rounding_mode="floor").clamp(0, 255) for o in out]).to(torch.uint8)[None]


@pytest.mark.parametrize("count", [2**18, pytest.param(2**24, marks=pytest.mark.slow)])
@pytest.mark.parametrize(("convert", "rows"), [(rgb_to_ycbcr, MICRO_FORWARD), (ycbcr_to_rgb, MICRO_INVERSE)])
def test_fixed_point_equals_the_exact_formula(convert, rows: list, count: int) -> None:
    """The int32 fixed point without division equals the exact formula (on all 2^24 input triples when slow)."""
    image = triples(count)
    assert torch.equal(convert(image), micro_reference(image, rows))


def test_identity_key_lays_y_cb_cr_side_by_side() -> None:
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 3, 4, 8), dtype=np.uint8))
    cipher = EtCGrayCipher(4, geometry=np.zeros(6, int), negpos=np.zeros(6, int), block_perm=np.arange(6))
    encrypted = cipher.encrypt(images)
    assert encrypted.shape == (2, 1, 4, 24) == cipher.encrypted_shape((2, 3, 4, 8))
    ycc = rgb_to_ycbcr(images)
    assert torch.equal(encrypted[:, 0], torch.cat([ycc[:, 0], ycc[:, 1], ycc[:, 2]], dim=2))


@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 5), rows=st.integers(1, 3), cols=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_blocks_of_the_gray_image_match_the_loop_reference(m: int, rows: int, cols: int, seed: int) -> None:
    size = (rows * m, cols * m)
    images = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (2, 3, *size), dtype=np.uint8))
    cipher = create_cipher("etc_gray", size, block_size=m, seed=seed)
    assert cipher.n_blocks == 3 * rows * cols  # Y, Cb and Cr blocks are scrambled together
    gray = torch.cat(rgb_to_ycbcr(images).unbind(1), dim=2)  # [B, H, 3W]
    encrypted = cipher.encrypt(images)
    for b in range(2):
        expected = reference_encrypt(gray[b][None].numpy(), m, cipher.key())
        assert np.array_equal(encrypted[b].numpy(), expected)
    assert torch.equal(cipher.decrypt(encrypted), ycbcr_to_rgb(rgb_to_ycbcr(images)))


def test_decrypt_returns_the_rgb_of_the_rounded_ycbcr() -> None:
    images = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (3, 3, 16, 16), dtype=np.uint8))
    images[0, :, 0, 0] = torch.tensor([0, 0, 1], dtype=torch.uint8)
    cipher = create_cipher("etc_gray", (16, 16), seed=3)
    restored = cipher.decrypt(cipher.encrypt(images))
    assert torch.equal(restored, ycbcr_to_rgb(rgb_to_ycbcr(images)))  # the only loss is the colour rounding
    assert (restored.int() - images.int()).abs().max() == 1


@pytest.mark.parametrize(("size", "m", "log2"), [(32, 8, 394.95), (32, 4, 1952.43), (224, 8, 32363.34)])
def test_key_space_closed_form(size: int, m: int, log2: float) -> None:
    cipher = create_cipher("etc_gray", (size, size), block_size=m, seed=0)
    n = 3 * (size // m) ** 2
    assert cipher.key_space() == math.factorial(n) * 16**n == cipher.effective_key_space()
    assert cipher.key_space_log2() == pytest.approx(log2, abs=0.01)  # notes §2.4: 2^394.9 and 2^32363


def test_rejects_ciphertexts_that_are_not_gray_h_by_3w() -> None:
    cipher = create_cipher("etc_gray", (16, 16), seed=0)
    with pytest.raises(ValueError, match="1 channels"):
        cipher.decrypt(torch.zeros((1, 3, 16, 48), dtype=torch.uint8))
    with pytest.raises(ValueError, match="3W"):
        cipher.decrypt(torch.zeros((1, 1, 16, 40), dtype=torch.uint8))
    with pytest.raises(ValueError, match="block_perm"):
        cipher.decrypt(torch.zeros((1, 1, 16, 96), dtype=torch.uint8))
