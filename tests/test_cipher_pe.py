"""PE: a hand-computed example, a per-pixel loop reference, the key conditions and key spaces."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ciphers.pe import PESameKeyCipher, PECipher, derive_keys, draw_key, flip_masks, select_channels, source_channels
from harness import create_cipher
from harness.keys import rng


def reference_encrypt(image: np.ndarray, negpos: np.ndarray, channel_perm: np.ndarray) -> np.ndarray:
    """docs/ciphers.md's PE with explicit loops over pixels: flip each component, then permute the three."""
    orders = list(itertools.permutations(range(3)))
    out = np.empty_like(image)
    for y in range(image.shape[1]):
        for x in range(image.shape[2]):
            flipped = [255 - int(image[c, y, x]) if negpos[c, y, x] else int(image[c, y, x]) for c in range(3)]
            order = orders[channel_perm[y, x]]
            for c in range(3):
                out[c, y, x] = flipped[order[c]]
    return out


def test_hand_computed_two_pixels() -> None:
    # pixel 0: flip R, identity order; pixel 1: flip G, order (1, 2, 0) -> (G', B, R)
    image = torch.tensor([[[10, 1]], [[20, 2]], [[30, 3]]], dtype=torch.uint8)[None]
    negpos = np.array([[[1, 0]], [[0, 1]], [[0, 0]]])
    cipher = PESameKeyCipher(negpos, channel_perm=np.array([[0, 3]]))
    expected = torch.tensor([[[245, 253]], [[20, 3]], [[30, 1]]], dtype=torch.uint8)[None]
    encrypted = cipher.encrypt(image)
    assert torch.equal(encrypted, expected)
    assert torch.equal(cipher.decrypt(encrypted), image)


@settings(max_examples=20, deadline=None)
@given(height=st.integers(1, 6), width=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_same_key_matches_loop_reference(height: int, width: int, seed: int) -> None:
    cipher = create_cipher("pe", (height, width), seed=seed, key_condition="same_key")
    images = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (2, 3, height, width), dtype=np.uint8))
    encrypted = cipher.encrypt(images)
    key = cipher.key()
    for b in range(2):
        expected = reference_encrypt(images[b].numpy(), key["negpos"], key["channel_perm"])
        assert np.array_equal(encrypted[b].numpy(), expected)
    assert torch.equal(cipher.decrypt(encrypted), images)


def test_seeded_key_drawing_order() -> None:
    cipher = PESameKeyCipher.from_seed(11, (4, 5))
    negpos, channel_perm = draw_key(rng(11), 4, 5)
    generator = rng(11)
    assert np.array_equal(negpos, generator.integers(0, 2, (3, 4, 5), dtype=np.uint8))
    assert np.array_equal(channel_perm, generator.integers(0, 6, (4, 5), dtype=np.uint8))
    assert np.array_equal(cipher.key()["negpos"], negpos)
    assert np.array_equal(cipher.key()["channel_perm"], channel_perm)


def test_diff_key_differs_per_image_and_same_key_does_not() -> None:
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 3, 8, 8), dtype=np.uint8))
    batch = image.expand(4, -1, -1, -1).contiguous()
    diff = create_cipher("pe", (8, 8), seed=3).encrypt(batch)
    assert all(not torch.equal(diff[i], diff[j]) for i in range(4) for j in range(i))
    same = create_cipher("pe", (8, 8), seed=3, key_condition="same_key").encrypt(batch)
    assert all(torch.equal(same[i], same[0]) for i in range(4))


