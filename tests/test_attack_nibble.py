"""The ``nibble`` attack: ciphertext-only key recovery for LE and ELE, on photographs the quick preset never uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import itertools

from attacks.base import AttackConfig, CipherFamily
from attacks.nibble import Moments, NibbleAttack, beam_layout, block_nibbles, high_layout, partial_correlation, qap_descent, standardised
from harness.data import load_dataset
from harness.metrics import ssim
from harness.registry import attacks
from tests.photos import SOURCES, missing_sources, other_photographs


@pytest.fixture(scope="module")
def photographs() -> tuple[torch.Tensor, torch.Tensor]:
    """Victim images and the attacker's own (disjoint crops of other photographs)."""
    torch.set_num_threads(1)
    return other_photographs(100, 32, seed=11), other_photographs(200, 32, seed=12)


@pytest.mark.parametrize("key_seed", [3, 1234])
def test_le_key_recovered_from_100_ciphertexts(photographs, key_seed: int) -> None:
    victim, attacker = photographs
    family = CipherFamily("le", (32, 32), 4)
    cipher = family.draw(int(np.random.default_rng(key_seed).integers(2**31)))
    attack = NibbleAttack()
    attack.fit(attacker, family, AttackConfig(seed=0), victim_ciphertexts=cipher.encrypt(victim))
    perm, recovered = cipher.key()["perm"], attack.key["perm"]
    d = perm.shape[0] // 2
    assert np.array_equal(recovered >= d, perm >= d)  # which slots carry high nibbles
    assert np.array_equal(recovered[perm >= d], perm[perm >= d])  # their layout and flips
    assert np.array_equal(recovered, perm)  # and the low nibbles: the whole key
    restored = attack.restore(cipher.encrypt(victim))
    assert float(ssim(restored, victim).mean()) >= 0.95
    assert attack.extra["ciphertexts_used"] == 100.0


def test_applies_to_refuses_other_structures() -> None:
    assert NibbleAttack.applies_to(CipherFamily("le", (32, 32), 4)) is None
    assert NibbleAttack.applies_to(CipherFamily("ele", (32, 32), 4)) is None
    for name in ("proposed", "etc", "plain"):
        reason = NibbleAttack.applies_to(CipherFamily(name, (32, 32), 4))
        assert isinstance(reason, str) and "nibble" in reason
    per_image = CipherFamily("pe", (32, 32), 1, {"key_condition": "diff_key"})
    assert per_image.per_image_key
    assert "own key" in NibbleAttack.applies_to(per_image)


def test_blocks_beyond_the_search_budget_are_not_applicable_with_the_reason() -> None:
    for name in ("le", "ele"):
        assert NibbleAttack.applies_to(CipherFamily(name, (224, 224), 8)) is None
        reason = NibbleAttack.applies_to(CipherFamily(name, (224, 224), 16))
        assert "768 high-nibble slots" in reason and "--block-size 8" in reason


def test_registered() -> None:
    assert attacks.get("nibble") is NibbleAttack


def test_state_round_trip(photographs) -> None:
    victim, attacker = photographs
    family = CipherFamily("le", (32, 32), 4)
    cipher = family.draw(5)
    attack = NibbleAttack()
    attack.fit(attacker[:50], family, AttackConfig(seed=0), victim_ciphertexts=cipher.encrypt(victim[:40]))
    loaded = NibbleAttack()
    loaded.load_state_dict(attack.state_dict())
    ciphertexts = cipher.encrypt(victim[40:60])
    assert torch.equal(loaded.restore(ciphertexts), attack.restore(ciphertexts))
    assert loaded.extra == attack.extra and loaded.note == attack.note


@pytest.mark.parametrize(
    "options",
    [{"beam": 0}, {"max_ciphertexts": 0}, {"chunk": 0}, {"chunk": 2.5}, {"beam": True}, {"flip_weight": -1.0}],
)
def test_bad_options_raise(options) -> None:
    with pytest.raises(ValueError):
        NibbleAttack(**options)


def invariant_ssim(restored: torch.Tensor, plain: torch.Tensor) -> float:
    """Best mean SSIM over one global dihedral transform x negation x channel order of the whole batch."""
    best = -1.0
    for turns, mirror, negate in itertools.product(range(4), (False, True), (False, True)):
        moved = torch.rot90(restored, turns, (2, 3))
        moved = moved.flip(3) if mirror else moved
        moved = 255 - moved if negate else moved
        for order in itertools.permutations(range(3)):
            best = max(best, float(ssim(moved[:, list(order)].contiguous(), plain).mean()))
    return best


