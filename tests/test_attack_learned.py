"""ITN and GAN: they learn (losses fall, the identity cipher is nearly inverted), their training
data is what the threat model allows, and their networks fit the cipher's block structure."""

from __future__ import annotations

import pytest
import torch

from attacks._nets import BlockNet, Discriminator, UNet, build_generator, to_image
from attacks.base import AttackConfig, CipherFamily
from harness.data import load_dataset
from harness.metrics import ssim
from harness.registry import attacks


@pytest.fixture(scope="module")
def attacker() -> torch.Tensor:
    return load_dataset("natural", "attacker", (16, 16), n=96, seed=5).images


def test_itn_on_pe_lowers_its_loss_in_a_few_steps(attacker: torch.Tensor) -> None:
    family = CipherFamily("pe", (16, 16), 1)
    itn = attacks.get("itn")(seed=1)
    itn.fit(attacker, family, AttackConfig(epochs=4, batch_size=16, lr=3e-3, width=16))
    assert itn.extra["loss_last_epoch"] < 0.8 * itn.extra["loss_first_epoch"]
    assert itn.arch_name() == "pixel"


def test_itn_nearly_inverts_the_identity_cipher(attacker: torch.Tensor) -> None:
    family = CipherFamily("plain", (16, 16), 1)
    itn = attacks.get("itn")(seed=2)
    itn.fit(attacker, family, AttackConfig(epochs=6, batch_size=16, lr=1e-2, width=16))
    assert ssim(itn.restore(attacker), attacker).mean() > 0.8


def test_itn_training_keys_are_fresh_per_image_and_per_epoch(attacker: torch.Tensor) -> None:
    family = CipherFamily("proposed", (16, 16), 4)
    itn = attacks.get("itn")(seed=3)
    itn.fit(attacker[:4], family, AttackConfig(epochs=1, width=8))
    same = attacker[:1].expand(6, -1, -1, -1).contiguous()
    first = itn.encrypt_training_set(same, AttackConfig(), epoch=0)
    assert len({c.numpy().tobytes() for c in first}) == 6  # one key per image
    assert not torch.equal(first, itn.encrypt_training_set(same, AttackConfig(), epoch=1))
    shared = itn.encrypt_training_set(same, AttackConfig(train_keys=2), epoch=0)
    assert torch.equal(shared[0], shared[2]) and not torch.equal(shared[0], shared[1])


def test_gan_trains_on_the_victims_ciphertexts_and_reports_its_losses(attacker: torch.Tensor) -> None:
    family = CipherFamily("le", (16, 16), 4)
    victim = family.draw(9).encrypt(attacker[:32])
    gan = attacks.get("gan")(seed=4)
    gan.fit(attacker[32:], family, AttackConfig(epochs=2, batch_size=16, width=8, disc_width=8), victim_ciphertexts=victim)
    assert set(gan.extra) == {"loss_d_last_epoch", "loss_g_last_epoch"}
    assert gan.arch_name() == "block" and "32 victim ciphertexts" in gan.note


def test_block_net_decodes_each_block_from_that_block_alone() -> None:
    torch.manual_seed(0)
    net = BlockNet(3, 4, 8).eval()
    x = torch.randn(1, 3, 16, 16)
    y = x.clone()
    y[:, :, :4, :4] = torch.randn(1, 3, 4, 4)  # change the top-left block only
    changed = (net(x) - net(y)).abs().sum(1)[0] > 0
    assert changed[:4, :4].all() and not changed[4:, :].any() and not changed[:, 4:].any()


def test_generators_and_discriminator_keep_shapes() -> None:
    x = torch.randn(2, 3, 16, 16)
    for arch in ("auto", "block", "pixel", "unet"):
        assert build_generator(arch, 3, 4, (16, 16), 8, 2)(x).shape == x.shape
    assert isinstance(build_generator("unet", 3, 4, (16, 16), 8, 2), UNet)
    assert Discriminator(3, 8)(x).shape == (2, 1)  # one patch of a 16 x 16 image
    assert Discriminator(3, 8)(torch.randn(2, 3, 32, 32)).shape == (2, 25)
    with pytest.raises(ValueError, match="unet_depth"):
        build_generator("unet", 3, 4, (12, 12), 8, 3)


def test_to_image_rounds_the_sigmoid_output() -> None:
    logits = torch.tensor([-100.0, 0.0, 100.0]).view(1, 3, 1, 1)
    assert to_image(logits).flatten().tolist() == [0, 128, 255]