def reference_image_key(key_seed: int, image_id: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The documented diff_key derivation with Python integers, one pixel at a time."""
    mask64, mask32 = 2**64 - 1, 2**32 - 1
    z = (key_seed + (image_id + 1) * 0x9E3779B97F4A7C15) & mask64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask64
    z ^= z >> 31
    low, high = z & mask32, z >> 32
    orders = list(itertools.permutations(range(3)))
    negpos = np.zeros((3, height, width), dtype=np.uint8)
    channel_perm = np.zeros((height, width), dtype=np.uint8)
    for y in range(height):
        for x in range(width):
            h = ((y * width + x + low) & mask32) ^ high
            h = ((h ^ (h >> 16)) * 0x85EBCA6B) & mask32
            h = ((h ^ (h >> 13)) * 0xC2B2AE35) & mask32
            h ^= h >> 16
            channel_perm[y, x] = ((h >> 3) * 6) >> 29
            for c in range(3):  # output component c is flipped: its source p[c] carries the flip
                negpos[orders[channel_perm[y, x]][c], y, x] = (h >> c) & 1
    return negpos, channel_perm


def test_diff_key_image_keys_are_derived_from_seed_and_id(device: torch.device) -> None:
    cipher = create_cipher("pe", (6, 4), seed=9)
    assert isinstance(cipher, PECipher) and cipher.per_image_key
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 3, 6, 4), dtype=np.uint8))
    ids = torch.tensor([17, 0, 5])
    encrypted = cipher.encrypt(images.to(device), image_ids=ids.to(device))
    for b, image_id in enumerate(ids.tolist()):
        negpos, channel_perm = reference_image_key(9, image_id, 6, 4)
        assert all(np.array_equal(got, want) for got, want in zip(cipher.image_key(image_id), (negpos, channel_perm)))
        assert torch.equal(encrypted[b].cpu(), PESameKeyCipher(negpos, channel_perm).encrypt(images[b : b + 1])[0])
    # an image keeps its key in any batch: image 5 alone gives the same ciphertext
    assert torch.equal(cipher.encrypt(images[2:3], image_ids=torch.tensor([5])), encrypted[2:3].cpu())
    assert torch.equal(cipher.decrypt(encrypted, image_ids=ids.to(device)).cpu(), images)
    assert not torch.equal(cipher.decrypt(encrypted, image_ids=ids.flip(0).to(device)).cpu(), images)
    assert torch.equal(cipher.encrypt(images), cipher.encrypt(images, image_ids=torch.arange(3)))


def test_diff_key_derivation_at_the_ends_of_the_seed_and_id_ranges() -> None:
    for key_seed, image_id in [(2**64 - 1, 2**63 - 1), (0, 0), (2**63 + 5, 123456789)]:
        cipher = PECipher(np.array([key_seed], dtype=np.uint64), (3, 5))
        expected = reference_image_key(key_seed, image_id, 3, 5)
        assert all(np.array_equal(got, want) for got, want in zip(cipher.image_key(image_id), expected))


def test_diff_key_codes_look_uniform_and_differ_per_image() -> None:
    """Loose sanity checks of the derived keys (not a randomness test suite): all 6 orders and both
    flip values about equally often over 2^18 pixels, and no two images of a batch share a key."""
    keys = derive_keys(2024, np.arange(64), 64, 64)
    counts = np.bincount(keys.channel_perm.ravel(), minlength=6)
    assert counts.shape == (6,) and np.all(np.abs(counts / counts.sum() - 1 / 6) < 0.005)
    for c in range(3):
        assert abs(((keys.flips >> c) & 1).mean() - 0.5) < 0.005
    codes = keys.channel_perm.astype(np.int64) * 8 + (keys.flips & 7)  # 48 distinct per-pixel maps
    assert len({code.tobytes() for code in codes}) == 64
    assert np.all(np.abs((codes[:-1] == codes[1:]).mean(axis=(1, 2)) - 1 / 48) < 0.02)  # neighbours: chance agreement


@pytest.mark.parametrize("inverse", [False, True])
def test_channel_selection_matches_the_permutation_table(inverse: bool) -> None:
    images = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (2, 3, 6, 5), dtype=np.uint8))
    codes = torch.from_numpy(np.random.default_rng(5).integers(0, 6, (2, 6, 5), dtype=np.uint8))
    orders = np.array(list(itertools.permutations(range(3))))
    orders = np.argsort(orders, axis=1) if inverse else orders
    source = torch.from_numpy(orders[codes.numpy()]).permute(0, 3, 1, 2)  # [B, 3, H, W]: p[c]
    assert torch.equal(select_channels(images, codes, inverse=inverse), torch.gather(images, 1, source))


def test_flip_masks_spread_each_bit_over_a_byte() -> None:
    flips = torch.arange(256, dtype=torch.uint8).view(1, 16, 16)
    expected = torch.stack([((flips >> c) & 1) * 255 for c in range(3)], dim=1)
    assert torch.equal(flip_masks(flips), expected)


def test_diff_key_rebuilds_from_its_saved_key() -> None:
    cipher = create_cipher("pe", (4, 4), seed=2**63 + 5)
    images = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (2, 3, 4, 4), dtype=np.uint8))
    rebuilt = PECipher(**cipher.key(), image_size=(4, 4))
    assert torch.equal(rebuilt.encrypt(images), cipher.encrypt(images))
    assert "key_seed" not in repr(cipher) and str(2**63 + 5) not in repr(cipher)


@pytest.mark.parametrize("condition", ["same_key", "diff_key"])
def test_key_space_closed_form(condition: str) -> None:
    cipher = create_cipher("pe", (32, 32), seed=0, key_condition=condition)
    assert cipher.key_space() == 2 ** (3 * 1024) * 6**1024 == cipher.effective_key_space()
    assert cipher.key_space_log2() == pytest.approx(3 * 1024 + 1024 * math.log2(6), rel=1e-12)
    assert round(cipher.key_space_log2()) == 5719  # notes §2.5


def test_same_key_explicit_key_checks() -> None:
    cipher = create_cipher("pe", (4, 6), seed=1, key_condition="same_key")
    key = cipher.key()
    images = torch.zeros((1, 3, 4, 6), dtype=torch.uint8)
    assert torch.equal(cipher.rebuild().encrypt(images), cipher.encrypt(images))
    with pytest.raises(ValueError, match="negpos"):
        cipher.rebuild(negpos=key["negpos"][..., :-1])
    with pytest.raises(ValueError, match="channel_perm"):
        cipher.rebuild(channel_perm=key["channel_perm"][..., :-1])
    with pytest.raises(ValueError, match="negpos"):
        cipher.rebuild(negpos=key["negpos"] * 2)
    with pytest.raises(ValueError, match="channel_perm"):
        cipher.rebuild(channel_perm=key["channel_perm"] + 6)
    with pytest.raises(ValueError, match="4x6"):
        cipher.encrypt(torch.zeros((1, 3, 8, 6), dtype=torch.uint8))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"key_condition": "per_batch"}, "key_condition"),
        ({"block_size": 4}, "block_size"),
        ({"colour": True}, "colour"),
    ],
)
def test_seeded_constructor_rejects_bad_options(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_cipher("pe", (8, 8), seed=0, **options)


def test_rejects_bad_image_ids() -> None:
    cipher = create_cipher("pe", (4, 4), seed=0)
    images = torch.zeros((2, 3, 4, 4), dtype=torch.uint8)
    for ids in (torch.tensor([0]), torch.tensor([0.0, 1.0]), torch.tensor([-1, 0])):
        with pytest.raises(ValueError, match="image_ids"):
            cipher.encrypt(images, image_ids=ids)


def test_source_channel_arithmetic_matches_the_permutation_table() -> None:
    table = torch.tensor(list(itertools.permutations(range(3))), dtype=torch.uint8)
    assert torch.equal(source_channels(torch.arange(6, dtype=torch.uint8).view(1, 6, 1))[0, :, :, 0].T, table)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), ids=st.lists(st.integers(0, 2**62), min_size=1, max_size=6),
       height=st.integers(1, 9), width=st.integers(1, 9))
def test_keys_derived_in_torch_equal_the_numpy_reference(seed: int, ids: list[int], height: int, width: int) -> None:
    """The device-side derivation (issue: PE keys derived where the images are) equals today's keys bit for bit."""
    from ciphers.pe import derive_keys, derive_keys_on

    reference = derive_keys(seed, np.array(ids, dtype=np.int64), height, width)
    channel_perm, flips = derive_keys_on(seed, torch.tensor(ids), height, width)
    assert np.array_equal(channel_perm.numpy(), reference.channel_perm) and np.array_equal(flips.numpy(), reference.flips)
