"""The contract every registered cipher must pass; a new cipher is tested the moment it registers.

Third-party authors can run this file against their plugin: it only uses the registry.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ciphers.contract import check_encrypt, check_key_space, check_roundtrip, check_traits
from harness.registry import ciphers

NAMES = ciphers.names()


def _setup(name: str) -> tuple[type, int, tuple[int, int]]:
    cls = ciphers.get(name)
    block = cls.default_block_size
    side = block * max(2, math.ceil(16 / block))
    return cls, block, (side, side)


def _images(cls: type, size: tuple[int, int], batch: int = 3, seed: int = 0) -> torch.Tensor:
    channels = cls.channels or 3
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, channels, *size), dtype=torch.uint8, generator=generator)


@pytest.fixture(params=NAMES, scope="module")
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def _names_where(predicate) -> list[str]:
    """Ciphers a property applies to (e.g. only fixed-channel ciphers can reject a channel count)."""
    return [n for n in NAMES if predicate(ciphers.get(n))]


def test_registry_is_not_empty() -> None:
    assert {"plain", "proposed"} <= set(NAMES)


def test_uint8_in_uint8_out_with_declared_shape(name: str, device: torch.device) -> None:
    cls, block, size = _setup(name)
    cipher = cls.from_seed(1, image_size=size, block_size=block)
    check_encrypt(cipher, _images(cls, size).to(device))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 4))
def test_decrypt_inverts_encrypt(name: str, device: torch.device, seed: int, batch: int) -> None:
    cls, block, size = _setup(name)
    cipher = cls.from_seed(seed, image_size=size, block_size=block)
    x = _images(cls, size, batch, seed % 1000).to(device)
    check_roundtrip(cipher, x, cipher.encrypt(x))


@pytest.mark.parametrize("with_ids", [False, True], ids=["no_ids", "empty_ids"])
def test_empty_batch_gives_an_empty_batch(name: str, device: torch.device, with_ids: bool) -> None:
    """B = 0 (an empty split, a last batch of nothing) is an empty batch of the declared shape, both ways."""
    cls, block, size = _setup(name)
    cipher = cls.from_seed(1, image_size=size, block_size=block)
    x = _images(cls, size, batch=0).to(device)
    ids = torch.zeros(0, dtype=torch.long, device=device) if with_ids else None
    check_roundtrip(cipher, x, check_encrypt(cipher, x, ids), ids)


def test_deterministic_given_seed(name: str) -> None:
    cls, block, size = _setup(name)
    x = _images(cls, size)
    first = cls.from_seed(7, image_size=size, block_size=block).encrypt(x)
    second = cls.from_seed(7, image_size=size, block_size=block).encrypt(x)
    assert torch.equal(first, second)


def test_different_seeds_give_different_ciphertexts(name: str) -> None:
    cls, block, size = _setup(name)
    x = _images(cls, size)
    a = cls.from_seed(1, image_size=size, block_size=block)
    b = cls.from_seed(2, image_size=size, block_size=block)
    if a.key_space() == 1:
        assert torch.equal(a.encrypt(x), b.encrypt(x))
    else:
        assert not torch.equal(a.encrypt(x), b.encrypt(x))


def test_key_space_is_exact_and_consistent(name: str) -> None:
    cls, block, size = _setup(name)
    cipher = cls.from_seed(0, image_size=size, block_size=block)
    check_key_space(cipher)
    if name != "plain":
        assert cipher.key_space_log2() > 0


def test_explicit_key_rebuilds_the_same_cipher(name: str) -> None:
    cls, block, size = _setup(name)
    cipher = cls.from_seed(3, image_size=size, block_size=block)
    x = _images(cls, size)
    assert torch.equal(cipher.rebuild().encrypt(x), cipher.encrypt(x))


def test_repr_shows_no_key_material(name: str) -> None:
    cls, block, size = _setup(name)
    cipher = cls.from_seed(5, image_size=size, block_size=block)
    text = repr(cipher) + str(cipher)
    for key_name, values in cipher.key().items():
        flat = np.asarray(values).reshape(-1)
        if flat.size >= 4:
            for render in (str(flat[:4].tolist())[1:-1], " ".join(map(str, flat[:4]))):
                assert render not in text, f"repr shows {key_name}"
    assert len(text) < 400


# -- clear errors on bad input ----------------------------------------------------------------
def test_rejects_wrong_dtype(name: str) -> None:
    cls, block, size = _setup(name)
    cipher = cls.from_seed(0, image_size=size, block_size=block)
    with pytest.raises(ValueError, match="uint8"):
        cipher.encrypt(_images(cls, size).float())


def test_rejects_wrong_rank(name: str) -> None:
    cls, block, size = _setup(name)
    cipher = cls.from_seed(0, image_size=size, block_size=block)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        cipher.encrypt(_images(cls, size)[0])


@pytest.mark.parametrize("fixed_channels", _names_where(lambda cls: cls.channels is not None))
def test_rejects_wrong_channel_count(fixed_channels: str) -> None:
    cls, block, size = _setup(fixed_channels)
    cipher = cls.from_seed(0, image_size=size, block_size=block)
    with pytest.raises(ValueError, match="channels"):
        cipher.encrypt(_images(cls, size)[:, :1].contiguous())


@pytest.mark.parametrize("blockwise", _names_where(lambda cls: cls.default_block_size > 1))
def test_rejects_sizes_not_divisible_by_block(blockwise: str) -> None:
    cls, block, size = _setup(blockwise)
    with pytest.raises(ValueError, match="divisible"):
        cls.from_seed(0, image_size=(size[0] + 1, size[1]), block_size=block)
    cipher = cls.from_seed(0, image_size=size, block_size=block)
    odd = torch.zeros((1, cls.channels or 3, size[0], size[1] + 1), dtype=torch.uint8)
    with pytest.raises(ValueError, match="divisible"):
        cipher.encrypt(odd)


@pytest.mark.parametrize("even_only", _names_where(lambda cls: cls.even_block))
def test_rejects_odd_block_size_where_even_is_required(even_only: str) -> None:
    cls, block, size = _setup(even_only)
    with pytest.raises(ValueError, match="even"):
        cls.from_seed(0, image_size=(3 * (block + 1), 3 * (block + 1)), block_size=block + 1)


def test_rejects_explicit_keys_of_wrong_length(name: str) -> None:
    """A truncated key entry fails when built, or at the latest when used on the original size."""
    cls, block, size = _setup(name)
    cipher = cls.from_seed(0, image_size=size, block_size=block)
    for key_name, values in cipher.key().items():
        with pytest.raises(ValueError, match=key_name):
            cipher.rebuild(**{key_name: np.asarray(values)[..., :-1]}).encrypt(_images(cls, size))


def test_rejects_keys_that_are_not_permutations(name: str) -> None:
    cls, block, size = _setup(name)
    cipher = cls.from_seed(0, image_size=size, block_size=block)
    for key_name in cls.permutation_keys:
        broken = np.array(cipher.key()[key_name])
        broken[..., 1] = broken[..., 0]
        with pytest.raises(ValueError, match=key_name):
            cipher.rebuild(**{key_name: broken})


def test_rejects_a_key_made_for_another_image_size(name: str) -> None:
    cls, block, size = _setup(name)
    cipher = cls.from_seed(0, image_size=size, block_size=block)
    bigger = _images(cls, (size[0] * 2, size[1]))
    if cipher.key_space() == 1:
        cipher.encrypt(bigger)
        return
    try:
        cipher.encrypt(bigger)
    except ValueError:
        return
    pytest.fail(f"{name} encrypted a {bigger.shape[-2]}x{bigger.shape[-1]} image with a key drawn for {size}")


def test_declares_traits(name: str) -> None:
    from ciphers.base import Traits

    assert isinstance(ciphers.get(name).traits, Traits)


def test_declared_traits_hold(name: str) -> None:
    """Identity, movement, value change and ``byte_map`` as declared, seen through one key."""
    cls, _, size = _setup(name)
    cipher = cls.from_seed(3, image_size=size, block_size=cls.default_block_size)
    check_traits(cipher, _images(cls, size, batch=2, seed=11))


@pytest.mark.parametrize("dihedral", _names_where(lambda cls: cls.traits.within_block == "dihedral"))
def test_dihedral_trait_moves_whole_pieces_and_the_key_reads_back_from_them(dihedral: str) -> None:
    """``within_block="dihedral"``: the gather + XOR moves whole ``piece_size`` pieces, each under one
    geometry x colour order x negation, and ``key_from_pieces`` returns a key with that same map
    (``extended_jigsaw`` solves the pieces and relies on both)."""
    from ciphers.base import IndexMapCipher
    from ciphers.pieces import pieces_of_map

    cls, block, size = _setup(dihedral)
    cipher = cls.from_seed(3, image_size=size, block_size=block)
    assert isinstance(cipher, IndexMapCipher), f"{dihedral} declares dihedral pieces but is not an IndexMapCipher"
    shape = tuple(cipher.encrypted_shape((1, cls.channels or 3, *size)))[1:]
    index, mask = cipher.index_map(*shape), cipher.xor_mask(*shape)
    rebuilt = cipher.rebuild(**cipher.key_from_pieces(pieces_of_map(index, mask, shape, cipher.piece_size)))
    assert np.array_equal(rebuilt.index_map(*shape), index) and np.array_equal(rebuilt.xor_mask(*shape), mask), (
        f"{dihedral}: key_from_pieces of the cipher's own piece map gives another transform")
