"""The contract every registered attack must pass; a new attack is tested the moment it registers.

Third-party authors can run this file against their plugin: it only uses the registry and the
public contract of ``attacks.base``.  Each attack runs against the first cipher family it
applies to, on small natural photographs, with a tiny training configuration.
"""

from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from attacks.base import Attack, AttackConfig, CipherFamily, ProviderModels
from attacks.contract import check_declarations
from harness.classifiers.base import keyed_classifier
from harness.cache import load_checkpoint, save_checkpoint
from harness.data import load_dataset
from harness.lazy import LazyImages
from harness.registry import attacks, ciphers, classifiers

NAMES = attacks.names()
SIZE = (16, 16)
#: families tried in order; every attack must apply to at least one
FAMILIES = [
    CipherFamily("proposed", SIZE, 4),
    CipherFamily("pe", SIZE, 1, {"key_condition": "same_key"}),
    CipherFamily("etc_gray", SIZE, 4),
    CipherFamily("le", SIZE, 4),
]
TINY = AttackConfig(seed=3, epochs=1, batch_size=16, width=8, disc_width=8, known_pairs=4)


@pytest.fixture(scope="module")
def photos() -> tuple[torch.Tensor, torch.Tensor]:
    attacker = load_dataset("natural", "attacker", SIZE, n=48, seed=1).images
    victim = load_dataset("natural", "test", SIZE, n=24, seed=1).images
    return attacker, victim


@pytest.fixture(params=NAMES, scope="module")
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def _family(cls: type[Attack]) -> CipherFamily:
    for family in FAMILIES:
        if cls.applies_to(family) is None:
            return family
    raise AssertionError(f"{cls.__name__} applies to none of {[f.name for f in FAMILIES]}")


def _vit(seed: int, patch: int) -> VisionTransformer:
    torch.manual_seed(seed)
    return VisionTransformer(img_size=SIZE, patch_size=patch, embed_dim=16, depth=1, num_heads=2, num_classes=4)


def _models(family: CipherFamily, cipher) -> ProviderModels | None:
    """Tiny ViTs as a model holder holds them (keyed with ``cipher``), where the cipher has a model transform."""
    keyed = keyed_classifier(family.name)
    if keyed is None:
        return None
    plain = _vit(0, family.resolved_block_size)
    transformed = classifiers.get(keyed).from_plain(plain, cipher)
    return ProviderModels(keyed=transformed, trained=transformed, checkpoint=plain, start=_vit(1, family.resolved_block_size), plain=plain)


def _fitted(name: str, photos, family: CipherFamily | None = None, seed: int = 3, device: str | torch.device = "cpu"):
    """An attack fitted against a victim key, with the victim's ciphertexts it is scored on."""
    cls = attacks.get(name)
    family = family or _family(cls)
    attacker, victim = photos
    cipher = family.draw(11)
    ciphertexts = family.encrypt(cipher, victim)
    attack = cls(seed=seed, device=device)
    attack.fit(
        attacker,
        family,
        TINY,
        victim_ciphertexts=ciphertexts,
        known_pairs=(victim[-4:], ciphertexts[-4:]),
        models=_models(family, cipher),
    )
    return attack, ciphertexts


def test_lazy_splits_fit_the_attack_as_the_tensors_they_stand_for(name: str, photos) -> None:
    """The runner hands attacks :class:`LazyImages`; an attack that ``streams`` reads them by
    slices, index batches and chunks, any other gets them materialised: the same fit either way."""
    cls = attacks.get(name)
    family = _family(cls)
    attacker, victim = photos
    cipher = family.draw(11)
    ciphertexts = family.encrypt(cipher, victim)

    def fitted(mine, theirs) -> Attack:
        attack = cls(seed=3)
        attack.fit(mine, family, TINY, victim_ciphertexts=theirs, known_pairs=(victim[-4:], ciphertexts[-4:]),
                   models=_models(family, cipher))
        return attack

    eager, lazy = fitted(attacker, ciphertexts), fitted(LazyImages.of(attacker), LazyImages.of(ciphertexts))
    assert torch.equal(lazy.restore(ciphertexts), eager.restore(ciphertexts)) and lazy.extra == eager.extra


def test_the_six_attacks_are_registered() -> None:
    assert {"none", "fr", "itn", "gan", "kpa", "puzzle"} <= set(NAMES)


def test_threat_model_is_declared(name: str) -> None:
    check_declarations(attacks.get(name))


def test_restore_gives_uint8_plain_shaped_images(name: str, photos, device: torch.device) -> None:
    attack, ciphertexts = _fitted(name, photos, device=device)
    restored = attack.restore(ciphertexts.to(device))  # checks dtype and shape (attacks.contract.check_restored)
    assert restored.device == ciphertexts.to(device).device and restored.shape == photos[1].shape


