"""The cipher contract as checks: one implementation, run by the shipped conformance suite
(``harness/conformance/test_cipher_contract.py``) and by the runner before a cipher's cells compute
anything (``harness/run/cells/contracts.py``).

Each check raises :class:`ContractViolation`, whose message names the plugin and the broken
contract in one line (``cipher 'x' broke its contract: encrypt returned torch.float32, expected
torch.uint8``).  They are cheap: a few encryptions of the images they are given.
"""

from __future__ import annotations

import math

import torch

from ciphers.base import Cipher
from harness.registry import name_of


class ContractViolation(Exception):
    """A plugin broke its contract: ``kind`` (cipher, attack), its registry ``name`` and what broke."""

    def __init__(self, kind: str, name: str, broken: str) -> None:
        self.kind, self.name, self.broken = kind, name, broken
        super().__init__(f"{kind} {name!r} broke its contract: {broken}")

    def __reduce__(self):  # pickles to a worker's parent with its three parts, not the message
        return type(self), (self.kind, self.name, self.broken)


def _broken(cipher: Cipher, what: str) -> ContractViolation:
    return ContractViolation("cipher", name_of(cipher), what)


def _one_key_ids(cipher: Cipher, batch: int, device: torch.device) -> torch.Tensor | None:
    """Image ids giving every image of a batch the same key (None for a fixed-key cipher)."""
    return torch.zeros(batch, dtype=torch.long, device=device) if cipher.per_image_key else None


