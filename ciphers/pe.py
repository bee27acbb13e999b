"""``pe``: pixel-based encryption (Sirichotedumrong, Kinoshita, Kiya, IEEE Access 2019).

Per pixel: a negative-positive bit per colour component (``v -> 255 - v``, i.e. ``v ^ 255``),
then one of the 6 permutations of the three components (output channel j = input channel p[j]).
Its normal key condition is ``diff_key`` ("without key management": a fresh key per image), which
:class:`PEDiffKeyCipher` (registered as ``pe``) implements by deriving every image's key from a
secret ``key_seed`` and the image id; :class:`PECipher` applies one explicit key to every image
(``same_key``).

Both run the same vectorised transform over the whole batch: per component, three uint8 fused
multiply-adds that pick the source channel and flip it (:class:`AffineMap`).  On CPU this is
several times faster than a gather with an int64 index per byte, and needs no index at all.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from ciphers._common import check_image_ids, reject_options, seeded_sizes
from ciphers.base import Cipher
from harness.keys import check_choices, derive_seed, rng
from harness.registry import ciphers

KEY_CONDITIONS = ("diff_key", "same_key")
#: per pixel: 2^3 negative-positive patterns times 3! colour orders, all distinct maps
_TRANSFORMS_PER_PIXEL = 8 * 6


def draw_key(generator: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One image's key, in this fixed order: ``negpos`` [3, H, W] then ``channel_perm`` [H, W] (uint8)."""
    negpos = generator.integers(0, 2, size=(3, height, width), dtype=np.uint8)
    channel_perm = generator.integers(0, 6, size=(height, width), dtype=np.uint8)
    return negpos, channel_perm


class AffineMap(NamedTuple):
    """PE in one direction as uint8 arithmetic (mod 256) over tensors ``[B or 1, 3, H, W]``:
    ``out = offset + x0 * weights[0] + x1 * weights[1] + x2 * weights[2]``.

    ``weights[k]`` is 0 where output component c does not come from input channel k, else 1, or
    255 (= -1) when the component is flipped, with ``offset`` 255 there: ``255 - v = 255 + 255 v``
    (mod 256).  Three fused multiply-adds, no index and no separate XOR pass.
    """

    offset: torch.Tensor
    weights: tuple[torch.Tensor, ...]


class PixelKey(NamedTuple):
    """A batch of PE keys, as the two maps :func:`pe_encrypt` and :func:`pe_decrypt` apply."""

    forward: AffineMap
    backward: AffineMap


