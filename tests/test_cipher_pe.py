"""PE: a hand-computed example, a per-pixel loop reference, the key conditions and key spaces."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ciphers.pe import PECipher, PEDiffKeyCipher, draw_key, source_channels
from harness import create_cipher
from harness.keys import derive_seed, rng


def reference_encrypt(image: np.ndarray, negpos: np.ndarray, channel_perm: np.ndarray) -> np.ndarray:
    """SPEC.md's PE with explicit loops over pixels: flip each component, then permute the three."""
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
    cipher = PECipher(negpos, channel_perm=np.array([[0, 3]]))
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
    cipher = PECipher.from_seed(11, (4, 5))
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


def test_diff_key_image_keys_are_derived_from_seed_and_id(device: torch.device) -> None:
    cipher = create_cipher("pe", (6, 4), seed=9)
    assert isinstance(cipher, PEDiffKeyCipher) and cipher.per_image_key
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 3, 6, 4), dtype=np.uint8))
    ids = torch.tensor([17, 0, 5])
    encrypted = cipher.encrypt(images.to(device), image_ids=ids.to(device))
    for b, image_id in enumerate(ids.tolist()):
        negpos, channel_perm = draw_key(rng(derive_seed(9, "pe", image_id)), 6, 4)
        assert torch.equal(encrypted[b].cpu(), PECipher(negpos, channel_perm).encrypt(images[b : b + 1])[0])
    # an image keeps its key in any batch: image 5 alone gives the same ciphertext
    assert torch.equal(cipher.encrypt(images[2:3], image_ids=torch.tensor([5])), encrypted[2:3].cpu())
    assert torch.equal(cipher.decrypt(encrypted, image_ids=ids.to(device)).cpu(), images)
    assert not torch.equal(cipher.decrypt(encrypted, image_ids=ids.flip(0).to(device)).cpu(), images)
    assert torch.equal(cipher.encrypt(images), cipher.encrypt(images, image_ids=torch.arange(3)))


def test_diff_key_rebuilds_from_its_saved_key() -> None:
    cipher = create_cipher("pe", (4, 4), seed=2**63 + 5)
    images = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (2, 3, 4, 4), dtype=np.uint8))
    rebuilt = PEDiffKeyCipher(**cipher.key(), image_size=(4, 4))
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
