"""The extended jigsaw: ciphertext-only key recovery of fixed-key EtC, on photographs the quick preset never uses."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from attacks.base import AttackConfig, CipherFamily
from attacks.jigsaw import SymmetryPrior, apply_symmetry, key_from_maps, symmetries
from harness.metrics import ssim
from harness.registry import attacks
from tests.photos import other_photographs


@functools.lru_cache(maxsize=None)
def _photos(n: int, seed: int) -> torch.Tensor:
    return other_photographs(n, 32, seed=seed)


def _fit(name: str, key_seed: int, n: int, block: int = 4, attacker: int = 300):
    family = CipherFamily(name, (32, 32), block)
    cipher = family.draw(key_seed)
    images = _photos(n, 11)
    attack = attacks.get("extended_jigsaw")()
    attack.fit(_photos(attacker, 12), family, AttackConfig(seed=0), victim_ciphertexts=cipher.encrypt(images))
    return attack, cipher, images


@pytest.fixture(scope="module")
def etc_fit():
    """One fit shared by the fast tests: a key drawn from a random seed, 200 ciphertexts."""
    return _fit("etc", int(np.random.default_rng(7).integers(1 << 30)), 200, attacker=150)


def test_etc_key_is_recovered_from_ciphertexts_alone(etc_fit) -> None:
    attack, cipher, images = etc_fit
    restored = attack.restore(cipher.encrypt(images))
    exact = all(np.array_equal(cipher.key()[k], attack.key[k]) for k in cipher.key())
    assert exact or float(ssim(restored, images).mean()) >= 0.95
    assert attack.note and all(isinstance(v, float) for v in attack.extra.values())


@pytest.mark.slow
@pytest.mark.parametrize("key_seed", [3, 2024])
def test_etc_key_is_recovered_for_other_keys(key_seed: int) -> None:
    attack, cipher, images = _fit("etc", key_seed, 300)
    assert float(ssim(attack.restore(cipher.encrypt(images)), images).mean()) >= 0.95


@pytest.mark.slow
def test_etc_gray_recovers_the_luminance_plane() -> None:
    """Measured (200 ciphertexts, block 4, one key): every Y block placed and oriented, about half the chroma blocks, SSIM 0.84."""
    attack, cipher, images = _fit("etc_gray", 99, 200)
    true, found = cipher.key(), attack.key
    cols = 3 * 32 // 4
    luminance = np.nonzero((true["block_perm"] % cols) < cols // 3)[0]  # ciphertext blocks from the Y plane
    sources = true["block_perm"][luminance]
    placed = found["block_perm"][luminance] == sources
    oriented = (found["geometry"][sources] == true["geometry"][sources]) & (found["negpos"][sources] == true["negpos"][sources])
    assert (placed & oriented).mean() >= 0.9
    assert float(ssim(attack.restore(cipher.encrypt(images)), images).mean()) >= 0.7


def test_state_round_trip_restores_the_same_images(etc_fit) -> None:
    attack, cipher, images = etc_fit
    copy = attacks.get("extended_jigsaw")()
    copy.load_state_dict(attack.state_dict())
    ciphertexts = cipher.encrypt(images[:8])
    assert torch.equal(copy.restore(ciphertexts), attack.restore(ciphertexts))


def test_key_bookkeeping_inverts_the_ciphers_own_maps() -> None:
    for name in ("etc", "etc_gray"):
        cipher = CipherFamily(name, (16, 16), 4).draw(3)
        channels = 3 if name == "etc" else 1
        height, width = 16, 16 if name == "etc" else 48
        key = key_from_maps(
            cipher.index_map(channels, height, width), cipher.xor_mask(channels, height, width), channels, height, width, 4
        )
        assert all(np.array_equal(key[k], v) for k, v in cipher.key().items())


def test_symmetry_prior_prefers_upright_images() -> None:
    photos = _photos(150, 12)
    group = symmetries(3, True)
    prior = SymmetryPrior(photos[:100], group)
    scores = [prior.upright_log_likelihood(apply_symmetry(photos[100:], s)) for s in group]
    assert int(np.argmax(scores)) == 0


def test_applies_only_to_fixed_key_dihedral_ciphers() -> None:
    cls = attacks.get("extended_jigsaw")
    assert cls.applies_to(CipherFamily("etc", (32, 32), 4)) is None
    assert cls.applies_to(CipherFamily("etc_gray", (32, 32), 8)) is None
    per_image = CipherFamily("pe", (32, 32), 1)
    assert per_image.per_image_key and "own key" in cls.applies_to(per_image)
    for name in ("proposed", "ele", "le"):
        reason = cls.applies_to(CipherFamily(name, (32, 32), 4))
        assert reason and "dihedral" in reason


@pytest.mark.parametrize("option", [{"max_ciphertexts": 0}, {"chunk": -1}, {"refine_top": 1.5}, {"prior_images": True}])
def test_bad_options_raise(option: dict) -> None:
    with pytest.raises(ValueError):
        attacks.get("extended_jigsaw")(**option)
