"""LE: a hand-computed nibble example, docs/ciphers.md's steps written out with numpy, the nibble structure
and the key-space closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ciphers.le import LECipher
from harness import create_cipher
from harness.keys import rng


def reference_le_block(block_bytes: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """docs/ciphers.md steps 2-4 on the d bytes of one block (already in (row, column, channel) order)."""
    d = block_bytes.shape[0]
    z = np.concatenate([block_bytes & 0xF, block_bytes >> 4]).astype(np.int64)
    flip = perm > d
    z[flip] = 15 - z[flip]
    z = z[perm]
    z[flip] = 15 - z[flip]
    return ((z[d:] << 4) + z[:d]).astype(np.uint8)


def reference_encrypt(
    image: np.ndarray, m: int, perms: list[np.ndarray], block_perm: np.ndarray | None = None
) -> np.ndarray:
    """LE (one perm) or ELE (one perm per block position, then block scrambling) with loops over blocks.

    ``image`` is [C, H, W]; each block is flattened in (row, column, channel) order (step 1).
    """
    channels, height, width = image.shape
    cols, n_blocks = width // m, (height // m) * (width // m)
    hwc = image.transpose(1, 2, 0)
    transformed = []
    for i in range(n_blocks):
        block = hwc[(i // cols) * m : (i // cols + 1) * m, (i % cols) * m : (i % cols + 1) * m]
        perm = perms[i] if len(perms) > 1 else perms[0]
        transformed.append(reference_le_block(block.reshape(-1), perm).reshape(m, m, channels))
    out = np.empty_like(hwc)
    for i in range(n_blocks):
        source = i if block_perm is None else block_perm[i]
        out[(i // cols) * m : (i // cols + 1) * m, (i % cols) * m : (i % cols + 1) * m] = transformed[source]
    return out.transpose(2, 0, 1)


def test_hand_computed_one_pixel_block() -> None:
    # M = 1: d = 3 bytes (R, G, B) = (0x12, 0x34, 0x56), z = [2, 4, 6, 1, 3, 5]; P = [5, 0, 1, 2, 3, 4]
    # F = {i : P[i] > 3} = {0, 5}: flip -> [13, 4, 6, 1, 3, 10]; gather -> [10, 13, 4, 6, 1, 3];
    # flip -> [5, 13, 4, 6, 1, 12]; bytes (z[3+j] << 4) + z[j] = (0x65, 0x1D, 0xC4)
    cipher = LECipher(1, perm=[5, 0, 1, 2, 3, 4])
    image = torch.tensor([0x12, 0x34, 0x56], dtype=torch.uint8).view(1, 3, 1, 1)
    encrypted = cipher.encrypt(image)
    assert encrypted.view(-1).tolist() == [0x65, 0x1D, 0xC4]
    assert torch.equal(cipher.decrypt(encrypted), image)


def test_the_same_key_acts_on_every_block() -> None:
    # two 1x1 blocks with different pixels: each is transformed on its own, as in the hand example
    cipher = LECipher(1, perm=[5, 0, 1, 2, 3, 4])
    image = torch.tensor([[0x12, 0x00], [0x34, 0x00], [0x56, 0x00]], dtype=torch.uint8).view(1, 3, 1, 2)
    pixel = cipher.encrypt(image)[0, :, 0]
    assert pixel[:, 0].tolist() == [0x65, 0x1D, 0xC4]
    assert pixel[:, 1].tolist() == reference_le_block(np.zeros(3, np.uint8), np.array([5, 0, 1, 2, 3, 4])).tolist()


@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 4), rows=st.integers(1, 3), cols=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_matches_spec_steps(m: int, rows: int, cols: int, seed: int) -> None:
    size = (rows * m, cols * m)
    cipher = create_cipher("le", size, block_size=m, seed=seed)
    images = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (2, 3, *size), dtype=np.uint8))
    encrypted = cipher.encrypt(images)
    for b in range(2):
        assert np.array_equal(encrypted[b].numpy(), reference_encrypt(images[b].numpy(), m, [cipher.key()["perm"]]))
    assert torch.equal(cipher.decrypt(encrypted), images)


def test_nibble_structure() -> None:
    """Each output nibble is one input nibble of the same block (moved by P, maybe flipped): changing one
    input nibble changes exactly one output nibble, at the position i with P[i] = that nibble."""
    m, d = 4, 48
    cipher = create_cipher("le", (8, 8), block_size=m, seed=3)
    perm = cipher.key()["perm"]
    assert int((perm > d).sum()) == d - 1  # |F| = d - 1: the strict ">" of the reference code
    image = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (1, 3, 8, 8), dtype=np.uint8))
    base = cipher.encrypt(image)
    for channel, row, col, high in [(0, 0, 0, False), (2, 5, 6, True), (1, 3, 4, False)]:
        changed = image.clone()
        changed[0, channel, row, col] ^= 0x10 if high else 0x01
        diff = (cipher.encrypt(changed) ^ base)[0]
        nibble_diff = torch.cat([diff & 15, diff >> 4])  # [2C, H, W] nibble planes
        changed_at = nibble_diff.nonzero().tolist()
        assert len(changed_at) == 1
        plane, out_row, out_col = changed_at[0]
        assert (out_row // m, out_col // m) == (row // m, col // m)  # stays in its block
        i = (plane // 3) * d + ((out_row % m) * m + out_col % m) * 3 + plane % 3
        assert perm[i] == high * d + ((row % m) * m + col % m) * 3 + channel


def test_seeded_key() -> None:
    cipher = LECipher.from_seed(21, (8, 8), block_size=2)
    assert np.array_equal(cipher.key()["perm"], rng(21).permutation(24))


@pytest.mark.parametrize(("m", "log2"), [(4, 498.28), (8, 2748.25), (16, 14049.1)])
def test_key_space_closed_form(m: int, log2: float) -> None:
    cipher = create_cipher("le", (32, 32), block_size=m, seed=0)
    assert cipher.key_space() == math.factorial(2 * m * m * 3) == cipher.effective_key_space()
    assert cipher.key_space_log2() == pytest.approx(log2, abs=0.05)  # notes §2.2: 96! ~ 2^498.3


def test_explicit_key_works_on_any_size_but_a_seeded_one_keeps_its_size() -> None:
    seeded = create_cipher("le", (8, 8), seed=0)
    with pytest.raises(ValueError, match="8x8"):
        seeded.encrypt(torch.zeros((1, 3, 8, 16), dtype=torch.uint8))
    anywhere = LECipher(4, seeded.key()["perm"])
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 3, 8, 16), dtype=np.uint8))
    assert torch.equal(anywhere.encrypt(images)[..., :8], seeded.encrypt(images[..., :8].contiguous()))
    with pytest.raises(ValueError, match="perm"):
        LECipher(4, seeded.key()["perm"][:24])
