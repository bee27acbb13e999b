"""The model holder's threat: reading a keyed ViT's key from its weights.

In Kiya et al.'s model transformation (our ``vit_keyed``), the provider receives a plain ViT
transformed with the key: the patch-embedding columns gathered by the pixel map Pi that K2
induces (``W' = W[:, Pi]``) and the patch rows of the position embedding gathered by K1
(``E'[i] = E[K1[i]]``).  Whoever holds the transformed model can read the key back:

- *with the public checkpoint* (the seed fine-tunes the public ImageNet-21k ViT-B/16): match the
  columns of ``W'`` to those of ``W`` and the rows of ``E'`` to those of ``E`` by a linear
  assignment on squared distances.  Exact for a transformed checkpoint; after fine-tuning on
  encrypted images the columns have moved and the share of entries read right is what it is.
- *without a checkpoint*: the filters of a trained ViT are smooth patches and its position
  embeddings vary smoothly over the patch grid, so Pi and K1 are jigsaws over those smooth
  objects, solvable up to the grid's symmetries with ``puzzle``'s layout (spectral embedding,
  then pairwise swaps).
- *after training on ciphertexts* from public weights: what training moved (``trained - start``)
  is matched against what the same training moves on plain images (``plain - start``), whose
  columns the key gathers the same way (:func:`weight_update`).

The attacks built on these (``weights_checkpoint``, ``weights_finetuned``, ``weights_smooth``) are
in :mod:`attacks.weights`; the runner hands them the models (the ``model-holder`` threat model).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from timm.models.vision_transformer import VisionTransformer

from attacks.puzzle import SquaredDistance, descend, grid_edges, spectral_layout


def _assign(cost: np.ndarray) -> tuple[np.ndarray, float]:
    """The permutation ``p`` minimising ``sum_i cost[i, p[i]]`` and the mean cost it leaves."""
    rows, columns = linear_sum_assignment(cost)
    perm = np.empty(cost.shape[0], dtype=np.int64)
    perm[rows] = columns
    return perm, float(cost[rows, columns].mean())


def match_rows(keyed: torch.Tensor, public: torch.Tensor) -> tuple[np.ndarray, float]:
    """``p`` with ``keyed[i] ~ public[p[i]]`` (a permutation minimising the summed squared distance)
    and the mean squared distance of the match (0 for an exact gather)."""
    keyed, public = keyed.detach().double().cpu(), public.detach().double().cpu()
    return _assign(torch.cdist(keyed, public).pow(2).numpy())


def match_signed_rows(keyed: torch.Tensor, public: torch.Tensor) -> tuple[np.ndarray, np.ndarray, float]:
    """``(p, s, cost)`` with ``keyed[i] ~ s[i] public[p[i]]``, ``s`` in {1, -1}: :func:`match_rows` where
    each pair costs the nearer of the two signs (0 for an exact signed gather)."""
    keyed, public = keyed.detach().double().cpu(), public.detach().double().cpu()
    plus, minus = torch.cdist(keyed, public).pow(2).numpy(), torch.cdist(keyed, -public).pow(2).numpy()
    perm, cost = _assign(np.minimum(plus, minus))
    rows = np.arange(perm.shape[0])
    return perm, np.where(minus[rows, perm] < plus[rows, perm], -1, 1).astype(np.int64), cost


def _position_rows(vit: VisionTransformer) -> torch.Tensor:
    """The patch rows of ``pos_embed`` ``[patches, D]`` (the prefix tokens' rows dropped)."""
    start = 0 if vit.no_embed_class else vit.num_prefix_tokens
    return vit.pos_embed[0, start:]


def _parts(vit: VisionTransformer) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W [D, C*M*M], E [patches, D])``: the patch-embedding weight and the patch rows of pos_embed."""
    return vit.patch_embed.proj.weight.flatten(1), _position_rows(vit)


def read_key_with_checkpoint(keyed: VisionTransformer, public: VisionTransformer) -> tuple[np.ndarray, np.ndarray, float]:
    """``(block_perm K1, patch_index Pi, match cost)`` of a keyed ViT, given the public model it came from."""
    keyed_weight, keyed_pos = _parts(keyed)
    public_weight, public_pos = _parts(public)
    patch_index, weight_cost = match_rows(keyed_weight.T, public_weight.T)
    block_perm, pos_cost = match_rows(keyed_pos, public_pos)
    return block_perm, patch_index, weight_cost + pos_cost


def read_signed_key_with_checkpoint(
    keyed: VisionTransformer, public: VisionTransformer
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``(block_perm, perm, sign, match cost)`` of a CFE-keyed ViT (``vit_cfe_keyed``) given the public
    model it came from: ``block_perm`` from the position-embedding rows, and the within-block maps
    ``perm``, ``sign`` ``[K, C*M*M]`` with ``W'[:, j] ~ sign[j] W[:, perm[j]]`` from the patch-embedding
    columns.  A convolution's weight ``[D, C, M, M]`` holds one map (K = 1); a per-position weight
    ``[N, D, C*M*M]`` one per patch position i, which is the map of its source block ``block_perm[i]``:
    the rows come back indexed by source block, as the cipher's per-block keys are."""
    block_perm, cost = match_rows(_position_rows(keyed), _position_rows(public))
    public_columns = public.patch_embed.proj.weight.flatten(1).T
    weight = keyed.patch_embed.proj.weight
    per_position = weight.flatten(1)[None] if weight.dim() == 4 else weight
    maps = [match_signed_rows(w.T, public_columns) for w in per_position]
    perm = np.stack([m[0] for m in maps])
    sign = np.stack([m[1] for m in maps])
    if len(maps) > 1:
        perm[block_perm], sign[block_perm] = perm.copy(), sign.copy()
    return block_perm, perm, sign, cost + float(np.mean([m[2] for m in maps]))


