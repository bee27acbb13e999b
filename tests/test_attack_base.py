"""The attack contract's value types: CipherFamily (what the attacker knows), AttackConfig
(checked on construction) and the public ciphertext layouts."""

from __future__ import annotations

import pytest
import torch

from attacks.base import AttackConfig, CipherFamily, ciphertext_layout
from ciphers._colour import rgb_to_ycbcr


def test_family_draws_fresh_keys_and_describes_itself_without_them() -> None:
    family = CipherFamily("vit_blockwise", (32, 32), 4)  # an alias resolves to the cipher
    assert family.canonical_name == "proposed" and family.resolved_block_size == 4
    first, second = family.draw(1), family.draw(2)
    assert not all((first.key()[k] == second.key()[k]).all() for k in first.key())
    description = family.to_dict()
    assert description == {"name": "proposed", "image_size": [32, 32], "block_size": 4, "options": {}}
    assert CipherFamily.from_dict(description) == CipherFamily("proposed", (32, 32), 4)


def test_family_knows_the_key_condition_from_public_options() -> None:
    assert CipherFamily("pe", (8, 8), 1).per_image_key
    assert not CipherFamily("pe", (8, 8), 1, {"key_condition": "same_key"}).per_image_key


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "rot13", "image_size": (32, 32)}, "registered cipher"),
        ({"name": "proposed", "image_size": 32}, "image_size"),
        ({"name": "proposed", "image_size": (30, 30), "block_size": 4}, "divisible"),
        ({"name": "pe", "image_size": (8, 8), "options": {"key_condition": "sometimes"}}, "key_condition"),
    ],
)
def test_bad_family_raises(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CipherFamily(**kwargs)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0), ("batch_size", 1.5), ("lr", 0), ("lr", float("nan")), ("loss", "huber"), ("arch", "vit"),
        ("betas", (0.5,)), ("betas", (0.5, 1.0)), ("weight_decay", -1), ("gan_loss", "wasserstein"),
        ("seed", -1), ("train_keys", 0), ("known_pairs", 0), ("lr_d", -1.0),
        ("steps", 0), ("steps", 2.5), ("steps", True), ("gan_recipe", "sia"),
    ],
)
def test_bad_config_field_raises_naming_it(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        AttackConfig(**{field: value})


def test_config_accepts_lists_from_yaml_and_records_every_field() -> None:
    config = AttackConfig(betas=[0.5, 0.999], params={"mode": "basic"})
    assert config.betas == (0.5, 0.999) and config.to_dict()["params"] == {"mode": "basic"}


def test_grayscale_layout_is_split_into_planes_and_back() -> None:
    family = CipherFamily("etc_gray", (8, 8), 4)
    layout = ciphertext_layout(family, 3)
    assert (layout.kind, layout.colour) == ("planes", "ycbcr")
    gray = torch.randint(0, 256, (2, 1, 8, 24), dtype=torch.uint8)
    planes = layout.view(gray)
    assert planes.shape == (2, 3, 8, 8) and torch.equal(planes[:, 1], gray[:, 0, :, 8:16])
    assert torch.equal(layout.unview(planes), gray)
    plain = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(layout.from_plain_colour(plain), rgb_to_ycbcr(plain))
    assert (layout.to_plain_colour(rgb_to_ycbcr(plain)).int() - plain.int()).abs().max() <= 1
    assert ciphertext_layout(CipherFamily("proposed", (8, 8), 4), 3).kind == "same"
