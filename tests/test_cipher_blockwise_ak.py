"""AprilPyone & Kiya's block-wise transformations (ak_shuffle, ak_flip, ak_ffx): a per-block loop
reference in HWC order, hand-computed examples, key-space closed forms, validation and seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ciphers.blockwise_ak import AKFFXCipher, AKFlipCipher, AKShuffleCipher, published_mask
from harness import create_cipher
from harness.keys import rng

CLASSES = {"ak_shuffle": AKShuffleCipher, "ak_flip": AKFlipCipher, "ak_ffx": AKFFXCipher}


def reference_encrypt(image: np.ndarray, m: int, name: str, key: dict[str, np.ndarray]) -> np.ndarray:
    """The paper's transform with loops: every block's (row, column, channel) vector, one key for all."""
    hwc = image.transpose(1, 2, 0).copy()
    out = np.empty_like(hwc)
    for top in range(0, hwc.shape[0], m):
        for left in range(0, hwc.shape[1], m):
            vector = hwc[top : top + m, left : left + m].reshape(-1).astype(np.int64)
            if name == "ak_shuffle":
                vector = vector[key["perm"]]
            elif name == "ak_flip":
                vector = np.where(key["flip_mask"] == 1, 255 - vector, vector)
            else:
                vector = np.where(key["ffx_mask"] == 1, key["sbox"][vector], vector)
            out[top : top + m, left : left + m] = vector.reshape(m, m, -1)
    return out.transpose(2, 0, 1)


def _images(batch: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, generator=generator)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(CLASSES)), m=st.integers(1, 5), rows=st.integers(1, 3), cols=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 3),
)
def test_matches_the_loop_reference_and_round_trips(name, m, rows, cols, seed, batch) -> None:
    size = (rows * m, cols * m)
    cipher = CLASSES[name].from_seed(seed, image_size=size, block_size=m)
    x = _images(batch, size, seed % 997)
    y = cipher.encrypt(x)
    for i in range(batch):
        assert np.array_equal(y[i].numpy(), reference_encrypt(x[i].numpy(), m, name, cipher.key()))
    assert torch.equal(cipher.decrypt(y), x)


def test_hand_computed_one_pixel_blocks() -> None:
    """M = 1: the block vector is one pixel's (R, G, B)."""
    x = torch.tensor([10, 20, 30], dtype=torch.uint8).view(1, 3, 1, 1)
    shuffled = AKShuffleCipher(1, [2, 0, 1]).encrypt(x)
    assert shuffled.view(-1).tolist() == [30, 10, 20]
    flipped = AKFlipCipher(1, [0, 1, 1]).encrypt(x)
    assert flipped.view(-1).tolist() == [10, 235, 225]
    sbox = np.arange(256)[::-1].copy()
    sbox[[10, 20]] = sbox[[20, 10]]  # sbox[10] = 235, sbox[20] = 245, sbox[30] = 225
    ffx = AKFFXCipher(1, [1, 1, 0], sbox).encrypt(x)
    assert ffx.view(-1).tolist() == [235, 245, 30]


def test_hand_computed_two_by_two_block_in_hwc_order() -> None:
    """M = 2: entry k of the vector is pixel k // 3 (raster), channel k % 3; one key for both blocks."""
    x = torch.arange(24, dtype=torch.uint8).view(1, 3, 2, 4)  # two 2 x 2 blocks side by side
    perm = np.roll(np.arange(12), -1)  # output entry k takes entry k + 1: each pixel takes its next channel
    y = AKShuffleCipher(2, perm).encrypt(x)[0]
    # block 0, pixel (0, 0): channels (R, G, B) = (x[1, 0, 0], x[2, 0, 0], x[0, 0, 1]) = (8, 16, 1)
    assert y[:, 0, 0].tolist() == [8, 16, 1]
    # block 1 (columns 2..3) gets the same key: pixel (0, 2) takes (x[1,0,2], x[2,0,2], x[0,0,3])
    assert y[:, 0, 2].tolist() == [10, 18, 3]
    # the last entry (pixel (1, 1), B) takes entry 0 (pixel (0, 0), R)
    assert y[2, 1, 1].item() == x[0, 0, 0, 0].item()


def test_published_mask_selects_entries_above_half() -> None:
    assert published_mask(np.array([0, 5, 3, 1, 4, 2])).tolist() == [0, 1, 0, 0, 1, 0]  # > 3: 4 and 5
    assert int(published_mask(rng(0).permutation(48)).sum()) == 23  # d/2 - 1 for even d
    assert int(published_mask(rng(0).permutation(3)).sum()) == 1  # (d - 1)/2 for odd d


