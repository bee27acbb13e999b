"""Networks shared by the learned attacks: the ITN/GAN generators and the GAN discriminator.

Generators map ciphertexts scaled to [-1, 1] to logits; :func:`to_image` applies the sigmoid
and rounds to uint8, so the training target (plain / 255 in [0, 1]) and the evaluated output
use the same activation (the field's ITN code trained through a sigmoid but evaluated the raw
tanh output; see the background notes, section 5.3).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

#: channels per output pixel after the pixel shuffle of the block net (Ito et al.: 512 / 4^2)
SHUFFLE_CHANNELS = 32


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float in [-1, 1], the networks' input scale."""
    return images.float().div(127.5).sub(1.0)


def to_target(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float in [0, 1], the scale of the sigmoid output."""
    return images.float().div(255.0)


def to_image(logits: torch.Tensor) -> torch.Tensor:
    """Generator logits to uint8 images (sigmoid, x 255, rounded)."""
    return torch.sigmoid(logits).mul(255.0).round().to(torch.uint8)


def tanh_to_image(output: torch.Tensor) -> torch.Tensor:
    """A tanh generator's output in [-1, 1] to uint8 images (x 0.5 + 0.5, x 255, rounded)."""
    return output.mul(0.5).add(0.5).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding=0, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class BlockNet(nn.Sequential):
    """Ito et al.'s inverse transformation network, block-aligned.

    conv (kernel = stride = M) -> 1x1 -> 1x1 to M*M*32 channels -> pixel shuffle(M) -> 1x1.
    Every block is decoded from that block alone, with the same weights at every position, which
    fits ciphers whose key is shared by all blocks.  With M = 1 it is the pixel-wise (1x1) net.
    """

    def __init__(self, channels: int, block: int, width: int) -> None:
        super().__init__(
            *_conv_bn_relu(channels, width, block, block),
            *_conv_bn_relu(width, width, 1),
            *_conv_bn_relu(width, block * block * SHUFFLE_CHANNELS, 1),
            nn.PixelShuffle(block),
            nn.Conv2d(SHUFFLE_CHANNELS, channels, 1),
        )


class _DoubleConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """A small U-Net (the stronger ITN of Ito et al. 2021): ``depth`` 2x down/up stages with skips."""

    def __init__(self, channels: int, width: int, depth: int) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(_DoubleConv(c_in, c_out) for c_in, c_out in zip([channels, *widths], widths))
        self.up = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 3, padding=1) for i in reversed(range(depth)))
        self.merge = nn.ModuleList(_DoubleConv(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(width, channels, 1)
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, stage in enumerate(self.down):
            x = stage(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = up(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))
            x = merge(torch.cat([skips.pop(), x], dim=1))
        return self.head(x)


class Discriminator(nn.Module):
    """DCGAN-style patch discriminator, spectrally normalised: one logit per image patch.

    Two 4x4 stride-2 convolutions with LeakyReLU 0.2 and a 4x4 convolution to one channel, as
    the field's simplified GAN attack; every output judges one local patch (about 10 x 10
    pixels), which gives the generator a dense signal about local, block-sized statistics.
    """

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            spectral_norm(nn.Conv2d(channels, width, 4, 2, 1)),
            nn.LeakyReLU(0.2, inplace=True),
            spectral_norm(nn.Conv2d(width, 2 * width, 4, 2, 1)),
            nn.LeakyReLU(0.2, inplace=True),
            spectral_norm(nn.Conv2d(2 * width, 1, 4, 1, 0)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02) and biases 0, BatchNorm gamma N(1, 0.02), beta 0."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


#: hidden widths of the field's pixel-wise (1x1) ITN, for block size 1
PIXEL_WIDTHS = (64, 128, 256)


class FieldGenerator(nn.Sequential):
    """The generator of the field's simplified GAN attack: Ito et al.'s ITN with a tanh output.

    Block size M > 1: conv (C -> C*M*M, kernel = stride = M) + BN + ReLU, 1x1 (C*M*M -> C*M*M)
    + BN + ReLU, 1x1 (C*M*M -> M*M*32) + BN + ReLU, pixel shuffle(M), 1x1 (32 -> C), tanh
    (48 and 512 channels for RGB and M = 4).  M = 1: the field's pixel-wise net, 1x1 convs
    C -> 64 -> 128 -> 256 (+ BN + ReLU each) -> C, tanh.  DCGAN initialisation.
    """

    def __init__(self, channels: int, block: int) -> None:
        if block > 1:
            width = channels * block * block
            layers = [
                *_conv_bn_relu(channels, width, block, block),
                *_conv_bn_relu(width, width, 1),
                *_conv_bn_relu(width, block * block * SHUFFLE_CHANNELS, 1),
                nn.PixelShuffle(block),
                nn.Conv2d(SHUFFLE_CHANNELS, channels, 1),
            ]
        else:
            widths = (channels, *PIXEL_WIDTHS)
            layers = [m for c_in, c_out in zip(widths, widths[1:]) for m in _conv_bn_relu(c_in, c_out, 1)]
            layers.append(nn.Conv2d(widths[-1], channels, 1))
        super().__init__(*layers, nn.Tanh())
        self.apply(dcgan_init)


class PatchDiscriminator(nn.Module):
    """The discriminator of the field's simplified GAN attack (a DCGAN patch critic).

    Conv(C -> 64, 4, 2, 1) + LeakyReLU(0.2), spectrally normalised Conv(64 -> 128, 4, 2, 1) +
    LeakyReLU(0.2), Conv(128 -> 1, 4, 1, 0), max-pool 3 (stride 3): one logit for a 32 x 32
    image (the 5 x 5 patch map pooled over its top-left 3 x 3, as the field's code did); the
    sigmoid is left to the BCE-with-logits loss.  Maps smaller than 3 are pooled whole.
    DCGAN initialisation.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        first, second, last = nn.Conv2d(channels, 64, 4, 2, 1), nn.Conv2d(64, 128, 4, 2, 1), nn.Conv2d(128, 1, 4, 1, 0)
        for conv in (first, second, last):
            dcgan_init(conv)
        self.features = nn.Sequential(
            first, nn.LeakyReLU(0.2, inplace=True), spectral_norm(second), nn.LeakyReLU(0.2, inplace=True), last
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.features(x)
        kernel = min(3, patches.shape[-2], patches.shape[-1])
        return nn.functional.max_pool2d(patches, kernel).flatten(1)


def build_generator(arch: str, channels: int, block: int, image_size: tuple[int, int], width: int, unet_depth: int) -> nn.Module:
    """The generator for ``arch`` (``auto``: block-aligned for block ciphers, 1x1 for pixel-wise)."""
    if arch == "auto":
        arch = "block" if block > 1 else "pixel"
    if arch == "block":
        return BlockNet(channels, block, width)
    if arch == "pixel":
        return BlockNet(channels, 1, width)
    if arch == "unet":
        factor = 2**unet_depth
        if image_size[0] % factor or image_size[1] % factor:
            raise ValueError(f"unet_depth {unet_depth} needs image sides divisible by {factor}, got {image_size}")
        return UNet(channels, width, unet_depth)
    raise ValueError(f"arch must be auto, block, pixel or unet, got {arch!r}")
