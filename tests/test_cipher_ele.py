"""ELE: a hand-computed example, the per-block loop reference, ito-hiroki's seeding, LE as a special case
and the key-space closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ciphers.ele import ELECipher
from ciphers.le import LECipher
from harness import create_cipher
from tests.test_cipher_le import reference_encrypt, reference_le_block

SHIFT = np.array([5, 0, 1, 2, 3, 4])  # the hand example of test_cipher_le


def test_hand_computed_two_blocks() -> None:
    # 1x2 image, M = 1: block 0 gets SHIFT (0x12,0x34,0x56 -> 0x65,0x1D,0xC4), block 1 the identity
    # permutation (F = {4, 5}: high nibbles of G and B flipped twice, i.e. unchanged); then swap
    image = torch.tensor([[0x12, 0xAB], [0x34, 0xCD], [0x56, 0xEF]], dtype=torch.uint8).view(1, 3, 1, 2)
    cipher = ELECipher(1, perms=[SHIFT, np.arange(6)], block_perm=[1, 0])
    encrypted = cipher.encrypt(image)[0, :, 0]
    assert encrypted[:, 0].tolist() == [0xAB, 0xCD, 0xEF]
    assert encrypted[:, 1].tolist() == [0x65, 0x1D, 0xC4]


@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 3), rows=st.integers(1, 3), cols=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_matches_per_block_loop_reference(m: int, rows: int, cols: int, seed: int) -> None:
    size = (rows * m, cols * m)
    cipher = create_cipher("ele", size, block_size=m, seed=seed)
    images = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (2, 3, *size), dtype=np.uint8))
    encrypted = cipher.encrypt(images)
    key = cipher.key()
    for b in range(2):
        expected = reference_encrypt(images[b].numpy(), m, list(key["perms"]), key["block_perm"])
        assert np.array_equal(encrypted[b].numpy(), expected)
    assert torch.equal(cipher.decrypt(encrypted), images)


def test_ito_hiroki_seeding() -> None:
    cipher = ELECipher.from_seed(7, (32, 32), block_size=4)
    block_seeds = np.random.default_rng(7).integers(100000, size=64)
    for p in (0, 17, 63):
        assert np.array_equal(cipher.key()["perms"][p], np.random.default_rng(block_seeds[p]).permutation(96))
    assert np.array_equal(cipher.key()["block_perm"], np.random.default_rng(7).permutation(64))


def test_one_key_everywhere_and_no_scramble_is_le() -> None:
    le = create_cipher("le", (8, 12), seed=5)
    perm = le.key()["perm"]
    ele = ELECipher(4, perms=np.tile(perm, (6, 1)), block_perm=np.arange(6))
    images = torch.from_numpy(np.random.default_rng(5).integers(0, 256, (2, 3, 8, 12), dtype=np.uint8))
    assert torch.equal(ele.encrypt(images), le.encrypt(images))
    assert torch.equal(ele.encrypt(images), LECipher(4, perm).encrypt(images))


def test_each_block_uses_the_key_of_its_plain_position() -> None:
    # the block that lands at output i was encrypted with perms[block_perm[i]], not perms[i]
    cipher = create_cipher("ele", (4, 8), block_size=4, seed=2)
    key = cipher.key()
    image = np.random.default_rng(2).integers(0, 256, (3, 4, 8), dtype=np.uint8)
    encrypted = cipher.encrypt(torch.from_numpy(image)[None])[0].numpy()
    for i in range(2):
        source = key["block_perm"][i]
        plain_block = image[:, :, source * 4 : source * 4 + 4].transpose(1, 2, 0).reshape(-1)
        out_block = encrypted[:, :, i * 4 : i * 4 + 4].transpose(1, 2, 0).reshape(-1)
        assert np.array_equal(out_block, reference_le_block(plain_block, key["perms"][source]))


def test_key_space_closed_form() -> None:
    cipher = create_cipher("ele", (32, 32), block_size=4, seed=0)
    assert cipher.key_space() == math.factorial(64) * math.factorial(96) ** 64 == cipher.effective_key_space()
    assert cipher.key_space_log2() == pytest.approx(32185.7, abs=0.05)  # notes §2.3


def test_explicit_key_checks() -> None:
    cipher = create_cipher("ele", (8, 8), seed=0)
    key = cipher.key()
    with pytest.raises(ValueError, match="perms row 2"):
        broken = key["perms"].copy()
        broken[2, 0] = broken[2, 1]
        cipher.rebuild(perms=broken)
    with pytest.raises(ValueError, match="block_perm"):
        cipher.rebuild(block_perm=key["block_perm"][:3])
    with pytest.raises(ValueError, match="perms"):
        cipher.rebuild(perms=key["perms"][:3])
    with pytest.raises(ValueError, match="block_perm"):
        cipher.encrypt(torch.zeros((1, 3, 8, 16), dtype=torch.uint8))
