"""The channel between the user and the provider: what the provider (and every attacker) receives.

EtC and CFE exist to survive compression, and the attacks in the literature run on
JPEG-recompressed ciphertexts, so a configuration may put a lossy channel between ``encrypt`` and
everyone who sees a ciphertext: ``transport: {jpeg: Q}`` (optionally ``chroma: "4:4:4"``; JPEG's
usual 4:2:0 otherwise).  :func:`received` wraps a cipher so that its ``encrypt`` returns what
arrives; training, testing, the attacker's view and the attacker's own simulated encryptions all
go through that one method, so nothing can bypass the channel.  ``decrypt`` is the cipher's own:
decrypting what arrived is lossy, and the key-space cell reports by how much (PSNR in dB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import torch

#: JPEG chroma subsampling a transport may ask for (libjpeg's default is 4:2:0)
CHROMA = ("4:2:0", "4:4:4")


class TransportError(ValueError):
    """A ``transport`` setting that is not a known channel (one line, naming the setting)."""


@dataclass(frozen=True)
class Jpeg:
    """JPEG compression at ``quality`` (1..100) and decompression, image by image (libjpeg via OpenCV).

    Colour ciphertexts are compressed as RGB images (OpenCV is told the channel order, so the
    luma weights are the standard ones); one-channel ciphertexts (grayscale-based EtC) as
    grayscale JPEG.  Deterministic: the same ciphertext always arrives the same.
    """

    quality: int
    chroma: str = "4:2:0"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        import cv2  # only runs that ask for a lossy channel pay for OpenCV's import (and this module stays light)
        import numpy as np
        import torch

        if images.shape[1] not in (1, 3):
            raise ValueError(f"JPEG carries 1- or 3-channel images, got {images.shape[1]} channels")
        sampling = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444 if self.chroma == "4:4:4" else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420
        flags = [cv2.IMWRITE_JPEG_QUALITY, self.quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling]
        # OpenCV reads three channels as BGR: reverse them on the way in and out
        order = [2, 1, 0] if images.shape[1] == 3 else [0]
        host = images.detach().cpu()[:, order].permute(0, 2, 3, 1).contiguous().numpy()
        arrived = np.empty_like(host)
        for i, image in enumerate(host):
            ok, encoded = cv2.imencode(".jpg", image, flags)
            if not ok:
                raise RuntimeError(f"JPEG encoding of image {i} failed")
            arrived[i] = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED).reshape(image.shape)
        return torch.from_numpy(arrived).permute(0, 3, 1, 2)[:, order].contiguous().to(images.device)

    def describe(self) -> str:
        return f"JPEG Q{self.quality} ({self.chroma})"


def parse_transport(value: Any, path: str) -> dict[str, Any] | None:
    """A checked ``transport`` setting: ``None`` (bit-exact delivery) or ``{"jpeg": Q[, "chroma": C]}``."""
    if value is None or value == "none":
        return None
    if not isinstance(value, Mapping):
        raise TransportError(f"{path} must be a mapping like {{jpeg: 90}} or null, got {value!r}")
    unknown = sorted(set(value) - {"jpeg", "chroma"})
    if unknown or "jpeg" not in value:
        raise TransportError(f"{path}: the only channel is jpeg: {{jpeg: Q}} with Q in 1..100 and optional chroma {'/'.join(CHROMA)}; got keys {sorted(value)}")
    quality = value["jpeg"]
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise TransportError(f"{path}.jpeg must be an integer quality in 1..100, got {quality!r}")
    chroma = value.get("chroma", "4:2:0")
    if chroma not in CHROMA:
        raise TransportError(f"{path}.chroma must be one of {', '.join(CHROMA)}, got {chroma!r}")
    return {"jpeg": quality, **({"chroma": chroma} if "chroma" in value else {})}


def cipher_transport(config: Mapping[str, Any], cipher: str) -> dict[str, Any] | None:
    """The channel a configuration puts ``cipher``'s ciphertexts through: its own section's
    ``transport`` when it sets one (null included), else the run's."""
    section = config["ciphers"].get(cipher) or {}
    return section["transport"] if "transport" in section else config.get("transport")


def describe(setting: Mapping[str, Any] | None) -> str:
    """How a report names a channel setting."""
    return "bit-exact" if setting is None else channel(setting).describe()


def channel(setting: Mapping[str, Any]) -> Jpeg:
    """The channel a checked setting names."""
    return Jpeg(int(setting["jpeg"]), str(setting.get("chroma", "4:2:0")))


class Received:
    """A cipher as the provider sees it: ``encrypt`` returns the ciphertext after the channel.

    Everything else (key, traits, block size, ``decrypt``, key spaces) is the wrapped cipher's;
    :meth:`rebuild` keeps the channel, so an attacker checking a recovered key against received
    ciphertexts compares like with like.
    """

    #: decrypting what arrived is as lossy as the channel made it
    roundtrip_max_error = 255

    def __init__(self, cipher: Any, setting: Mapping[str, Any]) -> None:
        self.cipher = cipher
        self.transport = dict(setting)
        self.channel = channel(setting)

    def encrypt(self, images: torch.Tensor, image_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.channel(self.cipher.encrypt(images, image_ids=image_ids))

    def rebuild(self, **key: object) -> "Received":
        return Received(self.cipher.rebuild(**key), self.transport)

    def __getattr__(self, name: str) -> Any:
        if name == "cipher":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.cipher, name)

    def __repr__(self) -> str:
        return f"{self.cipher!r} via {self.channel.describe()}"


def received(cipher: Any, setting: Mapping[str, Any] | None) -> Any:
    """``cipher`` behind the channel ``setting`` names (the cipher itself when there is none)."""
    return cipher if setting is None else Received(cipher, setting)


def unwrapped(cipher: Any) -> Any:
    """The cipher behind a channel: what a key-reading model transform needs."""
    return cipher.cipher if isinstance(cipher, Received) else cipher