@pytest.mark.parametrize("m", [4, 16])
def test_key_space_closed_forms(m: int) -> None:
    d = 3 * m * m
    size = (32, 32) if m == 4 else (224, 224)
    shuffle = AKShuffleCipher.from_seed(0, size, m)
    assert shuffle.key_space() == shuffle.effective_key_space() == math.factorial(d)
    assert shuffle.key_space_log2() == pytest.approx(math.log2(math.factorial(d)), rel=1e-12)
    flip = AKFlipCipher.from_seed(0, size, m)
    assert flip.key_space() == flip.effective_key_space() == 2**d
    ffx = AKFFXCipher.from_seed(0, size, m)
    assert ffx.key_space() == 2**d * math.factorial(256)
    assert ffx.effective_key_space() == (2**d - 1) * (math.factorial(256) - 1) + 1
    assert ffx.key_space_log2() == pytest.approx(d + math.log2(math.factorial(256)), rel=1e-12)


def test_key_space_values_at_32_with_block_4() -> None:
    assert AKShuffleCipher.from_seed(0, (32, 32)).key_space_log2() == pytest.approx(203.0, abs=0.1)  # log2 48!
    assert AKFlipCipher.from_seed(0, (32, 32)).key_space_log2() == 48
    assert AKFFXCipher.from_seed(0, (32, 32)).key_space_log2() == pytest.approx(48 + 1684.0, abs=0.1)


def test_ffx_effective_key_space_counts_identity_collisions() -> None:
    """An empty mask and the identity sbox both give the identity; nothing else collides."""
    x = _images(2, (4, 4))
    identity = np.arange(256)
    sbox = rng(1).permutation(256)
    assert torch.equal(AKFFXCipher(2, np.zeros(12, int), sbox).encrypt(x), x)
    assert torch.equal(AKFFXCipher(2, np.ones(12, int), identity).encrypt(x), x)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: AKShuffleCipher(4, np.arange(47)), "perm"),
        (lambda: AKShuffleCipher(4, np.r_[0, 0, np.arange(2, 48)]), "perm"),
        (lambda: AKFlipCipher(4, np.ones(47, int)), "flip_mask"),
        (lambda: AKFlipCipher(4, np.full(48, 2)), "flip_mask"),
        (lambda: AKFlipCipher(2, np.ones((2, 6), int)), "flip_mask"),
        (lambda: AKFFXCipher(2, np.ones(12, int), np.arange(255)), "sbox"),
        (lambda: AKFFXCipher(2, np.ones(12, int), np.r_[1, 1, np.arange(2, 256)]), "sbox"),
        (lambda: AKFFXCipher(2, np.ones(11, int), np.arange(256)), "ffx_mask"),
        (lambda: AKFFXCipher(2, np.full(12, 0.5), np.arange(256)), "ffx_mask"),
        (lambda: AKFlipCipher(0, np.ones(3, int)), "block_size"),
        (lambda: AKShuffleCipher.from_seed(0, (30, 32), 4), "divisible"),
        (lambda: AKShuffleCipher.from_seed(0, (32, 32), 4, mode="flip"), "mode"),
        (lambda: AKFFXCipher.from_seed(-1, (32, 32), 4), "seed"),
    ],
)
def test_explicit_key_validation_errors(build, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()


def test_seeded_key_is_the_documented_draw() -> None:
    generator = rng(11)
    mask, sbox = published_mask(generator.permutation(48)), generator.permutation(256)
    ffx = AKFFXCipher.from_seed(11, (32, 32))
    assert np.array_equal(ffx.ffx_mask, mask) and np.array_equal(ffx.sbox, sbox)
    assert np.array_equal(AKShuffleCipher.from_seed(11, (32, 32)).perm, rng(11).permutation(48))
    assert np.array_equal(AKFlipCipher.from_seed(11, (32, 32)).flip_mask, published_mask(rng(11).permutation(48)))


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_seeded_determinism_and_batch_equals_per_image(name: str) -> None:
    x = _images(5, (32, 32), seed=3)
    a = create_cipher(name, (32, 32), seed=4)
    b = create_cipher(name, (32, 32), seed=4)
    assert torch.equal(a.encrypt(x), b.encrypt(x))
    whole = a.encrypt(x)
    assert torch.equal(whole, torch.cat([a.encrypt(x[i : i + 1]) for i in range(5)]))
    assert torch.equal(a.decrypt(whole), x)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_explicit_key_works_on_any_size_and_seeded_key_only_on_its_own(name: str) -> None:
    seeded = CLASSES[name].from_seed(2, (16, 16), 4)
    free = CLASSES[name](4, **seeded.key())
    x = _images(2, (16, 16))
    assert torch.equal(free.encrypt(x), seeded.encrypt(x))
    big = _images(1, (24, 32))
    assert torch.equal(free.decrypt(free.encrypt(big)), big)
    with pytest.raises(ValueError, match="drawn for 16x16"):
        seeded.encrypt(big)


def test_repr_shows_no_sbox() -> None:
    cipher = AKFFXCipher.from_seed(0, (32, 32))
    assert "sbox" not in repr(cipher) and str(cipher.sbox[:4].tolist())[1:-1] not in repr(cipher)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_cuda_equals_cpu(name: str) -> None:
    cipher = create_cipher(name, (32, 32), seed=1)
    x = _images(4, (32, 32))
    assert torch.equal(cipher.encrypt(x.cuda()).cpu(), cipher.encrypt(x))
    assert torch.equal(cipher.decrypt(cipher.encrypt(x.cuda())).cpu(), x)
