"""CycleGAN networks for unpaired translation of 64x64 frames between two domains A and B.

Frames are floats in [-1, 1] inside the networks (the generators end in tanh; :func:`to_unit_range` and
:func:`to_uint8_frames` of :mod:`worldmodels.components.gan` convert). Widths are multiples of a base width d
(32 in the generative-deep-learning book's U-Net CycleGAN, 64 in the paper's ResNet one). Every convolution
with kernel 4 pads as Keras' "same" does.

    unet           (B, C, 64, 64) -> four downsampling convs 4x4 stride 2 (LeakyReLU 0.2, instance norm) with
                   d, 2d, 4d, 8d channels to (B, 8d, 4, 4) -> three times [2x upsampling, conv 4x4 (ReLU,
                   instance norm), concatenate the downsampling path's map of that size] with 4d, 2d, d channels
                   to (B, 2d, 32, 32) -> 2x upsampling, conv 4x4 -> tanh: (B, C, 64, 64)
    resnet         (B, C, 64, 64) -> reflection pad 3, conv 7x7 d -> convs 3x3 stride 2 with 2d, 4d to
                   (B, 4d, 16, 16) -> ``resnet_blocks`` residual blocks [reflection pad 1, conv 3x3, instance norm,
                   ReLU, reflection pad 1, conv 3x3, instance norm] + x -> transposed convs 3x3 stride 2 with 2d, d
                   -> reflection pad 3, conv 7x7 -> tanh: (B, C, 64, 64); instance norm and ReLU after every conv
                   but the last
    discriminator  PatchGAN: (B, C, 64, 64) -> convs 4x4 with d, 2d, 4d, 8d channels, strides 2, 2, 2, 1,
                   LeakyReLU 0.2, instance norm from the second on -> conv 4x4 to one channel: (B, 1, 8, 8) scores,
                   one per overlapping patch, trained with an MSE loss toward 1 (real) or 0 (fake)
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal, get_args

import numpy as np
import torch
from torch import nn

from worldmodels.components.gan import FRAME_SIZE, to_uint8_frames, to_unit_range
from worldmodels.config_schema import CycleGANGeneratorName

GENERATOR_NAMES: tuple[CycleGANGeneratorName, ...] = get_args(CycleGANGeneratorName)


def conv4(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """A 4x4 convolution padded as Keras' "same": (B, C_in, H, W) -> (B, C_out, H / stride, W / stride)."""
    pad = (1, 1, 1, 1) if stride == 2 else (1, 2, 1, 2)  # (left, right, top, bottom)
    return nn.Sequential(nn.ZeroPad2d(pad), nn.Conv2d(in_channels, out_channels, 4, stride))


