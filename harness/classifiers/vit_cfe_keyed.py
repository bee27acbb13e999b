"""``vit_cfe_keyed``: a ViT trained on plain images, adapted to ``cfe_v1``/``cfe_v2`` ciphertexts with
the same key (CFE-PPAR's key-dependent domain adaptation, KDDA; Lin, Imaizumi, Kiya, ICIP 2026).

Inside a main block (= the ViT patch) every CFE step is a permutation of the patch vector or a
``255 - x`` flip, and with the classifiers' normalisation (mean = std = 0.5) ``255 - x`` becomes
``-x``.  So the ciphertext patch at position i is ``x'[j] = sign[j] x_s[perm[j]]`` over timm's
(channel, row, column) flattening, with s = ``block_perm[i]`` its source block and (perm, sign) the
within-block map of s's key.  With ``W'[:, j] = sign[j] W[:, perm[j]]`` the embedding gives
``W' x' = W x_s``, and with ``E'[i] = E[s]`` the plain token sequence comes out, permuted; the rest of
the ViT is permutation-equivariant over tokens, so the logits are the plain model's.

V1 has one within-block key, so ``W'`` replaces the convolution's weight and the architecture is
unchanged.  V2 has one per source block: the patch embedding becomes :class:`PerPositionPatchEmbed`,
a linear map per patch position (the authors' code likewise replaces the embedding with per-block
kernels), with the same output as the convolution it replaces.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from harness.classifiers.base import ImageClassifier
from harness.classifiers.vit_keyed import KeyedVitClassifier, check_keyable_vit
from harness.registry import classifiers

KEYED_CIPHERS = ("cfe_v1", "cfe_v2")


@classifiers.register("vit_cfe_keyed")
class VitCFEKeyedClassifier(KeyedVitClassifier):
    """Same network as ``vit``; trained on plain images, then :func:`cfe_keyed_vit` for the cipher's key."""

    keyed_ciphers = KEYED_CIPHERS

    @classmethod
    def from_plain(cls, model: nn.Module, cipher: Any) -> nn.Module:
        return cfe_keyed_vit(model, cipher)


class PerPositionPatchEmbed(nn.Module):
    """A non-overlapping patch embedding with its own ``[D, C*M*M]`` weight at every patch position.

    Drop-in for timm's ``patch_embed.proj``: ``[B, C, H, W]`` -> ``[B, D, H/M, W/M]``, patch vectors
    flattened in (channel, row, column) order like a convolution's weight.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, grid: tuple[int, int], patch: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)  # [N, D, C*M*M]
        self.bias = None if bias is None else nn.Parameter(bias)
        self.grid, self.patch = grid, patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels = x.shape[:2]
        (rows, cols), m = self.grid, self.patch
        patches = x.reshape(batch, channels, rows, m, cols, m).permute(0, 2, 4, 1, 3, 5).reshape(batch, rows * cols, -1)
        out = torch.einsum("bnk,ndk->bnd", patches, self.weight)
        if self.bias is not None:
            out = out + self.bias
        return out.transpose(1, 2).reshape(batch, -1, rows, cols)


def within_block_maps(cipher: Any) -> tuple[np.ndarray, np.ndarray]:
    """``perm``, ``sign`` ``[K, C*M*M]`` (K = 1 for V1, N for V2) of each sub-key row, over one main
    block in (channel, row, column) order: ciphertext entry j is ``sign[j]`` times plain entry ``perm[j]``
    (in the normalised domain, where ``255 - x`` is ``-x``).  Each row is read off the cipher's own
    gather and XOR mask on a one-block image (the cipher's class, rebuilt with that row's key)."""
    key = cipher.key()
    per_block = bool(cipher.per_main_block)
    rows = key["block_perm"].shape[0] if per_block else 1
    m = cipher.block_size
    perms, signs = [], []
    for r in range(rows):
        row = {n: (v[r : r + 1] if per_block else v) for n, v in key.items() if n != "block_perm"}
        single = type(cipher)(m, **row, block_perm=[0], sub_block_size=cipher.sub_block_size)
        perms.append(single.index_map(3, m, m))
        signs.append(np.where(single.xor_mask(3, m, m) == 255, -1, 1))
    return np.stack(perms), np.stack(signs)


def cfe_keyed_vit(model: nn.Module, cipher: Any) -> nn.Module:
    """A copy of a trained timm ViT that reads ``cipher``'s (``cfe_v1``/``cfe_v2``) ciphertexts with the
    plain model's logits; ``model`` is a timm ``VisionTransformer`` or an :class:`ImageClassifier` wrapping one."""
    VitCFEKeyedClassifier.check_cipher(cipher)
    vit = model.net if isinstance(model, ImageClassifier) else model
    if not isinstance(vit, VisionTransformer):
        raise ValueError(
            f"model must be a timm VisionTransformer or an ImageClassifier wrapping one, got {type(vit).__name__}"
        )
    start, n_patches = check_keyable_vit(vit, cipher.block_size)
    if vit.patch_embed.proj.weight.shape[1] != 3:
        raise ValueError(f"CFE works on 3 colour channels, the ViT takes {vit.patch_embed.proj.weight.shape[1]}")
    block_perm = cipher.key()["block_perm"]
    if block_perm.shape[0] != n_patches:
        raise ValueError(
            f"the cipher's key has {block_perm.shape[0]} main blocks but the ViT has {n_patches} patches "
            f"(grid {tuple(vit.patch_embed.grid_size)}): the image sizes differ"
        )
    perms, signs = within_block_maps(cipher)
    keyed = copy.deepcopy(model)
    target = keyed.net if isinstance(keyed, ImageClassifier) else keyed
    proj, pos_embed = target.patch_embed.proj, target.pos_embed
    device, dtype = proj.weight.device, proj.weight.dtype
    flat = proj.weight.detach().flatten(1)  # [D, C*M*M]
    index = torch.from_numpy(perms).to(device)
    sign = torch.from_numpy(signs).to(device=device, dtype=dtype)
    kernels = flat[:, index].permute(1, 0, 2) * sign[:, None, :]  # [K, D, C*M*M]: W'[:, j] = sign[j] W[:, perm[j]]
    block_index = torch.from_numpy(block_perm).to(pos_embed.device)
    with torch.no_grad():
        if kernels.shape[0] == 1:
            proj.weight.copy_(kernels[0].view_as(proj.weight))
        else:
            # position i holds source block block_perm[i], encrypted with that block's key
            per_position = kernels[torch.from_numpy(block_perm).to(device)].clone()
            bias = None if proj.bias is None else proj.bias.detach().clone()
            target.patch_embed.proj = PerPositionPatchEmbed(
                per_position, bias, tuple(target.patch_embed.grid_size), cipher.block_size
            ).to(device)
        pos_embed[:, start:] = pos_embed[:, start:][:, block_index]
    return keyed
