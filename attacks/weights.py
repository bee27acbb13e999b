"""The model holder's attacks (threat model ``model-holder``): read the victim's key from the
provider's ViT instead of from ciphertexts (:mod:`attacks._model_holder` has the how).

- ``weights_checkpoint``: the key-transformed model (``vit_keyed``, ``vit_kiya_keyed``,
  ``vit_cfe_keyed``) and the public checkpoint it came from: a linear assignment of columns (for
  CFE up to a sign each) and rows, exact when the transformed weights are the checkpoint's.
- ``weights_finetuned``: the model trained on the victim's ciphertexts, the public weights its
  training started from and a model trained the same way on plain images: what training moved
  is matched against what it moves without a key; the share of the key it reads is measured.
- ``weights_smooth``: the key-transformed model alone (no checkpoint): the filters and position
  embeddings laid out by smoothness, each up to a symmetry of its grid.

Each recovers a key, so restoring decrypts with it and the cell scores it like any other
key-recovery attack (``key_entries_recovered``, SSIM; a whole key is ✗).  The model transforms
exist for named ciphers only, so :meth:`applies_to` reads the family's name, not its traits.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer

from attacks._model_holder import (
    image_map_of_block_maps,
    pixel_perm_from_patch_index,
    read_key_with_checkpoint,
    read_key_without_checkpoint,
    read_signed_key_with_checkpoint,
    weight_update,
)
from attacks.base import AttackConfig, CipherFamily, KeyRecoveryAttack, ProviderModels
from ciphers.pieces import pieces_of_map
from harness.progress import ProgressCallback
from harness.registry import attacks

#: how a patch map Pi over the ``(channel, row, col)`` patch vector gives each keyed cipher's K2
#: (``proposed``: voted into one shuffle of the sub-block positions; ``vit_kiya``: Pi is K2)
PIXEL_KEYS: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {
    "proposed": pixel_perm_from_patch_index,
    "vit_kiya": lambda patch_index, block_size, channels: np.asarray(patch_index, dtype=np.int64),
}
#: the ciphers whose model transform (``vit_cfe_keyed``) signs the columns it gathers: ``255 - x`` is
#: ``-x`` after the classifiers' normalisation, so the key is read as signed within-block maps
SIGNED_KEYS = ("cfe_v1", "cfe_v2")


def _vit(model: Any, name: str, block_size: int) -> VisionTransformer:
    """``model`` as a ViT whose patch is the family's block; ValueError naming the model otherwise."""
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"models.{name} must be a timm VisionTransformer, got {type(model).__name__}")
    if tuple(model.patch_embed.patch_size) != (block_size, block_size):
        raise ValueError(f"models.{name} has patch size {tuple(model.patch_embed.patch_size)}, the cipher's block size is {block_size}")
    return model


class WeightsAttack(KeyRecoveryAttack):
    """A model holder's key recovery: ``_read`` gives the key from the models, restoring decrypts."""

    threat_model = "model-holder"
    #: the ciphers whose key a model transform carries (``vit_keyed``, ``vit_kiya_keyed``)
    ciphers: ClassVar[tuple[str, ...]] = tuple(PIXEL_KEYS)

    @classmethod
    def applies_to(cls, family: CipherFamily) -> str | None:
        if family.canonical_name not in cls.ciphers:
            return f"{family.canonical_name} has no model transform whose weights {cls.registry_name} reads (only {', '.join(cls.ciphers)})"
        return super().applies_to(family)

    def _fit(
        self,
        attacker_images: torch.Tensor,
        config: AttackConfig,
        progress: ProgressCallback | None,
        *,
        victim: torch.Tensor | None,
        pairs: tuple[torch.Tensor, torch.Tensor] | None,
        models: ProviderModels,
    ) -> None:
        assert self.family is not None and self.channels is not None
        key = self._read(models, self.family.resolved_block_size, self.channels)
        self.key = {name: np.asarray(value, dtype=np.int64) for name, value in key.items()}
        self.recovered_cipher = self._rebuild(self.key)

    @abc.abstractmethod
    def _read(self, models: ProviderModels, block_size: int, channels: int) -> dict[str, np.ndarray]:
        """The victim's key (entries for the family's ``rebuild``), read from ``models``."""

    def _matched(self, keyed: VisionTransformer, public: VisionTransformer, block_size: int, channels: int) -> dict[str, np.ndarray]:
        """K1 and K2 from matching ``keyed``'s columns and rows to ``public``'s; the match cost goes to ``extra``."""
        assert self.family is not None
        block_perm, patch_index, cost = read_key_with_checkpoint(keyed, public)
        self.extra["match_cost"] = cost
        return {"block_perm": block_perm, "pixel_perm": PIXEL_KEYS[self.family.canonical_name](patch_index, block_size, channels)}

    def _signed_matched(self, keyed: VisionTransformer, public: VisionTransformer, block_size: int, channels: int) -> dict[str, np.ndarray]:
        """A CFE key from matching ``keyed``'s columns (up to a sign) and rows to ``public``'s: the
        block scramble and signed within-block maps make the cipher's gather and XOR mask, whose pieces
        the cipher turns into its nearest key; the match cost goes to ``extra``."""
        assert self.family is not None
        block_perm, perm, sign, cost = read_signed_key_with_checkpoint(keyed, public)
        self.extra["match_cost"] = cost
        shape = (channels, *self.family.image_size)
        index, mask = image_map_of_block_maps(block_perm, perm, sign, block_size, shape)
        template = self.family.template
        return template.key_from_pieces(pieces_of_map(index, mask, shape, template.piece_size, exact=False))


@attacks.register("weights_checkpoint")
class CheckpointAttack(WeightsAttack):
    """The key-transformed model matched to the public checkpoint it came from."""

    reads_models = ("keyed", "checkpoint")
    ciphers = (*PIXEL_KEYS, *SIGNED_KEYS)

    def _read(self, models: ProviderModels, block_size: int, channels: int) -> dict[str, np.ndarray]:
        assert self.family is not None
        self.note = "key read from the transformed model and the public checkpoint"
        keyed, public = _vit(models.keyed, "keyed", block_size), _vit(models.checkpoint, "checkpoint", block_size)
        match = self._signed_matched if self.family.canonical_name in SIGNED_KEYS else self._matched
        return match(keyed, public, block_size, channels)


@attacks.register("weights_finetuned")
class FinetunedAttack(WeightsAttack):
    """What training on ciphertexts moved, matched to what the same training moves on plain images."""

    reads_models = ("trained", "start", "plain")

    def _read(self, models: ProviderModels, block_size: int, channels: int) -> dict[str, np.ndarray]:
        start = _vit(models.start, "start", block_size)
        trained = weight_update(_vit(models.trained, "trained", block_size), start)
        plain = weight_update(_vit(models.plain, "plain", block_size), start)
        self.note = "key read from the update of the model trained on ciphertexts against a plain model's"
        return self._matched(trained, plain, block_size, channels)


@attacks.register("weights_smooth")
class SmoothAttack(WeightsAttack):
    """The key-transformed model alone: its filters and position embedding laid out by smoothness."""

    reads_models = ("keyed",)
    ciphers = ("proposed",)

    def _read(self, models: ProviderModels, block_size: int, channels: int) -> dict[str, np.ndarray]:
        self.note = "key read from the transformed model's smoothness alone (each part up to a symmetry of its grid)"
        block_perm, pixel_perm = read_key_without_checkpoint(_vit(models.keyed, "keyed", block_size), block_size)
        return {"block_perm": block_perm, "pixel_perm": pixel_perm}
