"""Building blocks of the lecture notes' CNN families: VGG's stacked 3x3 convolutions, Inception's parallel
branches, ResNet's residual block y = F(x) + x.

Every block maps (B, C_in, H, W) float feature maps to (B, C_out, H', W'); each class states its sizes.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def conv_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
              padding: int | None = None) -> nn.Sequential:
    """Conv2d + ReLU; padding defaults to kernel_size // 2 ("same" at stride 1): (B, C_in, H, W) -> (B, C_out,
    H', W') with H' = (H + 2 * padding - kernel_size) // stride + 1."""
    padding = kernel_size // 2 if padding is None else padding
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding), nn.ReLU())


def vgg_block(in_channels: int, out_channels: int, convs: int) -> nn.Sequential:
    """VGG block: ``convs`` 3x3 convolutions (padding 1, ReLU each), then 2x2 max pooling:
    (B, C_in, H, W) -> (B, C_out, H // 2, W // 2)."""
    layers = [conv_relu(in_channels if i == 0 else out_channels, out_channels, 3) for i in range(convs)]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class InceptionBlock(nn.Module):
    """GoogLeNet's Inception module: four parallel branches, concatenated on channels.

    1x1 conv; 1x1 reduction -> 3x3 conv; 1x1 reduction -> 5x5 conv; 3x3 max pool (stride 1) -> 1x1
    projection; ReLU after every conv, "same" padding throughout:
    (B, C_in, H, W) -> (B, ones + threes + fives + pool_proj, H, W).
    """

    def __init__(self, in_channels: int, ones: int, threes_reduce: int, threes: int, fives_reduce: int, fives: int,
                 pool_proj: int) -> None:
        super().__init__()
        self.out_channels = ones + threes + fives + pool_proj
        self.branches = nn.ModuleList([
            conv_relu(in_channels, ones, 1),
            nn.Sequential(conv_relu(in_channels, threes_reduce, 1), conv_relu(threes_reduce, threes, 3)),
            nn.Sequential(conv_relu(in_channels, fives_reduce, 1), conv_relu(fives_reduce, fives, 5)),
            nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_relu(in_channels, pool_proj, 1)),
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, out_channels, H, W)."""
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class ResidualBlock(nn.Module):
    """ResNet's basic block: y = ReLU(F(x) + shortcut(x)).

    F = 3x3 conv (stride s) -> BatchNorm -> ReLU -> 3x3 conv -> BatchNorm. The shortcut is the identity when
    the shape is kept (s = 1 and C_in = C_out), else a projection: 1x1 conv (stride s) -> BatchNorm.
    (B, C_in, H, W) -> (B, C_out, ceil(H / s), ceil(W / s)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels),
        )
        keeps_shape = stride == 1 and in_channels == out_channels
        self.shortcut: nn.Module = nn.Identity() if keeps_shape else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, ceil(H / s), ceil(W / s))."""
        return torch.relu(self.residual(x) + self.shortcut(x))
