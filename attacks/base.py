"""The attack contract: what an attacker knows, how it is configured, and how it is called.

Threat model (docs/attacks.md, Attacks): the attacker knows the cipher's algorithm and public parameters
(a :class:`CipherFamily`), never the victim's key.  It holds its own plain images, disjoint from
the victim's, which it may encrypt with keys it draws itself; some attacks also see the victim's
ciphertexts (``gan``, ``puzzle``) or a few of the victim's plain/cipher pairs (``kpa``).  A
*model holder* (``weights_*``) holds the provider's trained or key-transformed model instead
(:class:`ProviderModels`), and optionally the public checkpoint it came from.

An attack is a registered plugin (``@attacks.register("fr")``).  Its life is ``fit`` once, then
``restore`` any number of times; ``state_dict``/``load_state_dict`` round-trip everything ``fit``
produced, so the runner can cache trained networks.
"""

from __future__ import annotations

import abc
import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from ciphers.transforms import rgb_to_ycbcr, ycbcr_to_rgb
from attacks.contract import check_restored
from ciphers.base import Cipher
from harness.lazy import LazyImages
from harness.progress import ProgressCallback
from harness.registry import ciphers, create_cipher

LOSSES = ("l1", "mse")
ARCHS = ("auto", "block", "pixel", "unet")
GAN_LOSSES = ("hinge", "bce")


