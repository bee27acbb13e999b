"""``itn``: inverse transformation network (Ito, Kinoshita, Kiya, GCCE 2020).

The attacker encrypts its own plain images with keys it draws itself (a fresh key per image,
``diff_key``, re-drawn every epoch by default), trains a network to map those ciphertexts back
to the plain images, and applies it to the victim's ciphertexts.  It never sees the victim's
key or ciphertexts during training.  Architecture from the cipher's block size: block-aligned
(kernel = stride = M) for block ciphers, 1x1 for pixel-wise ones, or a U-Net.  Adam, L1 or MSE.

Unlike the field's code, the training loss and the evaluated output both go through the same
sigmoid (the reference trained through a sigmoid but evaluated the raw tanh output).
"""

from __future__ import annotations

import torch

from attacks._nets import to_input, to_target
from attacks._training import GeneratorAttack, adam, batches, image_loss
from attacks.base import AttackConfig
from harness.keys import derive_seed
from harness.progress import ProgressCallback, report
from harness.registry import attacks


@attacks.register("itn", "inverse_transformation_network")
class InverseTransformationNetwork(GeneratorAttack):
    """Paired training on the attacker's own images under keys it draws (SPEC.md, Attacks: itn)."""

    def encrypt_training_set(self, images: torch.Tensor, config: AttackConfig, epoch: int) -> torch.Tensor:
        """The attacker's images under keys it draws: ``train_keys`` keys (None: one per image)."""
        assert self.family is not None and self.layout is not None
        family, n = self.family, images.shape[0]
        if family.per_image_key:  # the cipher itself draws a key per image id
            cipher = family.draw(derive_seed(self.seed, "itn", "keys", epoch))
            encrypted = family.encrypt(cipher, images)
        else:
            n_keys = min(n, config.train_keys or n)
            encrypted = torch.empty(
                family.encrypted_shape(tuple(images.shape)), dtype=torch.uint8, device=images.device
            )
            for key in range(n_keys):  # one cipher per key, each over its whole group of images
                members = torch.arange(key, n, n_keys, device=images.device)
                cipher = family.draw(derive_seed(self.seed, "itn", "key", epoch, key))
                encrypted[members] = cipher.encrypt(images[members])
        return self.layout.view(encrypted)

    def _fit(
        self,
        attacker_images: torch.Tensor,
        config: AttackConfig,
        progress: ProgressCallback | None,
        *,
        victim: torch.Tensor | None,
        pairs: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> None:
        net = self.build_net(config)
        optimizer = adam(net.parameters(), config)
        order = torch.Generator().manual_seed(derive_seed(self.seed, "itn", "order"))
        losses = []
        for epoch in range(config.epochs):
            if epoch == 0 or config.rekey_each_epoch:
                source = self.encrypt_training_set(attacker_images, config, epoch)  # uint8: floats per batch
            net.train()
            total, count = 0.0, 0
            for index in batches(source.shape[0], config.batch_size, order):
                index = index.to(self.device)
                restored = torch.sigmoid(net(to_input(source[index])))
                loss = image_loss(restored, to_target(attacker_images[index]), config.loss)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, count = total + loss.item() * index.numel(), count + index.numel()
            losses.append(total / max(count, 1))
            report(progress, epoch + 1, config.epochs, f"itn: epoch {epoch + 1} {config.loss} {losses[-1]:.4f}")
        self.extra = {"loss_first_epoch": losses[0], "loss_last_epoch": losses[-1]}
        self.note = f"itn ({self.arch_name()}) trained on {attacker_images.shape[0]} attacker images, diff_key"
