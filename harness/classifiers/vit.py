"""``vit``: a timm Vision Transformer whose patch size is the cipher's block size (the seed's model).

Sizes range from ``nano`` (a few hundred thousand parameters, for 32 x 32 on a CPU) to ``base``
(``vit_base_patch16_224``, the seed's ViT-B/16).  ``weights_file`` loads pretrained weights from
a local file through timm (patch and position embeddings are resampled by timm when the patch
size or grid differs); ``pretrained=True`` asks timm to download them.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from harness.classifiers._timm import create_timm_model
from harness.classifiers.base import Classifier
from harness.registry import classifiers

#: size preset -> (timm architecture, embed_dim, depth, num_heads, mlp_ratio)
VIT_SIZES: dict[str, tuple[str, int, int, int, float]] = {
    "nano": ("vit_tiny_patch16_224", 96, 4, 3, 2.0),
    "micro": ("vit_tiny_patch16_224", 128, 6, 4, 2.0),
    "tiny": ("vit_tiny_patch16_224", 192, 12, 3, 4.0),
    "small": ("vit_small_patch16_224", 384, 12, 6, 4.0),
    "base": ("vit_base_patch16_224", 768, 12, 12, 4.0),
}

#: images at least this large default to patch 16 on block-free ciphers, smaller ones to 4
LARGE_IMAGE = 128


@classifiers.register("vit")
class VitClassifier(Classifier):
    """timm ``VisionTransformer``; ``patch_size`` equals the cipher's block size when it has blocks."""

    small_options = {"size": "nano", "embed_dim": 32, "depth": 1, "num_heads": 2}
    options = {
        "size": "nano",  # a key of VIT_SIZES
        "patch_size": None,  # only for block-free ciphers (block size 1); default 4, or 16 from 128 px
        "embed_dim": None,  # None: the size preset's; set to override
        "depth": None,
        "num_heads": None,
        "mlp_ratio": None,
        "global_pool": "token",  # 'token' (class token) or 'avg'
        "class_token": True,
        "drop_path_rate": 0.0,
        "pretrained": False,  # True: timm downloads the preset's weights (needs a network)
        "weights_file": None,  # local weights file (timm format); wins over ``pretrained``
        "pretrained_tag": None,  # timm weight tag, e.g. 'augreg_in21k' for ImageNet-21k weights
    }

    @classmethod
    def resolve_options(cls, *, image_size: tuple[int, int], block_size: int, **options: Any) -> dict[str, Any]:
        resolved = super().resolve_options(image_size=image_size, block_size=block_size, **options)
        if resolved["size"] not in VIT_SIZES:
            raise ValueError(f"size must be one of {sorted(VIT_SIZES)}, got {resolved['size']!r}")
        _, dim, depth, heads, mlp = VIT_SIZES[resolved["size"]]
        for key, value in (("embed_dim", dim), ("depth", depth), ("num_heads", heads), ("mlp_ratio", mlp)):
            if resolved[key] is None:
                resolved[key] = value
        resolved["patch_size"] = _patch_size(resolved["patch_size"], image_size, block_size)
        if not resolved["class_token"] and resolved["global_pool"] == "token":
            raise ValueError("global_pool='token' needs class_token=True; use global_pool='avg'")
        return resolved

    @classmethod
    def build_network(
        cls, *, num_classes: int, image_size: tuple[int, int], block_size: int, in_chans: int, **options: Any
    ) -> nn.Module:
        arch = VIT_SIZES[options["size"]][0]
        name = f"{arch}.{options['pretrained_tag']}" if options["pretrained_tag"] else arch
        return create_timm_model(
            name,
            weights_file=options["weights_file"],
            pretrained=options["pretrained"],
            num_classes=num_classes,
            img_size=image_size,
            in_chans=in_chans,
            patch_size=options["patch_size"],
            embed_dim=options["embed_dim"],
            depth=options["depth"],
            num_heads=options["num_heads"],
            mlp_ratio=options["mlp_ratio"],
            global_pool=options["global_pool"],
            class_token=options["class_token"],
            drop_path_rate=options["drop_path_rate"],
        )


def _patch_size(given: int | None, image_size: tuple[int, int], block_size: int) -> int:
    """The patch size: the cipher's block size, or for block-free ciphers the option / default."""
    if block_size > 1:
        if given is not None and given != block_size:
            raise ValueError(
                f"patch_size {given} differs from the cipher's block_size {block_size}; the ViT's patch "
                "size must equal the block size (set patch_size only for block-free ciphers)"
            )
        return block_size
    patch = given if given is not None else (16 if min(image_size) >= LARGE_IMAGE else 4)
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        raise ValueError(f"patch_size must be a positive integer, got {patch!r}")
    if image_size[0] % patch or image_size[1] % patch:
        raise ValueError(f"image_size {image_size} is not divisible by patch_size {patch}")
    return patch