def image_map_of_block_maps(
    block_perm: np.ndarray, perm: np.ndarray, sign: np.ndarray, block_size: int, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The gather ``index`` (ciphertext element <- plain element) and XOR ``mask`` over ``shape`` = (C, H, W)
    of a cipher that moves main block ``block_perm[i]`` to position i and maps its entries within the
    block as ``perm``/``sign`` (rows per source block, or one row for all) say: ciphertext entry j of a
    block is plain entry ``perm[j]`` (``(channel, row, col)`` order), negated (mask 255) where ``sign[j]`` is -1."""
    channels, height, width = shape
    m, cols, plane = block_size, width // block_size, height * width
    channel, pixel = np.divmod(np.arange(channels * plane), plane)
    row, col = np.divmod(pixel, width)
    source = np.asarray(block_perm)[(row // m) * cols + col // m]
    key_row = source if perm.shape[0] > 1 else np.zeros_like(source)
    local = channel * m * m + (row % m) * m + col % m
    source_channel, source_pixel = np.divmod(perm[key_row, local], m * m)
    source_row, source_col = np.divmod(source_pixel, m)
    index = source_channel * plane + ((source // cols) * m + source_row) * width + (source % cols) * m + source_col
    return index.astype(np.int64), np.where(sign[key_row, local] < 0, 255, 0).astype(np.uint8)


def weight_update(model: VisionTransformer, start: VisionTransformer) -> VisionTransformer:
    """A copy of ``model`` whose patch embedding and position embedding are ``model``'s minus
    ``start``'s: what training moved, the part of the weights that carries a key learnt from data."""
    if model.patch_embed.proj.weight.shape != start.patch_embed.proj.weight.shape or model.pos_embed.shape != start.pos_embed.shape:
        raise ValueError("model and start must be the same architecture (patch and position embeddings of equal shapes)")
    moved = copy.deepcopy(model)
    with torch.no_grad():
        moved.patch_embed.proj.weight.sub_(start.patch_embed.proj.weight.to(moved.patch_embed.proj.weight.device))
        moved.pos_embed.sub_(start.pos_embed.to(moved.pos_embed.device))
    return moved


def pixel_perm_from_patch_index(patch_index: np.ndarray, block_size: int, channels: int) -> np.ndarray:
    """The ``proposed`` cipher's K2 that best explains a patch map Pi (every channel and sub-block
    votes; a linear assignment makes the votes a permutation)."""
    half = block_size // 2
    size = half * half
    votes = np.zeros((size, size))
    source = np.asarray(patch_index) % (block_size * block_size)  # spatial source of each entry
    rows, cols = np.divmod(np.arange(block_size * block_size), block_size)
    local = (rows % half) * half + cols % half
    src_rows, src_cols = np.divmod(source, block_size)
    same_sub_block = (src_rows // half == np.tile(rows // half, channels)) & (src_cols // half == np.tile(cols // half, channels))
    src_local = (src_rows % half) * half + src_cols % half
    np.add.at(votes, (np.tile(local, channels)[same_sub_block], src_local[same_sub_block]), 1)
    _, pixel_perm = linear_sum_assignment(-votes)
    return pixel_perm.astype(np.int64)


def _layout(features: torch.Tensor, side: int) -> np.ndarray:
    """Items (rows of ``features``) placed on a ``side x side`` grid by smoothness: the gather
    ``p`` with item i at cell ``p[i]``, up to the grid's 8 symmetries."""
    distance = SquaredDistance()
    distance.add(features, features)
    cost = distance.result()
    arrangement = spectral_layout(cost, side)  # cell -> item
    arrangement, _ = descend(arrangement, grid_edges(side, side, cost, cost))
    return torch.argsort(arrangement).numpy().astype(np.int64)


def read_key_without_checkpoint(keyed: VisionTransformer, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(block_perm K1, pixel_perm K2)`` of a ``proposed``-keyed ViT from its own weights only, each
    up to a symmetry of its grid: K2 from the smoothness of the patch filters (every output
    channel, colour channel and sub-block pooled), K1 from the smoothness of the position
    embedding over a square patch grid."""
    weight, pos = _parts(keyed)
    half = block_size // 2
    filters = keyed.patch_embed.proj.weight.detach().double().cpu()  # [D, C, M, M]
    grid = filters.view(filters.shape[0], filters.shape[1], 2, half, 2, half)
    by_position = grid.permute(3, 5, 0, 1, 2, 4).reshape(half * half, -1)
    pixel_perm = _layout(by_position, half)
    side = int(round(pos.shape[0] ** 0.5))
    if side * side != pos.shape[0]:
        raise ValueError(f"the patch grid must be square to lay out the position embedding, got {pos.shape[0]} patches")
    block_perm = _layout(pos.detach().double().cpu(), side)
    return block_perm, pixel_perm