def source_channels(channel_perm: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]``: p[c] for each output channel c, from ``channel_perm`` [B, H, W] (0..5).

    Arithmetic on the index instead of a table lookup (several times faster on large batches):
    in ``itertools.permutations`` order p[0] = cp // 2, and p[1] is the smaller (cp even) or the
    larger (cp odd) of the two channels left; p[2] is the last one.
    """
    first = channel_perm >> 1
    odd = channel_perm & 1
    smaller_left = (first == 0).view(torch.uint8)  # 1 if channel 0 is taken, else 0
    larger_left = 2 - (first == 2).view(torch.uint8)  # 1 if channel 2 is taken, else 2
    second = torch.where(odd.bool(), larger_left, smaller_left)
    return torch.stack([first, second, 3 - first - second], dim=1)


def pixel_key(negpos: np.ndarray, channel_perm: np.ndarray, device: torch.device) -> PixelKey:
    """:class:`PixelKey` of ``negpos`` [B, 3, H, W] and ``channel_perm`` [B, H, W] on ``device``.

    Output component (c, y, x) is input component (p[c], y, x), flipped when that *input*
    component's bit is set (the flip comes first).
    """
    source = source_channels(torch.from_numpy(channel_perm).to(device))
    forward = tuple((source == k).view(torch.uint8) for k in range(3))  # 1 where p[c] = k
    # decryption: plain channel k is cipher channel c where p[c] = k, i.e. the (k, c) transpose
    backward = tuple(torch.stack([forward[k][:, c] for k in range(3)], dim=1) for c in range(3))
    input_flip = torch.from_numpy(negpos).to(device)
    output_flip = _apply(AffineMap(torch.zeros((), dtype=torch.uint8, device=device), forward), input_flip)
    return PixelKey(_signed(forward, output_flip), _signed(backward, input_flip))


def _signed(selectors: tuple[torch.Tensor, ...], flip: torch.Tensor) -> AffineMap:
    """The :class:`AffineMap` choosing channels by 0/1 ``selectors``, flipping where ``flip`` is 1."""
    sign = flip * 254 + 1  # 1, or 255 = -1 (mod 256)
    return AffineMap(flip * 255, tuple(selector * sign for selector in selectors))


def _apply(affine: AffineMap, images: torch.Tensor) -> torch.Tensor:
    out = torch.addcmul(affine.offset, images[:, 0:1], affine.weights[0])
    out.addcmul_(images[:, 1:2], affine.weights[1])
    return out.addcmul_(images[:, 2:3], affine.weights[2])


def pe_encrypt(images: torch.Tensor, key: PixelKey) -> torch.Tensor:
    return _apply(key.forward, images)


def pe_decrypt(ciphertexts: torch.Tensor, key: PixelKey) -> torch.Tensor:
    return _apply(key.backward, ciphertexts)


def _from_seed(seed: int, image_size: object, block_size: int | None, key_condition: object) -> Cipher:
    """The seeded constructor of both classes; ``key_condition`` picks the class."""
    if key_condition not in KEY_CONDITIONS:
        raise ValueError(f"key_condition must be one of {', '.join(KEY_CONDITIONS)}, got {key_condition!r}")
    if block_size not in (None, 1):
        raise ValueError(f"pe works pixel by pixel: block_size must be 1 (or None), got {block_size!r}")
    _, height, width = seeded_sizes(PECipher, image_size, 1)
    generator = rng(seed)  # validates the seed for both conditions
    if key_condition == "same_key":
        return PECipher(*draw_key(generator, height, width))
    if seed >= 2**64:
        raise ValueError(f"seed must be below 2**64 for diff_key (it becomes the uint64 key_seed), got {seed}")
    return PEDiffKeyCipher(np.array([seed], dtype=np.uint64), (height, width))


class _PixelKeySpace:
    """Key space and public parameters shared by both PE classes (48 distinct maps per pixel)."""

    image_size: tuple[int, int]
    key_condition: str

    def key_space(self) -> int:
        return _TRANSFORMS_PER_PIXEL ** (self.image_size[0] * self.image_size[1])

    def key_space_log2(self) -> float:
        return self.image_size[0] * self.image_size[1] * math.log2(_TRANSFORMS_PER_PIXEL)

    def effective_key_space_log2(self) -> float:
        return self.key_space_log2()

    def params(self) -> dict[str, object]:
        return {"block_size": 1, "image_size": self.image_size, "key_condition": self.key_condition}


class PECipher(_PixelKeySpace, Cipher):
    """PE with one explicit key (``negpos`` [3, H, W] in {0, 1}, ``channel_perm`` [H, W] in 0..5) for every image."""

    default_block_size = 1
    channels = 3
    key_condition = "same_key"

    def __init__(self, negpos: object, channel_perm: object) -> None:
        super().__init__(1)
        negpos_array = np.asarray(negpos)
        if negpos_array.ndim != 3 or negpos_array.shape[0] != 3:
            raise ValueError(f"negpos must have shape [3, H, W], got {tuple(negpos_array.shape)}")
        perm_array = np.asarray(channel_perm)
        if perm_array.ndim != 2:
            raise ValueError(f"channel_perm must have shape [H, W], got {tuple(perm_array.shape)}")
        if perm_array.shape != negpos_array.shape[1:]:
            raise ValueError(
                f"negpos {tuple(negpos_array.shape)} and channel_perm {tuple(perm_array.shape)} "
                "must cover the same H x W pixels"
            )
        self.negpos = check_choices(negpos_array, negpos_array.shape, 2, "negpos").astype(np.uint8)
        self.channel_perm = check_choices(perm_array, perm_array.shape, 6, "channel_perm").astype(np.uint8)
        self.image_size = (int(perm_array.shape[0]), int(perm_array.shape[1]))
        self._keys: dict[torch.device, PixelKey] = {}

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "PECipher":
        """``same_key`` (the only condition this class has): :func:`draw_key` from ``default_rng(seed)``."""
        reject_options("PECipher", options, ("key_condition",))
        if options.get("key_condition", "same_key") != "same_key":
            raise ValueError(
                "PECipher holds one key for all images: key_condition must be 'same_key' "
                "(PEDiffKeyCipher, registered as 'pe', is the diff_key form)"
            )
        return _from_seed(seed, image_size, block_size, "same_key")  # type: ignore[return-value]

    def rebuild(self, **key: object) -> "PECipher":
        return type(self)(**{**self.key(), **key})

    def key(self) -> dict[str, np.ndarray]:
        return {"negpos": self.negpos.copy(), "channel_perm": self.channel_perm.copy()}

    def _key_tensors(self, shape: torch.Size, device: torch.device) -> PixelKey:
        if tuple(shape[-2:]) != self.image_size:
            raise ValueError(
                f"negpos and channel_perm were made for {self.image_size[0]}x{self.image_size[1]} "
                f"images, got {shape[-2]}x{shape[-1]}"
            )
        if device not in self._keys:
            self._keys[device] = pixel_key(self.negpos[None], self.channel_perm[None], device)
        return self._keys[device]

    def _encrypt(self, images: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        return pe_encrypt(images, self._key_tensors(images.shape, images.device))

    def _decrypt(self, ciphertexts: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        return pe_decrypt(ciphertexts, self._key_tensors(ciphertexts.shape, ciphertexts.device))


@ciphers.register("pe")
class PEDiffKeyCipher(_PixelKeySpace, Cipher):
    """PE with a fresh key per image: image ``i`` uses :func:`draw_key` from
    ``default_rng(derive_seed(key_seed, "pe", i))``, i.e. the key of :meth:`image_cipher` ``(i)``.

    ``key_seed`` (a one-element uint64 array, so it can be saved like any key) is the secret;
    ``image_ids`` (default ``arange(B)``) say which key each image of a batch gets, so an image
    keeps its key whatever batch it is in.
    """

    default_block_size = 1
    channels = 3
    per_image_key = True
    key_condition = "diff_key"

    def __init__(self, key_seed: object, image_size: tuple[int, int]) -> None:
        super().__init__(1)
        seed = np.asarray(key_seed)
        if seed.shape != (1,) or not np.issubdtype(seed.dtype, np.integer) or int(seed[0]) < 0:
            raise ValueError(
                f"key_seed must be a one-element array holding a non-negative integer, got shape {seed.shape}"
            )
        self.key_seed = int(seed[0])
        self.image_size = self._check_image_size(image_size, 1)

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> Cipher:
        """``key_condition="diff_key"`` (default): ``key_seed = seed``; ``"same_key"``: a :class:`PECipher`."""
        reject_options("pe", options, ("key_condition",))
        return _from_seed(seed, image_size, block_size, options.get("key_condition", "diff_key"))

    def rebuild(self, **key: object) -> "PEDiffKeyCipher":
        return type(self)(**{**self.key(), **key}, image_size=self.image_size)

    def key(self) -> dict[str, np.ndarray]:
        return {"key_seed": np.array([self.key_seed], dtype=np.uint64)}

    def image_key(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(negpos, channel_perm)`` of image ``image_id`` (secret)."""
        return draw_key(rng(derive_seed(self.key_seed, "pe", int(image_id))), *self.image_size)

    def image_cipher(self, image_id: int) -> PECipher:
        """The explicit one-image cipher that encrypts image ``image_id``."""
        return PECipher(*self.image_key(image_id))

    def _batch_key(self, shape: torch.Size, image_ids: torch.Tensor | None, device: torch.device) -> PixelKey:
        batch, _, height, width = shape
        if (height, width) != self.image_size:
            raise ValueError(
                f"key_seed derives keys for {self.image_size[0]}x{self.image_size[1]} images, got {height}x{width}"
            )
        # one numpy generator per image id, so an image's key does not depend on the batch it is in:
        # this loop over the batch's images draws keys only and cannot be vectorised away
        keys = [self.image_key(i) for i in check_image_ids(image_ids, batch).tolist()]
        negpos = np.array([k[0] for k in keys], dtype=np.uint8).reshape(batch, 3, height, width)
        channel_perm = np.array([k[1] for k in keys], dtype=np.uint8).reshape(batch, height, width)
        return pixel_key(negpos, channel_perm, device)

    def _encrypt(self, images: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        return pe_encrypt(images, self._batch_key(images.shape, image_ids, images.device))

    def _decrypt(self, ciphertexts: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        return pe_decrypt(ciphertexts, self._batch_key(ciphertexts.shape, image_ids, ciphertexts.device))
