"""Image encoders of the books' CNN families, chosen by name: (B, C, H, W) floats in [0, 1] -> (B, features_dim).

Each family contributes a convolutional trunk; :class:`ImageEncoder` flattens the trunk's feature map (so the
features keep where things are, which control needs) and maps it through Linear + ReLU to ``features_dim``.
Sizes in the trunk docstrings are for 64x64 frames; any frame large enough for the trunk works.

    mnist      the books' MNIST convnet: conv 32-64-64 3x3 with 2x2 max pooling (the dense 64 is the head)
    alexnet    AlexNet in small: a large strided first conv, overlapping 3x3/2 max pooling, three 3x3 convs
    vgg        four VGG blocks of two 3x3 convs each (32, 64, 128, 128 channels)
    inception  a strided stem and three Inception blocks (1x1 / 3x3 / 5x5 / pool branches, 1x1 reductions)
    resnet     a strided stem and four residual blocks (y = F(x) + x, projection shortcut when the shape changes)
    nature     the Nature-DQN encoder (Mnih et al. 2015): conv 8x8/4 (32), 4x4/2 (64), 3x3/1 (64)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from worldmodels.components.blocks import InceptionBlock, ResidualBlock, conv_relu, vgg_block
from worldmodels.config_schema import EncoderName


def mnist_trunk(in_channels: int) -> nn.Sequential:
    """(B, C, 64, 64) -> (B, 64, 12, 12): valid 3x3 convs of 32, 64, 64 channels, 2x2 max pooling between."""
    return nn.Sequential(
        conv_relu(in_channels, 32, 3, padding=0), nn.MaxPool2d(2),  # (B, 32, 31, 31)
        conv_relu(32, 64, 3, padding=0), nn.MaxPool2d(2),  # (B, 64, 14, 14)
        conv_relu(64, 64, 3, padding=0),  # (B, 64, 12, 12)
    )


def alexnet_trunk(in_channels: int) -> nn.Sequential:
    """(B, C, 64, 64) -> (B, 64, 3, 3): conv 5x5/2 (32), pool, conv 5x5 (64), pool, 3x3 convs 96, 96, 64, pool;
    every pool 3x3 stride 2 (AlexNet's overlapping pooling)."""
    return nn.Sequential(
        conv_relu(in_channels, 32, 5, stride=2), nn.MaxPool2d(3, 2),  # (B, 32, 15, 15)
        conv_relu(32, 64, 5), nn.MaxPool2d(3, 2),  # (B, 64, 7, 7)
        conv_relu(64, 96, 3), conv_relu(96, 96, 3), conv_relu(96, 64, 3), nn.MaxPool2d(3, 2),  # (B, 64, 3, 3)
    )


def vgg_trunk(in_channels: int) -> nn.Sequential:
    """(B, C, 64, 64) -> (B, 128, 4, 4): VGG blocks of two 3x3 convs with 32, 64, 128, 128 channels."""
    return nn.Sequential(
        vgg_block(in_channels, 32, 2),  # (B, 32, 32, 32)
        vgg_block(32, 64, 2),  # (B, 64, 16, 16)
        vgg_block(64, 128, 2),  # (B, 128, 8, 8)
        vgg_block(128, 128, 2),  # (B, 128, 4, 4)
    )


def inception_trunk(in_channels: int) -> nn.Sequential:
    """(B, C, 64, 64) -> (B, 144, 4, 4): conv 3x3/2 (32) and 3x3/2 max pool, two Inception blocks (64, 112
    channels), 3x3/2 max pool, one Inception block (144 channels), 2x2 max pool."""
    return nn.Sequential(
        conv_relu(in_channels, 32, 3, stride=2), nn.MaxPool2d(3, 2, padding=1),  # (B, 32, 16, 16)
        InceptionBlock(32, 16, 16, 32, 4, 8, 8),  # (B, 64, 16, 16)
        InceptionBlock(64, 32, 32, 48, 8, 16, 16),  # (B, 112, 16, 16)
        nn.MaxPool2d(3, 2, padding=1),  # (B, 112, 8, 8)
        InceptionBlock(112, 48, 32, 64, 8, 16, 16),  # (B, 144, 8, 8)
        nn.MaxPool2d(2),  # (B, 144, 4, 4)
    )


def resnet_trunk(in_channels: int) -> nn.Sequential:
    """(B, C, 64, 64) -> (B, 128, 4, 4): conv 3x3/2 (32) + BatchNorm + ReLU, then residual blocks 32 -> 32,
    32 -> 64 /2, 64 -> 128 /2, 128 -> 128 /2."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),  # (B, 32, 32, 32)
        ResidualBlock(32, 32),  # (B, 32, 32, 32)
        ResidualBlock(32, 64, stride=2),  # (B, 64, 16, 16)
        ResidualBlock(64, 128, stride=2),  # (B, 128, 8, 8)
        ResidualBlock(128, 128, stride=2),  # (B, 128, 4, 4)
    )


def nature_trunk(in_channels: int) -> nn.Sequential:
    """(B, C, 64, 64) -> (B, 64, 4, 4): the Nature-DQN convs 8x8/4 (32), 4x4/2 (64), 3x3/1 (64), unpadded."""
    return nn.Sequential(
        conv_relu(in_channels, 32, 8, stride=4, padding=0),  # (B, 32, 15, 15)
        conv_relu(32, 64, 4, stride=2, padding=0),  # (B, 64, 6, 6)
        conv_relu(64, 64, 3, padding=0),  # (B, 64, 4, 4)
    )


ENCODERS: dict[EncoderName, Callable[[int], nn.Module]] = {
    "mnist": mnist_trunk,
    "alexnet": alexnet_trunk,
    "vgg": vgg_trunk,
    "inception": inception_trunk,
    "resnet": resnet_trunk,
    "nature": nature_trunk,
}
"""Each encoder's trunk builder, taking the input channel count (the names are ``EncoderName``'s)."""


class ImageEncoder(nn.Module):
    """A named trunk, flattened, then Linear + ReLU: (B, C, H, W) floats in [0, 1] -> (B, features_dim) >= 0."""

    def __init__(self, name: str, in_channels: int, image_size: int | tuple[int, int], features_dim: int) -> None:
        super().__init__()
        if name not in ENCODERS:
            raise ValueError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}")
        if in_channels < 1 or features_dim < 1:
            raise ValueError(f"encoder {name!r} needs in_channels >= 1 and features_dim >= 1, got {in_channels} and "
                             f"{features_dim}")
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.name = name
        self.features_dim = features_dim
        self.trunk = ENCODERS[name](in_channels)
        flat = self._flat_size(in_channels, height, width)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, features_dim), nn.ReLU())

    @torch.no_grad()
    def _flat_size(self, in_channels: int, height: int, width: int) -> int:
        """Features the trunk yields for one (in_channels, height, width) image, measured in eval mode (so
        BatchNorm's running statistics are untouched)."""
        self.trunk.eval()
        try:
            return self.trunk(torch.zeros(1, in_channels, height, width)).flatten(1).shape[1]
        except RuntimeError as err:
            reason = str(err).strip().splitlines()[0]
            raise ValueError(f"encoder {self.name!r} cannot read {height}x{width} images ({reason}); use larger "
                             "frames or another encoder") from None
        finally:
            self.trunk.train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) float in [0, 1] -> (B, features_dim)."""
        return self.head(self.trunk(x))


def make_encoder(name: str, in_channels: int, image_size: int | tuple[int, int] = 64,
                 features_dim: int = 256) -> ImageEncoder:
    """The encoder ``name`` (a key of :data:`ENCODERS`) for (B, in_channels, H, W) images of ``image_size``
    (H = W, or (H, W)), with ``features_dim`` output features.

    :raises ValueError: an unknown name, sizes below 1, or images too small for the trunk.
    """
    return ImageEncoder(name, in_channels, image_size, features_dim)


class FramePredictor(nn.Module):
    """A named encoder and a linear head: (B, C, H, W) floats in [0, 1] -> (B, outputs) (regression values or
    class logits)."""

    def __init__(self, encoder: str, in_channels: int, image_size: int, features_dim: int, outputs: int) -> None:
        super().__init__()
        self.encoder = make_encoder(encoder, in_channels, image_size, features_dim)
        self.head = nn.Linear(features_dim, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> (B, outputs)."""
        return self.head(self.encoder(x))