class UNetGenerator(nn.Module):
    """The book's U-Net: frames (B, channels, 64, 64) in [-1, 1] -> (B, channels, 64, 64) in [-1, 1]; see the
    module docstring for the layers."""

    def __init__(self, channels: int = 3, width: int = 32) -> None:
        super().__init__()
        sizes = (channels, width, 2 * width, 4 * width, 8 * width)
        self.down = nn.ModuleList(
            nn.Sequential(conv4(c_in, c_out, 2), nn.LeakyReLU(0.2), nn.InstanceNorm2d(c_out))
            for c_in, c_out in pairwise(sizes)
        )
        # Up path: the input holds the previous up map concatenated with the skip (except the first, 8d alone).
        ups = ((8 * width, 4 * width), (8 * width, 2 * width), (4 * width, width))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2), conv4(c_in, c_out, 1), nn.ReLU(), nn.InstanceNorm2d(c_out))
            for c_in, c_out in ups
        )
        self.output = nn.Sequential(nn.Upsample(scale_factor=2), conv4(2 * width, channels, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, 64, 64) -> (B, C, 64, 64) in [-1, 1]."""
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)  # (B, d, 32, 32), (B, 2d, 16, 16), (B, 4d, 8, 8), (B, 8d, 4, 4)
        for layer, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = torch.cat([layer(x), skip], dim=1)  # (B, 8d, 8, 8), (B, 4d, 16, 16), (B, 2d, 32, 32)
        return self.output(x)


class ReflectionResidualBlock(nn.Module):
    """CycleGAN's residual block: y = x + F(x), F = [reflection pad 1, conv 3x3, instance norm, ReLU,
    reflection pad 1, conv 3x3, instance norm]; (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return x + self.residual(x)


class ResNetGenerator(nn.Module):
    """The CycleGAN paper's ResNet generator: frames (B, channels, 64, 64) in [-1, 1] -> the same shape in
    [-1, 1]; see the module docstring for the layers."""

    def __init__(self, channels: int = 3, width: int = 64, blocks: int = 9) -> None:
        super().__init__()

        def norm_relu(c: int) -> list[nn.Module]:
            return [nn.InstanceNorm2d(c), nn.ReLU()]

        self.layers = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(channels, width, 7), *norm_relu(width),  # (B, d, 64, 64)
            nn.Conv2d(width, 2 * width, 3, 2, 1), *norm_relu(2 * width),  # (B, 2d, 32, 32)
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1), *norm_relu(4 * width),  # (B, 4d, 16, 16)
            *(ReflectionResidualBlock(4 * width) for _ in range(blocks)),
            nn.ConvTranspose2d(4 * width, 2 * width, 3, 2, 1, output_padding=1), *norm_relu(2 * width),  # 32x32
            nn.ConvTranspose2d(2 * width, width, 3, 2, 1, output_padding=1), *norm_relu(width),  # (B, d, 64, 64)
            nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, 64, 64) -> (B, C, 64, 64) in [-1, 1]."""
        return self.layers(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: frames (B, channels, 64, 64) in [-1, 1] -> patch scores (B, 1, 8, 8); see the module docstring."""

    def __init__(self, channels: int = 3, width: int = 32) -> None:
        super().__init__()
        sizes = (channels, width, 2 * width, 4 * width, 8 * width)
        layers: list[nn.Module] = []
        for index, ((c_in, c_out), stride) in enumerate(zip(pairwise(sizes), (2, 2, 2, 1), strict=True)):
            layers += [conv4(c_in, c_out, stride), nn.LeakyReLU(0.2)]
            if index:
                layers.append(nn.InstanceNorm2d(c_out))
        self.layers = nn.Sequential(*layers, conv4(8 * width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, 64, 64) -> (B, 1, 8, 8)."""
        return self.layers(x)


class CycleGAN(nn.Module):
    """The two generators (A->B, B->A) and the two discriminators (of A frames, of B frames), kept together so
    one checkpoint holds all four.

    :param generator: "unet" or "resnet" (see the module docstring).
    :param channels: frame channels C of both domains.
    :param width: base channel count d of the generators and the discriminators.
    :param resnet_blocks: residual blocks of the ResNet generators (ignored by the U-Net).
    """

    def __init__(self, generator: CycleGANGeneratorName = "unet", channels: int = 3, width: int = 32,
                 resnet_blocks: int = 9) -> None:
        super().__init__()
        if generator not in GENERATOR_NAMES:
            raise ValueError(f"unknown CycleGAN generator {generator!r}; choose one of: {', '.join(GENERATOR_NAMES)}")
        self.generator_name = generator
        self.channels = channels

        def make_generator() -> nn.Module:
            if generator == "unet":
                return UNetGenerator(channels, width)
            return ResNetGenerator(channels, width, resnet_blocks)

        self.generator_ab = make_generator()
        self.generator_ba = make_generator()
        self.discriminator_a = PatchDiscriminator(channels, width)
        self.discriminator_b = PatchDiscriminator(channels, width)

    def generators(self) -> list[nn.Parameter]:
        """The parameters of both generators."""
        return [*self.generator_ab.parameters(), *self.generator_ba.parameters()]

    def discriminators(self) -> list[nn.Parameter]:
        """The parameters of both discriminators."""
        return [*self.discriminator_a.parameters(), *self.discriminator_b.parameters()]

    @torch.no_grad()
    def translate(self, frames: np.ndarray, direction: Literal["ab", "ba"]) -> np.ndarray:
        """Frames (N, 64, 64, C) uint8 of one domain -> (N, 64, 64, C) uint8 of the other, through
        ``generator_ab`` ("ab") or ``generator_ba`` ("ba") on the model's device."""
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (FRAME_SIZE, FRAME_SIZE, self.channels):
            raise ValueError(f"translate takes (N, {FRAME_SIZE}, {FRAME_SIZE}, {self.channels}) uint8 frames, got "
                             f"{frames.shape} {frames.dtype}")
        generator = self.generator_ab if direction == "ab" else self.generator_ba
        device = next(generator.parameters()).device
        x = to_unit_range(torch.tensor(frames, device=device).permute(0, 3, 1, 2))  # (N, C, 64, 64)
        return to_uint8_frames(generator(x))
