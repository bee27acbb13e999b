"""ITN and GAN: they learn (losses fall, the identity cipher is nearly inverted), their training
data is what the threat model allows, and their networks fit the cipher's block structure."""

from __future__ import annotations

import pytest
import torch

from torch import nn
from torch.nn.utils import parametrize

import attacks.gan as gan_module
import attacks.itn as attacks_itn
from attacks._nets import (
    BlockNet,
    Discriminator,
    FieldGenerator,
    PatchDiscriminator,
    UNet,
    build_generator,
    tanh_to_image,
    to_image,
)
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


def test_itn_training_keys_are_fresh_per_image_and_per_epoch(attacker: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    family = CipherFamily("proposed", (16, 16), 4)
    itn = attacks.get("itn")(seed=3)
    itn.fit(attacker[:4], family, AttackConfig(epochs=1, width=8))
    same = attacker[:1].expand(6, -1, -1, -1).contiguous()
    index = torch.arange(6)

    def encrypted(config: AttackConfig, epoch: int, positions: torch.Tensor = index) -> torch.Tensor:
        return itn.encrypt_batch(same[: positions.numel()], positions, itn.training_keys(6, config, epoch))

    first = encrypted(AttackConfig(), 0)
    assert len({c.numpy().tobytes() for c in first}) == 6  # one key per image
    assert not torch.equal(first, encrypted(AttackConfig(), 1))
    shared = encrypted(AttackConfig(train_keys=2), 0)
    assert torch.equal(shared[0], shared[2]) and not torch.equal(shared[0], shared[1])
    # a batch gets the keys of its dataset positions, whatever order the batch is drawn in
    shuffled = torch.tensor([4, 1, 5])
    assert torch.equal(encrypted(AttackConfig(), 0, shuffled), first[shuffled])
    # more keys than an epoch holds: each is drawn when its image comes up, to the same ciphertexts
    monkeypatch.setattr(attacks_itn, "HELD_KEYS", 2)
    assert torch.equal(encrypted(AttackConfig(), 0), first)


def test_gan_trains_on_the_victims_ciphertexts_and_reports_its_losses(attacker: torch.Tensor) -> None:
    family = CipherFamily("le", (16, 16), 4)
    victim = family.draw(9).encrypt(attacker[:32])
    gan = attacks.get("gan")(seed=4)
    gan.fit(attacker[32:], family, AttackConfig(epochs=2, batch_size=16), victim_ciphertexts=victim)
    assert set(gan.extra) == {"steps", "loss_d_first", "loss_g_first", "loss_d_last", "loss_g_last"}
    assert all(isinstance(v, float) for v in gan.extra.values())
    assert gan.extra["steps"] == 4  # 2 epochs of 32 ciphertexts at batch 16
    assert gan.arch_name() == "block" and "32 victim ciphertexts" in gan.note and "field recipe" in gan.note


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


def _layers(net: nn.Module) -> list[tuple]:
    """(type, in, out, kernel, stride) per conv, (type, features) per BN, (type,) otherwise."""
    out = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            out.append(("conv", m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0]))
        elif isinstance(m, nn.BatchNorm2d):
            out.append(("bn", m.num_features))
        elif isinstance(m, (nn.ReLU, nn.Tanh, nn.PixelShuffle)):
            out.append((type(m).__name__,))
        elif isinstance(m, nn.LeakyReLU):
            out.append(("lrelu", m.negative_slope))
    return out


def test_field_generator_is_the_itn_block_net_with_tanh_and_dcgan_init() -> None:
    torch.manual_seed(0)
    net = FieldGenerator(3, 4)
    assert _layers(net) == [
        ("conv", 3, 48, 4, 4, 0), ("bn", 48), ("ReLU",),
        ("conv", 48, 48, 1, 1, 0), ("bn", 48), ("ReLU",),
        ("conv", 48, 512, 1, 1, 0), ("bn", 512), ("ReLU",),
        ("PixelShuffle",), ("conv", 32, 3, 1, 1, 0), ("Tanh",),
    ]  # fmt: skip
    assert net[9].upscale_factor == 4
    weights = net[6].weight.detach()
    assert abs(weights.mean()) < 2e-3 and 0.018 < weights.std() < 0.022
    gamma = net[7].weight.detach()
    assert abs(gamma.mean() - 1) < 5e-3 and 0.015 < gamma.std() < 0.025 and not net[7].bias.any()
    assert [layer[2] for layer in _layers(FieldGenerator(3, 8)) if layer[0] == "conv"] == [192, 192, 2048, 3]
    assert [layer[1:] for layer in _layers(FieldGenerator(3, 1)) if layer[0] == "conv"] == [
        (3, 64, 1, 1, 0), (64, 128, 1, 1, 0), (128, 256, 1, 1, 0), (256, 3, 1, 1, 0),
    ]  # fmt: skip
    x = torch.randn(2, 3, 16, 16)
    for block in (1, 2, 4, 8):
        y = FieldGenerator(3, block)(x)
        assert y.shape == x.shape and y.abs().max() <= 1


