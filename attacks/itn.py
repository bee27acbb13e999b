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

from dataclasses import dataclass
from typing import Callable

import torch

from attacks._nets import to_input, to_target
from attacks._learned import GeneratorAttack, adam, batches, image_loss
from attacks.base import AttackConfig
from ciphers.base import Cipher
from harness.keys import derive_seed
from harness.progress import ProgressCallback, report
from harness.registry import attacks


#: ciphers an ITN epoch holds at once (more keys are drawn as their images come up)
HELD_KEYS = 128


@dataclass(frozen=True)
class EpochKeys:
    """An epoch's ``count`` training keys; ``cipher(k)`` is key k's cipher."""

    count: int
    cipher: Callable[[int], Cipher]


@attacks.register("itn", "inverse_transformation_network")
class InverseTransformationNetwork(GeneratorAttack):
    """Paired training on the attacker's own images under keys it draws (docs/attacks.md, Attacks: itn)."""

    def training_keys(self, n: int, config: AttackConfig, epoch: int) -> EpochKeys:
        """The keys the attacker draws for an epoch: ``train_keys`` keys (None: one per image);
        image i is encrypted with key ``i % count``.  A per-image-key family draws one cipher
        whose keys follow the image ids.  Up to :data:`HELD_KEYS` ciphers are held for the
        epoch; with more (one key per image) each is drawn when its image comes up, so an epoch
        never holds thousands of ciphers' index maps (2.4 MB each at 224 x 224)."""
        assert self.family is not None
        family = self.family
        if family.per_image_key:
            cipher = family.draw(derive_seed(self.seed, "itn", "keys", epoch))
            return EpochKeys(1, lambda key: cipher)
        count = min(n, config.train_keys or n)

        def draw(key: int) -> Cipher:
            return family.draw(derive_seed(self.seed, "itn", "key", epoch, key))

        if count <= HELD_KEYS:
            return EpochKeys(count, [draw(key) for key in range(count)].__getitem__)
        return EpochKeys(count, draw)

    def encrypt_batch(self, images: torch.Tensor, index: torch.Tensor, keys: EpochKeys) -> torch.Tensor:
        """The attacker's images at dataset positions ``index`` under their epoch keys, in the plain
        layout (a batch at a time, so the training set is never held encrypted)."""
        assert self.family is not None and self.layout is not None
        if self.family.per_image_key:
            return self.layout.view(keys.cipher(0).encrypt(images, image_ids=index.to(images.device)))
        shape = self.family.encrypted_shape(tuple(images.shape))
        encrypted = torch.empty(shape, dtype=torch.uint8, device=images.device)
        which = (index % keys.count).to(images.device)
        for key in which.unique().tolist():
            members = torch.nonzero(which == key).flatten()
            encrypted[members] = keys.cipher(key).encrypt(images[members])
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
        n = attacker_images.shape[0]
        for epoch in range(config.epochs):
            if epoch == 0 or config.rekey_each_epoch:
                keys = self.training_keys(n, config, epoch)
            net.train()
            total, count = 0.0, 0
            for index in batches(n, config.batch_size, order):
                plain = attacker_images[index]
                restored = torch.sigmoid(net(to_input(self.encrypt_batch(plain, index, keys))))
                loss = image_loss(restored, to_target(plain), config.loss)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, count = total + loss.item() * index.numel(), count + index.numel()
            losses.append(total / max(count, 1))
            report(progress, epoch + 1, config.epochs, f"itn: epoch {epoch + 1} {config.loss} {losses[-1]:.4f}")
        self.extra = {"loss_first_epoch": losses[0], "loss_last_epoch": losses[-1]}
        self.note = f"itn ({self.arch_name()}) trained on {attacker_images.shape[0]} attacker images, diff_key"
