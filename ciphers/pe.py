"""``pe``: pixel-based encryption (Sirichotedumrong, Kinoshita, Kiya, IEEE Access 2019).

Per pixel: a negative-positive bit per colour component (``v -> 255 - v``, i.e. ``v ^ 255``),
then one of the 6 permutations of the three components (output channel j = input channel p[j]).
Its normal key condition is ``diff_key`` ("without key management": a fresh key per image), which
:class:`PEDiffKeyCipher` (registered as ``pe``) implements by deriving every image's key from a
secret ``key_seed`` and the image id; :class:`PECipher` applies one explicit key to every image
(``same_key``).  Both are one gather plus one XOR over the batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ciphers._common import CHANNEL_PERMUTATIONS, check_image_ids, reject_options, seeded_sizes
from ciphers.base import Cipher, IndexMapCipher
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


def pe_maps(negpos: np.ndarray, channel_perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat gather index ``[B, 3*H*W]`` (int64) and XOR mask (uint8) of a batch of PE keys.

    ``negpos`` [B, 3, H, W], ``channel_perm`` [B, H, W].  Output component (c, y, x) is input
    component (p[c], y, x), flipped when that *input* component's bit is set (the flip comes first).
    """
    batch, _, height, width = negpos.shape
    plane = height * width
    source = np.moveaxis(CHANNEL_PERMUTATIONS[channel_perm], -1, 1)  # [B, 3, H, W]: p[c] at each pixel
    index = source.reshape(batch, 3, plane) * plane + np.arange(plane)
    mask = np.take_along_axis(negpos, source, axis=1) * np.uint8(255)
    return index.reshape(batch, -1), mask.reshape(batch, -1).astype(np.uint8)


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


class PECipher(_PixelKeySpace, IndexMapCipher):
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

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "PECipher":
        """``same_key`` (the only condition this class has): :func:`draw_key` from ``default_rng(seed)``."""
        reject_options("PECipher", options, ("key_condition",))
        if options.get("key_condition", "same_key") != "same_key":
            raise ValueError("PECipher holds one key for all images: key_condition must be 'same_key' "
                             "(PEDiffKeyCipher, registered as 'pe', is the diff_key form)")
        return _from_seed(seed, image_size, block_size, "same_key")  # type: ignore[return-value]

    def rebuild(self, **key: object) -> "PECipher":
        return type(self)(**{**self.key(), **key})

    def key(self) -> dict[str, np.ndarray]:
        return {"negpos": self.negpos.copy(), "channel_perm": self.channel_perm.copy()}

    def _image_maps(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        if (height, width) != self.image_size:
            raise ValueError(
                f"negpos and channel_perm were made for {self.image_size[0]}x{self.image_size[1]} "
                f"images, got {height}x{width}"
            )
        index, mask = pe_maps(self.negpos[None], self.channel_perm[None])
        return index[0], mask[0]

    def index_map(self, channels: int, height: int, width: int) -> np.ndarray:
        return self._image_maps(height, width)[0]

    def xor_mask(self, channels: int, height: int, width: int) -> np.ndarray:
        return self._image_maps(height, width)[1]


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
            raise ValueError(f"key_seed must be a one-element array holding a non-negative integer, got shape {seed.shape}")
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

    def _batch_maps(self, shape: torch.Size, image_ids: torch.Tensor | None, device: torch.device):
        batch, _, height, width = shape
        if (height, width) != self.image_size:
            raise ValueError(
                f"key_seed derives keys for {self.image_size[0]}x{self.image_size[1]} images, got {height}x{width}"
            )
        # one numpy generator per image id: each image's key stream is independent of the batch it is in,
        # so this loop over the batch's images (key drawing only) cannot be vectorised away
        keys = [self.image_key(i) for i in check_image_ids(image_ids, batch).tolist()]
        negpos = np.array([k[0] for k in keys], dtype=np.uint8).reshape(batch, 3, height, width)
        channel_perm = np.array([k[1] for k in keys], dtype=np.uint8).reshape(batch, height, width)
        index, mask = pe_maps(negpos, channel_perm)
        return torch.from_numpy(index).to(device), torch.from_numpy(mask).to(device)

    def _encrypt(self, images: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        index, mask = self._batch_maps(images.shape, image_ids, images.device)
        flat = images.reshape(images.shape[0], -1)
        return torch.gather(flat, 1, index).bitwise_xor_(mask).view(images.shape)

    def _decrypt(self, ciphertexts: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        index, mask = self._batch_maps(ciphertexts.shape, image_ids, ciphertexts.device)
        flat = ciphertexts.reshape(ciphertexts.shape[0], -1)
        return torch.empty_like(flat).scatter_(1, index, flat ^ mask).view(ciphertexts.shape)