@dataclass(frozen=True)
class CipherFamily:
    """A cipher's algorithm and public parameters without a key: what every attacker knows.

    ``name`` is a registered cipher name (aliases allowed), ``image_size`` the plain images'
    (H, W), ``block_size`` the cipher's block size (``None``: the cipher's default) and
    ``options`` any further public options of ``from_seed`` (e.g. a key condition).
    """

    name: str
    image_size: tuple[int, int]
    block_size: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in ciphers:
            raise ValueError(f"name must be a registered cipher, got {self.name!r}")
        try:
            height, width = (int(v) for v in self.image_size)
        except (TypeError, ValueError):
            raise ValueError(f"image_size must be a pair (H, W), got {self.image_size!r}") from None
        object.__setattr__(self, "image_size", (height, width))
        object.__setattr__(self, "options", dict(self.options))
        self.template  # builds one cipher now, so bad parameters fail here and not mid-attack

    @property
    def canonical_name(self) -> str:
        """The registered name (aliases resolved): what per-cipher strategies are keyed on."""
        return ciphers.entry(self.name).name

    @functools.cached_property
    def template(self) -> Cipher:
        """A cipher of this family with an arbitrary key: for shapes and public parameters only."""
        return self.draw(0)

    @property
    def resolved_block_size(self) -> int:
        return self.template.block_size

    @property
    def traits(self):
        """The cipher's declared :class:`ciphers.base.Traits`: what attacks decide from."""
        return self.template.traits

    @property
    def per_image_key(self) -> bool:
        """Whether each image gets its own key (``diff_key``), so ``encrypt`` needs image ids."""
        return bool(self.template.per_image_key)

    def draw(self, seed: int) -> Cipher:
        """A cipher of this family with a fresh key drawn from ``seed``."""
        return create_cipher(self.name, self.image_size, self.block_size, seed=seed, **self.options)

    def encrypt(self, cipher: Cipher, images: torch.Tensor, first_id: int = 0) -> torch.Tensor:
        """Encrypt ``images`` with ``cipher``, giving per-image-key ciphers ids from ``first_id``."""
        ids = None
        if self.per_image_key:
            ids = torch.arange(first_id, first_id + images.shape[0], device=images.device)
        return cipher.encrypt(images, image_ids=ids)

    def encrypted_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(self.template.encrypted_shape(tuple(shape)))

    def to_dict(self) -> dict[str, Any]:
        """Public description (JSON-able): cache keys and saved attack states use it."""
        return {
            "name": self.canonical_name,
            "image_size": list(self.image_size),
            "block_size": self.resolved_block_size,
            "options": {k: self.options[k] for k in sorted(self.options)},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CipherFamily":
        return cls(data["name"], tuple(data["image_size"]), data["block_size"], dict(data["options"]))


@dataclass(frozen=True)
class ProviderModels:
    """What a model holder holds besides the algorithm (timm ViTs; ``None`` where not given).

    ``keyed``: the provider's plain-trained model transformed with the victim's key (``vit_keyed``);
    ``trained``: the provider's model trained on the victim's ciphertexts; ``checkpoint``: the public
    checkpoint ``keyed`` came from; ``start``: the public weights the training of ``trained`` started
    from; ``plain``: a model trained the same way from ``start`` on plain images (what training moves
    without a key).
    """

    keyed: nn.Module | None = None
    trained: nn.Module | None = None
    checkpoint: nn.Module | None = None
    start: nn.Module | None = None
    plain: nn.Module | None = None


@dataclass(frozen=True)
class Layout:
    """How a family's ciphertexts map onto the plain ``[C, H, W]`` layout (public knowledge).

    ``kind``: ``"same"`` (the ciphertext has the plain shape) or ``"planes"`` (a grayscale-based
    cipher put the C planes side by side as one ``[1, H, C*W]`` image).  ``colour``: ``"rgb"``
    or ``"ycbcr"`` (the planes are full-range YCbCr, e.g. ``etc_gray``).
    """

    kind: str
    channels: int
    colour: str = "rgb"

    def view(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        """Ciphertexts as ``[B, C, H, W]`` planes (still in the cipher's colour space)."""
        if self.kind == "same":
            return ciphertexts
        batch, _, height, wide = ciphertexts.shape
        return ciphertexts.view(batch, height, self.channels, wide // self.channels).permute(0, 2, 1, 3).contiguous()

    def unview(self, planes: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`view`: back to the cipher's own ciphertext layout."""
        if self.kind == "same":
            return planes
        batch, channels, height, width = planes.shape
        return planes.permute(0, 2, 1, 3).reshape(batch, 1, height, channels * width)

    def to_plain_colour(self, planes: torch.Tensor) -> torch.Tensor:
        """Planes in the cipher's colour space converted to the plain images' (RGB)."""
        return ycbcr_to_rgb(planes) if self.colour == "ycbcr" else planes

    def from_plain_colour(self, images: torch.Tensor) -> torch.Tensor:
        """Plain images in the cipher's colour space (what its blocks are cut from)."""
        return rgb_to_ycbcr(images) if self.colour == "ycbcr" else images


def ciphertext_layout(family: CipherFamily, channels: int) -> Layout | None:
    """The :class:`Layout` of ``family``'s ciphertexts of ``channels``-channel images, or None."""
    height, width = family.image_size
    shape = family.encrypted_shape((1, channels, height, width))
    colour = "ycbcr" if family.template.traits.colour_space == "ycbcr_planes" else "rgb"
    if shape == (1, channels, height, width):
        return Layout("same", channels, colour)
    if shape == (1, 1, height, channels * width):
        return Layout("planes", channels, colour)
    return None


@dataclass(frozen=True)
class AttackConfig:
    """Every knob of an attack run (the runner's presets fill it; see docs/attacks.md).

    Fields used only by some attacks are ignored by the others.

    - ``seed``: the attacker's master seed (keys it draws, network init, batch order).
    - ``epochs``, ``batch_size``, ``lr``, ``betas``, ``weight_decay``: Adam training of ``itn``
      and the generator of ``gan``.
    - ``loss``: ``"l1"`` or ``"mse"`` between restored and plain images in [0, 1] (``itn``).
    - ``arch``: generator network: ``"auto"`` (block-aligned for block ciphers, 1x1 for
      pixel-wise ones), ``"block"``, ``"pixel"`` or ``"unet"``.
    - ``width``: hidden width of the block/pixel nets and the base width of the U-Net.
    - ``unet_depth``: number of down-sampling stages of the U-Net.
    - ``train_keys``: number of keys the ``itn`` attacker draws for its training pairs (``None``:
      a fresh key per image, ``diff_key``, as in Ito et al.); ``rekey_each_epoch`` re-draws them
      every epoch (more distinct keys seen, the same cost).
    - ``gan_loss``: ``"hinge"`` or ``"bce"``; ``lr_d``: discriminator learning rate (``None``:
      ``lr``); ``disc_width``: discriminator base width.
    - ``steps``: optimiser steps of ``gan`` (``None``: ``epochs`` passes over the victim's
      ciphertexts); when set it wins over ``epochs``, cycling over the ciphertexts as needed.
    - ``gan_recipe``: ``"field"`` (the attack authors' simplified GAN: ITN block generator with a
      tanh output, DCGAN patch discriminator, BCE; ``arch``, ``width``, ``disc_width`` and
      ``gan_loss`` are ignored) or ``"custom"`` (generator from ``arch``/``width``, spectrally
      normalised discriminator of ``disc_width``, ``gan_loss``).
    - ``known_pairs``: how many victim plain/cipher pairs the cell reserves for ``kpa`` (it
      reports the smallest number that determines the key).
    - ``params``: extra constructor keywords for the attack (e.g. ``{"mode": "basic"}`` for fr).
    """

    seed: int = 0
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    loss: str = "l1"
    arch: str = "auto"
    width: int = 64
    unet_depth: int = 2
    train_keys: int | None = None
    rekey_each_epoch: bool = True
    gan_loss: str = "hinge"
    lr_d: float | None = None
    disc_width: int = 64
    known_pairs: int = 32
    params: Mapping[str, Any] = field(default_factory=dict)
    steps: int | None = None
    gan_recipe: str = "field"

    def __post_init__(self) -> None:
        for name in ("seed",):
            check_int(name, getattr(self, name), minimum=0)
        for name in ("epochs", "batch_size", "width", "unet_depth", "disc_width", "known_pairs"):
            check_int(name, getattr(self, name), minimum=1)
        if self.train_keys is not None:
            check_int("train_keys", self.train_keys, minimum=1)
        if self.steps is not None:
            check_int("steps", self.steps, minimum=1)
        for name in ("lr",) + (("lr_d",) if self.lr_d is not None else ()):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("arch", self.arch, ARCHS)
        _check_choice("gan_loss", self.gan_loss, GAN_LOSSES)
        _check_choice("gan_recipe", self.gan_recipe, ("field", "custom"))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "params", dict(self.params))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_int(name: str, value: object, minimum: int) -> None:
    """ValueError naming ``name`` unless ``value`` is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_batch(images: object, name: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """``images`` if it is a uint8 ``[B, C, H, W]`` tensor or :class:`LazyImages` (of ``shape[1:]``
    if given), else ValueError."""
    if not isinstance(images, (torch.Tensor, LazyImages)) or images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"{name} must be a uint8 tensor [B, C, H, W]")
    if images.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one image")
    if shape is not None and tuple(images.shape[1:]) != tuple(shape[1:]):
        raise ValueError(f"{name} must be shaped [B, {', '.join(map(str, shape[1:]))}], got {tuple(images.shape)}")
    return images


class Attack(abc.ABC):
    """Base class: argument checks, the fit-then-restore life cycle and state round trips.

    Subclasses implement ``_fit`` and ``_restore`` (on ciphertexts already viewed in the plain
    ``[B, C, H, W]`` layout by :class:`Layout`, returning RGB images) and, when ``fit`` produces
    something, ``_state``/``_load_state``.
    """

    #: what the attacker holds besides the algorithm: ``"ciphertext-only"`` (ciphertexts and its
    #: own plain images), ``"known-plaintext"`` (plain/cipher pairs under the victim's key) or
    #: ``"model-holder"`` (the provider's model, :class:`ProviderModels`); reports group attacks by it
    threat_model: ClassVar[str] = "ciphertext-only"
    #: the :class:`ProviderModels` fields ``fit`` needs (a model-holder attack's); ``_fit`` then gets ``models``
    reads_models: ClassVar[tuple[str, ...]] = ()
    #: whether ``fit`` trains a network (the runner caches those)
    learned: ClassVar[bool] = False
    #: whether ``fit`` needs the victim's ciphertexts (``gan``, ``puzzle``)
    uses_victim_ciphertexts: ClassVar[bool] = False
    #: whether ``fit`` needs known plain/cipher pairs of the victim's key (``kpa``)
    uses_known_pairs: ClassVar[bool] = False
    #: whether ``restore`` is a fixed pixel rearrangement, so a position probe measures it
    restores_positions: ClassVar[bool] = False
    #: a content-free baseline (``none``, ``mean_image``, ``mean_colour``): verdicts compare every
    #: other attack with the best baseline of its cell
    baseline: ClassVar[bool] = False
    #: whether the attack recovers the victim's key (then ``recovered_cipher`` is set): a verdict of
    #: ✓ or ? without one says that no key-recovery attack applies to the cipher's traits
    key_recovery: ClassVar[bool] = False
    #: a statistical attack pooling over the victim's ciphertexts: the security cell also measures
    #: its SSIM against the number of ciphertexts it sees (``ciphertext_ladder``)
    statistical: ClassVar[bool] = False
    #: whether ``_fit`` reads the attacker's images and the victim's ciphertexts only by
    #: ``shape``/``len``, slices, index tensors and ``split``, so they may be :class:`LazyImages`
    #: (paper-size splits made a batch at a time); an attack that does not declare it gets them
    #: as whole tensors (correct, but its cells hold the splits in memory)
    streams: ClassVar[bool] = False
    #: bump when a change would make cached states of this attack wrong
    version: ClassVar[int] = 1
    registry_name: ClassVar[str]

    def __init__(self, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        check_int("seed", seed, minimum=0)
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device must be a torch device name, got {device!r}") from None
        self.seed = int(seed)
        self.family: CipherFamily | None = None
        self.channels: int | None = None
        self.layout: Layout | None = None
        #: numbers the attack measured about itself (e.g. ``pairs_needed``); floats only
        self.extra: dict[str, float] = {}
        #: one line for the report (e.g. why an attack step is a no-op for this cipher)
        self.note: str = ""
        #: a key-recovery attack's recovered cipher (the cell then reports ``key_entries_recovered``)
        self.recovered_cipher: Cipher | None = None

    @classmethod
    def applies_to(cls, family: CipherFamily) -> str | None:
        """None if the attack can run on ``family``, else the reason it cannot."""
        if ciphertext_layout(family, 3) is None:
            return "the ciphertext layout does not map onto the plain image layout"
        return None

    # -- life cycle ---------------------------------------------------------------------
    def fit(
        self,
        attacker_images: torch.Tensor | LazyImages,
        cipher_family: CipherFamily,
        config: AttackConfig,
        progress: ProgressCallback | None = None,
        *,
        victim_ciphertexts: torch.Tensor | LazyImages | None = None,
        known_pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
        models: ProviderModels | None = None,
    ) -> None:
        """Prepare the attack against ciphers of ``cipher_family`` (train, estimate, recover).

        ``attacker_images`` and ``victim_ciphertexts`` may be :class:`LazyImages` (paper-size
        splits made a batch at a time); an attack that ``streams`` indexes, slices or splits them
        and never holds more than a batch, or a capped subset, at once.
        """
        if not isinstance(cipher_family, CipherFamily):
            raise ValueError(f"cipher_family must be a CipherFamily, got {type(cipher_family).__name__}")
        if not isinstance(config, AttackConfig):
            raise ValueError(f"config must be an AttackConfig, got {type(config).__name__}")
        reason = self.applies_to(cipher_family)
        if reason is not None:
            raise ValueError(f"{self.registry_name} does not apply to {cipher_family.name}: {reason}")
        check_batch(attacker_images, "attacker_images")
        channels = int(attacker_images.shape[1])
        plain_shape = (1, channels, *cipher_family.image_size)
        check_batch(attacker_images, "attacker_images", plain_shape)
        cipher_shape = cipher_family.encrypted_shape(plain_shape)
        if victim_ciphertexts is not None:
            check_batch(victim_ciphertexts, "victim_ciphertexts", cipher_shape)
        elif self.uses_victim_ciphertexts:
            raise ValueError(f"{self.registry_name} needs victim_ciphertexts (it attacks the victim's key)")
        if known_pairs is not None:
            if not isinstance(known_pairs, tuple) or len(known_pairs) != 2:
                raise ValueError("known_pairs must be a tuple (plain_images, ciphertexts)")
            check_batch(known_pairs[0], "known_pairs[0]", plain_shape)
            check_batch(known_pairs[1], "known_pairs[1]", cipher_shape)
            if known_pairs[0].shape[0] != known_pairs[1].shape[0]:
                raise ValueError("known_pairs must hold as many plain images as ciphertexts")
        elif self.uses_known_pairs:
            raise ValueError(f"{self.registry_name} needs known_pairs (plain/cipher pairs of the victim's key)")
        missing = [part for part in self.reads_models if getattr(models, part, None) is None]
        if missing:
            raise ValueError(f"{self.registry_name} needs models (ProviderModels) with {', '.join(missing)} set")
        self.family, self.channels = cipher_family, channels
        self.layout = ciphertext_layout(cipher_family, channels)
        if self.layout is None:
            raise ValueError(f"ciphertexts of {cipher_family.name} do not map onto [{channels}, H, W]")
        self.extra, self.note = {}, ""
        if not self.streams:
            attacker_images, victim_ciphertexts = (
                images.materialise() if isinstance(images, LazyImages) else images for images in (attacker_images, victim_ciphertexts)
            )
        self._fit(
            attacker_images.to(self.device),
            config,
            progress,
            victim=None if victim_ciphertexts is None else self._viewed(victim_ciphertexts.to(self.device)),
            pairs=None
            if known_pairs is None
            else (known_pairs[0].to(self.device), self.layout.view(known_pairs[1].to(self.device))),
            **({"models": models} if self.reads_models else {}),
        )

    def _viewed(self, ciphertexts: torch.Tensor | LazyImages) -> torch.Tensor | LazyImages:
        """Ciphertexts in the plain layout; a lazy collection stays lazy (viewed batch by batch)."""
        assert self.layout is not None and self.channels is not None and self.family is not None
        if isinstance(ciphertexts, LazyImages):
            view = self.layout.view
            return ciphertexts.map(lambda batch, _: view(batch), (self.channels, *self.family.image_size))
        return self.layout.view(ciphertexts)

    def restore(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        """The attacker's estimate of the plain images: uint8 ``[B, C, H, W]`` (checked here, so a
        broken ``_restore`` is a :class:`ciphers.contract.ContractViolation` naming the attack)."""
        if self.family is None or self.channels is None or self.layout is None:
            raise RuntimeError(f"{self.registry_name}: call fit (or load_state_dict) before restore")
        plain_shape = (1, self.channels, *self.family.image_size)
        check_batch(ciphertexts, "ciphertexts", self.family.encrypted_shape(plain_shape))
        source_device = ciphertexts.device
        view = self.layout.view(ciphertexts.to(self.device))
        with torch.no_grad():
            restored = self._restore(view)
        return check_restored(self.registry_name, restored, (ciphertexts.shape[0], *plain_shape[1:])).to(source_device)

    @abc.abstractmethod
    def _fit(
        self,
        attacker_images: torch.Tensor,
        config: AttackConfig,
        progress: ProgressCallback | None,
        *,
        victim: torch.Tensor | None,
        pairs: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> None: ...

    @abc.abstractmethod
    def _restore(self, ciphertexts: torch.Tensor) -> torch.Tensor: ...

    # -- state ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything ``fit`` produced (tensors and plain values: ``torch.load(weights_only)``-safe)."""
        if self.family is None:
            raise RuntimeError(f"{self.registry_name}: nothing to save before fit")
        return {
            "attack": self.registry_name,
            "version": self.version,
            "family": self.family.to_dict(),
            "channels": self.channels,
            "extra": dict(self.extra),
            "note": self.note,
            "state": self._state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a fitted attack from :meth:`state_dict`'s output."""
        if state.get("attack") != self.registry_name or state.get("version") != self.version:
            raise ValueError(
                f"state is for attack {state.get('attack')!r} version {state.get('version')!r}, "
                f"not {self.registry_name!r} version {self.version}"
            )
        self.family = CipherFamily.from_dict(state["family"])
        self.channels = int(state["channels"])
        self.layout = ciphertext_layout(self.family, self.channels)
        self.extra = {k: float(v) for k, v in state["extra"].items()}
        self.note = str(state["note"])
        self._load_state(state["state"])

    def _state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed}, device={str(self.device)!r})"


class KeyRecoveryAttack(Attack):
    """An attack that recovers the victim's key (``puzzle``, ``nibble``, ``extended_jigsaw``, ``kpa``).

    ``_fit`` sets :attr:`key` (entries for the family's ``rebuild``) and :attr:`recovered_cipher`;
    restoring decrypts with it, and the state that round-trips is the key alone.
    """

    streams = True
    restores_positions = True
    key_recovery = True

    def __init__(self, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__(seed=seed, device=device)
        self.key: dict[str, Any] | None = None

    def _restore(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        assert self.recovered_cipher is not None and self.layout is not None
        return self.recovered_cipher.decrypt(self.layout.unview(ciphertexts).contiguous())

    def _state(self) -> dict[str, Any]:
        assert self.key is not None
        return {"key": {name: torch.as_tensor(value) for name, value in self.key.items()}}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.key = {name: value.numpy() for name, value in state["key"].items()}
        self.recovered_cipher = self._rebuild(self.key)

    def _rebuild(self, key: dict[str, Any]) -> Cipher:
        """The cipher of the recovered key (the family's own class; an empty key is the template's)."""
        assert self.family is not None
        return self.family.template.rebuild(**key)