def test_grayscale_layout_cipher_restores_to_plain_shape(name: str, photos) -> None:
    family = CipherFamily("etc_gray", SIZE, 4)
    cls = attacks.get(name)
    reason = cls.applies_to(family)
    if reason is not None:
        assert isinstance(reason, str) and reason
        return
    attack, ciphertexts = _fitted(name, photos, family)
    assert ciphertexts.shape[1] == 1 and attack.restore(ciphertexts).shape == photos[1].shape


def test_same_seed_same_restoration(name: str, photos) -> None:
    first, ciphertexts = _fitted(name, photos)
    second, _ = _fitted(name, photos)
    assert torch.equal(first.restore(ciphertexts), second.restore(ciphertexts))


def test_state_round_trips_through_a_checkpoint(name: str, photos, tmp_path) -> None:
    attack, ciphertexts = _fitted(name, photos)
    save_checkpoint(tmp_path / "state.pt", attack.state_dict())
    reloaded = attacks.get(name)(seed=99)
    reloaded.load_state_dict(load_checkpoint(tmp_path / "state.pt"))
    assert torch.equal(reloaded.restore(ciphertexts), attack.restore(ciphertexts))
    assert reloaded.extra == attack.extra and reloaded.note == attack.note


def test_restore_before_fit_raises(name: str, photos) -> None:
    with pytest.raises(RuntimeError, match="fit"):
        attacks.get(name)().restore(photos[1])


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_bad_seed_raises(name: str, seed: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        attacks.get(name)(seed=seed)


def test_bad_device_raises(name: str) -> None:
    with pytest.raises(ValueError, match="device"):
        attacks.get(name)(device="no-such-device")


def test_bad_fit_arguments_raise(name: str, photos) -> None:
    cls = attacks.get(name)
    family = _family(cls)
    attacker, victim = photos
    cipher = family.draw(1)
    ciphertexts = family.encrypt(cipher, victim)
    good = {"victim_ciphertexts": ciphertexts, "known_pairs": (victim, ciphertexts), "models": _models(family, cipher)}
    with pytest.raises(ValueError, match="attacker_images"):
        cls().fit(attacker.float(), family, TINY, **good)
    with pytest.raises(ValueError, match="attacker_images"):
        cls().fit(attacker[:, :, :8], family, TINY, **good)
    with pytest.raises(ValueError, match="cipher_family"):
        cls().fit(attacker, "proposed", TINY, **good)
    with pytest.raises(ValueError, match="config"):
        cls().fit(attacker, family, {"epochs": 1}, **good)
    if cls.uses_victim_ciphertexts:
        with pytest.raises(ValueError, match="victim_ciphertexts"):
            cls().fit(attacker, family, TINY, known_pairs=good["known_pairs"])
    if cls.uses_known_pairs:
        with pytest.raises(ValueError, match="known_pairs"):
            cls().fit(attacker, family, TINY, victim_ciphertexts=ciphertexts, models=good["models"])
    if cls.reads_models:
        with pytest.raises(ValueError, match="models"):
            cls().fit(attacker, family, TINY, victim_ciphertexts=ciphertexts, known_pairs=good["known_pairs"])


def test_restore_rejects_wrong_ciphertexts(name: str, photos) -> None:
    attack, ciphertexts = _fitted(name, photos)
    with pytest.raises(ValueError, match="ciphertexts"):
        attack.restore(ciphertexts[:, :, :8])
    with pytest.raises(ValueError, match="ciphertexts"):
        attack.restore(ciphertexts.float())


def test_applies_to_every_cipher_is_a_reason_or_none_and_fit_agrees(name: str, photos) -> None:
    cls = attacks.get(name)
    attacker, victim = photos
    for cipher in ciphers.names():
        block = 1 if cipher in ("pe", "plain") else 4
        family = CipherFamily(cipher, SIZE, block)
        reason = cls.applies_to(family)
        assert reason is None or (isinstance(reason, str) and reason)
        if reason is not None:
            ciphertexts = family.encrypt(family.draw(0), victim)
            with pytest.raises(ValueError, match="does not apply"):
                cls().fit(attacker, family, TINY, victim_ciphertexts=ciphertexts, known_pairs=(victim, ciphertexts))


def test_fit_reports_progress_and_never_prints(name: str, photos, capsys: pytest.CaptureFixture) -> None:
    calls: list[tuple[int, int, str]] = []
    cls = attacks.get(name)
    family = _family(cls)
    attacker, victim = photos
    cipher = family.draw(2)
    ciphertexts = family.encrypt(cipher, victim)
    progress = lambda done, total, message: calls.append((done, total, message))  # noqa: E731
    cls().fit(attacker, family, TINY, progress, victim_ciphertexts=ciphertexts, known_pairs=(victim, ciphertexts),
              models=_models(family, cipher))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert all(0 <= done <= total and isinstance(message, str) for done, total, message in calls)
    if cls.learned:
        assert calls, "learned attacks report progress per epoch"


def test_repr_shows_no_key_material(name: str, photos) -> None:
    attack, _ = _fitted(name, photos)
    assert repr(attack) == f"{type(attack).__name__}(seed=3, device='cpu')"
