"""``pe``: pixel-based encryption (Sirichotedumrong, Kinoshita, Kiya, IEEE Access 2019).

Per pixel: a negative-positive bit per colour component (``v -> 255 - v``, i.e. ``v ^ 255``),
then one of the 6 permutations of the three components (output channel j = input channel p[j]).
Its normal key condition is ``diff_key`` ("without key management": a fresh key per image), which
:class:`PECipher` (registered as ``pe``) implements by deriving every image's key from a
secret ``key_seed`` and the image id with a counter-based hash (:func:`derive_keys`), vectorised
over the whole batch; :class:`PESameKeyCipher` applies one explicit key to every image (``same_key``).

Per-image key derivation (``diff_key``), all arithmetic on unsigned integers modulo 2^64 or 2^32,
computed where the images are (:func:`derive_keys_on`, torch's wrapping signed integers with
masked shifts) and equal bit for bit to the numpy reference :func:`derive_keys`, so every machine
and device gets the same keys and a GPU derives them without a host round trip:

1. image key ``K = splitmix64(key_seed + (i + 1) * 0x9E3779B97F4A7C15)`` for image id ``i``
   (output ``i`` of a SplitMix64 generator seeded with ``key_seed``), with the SplitMix64 finalizer
   ``z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31``;
   ``a = K mod 2^32``, ``b = K >> 32``.  Distinct ids give distinct K.
2. for pixel ``j = y * W + x``: ``h = fmix32(((j + a) mod 2^32) ^ b)``, MurmurHash3's finalizer
   ``h ^= h >> 16; h *= 0x85EBCA6B; h ^= h >> 13; h *= 0xC2B2AE35; h ^= h >> 16``.
3. ``channel_perm[y, x] = ((h >> 3) * 6) >> 29`` (0..5, ``itertools.permutations`` order, each
   order with probability 1/6 to within a relative 2^-26), and output component c comes out
   flipped iff bit c of h is set: ``negpos[p[c], y, x] = (h >> c) & 1`` (each bit uniform).

It is a keyed hash for a simulation, not a cryptographic PRF (neither is the PCG64 it replaced).

Both classes run a vectorised transform over the whole batch: ``same_key`` as three uint8 fused
multiply-adds per component with precomputed weights (:class:`AffineMap`), ``diff_key`` as XOR
deltas between channels selected by per-pixel 0/1 masks made with a few uint8 ops from the derived
codes (:func:`select_channels`).  Neither needs an index tensor.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from ciphers._common import reject_options, seeded_sizes
from ciphers.base import Cipher, Traits
from ciphers.transforms import CHANNEL_PERMUTATIONS
from harness.keys import check_choices, rng
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


_SPLITMIX_GAMMA = 0x9E3779B97F4A7C15


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer on a uint64 array (numpy's unsigned arithmetic wraps modulo 2^64)."""
    z = z ^ (z >> np.uint64(30))
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _fmix32(h: np.ndarray) -> None:
    """MurmurHash3's 32-bit finalizer, in place on a uint32 array (wrapping modulo 2^32)."""
    scratch = np.empty_like(h)
    for shift, multiplier in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        np.right_shift(h, shift, out=scratch)
        h ^= scratch
        h *= np.uint32(multiplier)
    np.right_shift(h, 16, out=scratch)
    h ^= scratch


class DerivedKeys(NamedTuple):
    """The ``diff_key`` keys of a batch as per-pixel codes, uint8 ``[B, H, W]`` each."""

    channel_perm: np.ndarray  #: 0..5, the colour order (``itertools.permutations`` order)
    flips: np.ndarray  #: bit c set: output component c is flipped (bits 3..7 are not used)


