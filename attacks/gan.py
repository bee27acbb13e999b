"""``gan``: GAN-based scrambling inversion (SIA-GAN, Madono et al., IEEE Access 2021).

Unpaired: a generator of the ITN family (block-aligned, 1x1 or U-Net) maps the victim's
ciphertexts (one key, the victim's) to images, and a DCGAN discriminator learns to tell them
from the attacker's own plain images.  No pairs, no labels, no content loss: whatever the
generator restores, it restores because the victim's key is shared by many ciphertexts and
natural images have a recognisable distribution.  Hinge loss by default (SIA-GAN), BCE as the
field's simplified attack used.  The optional label-CE auxiliary classifier of SIA-GAN is not
implemented (the threat model here gives the attacker no labels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attacks._nets import Discriminator, to_input
from attacks._training import GeneratorAttack, adam, batches, seeded
from attacks.base import AttackConfig
from harness.keys import derive_seed
from harness.progress import ProgressCallback, report
from harness.registry import attacks


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


@attacks.register("gan", "sia_gan")
class GanAttack(GeneratorAttack):
    """Unpaired GAN inversion on the victim's ciphertexts (SPEC.md, Attacks: gan)."""

    uses_victim_ciphertexts = True

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
        with seeded(derive_seed(self.seed, "gan", "discriminator"), self.device):
            critic = Discriminator(self.channels, config.disc_width).to(self.device)
        opt_g = adam(net.parameters(), config)
        opt_d = adam(critic.parameters(), config, lr=config.lr_d)
        order = torch.Generator().manual_seed(derive_seed(self.seed, "gan", "order"))
        for epoch in range(config.epochs):
            net.train()
            sums = torch.zeros(2)
            steps = 0
            for index in batches(victim.shape[0], config.batch_size, order):
                real_index = torch.randint(0, attacker_images.shape[0], (index.numel(),), generator=order)
                fake = torch.sigmoid(net(to_input(victim[index.to(self.device)]))) * 2 - 1
                real = to_input(attacker_images[real_index.to(self.device)])
                loss_d = discriminator_loss(critic(real), critic(fake.detach()), config.gan_loss)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                loss_g = generator_loss(critic(fake), config.gan_loss)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                sums += torch.tensor([loss_d.item(), loss_g.item()])
                steps += 1
            means = (sums / max(steps, 1)).tolist()
            report(progress, epoch + 1, config.epochs, f"gan: epoch {epoch + 1} D {means[0]:.3f} G {means[1]:.3f}")
        self.extra = {"loss_d_last_epoch": means[0], "loss_g_last_epoch": means[1]}
        self.note = f"gan ({self.arch_name()}) trained on {victim.shape[0]} victim ciphertexts vs {attacker_images.shape[0]} attacker images"
