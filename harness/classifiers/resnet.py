"""``resnet18``: timm ResNet-18, with the CIFAR stem (3x3 convolution, stride 1, no max-pool) on small images.

``width`` scales every stage (64, the standard ResNet-18, down to e.g. 16 for a quick CPU run).

The seed's PE and plain rows use ResNet-18 at 32 x 32 (He et al. 2016).  ImageNet weights (a local
``weights_file`` or timm's download) have a 7x7 stem; with the CIFAR stem that one layer is
re-initialised and everything else is loaded.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from harness.classifiers._timm import create_timm_model
from harness.classifiers.base import Classifier
from harness.registry import classifiers

#: images up to this side get the CIFAR stem by default
SMALL_IMAGE = 64


@classifiers.register("resnet18")
class ResNet18Classifier(Classifier):
    """ResNet-18 (basic blocks, [2, 2, 2, 2]); the stem follows the image size unless set."""

    prefers_channels_last = True
    small_options = {"width": 8}
    options = {
        "cifar_stem": None,  # None: True when both sides are <= 64 pixels
        "pretrained": False,  # True: timm downloads ImageNet weights (needs a network)
        "weights_file": None,  # local weights file (timm format); wins over ``pretrained``
        "width": 64,  # channels of the first stage (64: ResNet-18; stages double it)
        "drop_rate": 0.0,  # dropout before the classifier
    }

    @classmethod
    def resolve_options(cls, *, image_size: tuple[int, int], block_size: int, **options: Any) -> dict[str, Any]:
        resolved = super().resolve_options(image_size=image_size, block_size=block_size, **options)
        width = resolved["width"]
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        if resolved["cifar_stem"] is None:
            resolved["cifar_stem"] = max(image_size) <= SMALL_IMAGE
        return resolved

    @classmethod
    def build_network(
        cls, *, num_classes: int, image_size: tuple[int, int], block_size: int, in_chans: int, **options: Any
    ) -> nn.Module:
        net = create_timm_model(
            "resnet18",
            weights_file=options["weights_file"],
            pretrained=options["pretrained"],
            num_classes=num_classes,
            in_chans=in_chans,
            drop_rate=options["drop_rate"],
            stem_width=options["width"],
            channels=tuple(options["width"] * 2**i for i in range(4)),
        )
        if options["cifar_stem"]:
            net.conv1 = nn.Conv2d(in_chans, net.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
            net.maxpool = nn.Identity()
        return net
