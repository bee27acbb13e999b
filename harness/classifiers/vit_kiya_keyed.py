"""``vit_kiya_keyed``: a ViT trained on plain images, transformed with the ``vit_kiya`` key (no retraining).

Kiya, Iijima, MaungMaung, Kinoshita, "Image and Model Transformation with Secret Key for Vision
Transformer" (IEICE Trans. 2023; arXiv 2207.05366), notes section 4.  A timm ViT embeds patch i as
``t_i = W x_i + b + E[i]`` with ``x_i`` flattened in (channel, row, column) order.  The ciphertext's
patch i is plain patch ``K1[i]`` gathered by K2 over that very flattening, so with ``W' = W[:, K2]``
and ``E'[i] = E[K1[i]]`` (prefix-token rows unchanged) the keyed model produces the plain token
sequence, permuted, and the logits are the plain model's.  K2 moves values between channels; the
classifiers' normalisation (mean = std = 0.5 for every channel) commutes with that.

The checks on the ViT (patch size, non-overlapping stem, fixed grid, learned ``pos_embed``) are
``vit_keyed``'s, imported from it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from harness.classifiers.base import ImageClassifier
from harness.classifiers.vit_keyed import KeyedVitClassifier, check_keyable_vit
from harness.registry import classifiers

KEYED_CIPHER = "vit_kiya"


@classifiers.register("vit_kiya_keyed")
class VitKiyaKeyedClassifier(KeyedVitClassifier):
    """Same network as ``vit``; trained on plain images, then :func:`kiya_keyed_vit` for the cipher's key."""

    keyed_ciphers = (KEYED_CIPHER,)

    @classmethod
    def from_plain(cls, model: nn.Module, cipher: Any) -> nn.Module:
        return kiya_keyed_vit(model, cipher)


def kiya_keyed_vit(model: nn.Module, cipher: Any) -> nn.Module:
    """A copy of a trained timm ViT that reads ``vit_kiya`` ciphertexts: ``keyed(encrypt(x)) == model(x)``.

    ``model`` is a timm ``VisionTransformer`` or an :class:`ImageClassifier` wrapping one (the same
    kind is returned); the cipher's block size must be the patch size, its block grid the patch grid.
    """
    VitKiyaKeyedClassifier.check_cipher(cipher)
    vit = model.net if isinstance(model, ImageClassifier) else model
    if not isinstance(vit, VisionTransformer):
        raise ValueError(
            f"model must be a timm VisionTransformer or an ImageClassifier wrapping one, got {type(vit).__name__}"
        )
    start, n_patches = check_keyable_vit(vit, cipher.block_size)
    key = cipher.key()
    if key["block_perm"].shape[0] != n_patches:
        raise ValueError(
            f"the cipher's key has {key['block_perm'].shape[0]} blocks but the ViT has {n_patches} patches "
            f"(grid {tuple(vit.patch_embed.grid_size)}): the image sizes differ"
        )
    weight = vit.patch_embed.proj.weight
    if weight.shape[1] * weight.shape[2] * weight.shape[3] != key["pixel_perm"].shape[0]:
        raise ValueError(
            f"the cipher's pixel_perm has {key['pixel_perm'].shape[0]} entries but the ViT's patch vector has "
            f"{weight.shape[1]} x {weight.shape[2]} x {weight.shape[3]}"
        )
    keyed = copy.deepcopy(model)
    target = keyed.net if isinstance(keyed, ImageClassifier) else keyed
    weight, pos_embed = target.patch_embed.proj.weight, target.pos_embed
    pixel_index = torch.from_numpy(key["pixel_perm"]).to(weight.device)
    block_index = torch.from_numpy(key["block_perm"]).to(pos_embed.device)
    with torch.no_grad():
        weight.copy_(weight.flatten(1)[:, pixel_index].view_as(weight))
        pos_embed[:, start:] = pos_embed[:, start:][:, block_index]
    return keyed
