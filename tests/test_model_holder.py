"""The model holder reads a keyed ViT's key: exactly with the public checkpoint, approximately after
the weights moved, and up to the grid's symmetries from smooth weights alone."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from attacks._model_holder import pixel_perm_from_patch_index, read_key_with_checkpoint, read_key_without_checkpoint
from harness.classifiers.vit_keyed import keyed_vit
from harness.registry import create_cipher


def _vit(seed: int = 0) -> VisionTransformer:
    torch.manual_seed(seed)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=2, num_classes=10)


@pytest.fixture(scope="module")
def keyed() -> tuple[VisionTransformer, VisionTransformer, object]:
    public = _vit()
    cipher = create_cipher("proposed", (32, 32), 8, seed=7)
    return public, keyed_vit(public, cipher), cipher


def test_the_public_checkpoint_gives_the_whole_key(keyed) -> None:
    public, transformed, cipher = keyed
    block_perm, patch_index, cost = read_key_with_checkpoint(transformed, public)
    key = cipher.key()
    assert cost < 1e-12 and np.array_equal(block_perm, key["block_perm"])
    assert np.array_equal(pixel_perm_from_patch_index(patch_index, 8, 3), key["pixel_perm"])
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    recovered = cipher.rebuild(block_perm=block_perm, pixel_perm=pixel_perm_from_patch_index(patch_index, 8, 3))
    assert torch.equal(recovered.decrypt(cipher.encrypt(images)), images)


def test_weights_that_moved_still_give_most_of_the_key(keyed) -> None:
    public, transformed, cipher = keyed
    moved = _vit()
    moved.load_state_dict(transformed.state_dict())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a stand-in for fine-tuning: every weight moves by 30% of its spread
        for tensor in (moved.patch_embed.proj.weight, moved.pos_embed):
            tensor.add_(0.3 * tensor.std() * torch.randn(tensor.shape, generator=generator))
    block_perm, patch_index, _ = read_key_with_checkpoint(moved, public)
    key = cipher.key()
    pixel_perm = pixel_perm_from_patch_index(patch_index, 8, 3)
    share = (np.sum(block_perm == key["block_perm"]) + np.sum(pixel_perm == key["pixel_perm"])) / (16 + 16)
    assert share > 0.9


def _smooth_vit() -> VisionTransformer:
    """A ViT whose filters and position embedding are smooth, as trained ones are (no checkpoint needed)."""
    vit = _vit(1)
    grid = torch.linspace(0, 1, 8)
    rows, cols = torch.meshgrid(grid, grid, indexing="ij")
    frequencies = torch.randn(48, 2, generator=torch.Generator().manual_seed(2)) * 1.5
    phases = torch.rand(48, 3, generator=torch.Generator().manual_seed(3)) * 2 * math.pi
    filters = torch.stack([torch.sin(frequencies[:, :1, None] * rows + frequencies[:, 1:, None] * cols + phases[:, c, None, None])
                           for c in range(3)], dim=1)
    patch_grid = torch.linspace(0, 1, 4)
    prow, pcol = torch.meshgrid(patch_grid, patch_grid, indexing="ij")
    pos = torch.sin(frequencies[:, :1, None] * prow + frequencies[:, 1:, None] * pcol + phases[:, :1, None]).flatten(1).T
    with torch.no_grad():
        vit.patch_embed.proj.weight.copy_(filters)
        vit.pos_embed[0, 1:].copy_(pos)
    return vit


def _grid_symmetries(side: int) -> list[np.ndarray]:
    cells = np.arange(side * side).reshape(side, side)
    return [np.flip(np.rot90(cells, turns), 1).reshape(-1) if mirror else np.rot90(cells, turns).reshape(-1)
            for turns in range(4) for mirror in (False, True)]


def test_smooth_weights_alone_give_the_key_up_to_a_grid_symmetry() -> None:
    cipher = create_cipher("proposed", (32, 32), 8, seed=11)
    transformed = keyed_vit(_smooth_vit(), cipher)
    block_perm, pixel_perm = read_key_without_checkpoint(transformed, 8)
    key = cipher.key()
    assert any(np.array_equal(block_perm, g[key["block_perm"]]) for g in _grid_symmetries(4))
    assert any(np.array_equal(pixel_perm, g[key["pixel_perm"]]) for g in _grid_symmetries(4))
