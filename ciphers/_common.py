"""Small pieces shared by the comparison ciphers (LE, ELE, EtC, PE): option and image-id checks
(the colour-permutation coding is public, in :mod:`ciphers.transforms`).

Private module (leading underscore): the registry does not import it as a plugin.
"""

from __future__ import annotations

import torch

from ciphers.base import Cipher


def reject_options(cipher: str, options: dict[str, object], allowed: tuple[str, ...] = ()) -> None:
    """Raise a ValueError naming every option a seeded constructor does not know."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "none"
        raise ValueError(f"{cipher} does not accept option(s) {', '.join(unknown)} (accepted: {accepted})")


def check_image_ids(image_ids: torch.Tensor | None, batch: int) -> torch.Tensor:
    """The image ids of a batch (``arange(batch)`` when None) as a CPU int64 tensor, validated."""
    if image_ids is None:
        return torch.arange(batch)
    if not isinstance(image_ids, torch.Tensor) or image_ids.dtype.is_floating_point or image_ids.dtype == torch.bool:
        raise ValueError(f"image_ids must be an integer torch.Tensor, got {image_ids!r:.60}")
    if image_ids.shape != (batch,):
        raise ValueError(f"image_ids must have shape ({batch},) for a batch of {batch}, got {tuple(image_ids.shape)}")
    ids = image_ids.detach().to("cpu", torch.int64)
    if batch and int(ids.min()) < 0:
        raise ValueError("image_ids must be non-negative")
    return ids


def seeded_sizes(cls: type[Cipher], image_size: object, block_size: int | None) -> tuple[int, int, int]:
    """``(block_size, H, W)`` for a seeded constructor: the class default block when None, validated."""
    block = cls._check_block_size(cls.default_block_size if block_size is None else block_size)
    height, width = cls._check_image_size(image_size, block)
    return block, height, width