def derive_keys(key_seed: int, image_ids: np.ndarray, height: int, width: int) -> DerivedKeys:
    """The per-pixel keys of images ``image_ids`` under ``key_seed``, as the module docstring defines them.

    Vectorised over the batch and the pixels (one pass of integer hashing, no generator per image).
    """
    state = np.uint64(key_seed) + (image_ids.astype(np.uint64) + np.uint64(1)) * np.uint64(_SPLITMIX_GAMMA)
    image_key = _splitmix64(state)
    low = (image_key & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    high = (image_key >> np.uint64(32)).astype(np.uint32)
    h = np.arange(height * width, dtype=np.uint32)[None, :] + low[:, None]  # j + a (mod 2^32)
    h ^= high[:, None]
    _fmix32(h)
    flips = h.astype(np.uint8)  # the low byte: bits 0..2 are the flips
    h >>= 3
    h *= 6
    h >>= 29  # ((h >> 3) * 6) >> 29: the top of a 29-bit uniform value scaled to 0..5
    shape = (-1, height, width)
    return DerivedKeys(h.astype(np.uint8).reshape(shape), flips.reshape(shape))


def _wrap64(value: int) -> int:
    """An unsigned 64-bit constant as the signed int64 with the same bits (torch has no uint64 arithmetic)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _shr(values: torch.Tensor, shift: int, bits: int) -> torch.Tensor:
    """Logical right shift of ``bits``-bit unsigned values held in signed integers."""
    return (values >> shift) & ((1 << (bits - shift)) - 1)


def _splitmix64_torch(z: torch.Tensor) -> torch.Tensor:
    """:func:`_splitmix64` on int64 tensors (multiplication wraps modulo 2^64 as on uint64)."""
    z = z ^ _shr(z, 30, 64)
    z = z * _wrap64(0xBF58476D1CE4E5B9)
    z = z ^ _shr(z, 27, 64)
    z = z * _wrap64(0x94D049BB133111EB)
    return z ^ _shr(z, 31, 64)


def _fmix32_torch(h: torch.Tensor) -> torch.Tensor:
    """:func:`_fmix32` on int64 tensors holding 32-bit values (products keep their low 32 bits)."""
    mask = 0xFFFFFFFF
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & mask
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def derive_keys_on(key_seed: int, image_ids: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`derive_keys` computed in torch where ``image_ids`` (int64) live: ``(channel_perm, flips)``
    uint8 ``[B, H, W]``, bit for bit equal to the numpy reference on every device."""
    device = image_ids.device
    state = _wrap64(key_seed) + (image_ids.to(torch.int64) + 1) * _wrap64(_SPLITMIX_GAMMA)
    image_key = _splitmix64_torch(state)
    low, high = image_key & 0xFFFFFFFF, _shr(image_key, 32, 64)
    pixels = torch.arange(height * width, dtype=torch.int64, device=device)
    h = _fmix32_torch(((pixels[None, :] + low[:, None]) & 0xFFFFFFFF) ^ high[:, None])
    flips = (h & 0xFF).to(torch.uint8)
    channel_perm = ((_shr(h, 3, 32) * 6) >> 29).to(torch.uint8)
    shape = (-1, height, width)
    return channel_perm.view(shape), flips.view(shape)


def check_image_ids_on(image_ids: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
    """The batch's image ids as int64 on ``device`` (``arange`` when None), validated without reading
    them back to Python: the sign check is a device-side assertion, which the CPU raises at once
    and an accelerator raises later without a host round trip (so a training step never syncs)."""
    if image_ids is None:
        return torch.arange(batch, device=device)
    if not isinstance(image_ids, torch.Tensor) or image_ids.dtype.is_floating_point or image_ids.dtype == torch.bool:
        raise ValueError(f"image_ids must be an integer torch.Tensor, got {image_ids!r:.60}")
    if image_ids.shape != (batch,):
        raise ValueError(f"image_ids must have shape ({batch},) for a batch of {batch}, got {tuple(image_ids.shape)}")
    ids = image_ids.to(device, torch.int64)
    if batch:
        try:
            torch._assert_async(ids.min() >= 0, "image_ids must be non-negative")
        except RuntimeError:  # the CPU checks at once
            raise ValueError("image_ids must be non-negative") from None
    return ids


def _selector_tables(inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """For k = 1, 2: uint8 ``[1, 3, 1, 1]`` whose entry c has bit u set when colour order u (or its
    inverse) takes output channel c from input channel k; ``(table >> code) & 1`` is then the 0/1 selector."""
    orders = np.argsort(CHANNEL_PERMUTATIONS, axis=1) if inverse else CHANNEL_PERMUTATIONS
    bits = [[sum(1 << u for u in range(6) if orders[u, c] == k) for c in range(3)] for k in (1, 2)]
    return tuple(torch.tensor(row, dtype=torch.uint8).view(1, 3, 1, 1) for row in bits)


_FORWARD_SELECTORS = _selector_tables(inverse=False)
_BACKWARD_SELECTORS = _selector_tables(inverse=True)
_FLIP_SHIFTS = torch.tensor([7, 6, 5], dtype=torch.int8).view(1, 3, 1, 1)


def select_channels(images: torch.Tensor, channel_perm: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """``out[:, c] = images[:, p[c]]`` per pixel, p the colour order ``channel_perm`` ([B, H, W] uint8)
    (its inverse when ``inverse``): ``x0 ^ ((x0 ^ x1) * s1 + (x0 ^ x2) * s2)`` with 0/1 selectors s1, s2
    of which at most one is 1, so the sum is the chosen XOR delta."""
    one, two = (t.to(images.device) for t in (_BACKWARD_SELECTORS if inverse else _FORWARD_SELECTORS))
    code = channel_perm[:, None]
    x0 = images[:, 0:1]
    out = torch.mul(images[:, 1:2] ^ x0, (one >> code).bitwise_and_(1))
    out.addcmul_(images[:, 2:3] ^ x0, (two >> code).bitwise_and_(1))
    return out.bitwise_xor_(x0)


def flip_masks(flips: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]``: 255 where bit c of ``flips`` ([B, H, W]) is set, else 0 (bit c moved to
    the int8 sign bit, then an arithmetic shift spreads it over the byte)."""
    signed = flips[:, None].view(torch.int8) << _FLIP_SHIFTS.to(flips.device)
    return (signed >> 7).view(torch.uint8)


def _from_seed(seed: int, image_size: object, block_size: int | None, key_condition: object) -> Cipher:
    """The seeded constructor of both classes; ``key_condition`` picks the class."""
    if key_condition not in KEY_CONDITIONS:
        raise ValueError(f"key_condition must be one of {', '.join(KEY_CONDITIONS)}, got {key_condition!r}")
    if block_size not in (None, 1):
        raise ValueError(f"pe works pixel by pixel: block_size must be 1 (or None), got {block_size!r}")
    _, height, width = seeded_sizes(PESameKeyCipher, image_size, 1)
    generator = rng(seed)  # validates the seed for both conditions
    if key_condition == "same_key":
        return PESameKeyCipher(*draw_key(generator, height, width))
    if seed >= 2**64:
        raise ValueError(f"seed must be below 2**64 for diff_key (it becomes the uint64 key_seed), got {seed}")
    return PECipher(np.array([seed], dtype=np.uint64), (height, width))


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


class PESameKeyCipher(_PixelKeySpace, Cipher):
    """PE with one explicit key (``negpos`` [3, H, W] in {0, 1}, ``channel_perm`` [H, W] in 0..5) for every image."""

    default_block_size = 1
    channels = 3
    key_condition = "same_key"
    traits = Traits(negative_positive=True, channel_shuffle=True, byte_map=True)

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
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "PESameKeyCipher":
        """``same_key`` (the only condition this class has): :func:`draw_key` from ``default_rng(seed)``."""
        reject_options("PESameKeyCipher", options, ("key_condition",))
        if options.get("key_condition", "same_key") != "same_key":
            raise ValueError(
                "PESameKeyCipher holds one key for all images: key_condition must be 'same_key' "
                "(PECipher, registered as 'pe', is the diff_key form)"
            )
        return _from_seed(seed, image_size, block_size, "same_key")  # type: ignore[return-value]

    def rebuild(self, **key: object) -> "PESameKeyCipher":
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
class PECipher(_PixelKeySpace, Cipher):
    """PE with a fresh key per image: image ``i`` uses the key :func:`derive_keys` derives from
    ``key_seed`` and ``i``, i.e. the key of :meth:`image_cipher` ``(i)``.

    ``key_seed`` (a one-element uint64 array, so it can be saved like any key) is the secret;
    ``image_ids`` (default ``arange(B)``) say which key each image of a batch gets, so an image
    keeps its key whatever batch it is in.
    """

    default_block_size = 1
    channels = 3
    per_image_key = True
    key_condition = "diff_key"
    traits = Traits(negative_positive=True, channel_shuffle=True, byte_map=True)  # per image

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
        """``key_condition="diff_key"`` (default): ``key_seed = seed``; ``"same_key"``: a :class:`PESameKeyCipher`."""
        reject_options("pe", options, ("key_condition",))
        return _from_seed(seed, image_size, block_size, options.get("key_condition", "diff_key"))

    def rebuild(self, **key: object) -> "PECipher":
        return type(self)(**{**self.key(), **key}, image_size=self.image_size)

    def key(self) -> dict[str, np.ndarray]:
        return {"key_seed": np.array([self.key_seed], dtype=np.uint64)}

    def image_key(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(negpos, channel_perm)`` of image ``image_id`` (secret), in :class:`PESameKeyCipher`'s form."""
        height, width = self.image_size
        keys = derive_keys(self.key_seed, np.array([int(image_id)], dtype=np.int64), height, width)
        channel_perm = keys.channel_perm[0]
        sources = CHANNEL_PERMUTATIONS[channel_perm]  # [H, W, 3]: p[c] per pixel
        rows, cols = np.indices((height, width))
        negpos = np.empty((3, height, width), dtype=np.uint8)
        for c in range(3):  # output component c flipped <=> its source component p[c] is
            negpos[sources[:, :, c], rows, cols] = (keys.flips[0] >> c) & 1
        return negpos, channel_perm

    def image_cipher(self, image_id: int) -> PESameKeyCipher:
        """The explicit one-image cipher that encrypts image ``image_id``."""
        return PESameKeyCipher(*self.image_key(image_id))

    def _batch_key(
        self, shape: torch.Size, image_ids: torch.Tensor | None, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(channel_perm, flip masks)`` of a batch, derived on ``device`` (:func:`derive_keys_on`)."""
        batch, _, height, width = shape
        if (height, width) != self.image_size:
            raise ValueError(
                f"key_seed derives keys for {self.image_size[0]}x{self.image_size[1]} images, got {height}x{width}"
            )
        ids = check_image_ids_on(image_ids, batch, device)
        channel_perm, flips = derive_keys_on(self.key_seed, ids, height, width)
        return channel_perm, flip_masks(flips)

    def _encrypt(self, images: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        channel_perm, flips = self._batch_key(images.shape, image_ids, images.device)
        return select_channels(images, channel_perm).bitwise_xor_(flips)

    def _decrypt(self, ciphertexts: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        channel_perm, flips = self._batch_key(ciphertexts.shape, image_ids, ciphertexts.device)
        return select_channels(ciphertexts ^ flips, channel_perm, inverse=True)