def test_patch_discriminator_is_the_fields_dcgan_critic() -> None:
    torch.manual_seed(0)
    critic = PatchDiscriminator(3).eval()  # eval: the spectral norm's power iteration stands still
    assert _layers(critic) == [
        ("conv", 3, 64, 4, 2, 1), ("lrelu", 0.2), ("conv", 64, 128, 4, 2, 1), ("lrelu", 0.2), ("conv", 128, 1, 4, 1, 0),
    ]  # fmt: skip
    first, second, last = critic.features[0], critic.features[2], critic.features[4]
    assert parametrize.is_parametrized(second, "weight")  # spectral norm on the middle conv only
    assert not parametrize.is_parametrized(first) and not parametrize.is_parametrized(last)
    assert 0.018 < first.weight.std() < 0.022 and not first.bias.any()
    x = torch.randn(2, 3, 32, 32)
    patches = critic.features(x)
    assert patches.shape == (2, 1, 5, 5)
    assert torch.equal(critic(x), patches[:, :, :3, :3].amax((2, 3)))  # MaxPool(3), logits before the sigmoid
    assert critic(torch.randn(2, 3, 16, 16)).shape == (2, 1)  # a 1 x 1 map is pooled whole


def test_tanh_to_image_maps_minus_one_to_one_onto_0_255() -> None:
    assert tanh_to_image(torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)).flatten().tolist() == [0, 128, 255]


@pytest.fixture()
def counted_optimisers(monkeypatch: pytest.MonkeyPatch) -> list[torch.optim.Optimizer]:
    made: list[torch.optim.Optimizer] = []
    original = gan_module.adam

    def adam(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(gan_module, "adam", adam)
    return made


def _adam_steps(optimiser: torch.optim.Optimizer) -> set[int]:
    return {int(state["step"]) for state in optimiser.state.values()}


@pytest.mark.parametrize(("config", "expected"), [(AttackConfig(steps=7, epochs=50, batch_size=8), 7), (AttackConfig(epochs=2, batch_size=8), 6)])
def test_gan_takes_exactly_its_steps_cycling_over_the_ciphertexts(
    attacker: torch.Tensor, counted_optimisers: list, config: AttackConfig, expected: int
) -> None:
    family = CipherFamily("le", (16, 16), 4)
    victim = family.draw(9).encrypt(attacker[:20])  # 7 steps of 8 = 56 draws: cycles over the 20
    seen = []
    gan = attacks.get("gan")(seed=4)
    gan.fit(attacker[20:], family, config, lambda done, total, _: seen.append((done, total)), victim_ciphertexts=victim)
    opt_g, opt_d = counted_optimisers
    assert _adam_steps(opt_g) == {expected} and _adam_steps(opt_d) == {expected}
    assert gan.extra["steps"] == expected and seen[-1] == (expected, expected)
    assert f"trained {expected} steps" in gan.note


def test_gan_is_deterministic_given_its_seed(attacker: torch.Tensor) -> None:
    family = CipherFamily("le", (16, 16), 4)
    victim = family.draw(9).encrypt(attacker[:24])
    config = AttackConfig(steps=5, batch_size=8, lr=2e-4, betas=(0.5, 0.999))

    def run(seed: int):
        gan = attacks.get("gan")(seed=seed)
        gan.fit(attacker[24:], family, config, victim_ciphertexts=victim)
        return gan.restore(victim), gan.extra

    first, again, other = run(1), run(1), run(2)
    assert torch.equal(first[0], again[0]) and first[1] == again[1]
    assert not torch.equal(first[0], other[0])


def test_gan_discriminator_learns_on_le(attacker: torch.Tensor) -> None:
    """The BCE discriminator loss falls from its chance value (2 ln 2) within a few dozen steps."""
    family = CipherFamily("le", (16, 16), 4)
    victim = family.draw(9).encrypt(attacker[:48])
    gan = attacks.get("gan")(seed=0)
    gan.fit(attacker[48:], family, AttackConfig(steps=40, batch_size=16, lr=2e-4, betas=(0.5, 0.999)), victim_ciphertexts=victim)
    assert gan.extra["loss_d_last"] < gan.extra["loss_d_first"] - 0.1


def test_gan_custom_recipe_keeps_the_hinge_loss_and_config_architectures(attacker: torch.Tensor) -> None:
    family = CipherFamily("le", (16, 16), 4)
    victim = family.draw(9).encrypt(attacker[:16])
    config = AttackConfig(steps=2, batch_size=8, width=8, disc_width=8, gan_recipe="custom", arch="unet", unet_depth=1)
    gan = attacks.get("gan")(seed=0)
    gan.fit(attacker[16:], family, config, victim_ciphertexts=victim)
    assert isinstance(gan.net, UNet) and gan.arch_name() == "unet" and "custom hinge" in gan.note
    restored = gan.restore(victim)
    loaded = attacks.get("gan")()
    loaded.load_state_dict(gan.state_dict())
    assert torch.equal(loaded.restore(victim), restored)
