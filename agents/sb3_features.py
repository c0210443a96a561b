"""V's encoder as a stable-baselines3 features extractor: any SB3 image policy reads V's latent of each frame.

    PPO("CnnPolicy", env, policy_kwargs={"features_extractor_class": VAEFeaturesExtractor,
                                         "features_extractor_kwargs": {"vae_path": "RUN/vae.pt"}})

What reaches the extractor follows :class:`worldmodels.components.sb3.ImageFeaturesExtractor`'s rule: frames
channel-first, (B, C, 64, 64), in [0, 1] (SB3 transposes an env's channels-last frames and divides uint8 by 255), as
V was trained to read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from gymnasium import spaces

from worldmodels.checkpoint import load_vae
from worldmodels.components.sb3 import ImageFeaturesExtractor

VAEFeatures = Literal["mu", "mu_logvar"]
FRAME_SIZE = 64


class VAEFeaturesExtractor(ImageFeaturesExtractor):
    """Frames (B, C, 64, 64) in [0, 1] to V's posterior mean mu (B, Z), or [mu, logvar] (B, 2Z).

    :param observation_space: the policy's image space, (C, 64, 64), C being V's channels.
    :param vae_path: V's checkpoint (``train-vae``); its weights are then saved with the policy.
    :param fine_tune: train V's encoder with the policy; False (default) freezes it (no gradients).
    :param features: "mu" (Z features, default) or "mu_logvar" (2Z).
    :param normalized_image: the observations are already floats in [0, 1] rather than uint8 (SB3's flag).
    """

    def __init__(self, observation_space: spaces.Box, vae_path: str | Path, fine_tune: bool = False,
                 features: VAEFeatures = "mu", normalized_image: bool = False) -> None:
        if features not in ("mu", "mu_logvar"):
            raise ValueError(f"features must be 'mu' or 'mu_logvar', got {features!r}")
        vae = load_vae(vae_path)
        super().__init__(observation_space, vae.z_size * (1 if features == "mu" else 2), normalized_image)
        if self.image_shape != (vae.in_channels, FRAME_SIZE, FRAME_SIZE):
            raise ValueError(f"V in {vae_path} encodes {FRAME_SIZE}x{FRAME_SIZE} frames of {vae.in_channels} "
                             f"channel(s): the observation space must be ({vae.in_channels}, {FRAME_SIZE}, "
                             f"{FRAME_SIZE}), got {observation_space}")
        self.encoder, self.fc_mu = vae.encoder, vae.fc_mu  # V's decoder is not kept
        self.fc_logvar = vae.fc_logvar if features == "mu_logvar" else None
        self.requires_grad_(fine_tune)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Features (B, Z) or (B, 2Z) of frames (B, C, 64, 64) in [0, 1]."""
        h = self.encoder(observations.float())  # (B, 1024)
        mu = self.fc_mu(h)  # (B, Z)
        if self.fc_logvar is None:
            return mu
        return torch.cat([mu, self.fc_logvar(h)], dim=1)  # (B, 2Z)
