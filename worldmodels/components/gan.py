"""GAN networks for 64x64 frames: one generator design, and a critic per variant (DCGAN, WGAN, WGAN-GP).

Frames are scaled to [-1, 1] inside the GAN (the generator ends in tanh); :meth:`GAN.generate` returns uint8
frames, ready to stand in for rollout frames (data augmentation, rendering dreams). Widths are multiples of a
base width w (64 in the books):

    generator  z (B, Z) -> Linear -> (B, 8w, 4, 4) -> four times [2x nearest upsampling, conv 5x5, BatchNorm,
               ReLU] to (B, w, 64, 64) with 4w, 2w, w, w channels -> conv 5x5 -> tanh: (B, C, 64, 64)
    critic     (B, C, 64, 64) -> convs 5x5 with LeakyReLU 0.2, no batch norm -> flatten -> Linear: (B,) scores
               dcgan:          w, w, 2w, 2w channels, strides 2, 2, 2, 1, dropout 0.4 (the book's discriminator;
                               its scores are logits)
               wgan, wgan_gp:  w, 2w, 4w, 8w channels, strides 2 (the book's WGAN-GP critic; linear scores)
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
import torch.nn as nn

FRAME_SIZE = 64


@dataclass(frozen=True)
class CriticLayout:
    """A critic's convolutions: channels as multiples of the base width, strides, dropout after each."""

    widths: tuple[int, ...]
    strides: tuple[int, ...]
    dropout: float


CRITIC_LAYOUTS: dict[str, CriticLayout] = {
    "dcgan": CriticLayout(widths=(1, 1, 2, 2), strides=(2, 2, 2, 1), dropout=0.4),
    "wgan": CriticLayout(widths=(1, 2, 4, 8), strides=(2, 2, 2, 2), dropout=0.0),
    "wgan_gp": CriticLayout(widths=(1, 2, 4, 8), strides=(2, 2, 2, 2), dropout=0.0),
}


class Generator(nn.Module):
    """z (B, latent_size) -> frames (B, channels, 64, 64) in [-1, 1]; see the module docstring for the layers."""

    def __init__(self, channels: int = 3, latent_size: int = 100, width: int = 64) -> None:
        super().__init__()
        self.latent_size = latent_size
        self.project = nn.Sequential(nn.Linear(latent_size, 8 * width * 4 * 4), nn.Unflatten(1, (8 * width, 4, 4)),
                                     nn.BatchNorm2d(8 * width), nn.ReLU())  # (B, 8w, 4, 4)
        sizes = (8 * width, 4 * width, 2 * width, width, width)
        self.upsample = nn.Sequential(*(
            nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 5, padding=2, bias=False),
                          nn.BatchNorm2d(c_out), nn.ReLU())
            for c_in, c_out in pairwise(sizes)
        ))  # (B, w, 64, 64)
        self.output = nn.Sequential(nn.Conv2d(width, channels, 5, padding=2), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, Z) -> (B, C, 64, 64) in [-1, 1]."""
        return self.output(self.upsample(self.project(z)))


class Critic(nn.Module):
    """Frames (B, channels, 64, 64) in [-1, 1] -> scores (B,); no batch norm (the gradient penalty needs each
    sample's score to depend on that sample alone)."""

    def __init__(self, layout: CriticLayout, channels: int = 3, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size, c_in = FRAME_SIZE, channels
        for multiple, stride in zip(layout.widths, layout.strides, strict=True):
            layers += [nn.Conv2d(c_in, multiple * width, 5, stride, padding=2), nn.LeakyReLU(0.2)]
            if layout.dropout:
                layers.append(nn.Dropout(layout.dropout))
            size, c_in = (size - 1) // stride + 1, multiple * width
        self.features = nn.Sequential(*layers, nn.Flatten())  # (B, c_in * size * size)
        self.score = nn.Linear(c_in * size * size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, 64, 64) -> (B,)."""
        return self.score(self.features(x)).squeeze(1)


class GAN(nn.Module):
    """A generator and the critic of ``variant``, kept together so one checkpoint holds both.

    :param variant: "dcgan", "wgan" or "wgan_gp" (chooses the critic's layout; the training recipe is
        :mod:`worldmodels.components.gan_updates`').
    :param channels: frame channels C.
    :param latent_size: size Z of the generator's noise.
    :param width: base channel count w.
    """

    def __init__(self, variant: str = "wgan_gp", channels: int = 3, latent_size: int = 100, width: int = 64) -> None:
        super().__init__()
        if variant not in CRITIC_LAYOUTS:
            raise ValueError(f"unknown GAN variant {variant!r}; choose one of: {', '.join(CRITIC_LAYOUTS)}")
        self.variant = variant
        self.latent_size = latent_size
        self.generator = Generator(channels, latent_size, width)
        self.critic = Critic(CRITIC_LAYOUTS[variant], channels, width)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n noise vectors z ~ N(0, I), (n, Z), on the model's device (from ``generator`` or torch's global RNG)."""
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_size, generator=generator, device=device)

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator | None = None) -> np.ndarray:
        """n new frames (n, 64, 64, C) uint8 from fresh noise (drawn from ``generator``, a torch.Generator on the
        model's device, or torch's global RNG).

        The generator runs in eval mode (BatchNorm uses its running statistics), so generating changes nothing
        in the model; its train/eval mode is restored afterwards.
        """
        return self.draw(self.sample_latent(n, generator))

    @torch.no_grad()
    def draw(self, latent: torch.Tensor) -> np.ndarray:
        """Frames (N, 64, 64, C) uint8 of latents (N, Z) (noise, or V's z for a GAN trained with latent_source
        "vae"), the generator in eval mode (its train/eval mode is restored afterwards)."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            device = next(self.parameters()).device
            frames = self.generator(latent.to(device, torch.float32))  # (N, C, 64, 64) in [-1, 1]
        finally:
            self.generator.train(was_training)
        return to_uint8_frames(frames)


def to_uint8_frames(x: torch.Tensor) -> np.ndarray:
    """x (N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8 on the CPU."""
    scaled = x.detach().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def to_unit_range(frames: torch.Tensor) -> torch.Tensor:
    """frames (B, C, H, W) uint8 -> floats in [-1, 1], the GAN's range."""
    return frames.float().div(127.5).sub(1)
