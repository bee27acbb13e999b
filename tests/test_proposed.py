"""The seed's cipher against a literal loop implementation of docs/ciphers.md's steps, and its key space."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ciphers.proposed import ProposedCipher
from harness import create_cipher


def reference_encrypt(image: np.ndarray, m: int, block_perm: np.ndarray, pixel_perm: np.ndarray) -> np.ndarray:
    """docs/ciphers.md steps 1-5 with explicit loops over blocks, sub-blocks and positions (CHW uint8)."""
    _, height, width = image.shape
    cols, half = width // m, m // 2
    blocks = [image[:, (i // cols) * m : (i // cols + 1) * m, (i % cols) * m : (i % cols + 1) * m] for i in range((height // m) * cols)]
    out = np.empty_like(image)
    for i in range(len(blocks)):
        block = blocks[block_perm[i]]
        new_block = np.empty_like(block)
        for sr in range(2):
            for sc in range(2):
                sub = block[:, sr * half : (sr + 1) * half, sc * half : (sc + 1) * half].reshape(image.shape[0], -1)
                shuffled = sub[:, pixel_perm]
                new_block[:, sr * half : (sr + 1) * half, sc * half : (sc + 1) * half] = shuffled.reshape(-1, half, half)
        out[:, (i // cols) * m : (i // cols + 1) * m, (i % cols) * m : (i % cols + 1) * m] = new_block
    return out


def test_hand_computed_4x4_example() -> None:
    # one 4x4 block (N = 1), K2 reverses each 2x2 sub-block: position k takes position 3 - k
    image = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)
    cipher = ProposedCipher(block_size=4, block_perm=[0], pixel_perm=[3, 2, 1, 0])
    expected = torch.tensor([[5, 4, 7, 6], [1, 0, 3, 2], [13, 12, 15, 14], [9, 8, 11, 10]], dtype=torch.uint8)
    assert torch.equal(cipher.encrypt(image)[0, 0], expected)


def test_hand_computed_block_scramble() -> None:
    # 2x2 grid of 2x2 blocks (S = 1: no pixel shuffle); output block i is input block K1[i]
    image = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]], dtype=torch.uint8).view(1, 1, 4, 4)
    cipher = ProposedCipher(block_size=2, block_perm=[3, 0, 2, 1], pixel_perm=[0])
    assert cipher.encrypt(image)[0, 0, ::2, ::2].tolist() == [[3, 0], [2, 1]]


@settings(max_examples=25, deadline=None)
@given(
    half=st.integers(1, 4),
    rows=st.integers(1, 4),
    cols=st.integers(1, 4),
    channels=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**31),
)
def test_matches_loop_reference(half: int, rows: int, cols: int, channels: int, seed: int) -> None:
    m = 2 * half
    size = (rows * m, cols * m)
    cipher = create_cipher("proposed", image_size=size, block_size=m, seed=seed)
    images = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (2, channels, *size), dtype=np.uint8))
    key = cipher.key()
    encrypted = cipher.encrypt(images)
    for b in range(2):
        expected = reference_encrypt(images[b].numpy(), m, key["block_perm"], key["pixel_perm"])
        assert np.array_equal(encrypted[b].numpy(), expected)
    assert torch.equal(cipher.decrypt(encrypted), images)


def test_seed_key_space_224_m16() -> None:
    cipher = create_cipher("proposed", image_size=(224, 224), block_size=16, seed=0)
    assert cipher.key_space() == math.factorial(196) * math.factorial(64)
    assert cipher.key_space_log2() == pytest.approx(1510.84, abs=0.005)
    assert math.ceil(cipher.key_space_log2()) == 1511  # the seed's 2^1511


@pytest.mark.parametrize(("block", "log2"), [(4, 300.58), (8, 88.50), (16, 300.58)])
def test_quick_preset_key_spaces(block: int, log2: float) -> None:
    cipher = create_cipher("proposed", image_size=(32, 32), block_size=block, seed=0)
    n, s = (32 // block) ** 2, (block // 2) ** 2
    assert cipher.key_space() == math.factorial(n) * math.factorial(s)
    assert cipher.key_space_log2() == pytest.approx(log2, abs=0.005)


def test_seeded_key_is_drawn_in_documented_order() -> None:
    cipher = create_cipher("proposed", image_size=(16, 16), block_size=4, seed=42)
    generator = np.random.default_rng(42)
    assert np.array_equal(cipher.block_perm, generator.permutation(16))
    assert np.array_equal(cipher.pixel_perm, generator.permutation(4))


def test_channels_move_together() -> None:
    cipher = create_cipher("proposed", image_size=(8, 8), block_size=4, seed=3)
    plane = torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8)
    encrypted = cipher.encrypt(plane.repeat(1, 3, 1, 1))
    assert torch.equal(encrypted, cipher.encrypt(plane).repeat(1, 3, 1, 1))


def test_key_for_another_grid_is_rejected() -> None:
    cipher = create_cipher("proposed", image_size=(16, 16), block_size=4, seed=0)
    with pytest.raises(ValueError, match="block_perm has 16 entries"):
        cipher.encrypt(torch.zeros((1, 3, 16, 32), dtype=torch.uint8))


def test_pixel_perm_length_must_match_sub_block() -> None:
    with pytest.raises(ValueError, match="pixel_perm"):
        ProposedCipher(block_size=4, block_perm=[0, 1], pixel_perm=[0, 1, 2])


def test_unknown_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="does not accept option"):
        create_cipher("proposed", image_size=(8, 8), block_size=4, seed=0, key_condition="diff_key")
