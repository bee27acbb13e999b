"""The security cell: the baseline is the raw ciphertext, known pairs never overlap the scored
images, learned attacks are cached safely, and key-recovery attacks report what they recovered."""

from __future__ import annotations

import pytest
import torch

from attacks.base import AttackConfig, CipherFamily
from harness.run.scoring import position_codes
from harness.run.security import AttackNotApplicable, SecurityResult, run_security_cell
from harness.cache import CorruptCacheError
from harness.data import load_dataset
from harness.metrics import ssim

SIZE = (16, 16)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return load_dataset("natural", "test", SIZE, n=40, seed=6).images, load_dataset("natural", "attacker", SIZE, n=48, seed=6).images


def _cell(attack: str, family: CipherFamily, data, config: AttackConfig, **kwargs) -> SecurityResult:
    victim, attacker = data
    return run_security_cell(attack, family, family.draw(13), victim, attacker, config, **{"cache_dir": None, **kwargs})


def test_baseline_scores_the_raw_ciphertext_on_the_images_before_the_pair_pool(data) -> None:
    family = CipherFamily("proposed", SIZE, 4)
    result = _cell("none", family, data, AttackConfig(known_pairs=8))
    victim = data[0][:32]
    ciphertexts = family.draw(13).encrypt(victim)
    assert torch.equal(result.restored, ciphertexts)
    assert torch.allclose(result.ssim, ssim(ciphertexts, victim))
    assert result.psnr.shape == (32,)


def test_grayscale_cipher_baseline_is_its_planes_in_rgb(data) -> None:
    result = _cell("none", CipherFamily("etc_gray", SIZE, 4), data, AttackConfig(known_pairs=8))
    assert result.restored.shape == (32, 3, *SIZE) and result.ssim.abs().max() < 0.5


def test_kpa_cell_recovers_every_position_from_pairs_outside_the_scored_images(data) -> None:
    result = _cell("kpa", CipherFamily("proposed", SIZE, 4), data, AttackConfig(known_pairs=4))
    assert result.extra["pairs_needed"] == 1.0 and result.extra["positions_recovered"] == 1.0
    assert torch.equal(result.restored, data[0][:36]) and result.note.startswith("key determined")


def test_per_image_key_ciphers_are_encrypted_with_image_ids(data) -> None:
    family = CipherFamily("pe", SIZE, 1)
    result = _cell("none", family, data, AttackConfig(known_pairs=8))
    expected = family.draw(13).encrypt(data[0], image_ids=torch.arange(40))[:32]
    assert torch.equal(result.restored, expected)


def test_not_applicable_and_too_few_images_raise(data) -> None:
    with pytest.raises(AttackNotApplicable, match="own key"):
        _cell("kpa", CipherFamily("pe", SIZE, 1), data, AttackConfig())
    with pytest.raises(ValueError, match="known_pairs"):
        _cell("none", CipherFamily("plain", SIZE, 1), data, AttackConfig(known_pairs=40))


def test_learned_attack_is_cached_reused_refreshed_and_corruption_is_reported(data, tmp_path) -> None:
    family = CipherFamily("pe", SIZE, 1)
    config = AttackConfig(epochs=1, batch_size=16, width=8)
    first = _cell("itn", family, data, config, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.pt"))
    assert not first.cached and len(files) == 1
    assert files[0].name.startswith("attack-itn-") and len(files[0].stem) == len("attack-itn-") + 24
    second = _cell("itn", family, data, config, cache_dir=tmp_path)
    assert second.cached and torch.equal(second.restored, first.restored) and second.extra == first.extra
    other = _cell("itn", family, data, AttackConfig(epochs=1, batch_size=16, width=8, seed=1), cache_dir=tmp_path)
    assert not other.cached and len(list(tmp_path.glob("*.pt"))) == 2
    files[0].write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptCacheError, match="refresh-cache"):
        _cell("itn", family, data, config, cache_dir=tmp_path)
    refreshed = _cell("itn", family, data, config, cache_dir=tmp_path, refresh_cache=True)
    assert not refreshed.cached and torch.equal(refreshed.restored, first.restored)


def test_gan_cache_depends_on_the_victims_ciphertexts(data, tmp_path) -> None:
    family = CipherFamily("proposed", SIZE, 4)
    config = AttackConfig(epochs=1, batch_size=16, width=8, disc_width=8)
    victim, attacker = data
    run = lambda key_seed: run_security_cell(  # noqa: E731
        "gan", family, family.draw(key_seed), victim, attacker, config, cache_dir=tmp_path
    )
    assert not run(1).cached and not run(2).cached and run(1).cached


def test_position_codes_are_distinct_and_survive_rounding() -> None:
    codes = position_codes(3, (224, 224))
    flat = codes.flatten(2)[0].T.tolist()
    assert len({tuple(p) for p in flat}) == 224 * 224 and int(codes.max()) <= 252
    assert position_codes(1, (32, 32)) is None
