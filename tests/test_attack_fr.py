"""FR: the fold's algebra, the advanced search against a per-pixel loop reference, and that it
restores PE-encrypted photographs far better than the raw ciphertext."""

from __future__ import annotations

import itertools

import pytest
import torch

from attacks.base import AttackConfig, CipherFamily
from attacks.fr import advanced, candidates, fold
from harness.data import load_dataset
from harness.metrics import ssim
from harness.registry import attacks


def _advanced_loop(images: torch.Tensor) -> torch.Tensor:
    """docs/attacks.md's advanced FR written pixel by pixel (the reference the vectorised scan must equal)."""
    orders = list(itertools.permutations(range(3)))
    out = torch.empty_like(images)
    for b in range(images.shape[0]):
        for row in range(images.shape[2]):
            for col in range(images.shape[3]):
                pixel = [int(v) for v in images[b, :, row, col]]
                if row == 0 and col == 0:
                    out[b, :, 0, 0] = torch.tensor([min(v, 255 - v) for v in pixel])
                    continue
                ref = out[b, :, row - 1, col] if row else out[b, :, 0, col - 1]
                best, best_distance = None, None
                for order in orders:
                    for pattern in range(8):
                        cand = [pixel[order[j]] ^ (255 if (pattern >> (2 - j)) & 1 else 0) for j in range(3)]
                        distance = sum(abs(c - int(r)) for c, r in zip(cand, ref))
                        if best_distance is None or distance < best_distance:  # first minimum wins
                            best, best_distance = cand, distance
                out[b, :, row, col] = torch.tensor(best)
    return out


def test_fold_is_blind_to_negative_positive_flips() -> None:
    values = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(fold(values), fold(255 - values))
    assert int(fold(values).max()) == 127
    assert torch.equal(fold(values)[values <= 127], values[values <= 127])


def test_candidates_are_the_48_channel_orders_and_flips() -> None:
    pixel = torch.tensor([10, 60, 200], dtype=torch.uint8)
    cands = {tuple(c.tolist()) for c in candidates(pixel)}
    expected = {
        tuple(pixel[list(order)][j].item() ^ (255 * ((pattern >> (2 - j)) & 1)) for j in range(3))
        for order in itertools.permutations(range(3))
        for pattern in range(8)
    }
    assert cands == expected and len(cands) == 48


def test_advanced_scan_equals_the_pixel_loop_reference() -> None:
    generator = torch.Generator().manual_seed(4)
    images = torch.randint(0, 256, (2, 3, 5, 6), dtype=torch.uint8, generator=generator)
    images[0, :, 2:, :] = images[0, :, :1, :].expand(-1, 3, -1)  # some ties and repeats
    assert torch.equal(advanced(images), _advanced_loop(images))


def test_advanced_inverts_pe_up_to_one_global_channel_order_on_a_flat_dark_image() -> None:
    # the first pixel's fold gives the plain values in its (unknown) channel order; every later
    # pixel then has a candidate at distance 0, so that order carries over to the whole image
    plain = torch.tensor([10, 60, 100], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 8, 8).contiguous()
    family = CipherFamily("pe", (8, 8), 1)
    encrypted = family.encrypt(family.draw(5), plain)
    restored = advanced(encrypted)
    assert not torch.equal(encrypted, plain)
    for image in restored:
        assert torch.equal(image, image[:, :1, :1].expand_as(image))
        assert image[:, 0, 0].sort().values.tolist() == [10, 60, 100]


@pytest.fixture(scope="module")
def photos() -> tuple[torch.Tensor, torch.Tensor]:
    return load_dataset("natural", "attacker", (32, 32), n=8, seed=0).images, load_dataset("natural", "test", (32, 32), n=64, seed=0).images


def _restore(mode: str, family: CipherFamily, photos) -> tuple[torch.Tensor, torch.Tensor, str]:
    attacker, victim = photos
    ciphertexts = family.encrypt(family.draw(7), victim)
    attack = attacks.get("fr")(mode=mode)
    attack.fit(attacker, family, AttackConfig())
    return attack.restore(ciphertexts), ciphertexts, attack.note


def test_fr_restores_pe_photographs_far_above_the_raw_ciphertext(photos) -> None:
    family = CipherFamily("pe", (32, 32), 1, {"key_condition": "diff_key"})
    restored, ciphertexts, note = _restore("auto", family, photos)
    victim = photos[1]
    raw, attacked = ssim(ciphertexts, victim).mean().item(), ssim(restored, victim).mean().item()
    assert "advanced" in note
    assert raw < 0.05 and attacked > raw + 0.25, (raw, attacked)
    basic = ssim(_restore("basic", family, photos)[0], victim).mean().item()
    assert basic > raw + 0.15 and attacked > basic, (basic, attacked)


def test_basic_fold_undoes_etc_negative_positive_flips(photos) -> None:
    family = CipherFamily("etc", (32, 32), 4)
    restored, ciphertexts, note = _restore("auto", family, photos)
    assert "negative-positive" in note
    assert torch.equal(restored, fold(ciphertexts))
    assert ssim(restored, photos[1]).mean() > ssim(ciphertexts, photos[1]).mean() + 0.03


def test_fold_is_skipped_and_said_so_for_ciphers_without_negative_positive(photos) -> None:
    family = CipherFamily("proposed", (32, 32), 4)
    restored, ciphertexts, note = _restore("auto", family, photos)
    assert torch.equal(restored, ciphertexts)
    assert note == "basic FR fold is a no-op: proposed has no negative-positive step"
    field_restored, _, _ = _restore("field", family, photos)
    assert torch.equal(field_restored, fold(ciphertexts))


def test_bad_mode_raises() -> None:
    with pytest.raises(ValueError, match="mode"):
        attacks.get("fr")(mode="clever")
