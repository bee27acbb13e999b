"""Seeded key material and key validation helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import create_cipher
from harness.keys import check_choices, check_permutation, derive_seed, log2_factorial, rng


def test_derive_seed_is_stable_and_purpose_specific() -> None:
    assert derive_seed(0, "key", "proposed") == derive_seed(0, "key", "proposed")
    assert derive_seed(0, "key", "proposed") != derive_seed(0, "key", "le")
    assert derive_seed(0, "key") != derive_seed(1, "key")
    assert 0 <= derive_seed(123, "x") < 2**63
    # pinned: the same seed must give the same keys on every machine and release
    assert derive_seed(0, "victim-key", "proposed") == 0x62C7D0BFD8B89DE3


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_rng_rejects_bad_seeds(bad) -> None:
    with pytest.raises(ValueError, match="seed"):
        rng(bad)


def test_check_permutation() -> None:
    assert check_permutation([2, 0, 1], 3, "p").tolist() == [2, 0, 1]
    assert check_permutation(np.array([1, 0]), None, "p").dtype == np.int64
    with pytest.raises(ValueError, match="p must be a 1-D permutation of length 4"):
        check_permutation([0, 1, 2], 4, "p")
    with pytest.raises(ValueError, match="not a permutation"):
        check_permutation([0, 0, 2], 3, "p")
    with pytest.raises(ValueError, match="integers"):
        check_permutation([0.0, 1.0], 2, "p")


def test_check_choices() -> None:
    assert check_choices([[0, 7]], (1, 2), 8, "g").tolist() == [[0, 7]]
    with pytest.raises(ValueError, match=r"g entries must lie in 0..7"):
        check_choices([[0, 8]], (1, 2), 8, "g")
    with pytest.raises(ValueError, match="shape"):
        check_choices([0, 1], (1, 2), 8, "g")


def test_log2_factorial() -> None:
    assert log2_factorial(96) == pytest.approx(math.log2(math.factorial(96)))
    assert log2_factorial(0) == 0


def test_create_cipher_drops_unset_options() -> None:
    cipher = create_cipher("proposed", image_size=(8, 8), block_size=None, seed=1, unused=None)
    assert cipher.block_size == 4


def test_exact_int_string_handles_key_spaces_beyond_the_digit_limit() -> None:
    from harness.results import exact_int_string

    huge = math.factorial(3000) * 7 + 12345
    text = exact_int_string(huge)
    assert len(text) > 4300 and text.endswith(str(huge % 10**20).zfill(20)) and int(text[:30]) == huge // 10 ** (len(text) - 30)
    assert exact_int_string(10**1000) == "1" + "0" * 1000 and exact_int_string(42) == "42"
