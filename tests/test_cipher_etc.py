"""Colour EtC: hand-computed examples, the 8 dihedral geometries against numpy rot90/flip, a per-block
loop reference and the key-space closed forms."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ciphers.etc import EtCCipher, dihedral_source
from harness import create_cipher
from harness.keys import rng


def numpy_geometry(block: np.ndarray, g: int) -> np.ndarray:
    """docs/ciphers.md's geometry g on a [..., M, M] block, with numpy: rot90 then an optional W mirror."""
    out = np.rot90(block, k=g % 4, axes=(-2, -1))
    return out[..., ::-1] if g >= 4 else out


def split_blocks(image: np.ndarray, m: int) -> list[np.ndarray]:
    """The M x M blocks of a [C, H, W] image in raster order (views)."""
    cols = image.shape[2] // m
    return [
        image[:, (i // cols) * m : (i // cols + 1) * m, (i % cols) * m : (i % cols + 1) * m]
        for i in range((image.shape[1] // m) * cols)
    ]


def reference_encrypt(image: np.ndarray, m: int, key: dict[str, np.ndarray]) -> np.ndarray:
    """docs/ciphers.md's EtC with loops over blocks: geometry, negative-positive, colour order, then scramble.

    ``image`` is [C, H, W]; without a ``channel_perm`` entry the colour step is skipped (gray EtC).
    """
    orders = list(itertools.permutations(range(3)))
    transformed = []
    for i, block in enumerate(split_blocks(image, m)):
        block = numpy_geometry(block, int(key["geometry"][i]))
        if key["negpos"][i]:
            block = 255 - block
        if "channel_perm" in key:
            block = block[list(orders[key["channel_perm"][i]])]
        transformed.append(block)
    out = np.empty_like(image)
    for out_block, source in zip(split_blocks(out, m), key["block_perm"]):
        out_block[...] = transformed[source]
    return out


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_dihedral_source_is_numpy_rot90_then_mirror(m: int) -> None:
    block = np.arange(m * m).reshape(m, m)
    table = dihedral_source(m)
    for g in range(8):
        assert np.array_equal(block.reshape(-1)[table[g]].reshape(m, m), numpy_geometry(block, g))
    # the 8 geometries are the 8 distinct elements of the dihedral group (for M >= 2)
    assert len({tuple(row) for row in table}) == (8 if m > 1 else 1)


def test_hand_computed_one_block() -> None:
    # one 2x2 block: rotate 90 deg CCW ([[a, b], [c, d]] -> [[b, d], [a, c]]), negate, order (G, B, R)
    image = torch.tensor([[[0, 1], [2, 3]], [[10, 11], [12, 13]], [[20, 21], [22, 23]]], dtype=torch.uint8)[None]
    cipher = EtCCipher(2, geometry=[1], negpos=[1], channel_perm=[3], block_perm=[0])
    expected = 255 - torch.tensor([[[11, 13], [10, 12]], [[21, 23], [20, 22]], [[1, 3], [0, 2]]], dtype=torch.uint8)
    assert torch.equal(cipher.encrypt(image)[0], expected)


def test_hand_computed_scramble_and_mirror() -> None:
    # two 2x2 blocks side by side; block 1 is mirrored (g = 4) and the two blocks swap places
    image = torch.arange(8, dtype=torch.uint8).view(1, 2, 4).expand(3, -1, -1)[None]
    cipher = EtCCipher(2, geometry=[0, 4], negpos=[0, 0], channel_perm=[0, 0], block_perm=[1, 0])
    assert cipher.encrypt(image)[0, 0].tolist() == [[3, 2, 0, 1], [7, 6, 4, 5]]


@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 5), rows=st.integers(1, 3), cols=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_matches_per_block_loop_reference(m: int, rows: int, cols: int, seed: int) -> None:
    size = (rows * m, cols * m)
    cipher = create_cipher("etc", size, block_size=m, seed=seed)
    images = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (2, 3, *size), dtype=np.uint8))
    encrypted = cipher.encrypt(images)
    for b in range(2):
        assert np.array_equal(encrypted[b].numpy(), reference_encrypt(images[b].numpy(), m, cipher.key()))
    assert torch.equal(cipher.decrypt(encrypted), images)


def test_every_block_is_one_of_the_96_transforms_of_its_source() -> None:
    # the whole per-block key is recoverable from (plain, cipher): each output block equals exactly one
    # of geometry x negpos x colour-order applied to input block block_perm[i]
    m, size = 4, (8, 12)
    cipher = create_cipher("etc", size, block_size=m, seed=4)
    image = np.random.default_rng(4).integers(0, 256, (3, *size), dtype=np.uint8)
    encrypted = cipher.encrypt(torch.from_numpy(image)[None])[0].numpy()
    key, orders = cipher.key(), list(itertools.permutations(range(3)))
    for i, out_block in enumerate(split_blocks(encrypted, m)):
        source = split_blocks(image, m)[key["block_perm"][i]].astype(int)
        candidates = {
            (g, n, c): (255 * n + (1 - 2 * n) * numpy_geometry(source, g))[list(orders[c])]
            for g in range(8)
            for n in range(2)
            for c in range(6)
        }
        matches = [k for k, candidate in candidates.items() if np.array_equal(out_block, candidate)]
        j = key["block_perm"][i]
        assert matches == [(key["geometry"][j], key["negpos"][j], key["channel_perm"][j])]


def test_seeded_key_drawing_order() -> None:
    cipher = EtCCipher.from_seed(5, (8, 8), block_size=4)
    generator = rng(5)
    expected = {
        "geometry": generator.integers(0, 8, 4),
        "negpos": generator.integers(0, 2, 4),
        "channel_perm": generator.integers(0, 6, 4),
        "block_perm": generator.permutation(4),
    }
    for name, values in expected.items():
        assert np.array_equal(cipher.key()[name], values), name


@pytest.mark.parametrize(("size", "m", "log2"), [(32, 4, 717.4), (224, 16, 2505.5)])
def test_key_space_closed_form(size: int, m: int, log2: float) -> None:
    cipher = create_cipher("etc", (size, size), block_size=m, seed=0)
    n = (size // m) ** 2
    assert cipher.key_space() == math.factorial(n) * 96**n == cipher.effective_key_space()
    assert cipher.key_space_log2() == pytest.approx(log2, abs=0.05)  # notes §2.4


def test_one_pixel_blocks_have_no_geometry_in_the_effective_key_space() -> None:
    cipher = create_cipher("etc", (2, 3), block_size=1, seed=0)
    assert cipher.key_space() == math.factorial(6) * 96**6
    assert cipher.effective_key_space() == math.factorial(6) * 12**6
    assert cipher.effective_key_space_log2() == pytest.approx(math.log2(math.factorial(6) * 12**6))


def test_explicit_key_checks() -> None:
    cipher = create_cipher("etc", (8, 8), seed=0)
    for name, bad, match in [
        ("geometry", [8, 0, 0, 0], "geometry"),
        ("negpos", [2, 0, 0, 0], "negpos"),
        ("channel_perm", [6, 0, 0, 0], "channel_perm"),
        ("geometry", np.zeros((2, 2), dtype=int), "geometry"),
        ("block_perm", [0, 0, 1, 2], "block_perm"),
    ]:
        with pytest.raises(ValueError, match=match):
            cipher.rebuild(**{name: bad})
    with pytest.raises(ValueError, match="option"):
        create_cipher("etc", (8, 8), seed=0, key_condition="diff_key")