def test_invariant_ssim_forgives_one_global_symmetry() -> None:
    plain = other_photographs(4, 32, seed=3)
    moved = 255 - torch.rot90(plain, 1, (2, 3)).flip(3)[:, [2, 0, 1]]
    assert float(ssim(moved, plain).mean()) < 0.5
    assert invariant_ssim(moved, plain) == pytest.approx(1.0)


def test_partial_correlation_keeps_only_direct_neighbours() -> None:
    """A Gaussian chain: raw correlations decay slowly with distance, partial ones vanish past a neighbour."""
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(20000, 6)), axis=1)  # a random walk: a Markov chain
    raw = np.corrcoef(x.T)
    partial = partial_correlation(raw, 0.0)
    assert raw[0, 5] > 0.3
    assert np.abs(partial[np.abs(np.subtract.outer(range(6), range(6))) > 1]).max() < 0.05
    assert np.diag(partial, 1).min() > 0.4  # 1/2 inside the chain


def test_beam_layout_solves_a_scrambled_lattice() -> None:
    """Beam search plus descent recovers a hidden arrangement of a 4 x 4 x 3 lattice's partial correlations."""
    rng = np.random.default_rng(1)
    cells = np.arange(48).reshape(4, 4, 3)
    b = np.zeros((48, 48))
    for axis in range(3):
        first, second = np.take(cells, range(cells.shape[axis] - 1), axis), np.take(cells, range(1, cells.shape[axis]), axis)
        b[first.ravel(), second.ravel()] = b[second.ravel(), first.ravel()] = 1.0 if axis < 2 else 0.6
    hidden = rng.permutation(48)  # item i sits at cell hidden[i]
    a = b[np.ix_(hidden, hidden)] + rng.normal(scale=0.05, size=(48, 48))
    a, b = standardised((a + a.T) / 2), standardised(b)
    classes = np.where(rng.random(48) < 0.5, 1.0, -1.0)  # flip signs, consistent with the hidden layout
    linear = np.outer(classes, np.empty(48))
    linear[:, hidden] = 10 * np.outer(classes, classes)  # the attack's flip weight
    found, scores = qap_descent(a, b, linear, beam_layout(a, b, linear, 256)[:8])
    best = found[scores.argmax()]
    # the lattice's symmetries (8 of the square, 2 of the channel path) give equal scores; the
    # flip term picks the hidden one
    assert np.array_equal(best, hidden)


def test_high_layout_places_every_slot_of_other_photographs() -> None:
    """Partial-correlation layout with a prior from ``natural``, on a different source's LE ciphertexts."""
    torch.set_num_threads(1)
    victim = other_photographs(300, 32, seed=5, source="other")
    attacker = load_dataset("natural", "attacker", (32, 32), n=200, seed=0).images
    cipher = CipherFamily("le", (32, 32), 4).draw(77)
    perm, d = cipher.key()["perm"], 48
    prior, corr = Moments(), Moments()
    prior.add(block_nibbles(attacker, 4).reshape(1, -1, 2 * d)[:, :, d:])
    corr.add(block_nibbles(cipher.encrypt(victim), 4).reshape(1, -1, 2 * d))
    high, source, _ = high_layout(corr.correlation()[0].numpy(), prior.correlation()[0].numpy(), 4, 3, 256, 10.0, 0.0)
    assert np.array_equal(high, np.flatnonzero(perm >= d))
    assert np.array_equal(source, perm[high])


def cross_source_victims(source: str, n: int) -> torch.Tensor:
    if source == "natural":
        return load_dataset("natural", "test", (32, 32), n=n, seed=11).images
    return other_photographs(n, 32, seed=11, source=source)


@pytest.mark.slow
@pytest.mark.parametrize("source", ("natural", *SOURCES))
@pytest.mark.parametrize("name", ["le", "ele"])
def test_holds_on_any_photographs(source: str, name: str) -> None:
    """2,000 ciphertexts of a source's crops, the attacker's prior from ``natural``'s attacker split."""
    if source in missing_sources():
        pytest.skip(missing_sources()[source])
    torch.set_num_threads(1)
    victim = cross_source_victims(source, 2000)
    attacker = load_dataset("natural", "attacker", (32, 32), n=1000, seed=0).images
    family = CipherFamily(name, (32, 32), 4)
    cipher = family.draw(int(np.random.default_rng(len(source)).integers(2**31)))
    attack = NibbleAttack()
    ciphertexts = cipher.encrypt(victim)
    attack.fit(attacker, family, AttackConfig(seed=0), victim_ciphertexts=ciphertexts)
    restored = attack.restore(ciphertexts[:200])
    assert invariant_ssim(restored, victim[:200]) >= 0.95
    assert float(ssim(restored, victim[:200]).mean()) >= 0.95
