"""The classifier contract: a registered class builds a network for one image size and cipher.

A classifier plugin is a :class:`Classifier` subclass registered with
``@classifiers.register("name")``.  It declares its options (with defaults) in ``options`` and
builds the bare network in :meth:`Classifier.build_network`; :meth:`Classifier.build` validates
the arguments, resolves the options, seeds the initialisation and wraps the network in an
:class:`ImageClassifier`, which owns the input pipeline (uint8 -> float -> normalised).  Training
code lives in :mod:`harness.training`, never here.
"""

from __future__ import annotations

import copy
import numbers
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from harness.keys import seeded
from harness.registry import ciphers, classifiers

#: every classifier normalises with mean = std = 0.5 per channel: it maps 255 - v to -x, so
#: negative-positive ciphers and channel-moving ciphers commute with the normalisation
NORMALIZE_MEAN = 0.5
NORMALIZE_STD = 0.5


class ImageClassifier(nn.Module):
    """A network plus its input pipeline.

    ``forward`` takes uint8 images ``[B, C, H, W]`` (values 0..255, e.g. ciphertexts) or floating
    images already scaled to [0, 1], normalises them with mean = std = 0.5 and returns float logits
    ``[B, num_classes]``.  Keeping the conversion here means a cached checkpoint, ``fit`` and
    ``evaluate`` can never disagree about preprocessing.
    """

    def __init__(self, net: nn.Module, *, in_chans: int, prefers_channels_last: bool = False) -> None:
        super().__init__()
        self.net = net
        self.prefers_channels_last = prefers_channels_last
        self.register_buffer("mean", torch.full((1, in_chans, 1, 1), NORMALIZE_MEAN), persistent=False)
        self.register_buffer("std", torch.full((1, in_chans, 1, 1), NORMALIZE_STD), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            x = images.to(self.mean.dtype) / 255.0
        elif images.is_floating_point():
            x = images
        else:
            raise ValueError(f"images must be uint8 or floating point in [0, 1], got {images.dtype}")
        return self.net((x - self.mean) / self.std)

    def auxiliary_loss(self) -> torch.Tensor | None:
        """A regulariser the network adds to the training loss (e.g. the adaptation net's DSC)."""
        hook = getattr(self.net, "auxiliary_loss", None)
        return hook() if callable(hook) else None


class Classifier:
    """Base class of registered classifiers (the registry sets ``registry_name``)."""

    registry_name: ClassVar[str]
    #: option name -> default; ``None`` defaults are resolved by :meth:`resolve_options`
    options: ClassVar[Mapping[str, Any]] = {}
    #: options of a small, fast instance, used by the contract tests and smoke runs
    small_options: ClassVar[Mapping[str, Any]] = {}
    #: convolutional networks run faster in channels-last layout on CUDA
    prefers_channels_last: ClassVar[bool] = False
    #: name of a classifier trained on *plain* images that this one is derived from without
    #: retraining (``vit_keyed`` -> ``vit``); ``None`` for classifiers trained on ciphertexts
    plain_base: ClassVar[str | None] = None
    #: the registered cipher names whose keys :meth:`from_plain` reads (a key-transformed classifier's)
    keyed_ciphers: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def build(
        cls,
        *,
        num_classes: int,
        image_size: tuple[int, int],
        block_size: int,
        in_chans: int = 3,
        seed: int = 0,
        **options: Any,
    ) -> ImageClassifier:
        """The network for ``image_size`` images of a cipher with ``block_size``, seeded by ``seed``.

        ``None`` options are ignored, so a caller's unset values never override a default.
        """
        image_size = check_build_args(num_classes, image_size, block_size, in_chans, seed)
        resolved = cls.resolve_options(image_size=image_size, block_size=block_size, **options)
        with seeded(seed):
            net = cls.build_network(
                num_classes=num_classes, image_size=image_size, block_size=block_size, in_chans=in_chans, **resolved
            )
        return ImageClassifier(net, in_chans=in_chans, prefers_channels_last=cls.prefers_channels_last)

    @classmethod
    def resolve_options(cls, *, image_size: tuple[int, int], block_size: int, **options: Any) -> dict[str, Any]:
        """All options with defaults filled in; a ValueError names any unknown option.

        The result is what determines the network, so the training cache hashes it.
        """
        given = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(given) - set(cls.options))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for classifier "
                f"{getattr(cls, 'registry_name', cls.__name__)!r}; known: {', '.join(sorted(cls.options)) or 'none'}"
            )
        return {**copy.deepcopy(dict(cls.options)), **given}

    @classmethod
    def for_cipher(cls, cipher: Any, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` adjusted to ``cipher`` (cipher-dependent defaults); ValueError if unsupported."""
        return dict(options)

    @classmethod
    def from_plain(cls, model: nn.Module, cipher: Any) -> nn.Module:
        """Turn a trained ``plain_base`` model into this classifier for ``cipher`` (no retraining)."""
        raise NotImplementedError(f"{cls.__name__} is trained directly; it has no plain_base")

    @classmethod
    def build_network(
        cls, *, num_classes: int, image_size: tuple[int, int], block_size: int, in_chans: int, **options: Any
    ) -> nn.Module:
        """The bare network mapping normalised float images to logits (options already resolved)."""
        raise NotImplementedError


def check_build_args(
    num_classes: object, image_size: object, block_size: object, in_chans: object, seed: object
) -> tuple[int, int]:
    """Validate the arguments every classifier takes; returns ``image_size`` as an int pair."""
    checks = (("num_classes", num_classes, 1), ("block_size", block_size, 1), ("in_chans", in_chans, 1), ("seed", seed, 0))
    for name, value, low in checks:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    try:
        height, width = (int(v) for v in image_size)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be a pair (H, W), got {image_size!r}") from None
    if height < 1 or width < 1 or height % block_size or width % block_size:  # type: ignore[operator]
        raise ValueError(f"image_size {(height, width)} must be positive and divisible by block_size {block_size}")
    return height, width


def keyed_classifier(cipher: str) -> str | None:
    """The classifier that transforms a plain model with ``cipher``'s key (``proposed`` -> ``vit_keyed``), if any."""
    name = ciphers.entry(cipher).name
    return next((c for c in classifiers.names() if name in classifiers.get(c).keyed_ciphers), None)
