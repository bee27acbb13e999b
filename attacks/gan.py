"""``gan``: GAN-based scrambling inversion (SIA-GAN, Madono et al., IEEE Access 2021).

Unpaired: a generator maps the victim's ciphertexts (one key, the victim's) to images, and a
discriminator learns to tell them from the attacker's own plain images.  No pairs, no labels,
no content loss: whatever the generator restores, it restores because the victim's key is
shared by many ciphertexts and natural images have a recognisable distribution.

Default recipe (``gan_recipe="field"``): the attack authors' simplified GAN (ito-hiroki
``gan_attack_train.py``; background notes 5.4): the ITN block net with a tanh output as the
generator, a DCGAN patch discriminator (one spectrally normalised layer, max-pooled patch
logits), the non-saturating BCE loss, both sides in [-1, 1], DCGAN initialisation.  The
presets supply the field's Adam settings (lr 2e-4, betas (0.5, 0.999), batch 64).
``gan_recipe="custom"`` builds the generator from ``arch``/``width`` (sigmoid output), a fully
spectrally normalised discriminator of ``disc_width`` and uses ``gan_loss`` (hinge: SIA-GAN).
The optional label-CE auxiliary classifier of SIA-GAN is not implemented (the threat model here
gives the attacker no labels).

The budget is ``steps`` optimiser steps (one discriminator and one generator update each) when
set, else ``epochs`` passes over the victim's ciphertexts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from attacks._nets import Discriminator, FieldGenerator, PatchDiscriminator, to_input
from attacks._learned import GeneratorAttack, adam, generate, index_stream
from attacks.base import AttackConfig
from harness.keys import derive_seed, seeded
from harness.progress import ProgressCallback, report
from harness.registry import attacks

#: progress reports per run
REPORTS = 50


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )


def generator_loss(fake: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "hinge":
        return -fake.mean()
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def total_steps(config: AttackConfig, n_victim: int) -> int:
    """The run's optimiser steps: ``steps`` if set, else ``epochs`` passes over the ciphertexts."""
    if config.steps is not None:
        return config.steps
    return config.epochs * math.ceil(n_victim / min(config.batch_size, n_victim))


@attacks.register("gan", "sia_gan")
class GanAttack(GeneratorAttack):
    """Unpaired GAN inversion on the victim's ciphertexts (docs/attacks.md, Attacks: gan)."""

    uses_victim_ciphertexts = True
    version = 2

    def build_net(self, config: AttackConfig) -> nn.Module:
        if config.gan_recipe == "custom":
            net = super().build_net(config)
            self.arch["recipe"] = "custom"
            return net
        assert self.family is not None and self.channels is not None
        self.arch = {
            "recipe": "field",
            "channels": self.channels,
            "block": self.family.resolved_block_size,
            "image_size": list(self.family.image_size),
        }
        with seeded(derive_seed(self.seed, self.registry_name, "generator"), self.device):
            self.net = self._build().to(self.device)
        return self.net

    def _field(self) -> bool:
        return self.arch.get("recipe", "custom") == "field"

    def arch_name(self) -> str:
        if self._field():
            return "block" if int(self.arch["block"]) > 1 else "pixel"
        return super().arch_name()

    def _build(self) -> nn.Module:
        if self._field():
            return FieldGenerator(int(self.arch["channels"]), int(self.arch["block"]))
        return super()._build()

    def _restore(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        assert self.net is not None
        return generate(self.net, ciphertexts, "tanh" if self._field() else "logits")

    def _fit(
        self,
        attacker_images: torch.Tensor,
        config: AttackConfig,
        progress: ProgressCallback | None,
        *,
        victim: torch.Tensor | None,
        pairs: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> None:
        assert self.family is not None and self.channels is not None and victim is not None
        net = self.build_net(config)
        field = self._field()
        with seeded(derive_seed(self.seed, "gan", "discriminator"), self.device):
            critic = (PatchDiscriminator(self.channels) if field else Discriminator(self.channels, config.disc_width)).to(
                self.device
            )
        kind = "bce" if field else config.gan_loss
        opt_g = adam(net.parameters(), config)
        opt_d = adam(critic.parameters(), config, lr=config.lr_d)
        order = torch.Generator().manual_seed(derive_seed(self.seed, "gan", "order"))
        fakes = index_stream(victim.shape[0], config.batch_size, order)
        reals = index_stream(attacker_images.shape[0], config.batch_size, order)
        steps = total_steps(config, victim.shape[0])
        every = max(1, steps // REPORTS)
        losses = torch.zeros(steps, 2)
        net.train()
        critic.train()
        for step in range(steps):
            output = net(to_input(victim[next(fakes).to(self.device)]))
            fake = output if field else torch.sigmoid(output) * 2 - 1
            real = to_input(attacker_images[next(reals).to(self.device)])
            loss_d = discriminator_loss(critic(real), critic(fake.detach()), kind)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = generator_loss(critic(fake), kind)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            losses[step] = torch.stack([loss_d.detach(), loss_g.detach()]).cpu()
            if (step + 1) % every == 0 or step + 1 == steps:
                recent = losses[max(0, step + 1 - every) : step + 1].mean(0).tolist()
                report(progress, step + 1, steps, f"gan: step {step + 1} D {recent[0]:.3f} G {recent[1]:.3f}")
        window = max(1, min(100, steps // 5))
        first, last = losses[:window].mean(0).tolist(), losses[-window:].mean(0).tolist()
        self.extra = {
            "steps": float(steps),
            "loss_d_first": first[0],
            "loss_g_first": first[1],
            "loss_d_last": last[0],
            "loss_g_last": last[1],
        }
        self.note = (
            f"gan ({'field recipe' if field else 'custom ' + config.gan_loss}, {self.arch_name()}) trained {steps} steps "
            f"on {victim.shape[0]} victim ciphertexts vs {attacker_images.shape[0]} attacker images"
        )
