"""``vit_keyed``: a ViT trained on plain images, transformed with the ``proposed`` key (no retraining).

Kiya et al., "Image and model transformation with secret key for vision transformer" (IEICE
Trans. 2023).  A timm ViT embeds patch i as ``t_i = W x_i + b + E[i]``.  The ciphertext's patch i is
plain patch ``K1[i]`` with its pixels permuted by the map Pi that K2 induces inside a block, so with
``W' = W[:, Pi]`` (columns in timm's (channel, row, col) flattening) and ``E'[i] = E[K1[i]]`` the
keyed model produces the plain token sequence, permuted.  Everything after the embedding is
permutation-equivariant over tokens and the class token (or average pool) is symmetric, so
``keyed(encrypt(x)) == model(x)`` up to float rounding.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ciphers.base import spatial_to_flat
from harness.classifiers.base import ImageClassifier
from harness.classifiers.vit import VitClassifier
from harness.registry import classifiers, name_of

KEYED_CIPHER = "proposed"


class KeyedVitClassifier(VitClassifier):
    """A plain-trained ``vit`` transformed with the key of one of :attr:`keyed_ciphers` (no retraining):
    the base of ``vit_keyed``, ``vit_kiya_keyed`` and ``vit_cfe_keyed``, which differ only in the
    transform (:meth:`from_plain`)."""

    plain_base = "vit"

    @classmethod
    def check_cipher(cls, cipher: Any) -> None:
        """ValueError unless ``cipher`` is one this classifier can be keyed for."""
        if name_of(cipher) not in cls.keyed_ciphers:
            wanted = " or ".join(repr(name) for name in cls.keyed_ciphers)
            raise ValueError(f"{cls.registry_name} works only with the {wanted} cipher, got {name_of(cipher)!r}")

    @classmethod
    def for_cipher(cls, cipher: Any, options: dict[str, Any]) -> dict[str, Any]:
        """The plain ``vit`` options: the patch size must be the cipher's block size."""
        cls.check_cipher(cipher)
        given = options.get("patch_size")
        if given is not None and given != cipher.block_size:
            raise ValueError(
                f"{cls.registry_name} needs a plain vit with patch_size equal to the cipher's block_size "
                f"{cipher.block_size}, but the options set patch_size={given}"
            )
        return {**options, "patch_size": cipher.block_size}


@classifiers.register("vit_keyed")
class VitKeyedClassifier(KeyedVitClassifier):
    """Same network as ``vit``; trained on plain images, then :func:`keyed_vit` for the cipher's key."""

    keyed_ciphers = (KEYED_CIPHER,)

    @classmethod
    def from_plain(cls, model: nn.Module, cipher: Any) -> nn.Module:
        return keyed_vit(model, cipher)


def keyed_vit(model: nn.Module, cipher: Any) -> nn.Module:
    """A copy of a trained timm ViT that reads ``cipher``'s ciphertexts: ``keyed(encrypt(x)) == model(x)``.

    ``model`` is a timm ``VisionTransformer`` or an :class:`ImageClassifier` wrapping one (the
    same kind is returned); ``cipher`` must be a ``proposed`` cipher whose block size is the
    model's patch size and whose block grid is the model's patch grid.
    """
    VitKeyedClassifier.check_cipher(cipher)
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
    keyed = copy.deepcopy(model)
    target = keyed.net if isinstance(keyed, ImageClassifier) else keyed
    weight, pos_embed = target.patch_embed.proj.weight, target.pos_embed
    pixel_index = patch_pixel_permutation(key["pixel_perm"], cipher.block_size, weight.shape[1])
    pixel_index_t = torch.from_numpy(pixel_index).to(weight.device)
    block_index_t = torch.from_numpy(key["block_perm"]).to(pos_embed.device)
    with torch.no_grad():
        weight.copy_(weight.flatten(1)[:, pixel_index_t].view_as(weight))
        pos_embed[:, start:] = pos_embed[:, start:][:, block_index_t]
    return keyed


def patch_pixel_permutation(pixel_perm: np.ndarray, block_size: int, channels: int) -> np.ndarray:
    """The permutation Pi of a flattened ``[C, M, M]`` patch that K2 induces: ciphertext entry j is plain entry Pi[j].

    With h = M/2, position (a h + u, b h + v) of sub-block (a, b) takes (a h + u', b h + v') where
    (u', v') = divmod(K2[u h + v], h); every channel moves the same way.
    """
    half = block_size // 2
    pixel_perm = np.asarray(pixel_perm, dtype=np.int64)
    if block_size % 2 or pixel_perm.shape != (half * half,):
        raise ValueError(
            f"pixel_perm must have (block_size/2)^2 = {half * half} entries for an even block_size, got {pixel_perm.shape}"
        )
    rows, cols = np.divmod(np.arange(block_size * block_size), block_size)
    src_u, src_v = np.divmod(pixel_perm[(rows % half) * half + cols % half], half)
    spatial = (rows - rows % half + src_u) * block_size + (cols - cols % half + src_v)
    return spatial_to_flat(spatial, channels)


def check_keyable_vit(vit: VisionTransformer, block_size: int) -> tuple[int, int]:
    """First patch row of ``pos_embed`` and the number of patches; ValueError if the ViT cannot be keyed."""
    patch = tuple(vit.patch_embed.patch_size)
    if patch != (block_size, block_size):
        raise ValueError(f"the cipher's block_size {block_size} must equal the ViT's patch size {patch}")
    proj = vit.patch_embed.proj
    if not isinstance(proj, nn.Conv2d) or tuple(proj.stride) != patch or tuple(proj.padding) != (0, 0):
        raise ValueError("the ViT's patch embedding must be a non-overlapping convolution (kernel = stride = patch)")
    if getattr(vit, "dynamic_img_size", False) or getattr(vit.patch_embed, "dynamic_img_pad", False):
        raise ValueError("a ViT with dynamic_img_size/dynamic_img_pad cannot be keyed: its patch grid is not fixed")
    if vit.pos_embed is None:
        raise ValueError("the ViT needs learned absolute position embeddings (pos_embed) to be keyed")
    start = 0 if vit.no_embed_class else vit.num_prefix_tokens
    grid = tuple(vit.patch_embed.grid_size)
    n_patches = grid[0] * grid[1]
    if vit.pos_embed.shape[1] != start + n_patches:
        raise ValueError(f"pos_embed has {vit.pos_embed.shape[1]} rows, expected {start + n_patches}")
    return start, n_patches