def probe_images(cipher: Cipher, image_size: tuple[int, int], batch: int = 3, seed: int = 0) -> torch.Tensor:
    """``batch`` random uint8 images of ``image_size`` with the channels ``cipher`` takes (3 if any)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, cipher.channels or 3, *image_size), dtype=torch.uint8, generator=generator)


def check_encrypt(cipher: Cipher, images: torch.Tensor, image_ids: torch.Tensor | None = None) -> torch.Tensor:
    """The ciphertexts of ``images``, once they are uint8 of the declared shape on the input's device
    and the input is left unchanged."""
    before = images.clone()
    ciphertexts = cipher.encrypt(images, image_ids=image_ids)
    if not isinstance(ciphertexts, torch.Tensor):
        raise _broken(cipher, f"encrypt returned {type(ciphertexts).__name__}, expected a torch.uint8 tensor")
    if ciphertexts.dtype != torch.uint8:
        raise _broken(cipher, f"encrypt returned {ciphertexts.dtype}, expected torch.uint8 (values 0..255)")
    expected = tuple(cipher.encrypted_shape(tuple(images.shape)))
    if tuple(ciphertexts.shape) != expected:
        raise _broken(cipher, f"encrypt returned shape {tuple(ciphertexts.shape)} for input {tuple(images.shape)}, "
                              f"expected {expected} (the input's shape or the one encrypted_shape declares)")
    if ciphertexts.device != images.device:
        raise _broken(cipher, f"encrypt returned a tensor on {ciphertexts.device}, expected the input's device {images.device}")
    if not torch.equal(images, before):
        raise _broken(cipher, "encrypt modified its input images")
    return ciphertexts


def check_roundtrip(cipher: Cipher, images: torch.Tensor, ciphertexts: torch.Tensor, image_ids: torch.Tensor | None = None) -> None:
    """``decrypt(ciphertexts)`` gives ``images`` back, bit for bit or within ``roundtrip_max_error``."""
    restored = cipher.decrypt(ciphertexts, image_ids=image_ids)
    if not isinstance(restored, torch.Tensor) or restored.dtype != torch.uint8 or restored.shape != images.shape:
        got = f"{restored.dtype} {tuple(restored.shape)}" if isinstance(restored, torch.Tensor) else type(restored).__name__
        raise _broken(cipher, f"decrypt returned {got}, expected torch.uint8 {tuple(images.shape)} (the plain images' shape)")
    if not images.numel():
        return
    error = int((restored.int() - images.int()).abs().max())
    if error > cipher.roundtrip_max_error:
        raise _broken(cipher, f"decrypt(encrypt(x)) differs from x by up to {error}, declared roundtrip_max_error "
                              f"{cipher.roundtrip_max_error}")


def check_key_space(cipher: Cipher) -> None:
    """``key_space()`` and ``effective_key_space()`` are exact ints with 1 <= effective <= nominal,
    and their log2 methods agree with them."""
    counts = {}
    for method in ("key_space", "effective_key_space"):
        value = getattr(cipher, method)()
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _broken(cipher, f"{method}() returned {value!r} ({type(value).__name__}), expected an exact int >= 1")
        counts[method] = value
    if counts["effective_key_space"] > counts["key_space"]:
        raise _broken(cipher, "effective_key_space() exceeds key_space()")
    for method, count in counts.items():
        log2 = getattr(cipher, f"{method}_log2")()
        if not isinstance(log2, (int, float)) or not math.isclose(log2, math.log2(count), rel_tol=1e-9, abs_tol=1e-9):
            raise _broken(cipher, f"{method}_log2() returned {log2!r}, expected log2({method}()) = {math.log2(count):.6g}")


def check_traits(cipher: Cipher, images: torch.Tensor) -> None:
    """What the declared :class:`ciphers.base.Traits` promise and one key can show (at least two images)."""
    traits, x, y = cipher.traits, images[0], images[1]

    def encrypt(batch: torch.Tensor) -> torch.Tensor:
        return cipher.encrypt(batch, image_ids=_one_key_ids(cipher, batch.shape[0], batch.device))

    same = encrypt(images)
    if traits.identity and not torch.equal(same, images):
        raise _broken(cipher, "it declares no trait that changes images (it would be treated as `plain`: no verdict, the "
                              "accuracy reference) but encrypt changes them; declare what it does, e.g. Traits(keystream='xor')")
    if (traits.position_permuting or traits.value_bijection) and torch.equal(same.reshape(-1)[: images.numel()], images.reshape(-1)):
        raise _broken(cipher, "it declares traits that change images but encrypt leaves them unchanged")
    if not traits.value_bijection and traits.colour_space == "rgb" and not traits.identity:
        for plain, encrypted in zip(images, same):
            if not torch.equal(plain.reshape(-1).sort().values, encrypted.reshape(-1).sort().values):
                raise _broken(cipher, "it declares no value change (negative_positive, nibble_shuffle or a keystream) but "
                                      "changes byte values; declare the value transform it applies")
    if not traits.position_permuting and traits.colour_space == "rgb" and traits.within_block != "nibble_shuffle":
        _check_in_place(cipher, x[None], encrypt)
    if traits.byte_map:
        e0, ex, ey, exy = (encrypt(v[None])[0] for v in (torch.zeros_like(x), x, y, x ^ y))
        if not torch.equal(exy, ex ^ ey ^ e0):
            raise _broken(cipher, "it declares byte_map (one gather + XOR) but is not affine over XOR")
        if not torch.equal((ex ^ e0).reshape(-1).sort().values, x.reshape(-1).sort().values):
            raise _broken(cipher, "it declares byte_map (one gather + XOR) but E(x) ^ E(0) is not a rearrangement of x's bytes")


def _check_in_place(cipher: Cipher, x: torch.Tensor, encrypt) -> None:
    """No movement declared: changing one plain byte changes at most the ciphertext byte at its position."""
    base = encrypt(x)
    flat = x.reshape(-1)
    for position in (0, flat.numel() // 2 + 1, flat.numel() - 1):
        changed = x.clone().reshape(-1)
        changed[position] ^= 0x81
        moved = (encrypt(changed.view_as(x)) != base).reshape(-1).nonzero().flatten().tolist()
        if not set(moved) <= {position}:
            raise _broken(cipher, f"it declares no movement (block_scrambling, within_block, channel_shuffle) but a change of "
                                  f"byte {position} changed ciphertext bytes {moved[:5]}; declare how content moves")


def check_cipher(cipher: Cipher, images: torch.Tensor) -> None:
    """Every run-time check on ``images`` (at least two, of the size the cipher runs at): output
    dtype, shape and device, the round trip, the key space and the declared traits."""
    ids = torch.arange(images.shape[0], device=images.device) if cipher.per_image_key else None
    check_roundtrip(cipher, images, check_encrypt(cipher, images, ids), ids)
    check_key_space(cipher)
    check_traits(cipher, images)
